//! Streaming digests of artifacts: constant memory whatever the size.
//!
//! Reading and hashing overlap: a second thread reads the next block while this one
//! hashes the last, so a file from the page cache hashes at the speed of SHA-256 (with
//! SHA-NI where the CPU has it) rather than at the sum of read and hash times.

use std::io::{self, Read};
use std::sync::mpsc;

use custody_model::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256, Sha512};

/// Bytes read per block. Two or three blocks are alive at once, so memory stays flat.
const BLOCK: usize = 1 << 20;

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::sha256(h.finalize().into()),
            Hasher::Sha512(h) => {
                let hex = hex::encode(h.finalize());
                // 64 bytes of output is exactly what a SHA-512 digest must hold.
                Digest::from_parts("sha512", &hex).unwrap_or_else(|_| unreachable!())
            }
        }
    }
}

/// Digests everything `reader` yields. `progress` is called with the bytes done so far
/// after each block (for a progress bar).
pub fn digest_reader<R: Read + Send>(
    reader: R,
    algorithm: DigestAlgorithm,
    mut progress: impl FnMut(u64),
) -> io::Result<Digest> {
    let mut hasher = match algorithm {
        DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
    };
    // Full blocks travel to this thread; emptied ones go back to be refilled.
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(1);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let mut done = 0u64;
    std::thread::scope(move |scope| {
        scope.spawn(move || read_blocks(reader, &full_tx, &empty_rx));
        for _ in 0..2 {
            // The reader may already have stopped (on an error); a closed channel is fine.
            let _ = empty_tx.send(vec![0; BLOCK]);
        }
        while let Ok(block) = full_rx.recv() {
            let block = block?;
            hasher.update(&block);
            done += block.len() as u64;
            progress(done);
            let _ = empty_tx.send(block);
        }
        Ok(hasher.finish())
    })
}

fn read_blocks<R: Read>(
    mut reader: R,
    full: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    empty: &mpsc::Receiver<Vec<u8>>,
) {
    while let Ok(mut buf) = empty.recv() {
        buf.resize(BLOCK, 0);
        let mut filled = 0;
        let result = loop {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    filled += n;
                    if filled == BLOCK {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
            Ok(()) if filled == 0 => return,
            Ok(()) => {
                buf.truncate(filled);
                let last = filled < BLOCK;
                if full.send(Ok(buf)).is_err() || last {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_one_shot_hashes_across_block_boundaries() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let d = digest_reader(&data[..], DigestAlgorithm::Sha256, |_| {}).unwrap();
            assert_eq!(d, Digest::sha256(Sha256::digest(&data).into()), "len {len}");
            let d = digest_reader(&data[..], DigestAlgorithm::Sha512, |_| {}).unwrap();
            assert_eq!(d.hex(), hex::encode(Sha512::digest(&data)), "len {len}");
        }
    }

    #[test]
    fn reports_progress_and_read_errors() {
        let data = vec![1u8; 2 * BLOCK + 5];
        let mut seen = vec![];
        digest_reader(&data[..], DigestAlgorithm::Sha256, |n| seen.push(n)).unwrap();
        assert_eq!(seen, [BLOCK as u64, 2 * BLOCK as u64, 2 * BLOCK as u64 + 5]);

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = digest_reader(Failing, DigestAlgorithm::Sha256, |_| {}).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }

    /// A reader that gives a few KiB at a time and is interrupted now and then (a pipe, a
    /// socket, a signal): blocks are still whole (progress once per block, not per read)
    /// and an interruption is retried, not fatal.
    #[test]
    fn short_and_interrupted_reads_still_make_whole_blocks() {
        struct Trickle<'a> {
            data: &'a [u8],
            calls: usize,
        }
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.calls += 1;
                if self.calls % 5 == 0 {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                let n = buf.len().min(self.data.len()).min(4096);
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..2 * BLOCK + 5).map(|i| (i % 253) as u8).collect();
        let mut seen = vec![];
        let reader = Trickle {
            data: &data,
            calls: 0,
        };
        let d = digest_reader(reader, DigestAlgorithm::Sha256, |n| seen.push(n)).unwrap();
        assert_eq!(d, Digest::sha256(Sha256::digest(&data).into()));
        assert_eq!(seen, [BLOCK as u64, 2 * BLOCK as u64, 2 * BLOCK as u64 + 5]);
    }

    /// The input ends at the first end of input, as `Read` defines it: a reader that would
    /// give more after it (a terminal, a file still being written) is not read again, and a
    /// length that is a whole number of blocks ends without an empty block after it.
    #[test]
    fn the_first_end_of_input_is_the_end() {
        /// Gives each of its reads in turn (an empty one is an end of input).
        struct MoreAfterTheEnd(std::vec::IntoIter<&'static [u8]>);
        impl Read for MoreAfterTheEnd {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let next = self.0.next().unwrap_or(b"");
                buf[..next.len()].copy_from_slice(next);
                Ok(next.len())
            }
        }
        let reader = MoreAfterTheEnd(vec![&b"abc"[..], b"", b"def", b""].into_iter());
        let d = digest_reader(reader, DigestAlgorithm::Sha256, |_| {}).unwrap();
        assert_eq!(d, Digest::sha256(Sha256::digest(b"abc").into()));

        let data = vec![7u8; 2 * BLOCK];
        let mut seen = vec![];
        digest_reader(&data[..], DigestAlgorithm::Sha256, |n| seen.push(n)).unwrap();
        assert_eq!(seen, [BLOCK as u64, 2 * BLOCK as u64]);
    }
}
