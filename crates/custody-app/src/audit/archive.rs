//! The bundle as a tar archive: a writer that streams members out as they are made (entry
//! files cut at [`ENTRIES_PER_FILE`] lines or [`ENTRY_FILE_BYTES`], so memory stays flat
//! however large the ledger), and a reader that hands each member over whole, refusing any
//! larger than [`max_member`] allows before reading it ([`MAX_MEMBER`], or for a raw
//! report the largest custody reads).
//!
//! The tar headers are fixed (mode 0644, owner 0, the export's time), so the same export
//! gives the same bytes.

use std::io::{self, Read, Write};

use serde::Serialize;

use super::format::{
    END, ENTRIES_PER_FILE, ENTRY_FILE_BYTES, EndFile, EntryLine, MAX_MEMBER, entry_file,
    max_member, report_member,
};

/// Writes a bundle's members in order.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    mtime: u64,
    /// The entry file being filled.
    lines: Vec<u8>,
    lines_in_file: usize,
    files: u64,
    entries: u64,
    reports: u64,
}

impl<W: Write> BundleWriter<W> {
    /// A bundle written to `out`, its members stamped `mtime` (Unix seconds).
    pub fn new(out: W, mtime: u64) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        BundleWriter {
            tar,
            mtime,
            lines: Vec::new(),
            lines_in_file: 0,
            files: 0,
            entries: 0,
            reports: 0,
        }
    }

    /// One member with these bytes.
    pub fn member(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, name, bytes)
    }

    /// One member holding `value` as JSON and a newline.
    pub fn json<T: Serialize>(&mut self, name: &str, value: &T) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.member(name, &bytes)
    }

    /// One member holding each of `lines` as a line of JSON.
    pub fn json_lines<T: Serialize>(&mut self, name: &str, lines: &[T]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut bytes, line).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        self.member(name, &bytes)
    }

    /// Adds an entry line (entries must come in ascending index order, before any report).
    pub fn entry(&mut self, line: &EntryLine) -> io::Result<()> {
        debug_assert_eq!(self.reports, 0, "an entry after a report");
        serde_json::to_writer(&mut self.lines, line).map_err(io::Error::other)?;
        self.lines.push(b'\n');
        self.lines_in_file += 1;
        self.entries += 1;
        if self.lines_in_file >= ENTRIES_PER_FILE || self.lines.len() >= ENTRY_FILE_BYTES {
            self.flush_entries()?;
        }
        Ok(())
    }

    fn flush_entries(&mut self) -> io::Result<()> {
        if self.lines_in_file == 0 {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.lines);
        self.member(&entry_file(self.files), &lines)?;
        self.files += 1;
        self.lines_in_file = 0;
        self.lines = lines;
        self.lines.clear();
        Ok(())
    }

    /// Adds the raw report whose bytes have SHA-256 `hex` (after every entry; reports in
    /// ascending `hex`).
    pub fn report(&mut self, hex: &str, bytes: &[u8]) -> io::Result<()> {
        self.flush_entries()?;
        self.member(&report_member(hex), bytes)?;
        self.reports += 1;
        Ok(())
    }

    /// Entry lines written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the last entry file and the trailer, and ends the archive.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_entries()?;
        let end = EndFile {
            entries: self.entries,
            files: self.files,
            reports: self.reports,
        };
        self.json(END, &end)?;
        self.tar.into_inner()
    }
}

/// Why a bundle cannot be read at all (as opposed to a check that fails on what it holds).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading failed, or the bytes are not a tar archive.
    #[error("the bundle is not a readable tar archive: {0}")]
    Tar(#[from] io::Error),
    /// A member is larger than any a bundle holds.
    #[error(
        "member {name} is {size} bytes; a bundle's members are at most {MAX_MEMBER} (its raw reports at most {})",
        super::format::MAX_REPORT
    )]
    TooLarge {
        /// The member.
        name: String,
        /// Its size as its header says.
        size: u64,
    },
    /// A member is not a regular file with a UTF-8 name.
    #[error("member {0:?} is not a regular file with a plain name")]
    Strange(String),
    /// The bytes are a compressed file, not the tar archive itself.
    #[error(
        "the bundle is {0}-compressed; a bundle is the plain tar archive `custody audit export` wrote: decompress it first (`{1} BUNDLE > bundle.tar`, whatever its name)"
    )]
    Compressed(&'static str, &'static str),
}

/// The compression a file's first bytes announce, and the tool that undoes it.
fn compression(head: &[u8]) -> Option<(&'static str, &'static str)> {
    const MAGIC: [(&[u8], &str, &str); 4] = [
        (&[0x1f, 0x8b], "gzip", "gzip -dc"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "zstd -dc"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz", "xz -dc"),
        (b"BZh", "bzip2", "bzip2 -dc"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _, _)| head.starts_with(magic))
        .map(|(_, name, tool)| (*name, *tool))
}

/// Calls `visit` with each member's name and bytes, in archive order. Stops at the first
/// error `visit` returns (or an archive error, converted with `From`). The members are read
/// into one buffer, reused (a fresh one per entry file is fresh pages for the kernel to
/// zero, each time).
pub fn for_each_member<R: Read, E: From<ArchiveError>>(
    reader: R,
    mut visit: impl FnMut(&str, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    // The first bytes say whether this is a compressed file rather than the archive (read
    // aside and put back in front: no second buffer over the whole bundle).
    let mut reader = reader;
    let mut head = [0u8; 6];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]).map_err(ArchiveError::Tar)? {
            0 => break,
            n => got += n,
        }
    }
    if let Some((name, tool)) = compression(&head[..got]) {
        return Err(ArchiveError::Compressed(name, tool).into());
    }
    let mut archive = tar::Archive::new(io::Cursor::new(head).take(got as u64).chain(reader));
    let entries = archive.entries().map_err(ArchiveError::Tar)?;
    let mut bytes = Vec::new();
    for member in entries {
        let mut member = member.map_err(ArchiveError::Tar)?;
        let name = match member.path() {
            Ok(p) => p.to_str().map(str::to_owned),
            Err(_) => None,
        }
        .ok_or_else(|| ArchiveError::Strange("(not UTF-8)".into()))?;
        if member.header().entry_type() != tar::EntryType::Regular {
            return Err(ArchiveError::Strange(name).into());
        }
        // The header's size is untrusted: refuse before reading, and read no more than it.
        let size = member.size();
        let most = max_member(&name);
        if size > most {
            return Err(ArchiveError::TooLarge { name, size }.into());
        }
        bytes.clear();
        bytes.reserve(size as usize);
        (&mut member)
            .take(most)
            .read_to_end(&mut bytes)
            .map_err(ArchiveError::Tar)?;
        visit(&name, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_entry_files_are_cut() {
        let mut w = BundleWriter::new(Vec::new(), 1_700_000_000);
        w.json("bundle.json", &serde_json::json!({"a": 1})).unwrap();
        for index in 0..(ENTRIES_PER_FILE as u64 + 3) {
            w.entry(&EntryLine {
                index,
                leaf_hash: [0; 32],
                leaf: "{}".into(),
                proof: None,
                facts: None,
                rationale: None,
                rationale_salt: None,
                withheld: false,
            })
            .unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut names = Vec::new();
        for_each_member::<_, ArchiveError>(&bytes[..], |name, body| {
            names.push((name.to_owned(), body.len()));
            Ok(())
        })
        .unwrap();
        let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "bundle.json",
                "entries/000000.jsonl",
                "entries/000001.jsonl",
                "end.json"
            ]
        );
    }

    #[test]
    fn a_compressed_bundle_is_named_as_such() {
        for (head, said) in [
            (&[0x1f, 0x8b, 8, 0, 0, 0, 0][..], "gzip-compressed"),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0][..], "zstd-compressed"),
            (b"BZh91AY", "bzip2-compressed"),
        ] {
            let err = for_each_member::<_, ArchiveError>(head, |_, _| Ok(())).unwrap_err();
            assert!(err.to_string().contains(said), "{err}");
        }
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let err =
            for_each_member::<_, ArchiveError>(&b"not a tar archive at all"[..], |_, _| Ok(()));
        // A short non-tar input reads as an empty or broken archive, never a panic.
        let _ = err;
        let mut junk = vec![0x41u8; 1024];
        junk[156] = b'0';
        assert!(
            for_each_member::<_, ArchiveError>(&junk[..], |_, _| Ok(())).is_err(),
            "a header with a bad checksum must be refused"
        );
    }
}
