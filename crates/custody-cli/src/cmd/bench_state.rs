//! `custody bench state`: the server's start-up check of the state against the ledger
//! (fold every leaf into the projection, compare every checked record) over a large
//! ledger, beside a bare pass reading and hashing the same leaves in the same run.
//!
//! The ledger is a real instance's: `custody demo` seeds a fresh data directory (policy,
//! tokens, releases, promotions, approvals, deploys, a rollback), and its leaves are
//! appended again, in order, until the ledger holds `--entries`. Each copy replays the same
//! story, so the mix of event kinds is the demo's and the state tables still match what the
//! ledger says: a clean check that does all the work of one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use custody_model::CanonicalJson;
use custody_store::{Append, MAX_ENTRIES_PER_READ, MAX_EVENTS_PER_APPEND, Store};
use serde_json::json;

use crate::Outcome;
use crate::datadir::DataDir;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// Ledger entries to check (rounded up to a whole number of copies of the demo; the
    /// records compared stay the demo's, each set again by every copy).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    entries: u64,
    /// Make the instance here (a directory that does not exist yet) and keep it, so that
    /// `custody serve --data-dir DIR` can be timed starting on it; without it, a temporary
    /// directory is used and removed.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the bench (the demo is seeded by this binary in a child process).
pub(crate) async fn run(args: StateArgs) -> anyhow::Result<Outcome> {
    let (_temp, dir) = seeded_demo(args.keep.as_deref()).await?;
    measure(&args, DataDir::new(&dir)).await
}

/// A fresh instance seeded by `custody demo` (run by this binary in a child process), in
/// `keep` (a directory that does not exist yet) or in a temporary directory here, removed
/// when the returned guard drops.
pub(crate) async fn seeded_demo(
    keep: Option<&std::path::Path>,
) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    let mut temp = None;
    let dir = match keep {
        Some(dir) if dir.exists() => bail!(
            "{} already exists; --keep makes a new instance\nhint: name a directory that does not exist yet",
            dir.display()
        ),
        Some(dir) => dir.to_owned(),
        None => {
            let t = tempfile::Builder::new()
                .prefix(".custody-bench-")
                .tempdir_in(".")
                .context("creating a temporary directory here")?;
            let dir = t.path().join("data");
            temp = Some(t);
            dir
        }
    };
    let (exe, target) = (std::env::current_exe()?, dir.clone());
    let seeded = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["demo", "--data-dir"])
            .arg(target)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await?
    .context("running `custody demo` to seed the instance")?;
    if !seeded.success() {
        bail!("`custody demo` failed ({seeded}) seeding {}", dir.display());
    }
    Ok((temp, dir))
}

/// Appends the demo's story (the ledger's leaves as `custody demo` left them) again, in
/// order, until the ledger holds at least `entries`; returns the story's length and the
/// copies appended.
pub(crate) async fn repeat_story(store: &impl Store, entries: u64) -> anyhow::Result<(usize, u64)> {
    let story = read_all(store, store.size().await?).await?;
    let copies = entries.div_ceil(story.len() as u64).max(1) - 1;
    let bar = crate::progress::bar(copies * story.len() as u64, 0, "filling the ledger");
    for _ in 0..copies {
        for chunk in story.chunks(MAX_EVENTS_PER_APPEND) {
            store
                .append(Append {
                    events: chunk.to_vec(),
                    ..Append::default()
                })
                .await?;
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok((story.len(), copies))
}

/// The baseline: seconds to read the ledger's first `size` leaves in pages and leaf-hash
/// each once, nothing more.
pub(crate) async fn read_and_hash_seconds(store: &impl Store, size: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    each_leaf(store, size, |leaf| {
        std::hint::black_box(custody_ledger::leaf_hash(leaf));
        Ok(())
    })
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn measure(args: &StateArgs, dir: DataDir) -> anyhow::Result<Outcome> {
    let store = dir.open(None).await?;
    let (story_len, copies) = repeat_story(&store, args.entries).await?;
    let size = store.size().await?;

    // Baseline: the same leaves read in the same pages and leaf-hashed once, nothing folded.
    let read_seconds = read_and_hash_seconds(&store, size).await?;

    let bar = crate::progress::bar(size, 0, "checking the state against the ledger");
    let started = Instant::now();
    let report = custody_app::check_state(&store, |done| bar.set_position(done)).await?;
    let check_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    store.close().await;
    if !report.differences.is_empty() {
        bail!(
            "the check found {} differences on an untouched instance (the first: {}); the measurement does not count",
            report.differences.len(),
            report.differences[0]
        );
    }
    let result = json!({
        "machine_cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "entries": size,
        "records_checked": report.records,
        "demo_entries_per_copy": story_len,
        "check_seconds": check_seconds,
        "check_entries_per_second": size as f64 / check_seconds,
        "baseline_read_and_hash_seconds": read_seconds,
        "check_vs_baseline": check_seconds / read_seconds,
    });
    if args.json {
        print_json(&result);
    } else {
        print_line(&format!(
            "state check (SQLite): {size} entries ({} copies of the demo's {}), {} records compared (the demo's, set again by each copy), no differences\n\
             check: {check_seconds:.1} s = {:.0} entries/s (the server's start-up target: under 60 s for 1,000,000)\n\
             baseline: reading and hashing the same leaves takes {read_seconds:.1} s; the check costs {:.2}× that",
            copies + 1,
            story_len,
            report.records,
            size as f64 / check_seconds,
            check_seconds / read_seconds,
        ));
    }
    Ok(Outcome::Ok)
}

/// The leaves `[0, size)`, in order.
async fn read_all(store: &impl Store, size: u64) -> anyhow::Result<Vec<CanonicalJson>> {
    let mut leaves = Vec::new();
    each_leaf(store, size, |leaf| {
        leaves.push(CanonicalJson::from_canonical_bytes(leaf)?);
        Ok(())
    })
    .await?;
    Ok(leaves)
}

/// Calls `f` on each leaf of `[0, size)`, in order, read a page at a time.
pub(crate) async fn each_leaf(
    store: &impl Store,
    size: u64,
    mut f: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut start = 0;
    while start < size {
        let end = size.min(start + MAX_ENTRIES_PER_READ);
        for e in store.entries(start, end).await? {
            f(&e.leaf)?;
        }
        start = end;
    }
    Ok(())
}
