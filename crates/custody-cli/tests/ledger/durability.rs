//! The ledger under stress through the binary: writers killed with SIGKILL at random
//! moments, on SQLite and on PostgreSQL, never lose an acknowledged append (every one
//! found at its index, the tree and every stored checkpoint consistent after each
//! restart); two processes appending to one PostgreSQL log make one linear log.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use custody_crypto::note::NoteVerifier;
use custody_store::{Location, SqlStore, Store};
use serde_json::Value;

use super::common::*;
use super::{initialised, json_of, log};

/// One acknowledged append as the writer printed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ack {
    index: u64,
    writer: u64,
    seq: u64,
    run: String,
}

/// Starts an appending writer, kills it with SIGKILL after a random time, and returns
/// every append it acknowledged.
fn kill_writer_midway(dir: &Path, delay: Duration) -> Vec<Ack> {
    let mut child = custody()
        .args([
            "bench",
            "append",
            "--acks",
            "--events",
            "100000000",
            "--writers",
            "16",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_ack, got_going) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = std::io::BufReader::new(stdout);
        let mut buf = Vec::new();
        // The first acknowledged line, then the rest up to the kill.
        if std::io::BufRead::read_until(&mut stdout, b'\n', &mut buf).unwrap() > 0 {
            let _ = first_ack.send(());
        }
        stdout.read_to_end(&mut buf).unwrap();
        buf
    });
    // Let it get going (the first acks are out, however slow the machine is), then kill
    // it at a random moment.
    got_going
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer acknowledged nothing within a minute");
    std::thread::sleep(Duration::from_millis(20) + delay);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer finished before it was killed"
    );
    let buf = reader.join().unwrap();
    let text = String::from_utf8(buf).unwrap();
    // Only complete lines were acknowledged; a torn last line was not.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!((f.len(), f[0]), (5, "ack"), "{line}");
            Ack {
                index: f[1].parse().unwrap(),
                writer: f[2].parse().unwrap(),
                seq: f[3].parse().unwrap(),
                run: f[4].to_owned(),
            }
        })
        .collect()
}

/// After a crash: every acknowledged append is at its index, the tree recomputed from the
/// leaves matches the latest signed checkpoint (and every stored checkpoint), and each
/// checkpoint stored since the last round is consistent with the one before it (a
/// consistency proof from the store, verified offline). Returns the log's size.
async fn check_after_crash(
    location: &Location,
    verifier: &NoteVerifier,
    acked: &[Ack],
    last_checked: &mut custody_store::SignedCheckpoint,
) -> u64 {
    let store = SqlStore::open_read_only(location, verifier).await.unwrap();
    let head = store.checkpoint().await.unwrap();
    let mut leaves = Vec::with_capacity(head.size as usize);
    let mut start = 0;
    while start < head.size {
        let end = head.size.min(start + 1000);
        leaves.extend(
            store
                .entries(start, end)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.leaf),
        );
        start = end;
    }
    for ack in acked {
        assert!(
            ack.index < head.size,
            "acknowledged entry {} lost (size {})",
            ack.index,
            head.size
        );
        let event: Value = serde_json::from_slice(&leaves[ack.index as usize]).unwrap();
        assert_eq!(
            (
                event["writer"].as_u64(),
                event["seq"].as_u64(),
                event["run"].as_str()
            ),
            (Some(ack.writer), Some(ack.seq), Some(ack.run.as_str())),
            "entry {} is not what was acknowledged",
            ack.index
        );
    }
    // On PostgreSQL a transaction whose client was killed during COMMIT may still commit
    // after the kill: the log can grow while we look, never shrink or change.
    let report = store.check(|_| {}).await.unwrap();
    assert!(report.entries >= head.size);
    assert_eq!(store.root_at(head.size).await.unwrap(), head.root);
    let mut from = last_checked.size + 1;
    loop {
        let page = store.checkpoints(from, 1000).await.unwrap();
        for cp in &page {
            if last_checked.size > 0 {
                let proof = store
                    .consistency_proof(last_checked.size, cp.size)
                    .await
                    .unwrap();
                custody_ledger::verify_consistency(
                    last_checked.size,
                    cp.size,
                    &proof,
                    &last_checked.root,
                    &cp.root,
                )
                .unwrap();
            }
            *last_checked = cp.clone();
        }
        match page.last() {
            Some(last) => from = last.size + 1,
            None => break,
        }
    }
    assert!(last_checked.size >= head.size);
    store.close().await;
    head.size
}

fn crash_repeatedly(dir: &Path, kills: u32) {
    let config: Value = {
        let out = log(dir, &["checkpoint", "--json"]);
        json_of(&out)
    };
    let verifier = NoteVerifier::from_text(config["log_verifier_key"].as_str().unwrap()).unwrap();
    let text = fs::read_to_string(dir.join("config.toml")).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("url = \"").and_then(|r| r.strip_suffix('"')))
        .unwrap_or_default();
    let location = if url.is_empty() {
        Location::Sqlite(dir.join("custody.db"))
    } else {
        Location::parse(url)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut seed = u64::from(std::process::id()) | 1;
    let mut acked: Vec<Ack> = Vec::new();
    let mut sizes = Vec::new();
    let mut last_checked = runtime.block_on(async {
        let store = SqlStore::open_read_only(&location, &verifier)
            .await
            .unwrap();
        store.checkpoints(0, 1).await.unwrap().remove(0)
    });
    for _ in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let new = kill_writer_midway(dir, Duration::from_millis(seed % 250));
        assert!(
            !new.is_empty(),
            "the writer acknowledged nothing before it was killed"
        );
        acked.extend(new);
        sizes.push(runtime.block_on(check_after_crash(
            &location,
            &verifier,
            &acked,
            &mut last_checked,
        )));
    }
    eprintln!("log size after each of {kills} kills: {sizes:?}");
    let distinct: BTreeSet<u64> = acked.iter().map(|a| a.index).collect();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "two acknowledgements for one index"
    );
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "the log did not grow across restarts: {sizes:?}"
    );
}

#[test]
fn sigkilled_writers_never_lose_an_acknowledged_append_sqlite() {
    let (_temp, dir) = initialised(&[]);
    crash_repeatedly(&dir, 20);
}

#[test]
fn sigkilled_writers_never_lose_an_acknowledged_append_postgres() {
    let (_temp, dir) = initialised(&["--database-url", &fresh_postgres_database()]);
    crash_repeatedly(&dir, 20);
}

#[test]
fn two_processes_append_ten_thousand_events_to_one_postgres_log() {
    let (_temp, dir) = initialised(&["--database-url", &fresh_postgres_database()]);
    let spawn = || -> std::process::Child {
        custody()
            .args([
                "bench",
                "append",
                "--events",
                "5000",
                "--writers",
                "32",
                "--json",
                "--data-dir",
            ])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        expect_code(&out, 0);
    }
    let head = json_of(&log(&dir, &["checkpoint", "--json"]));
    assert_eq!(head["size"], 10_001); // the starter policy and 10,000 events
    let check = json_of(&log(&dir, &["check", "--json"]));
    assert_eq!(check["ok"], true);
    // One linear log: every (process, writer, seq) exactly once, nothing else.
    let entries = log(&dir, &["entries", "--start", "1"]);
    expect_code(&entries, 0);
    let mut seen = BTreeSet::new();
    for line in stdout(&entries).lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(seen.insert((
            e["run"].as_str().unwrap().to_owned(),
            e["writer"].as_u64(),
            e["seq"].as_u64()
        )));
    }
    assert_eq!(seen.len(), 10_000);
    let runs: BTreeSet<_> = seen.iter().map(|(r, _, _)| r.clone()).collect();
    assert_eq!(runs.len(), 2, "expected events from two processes");
}
