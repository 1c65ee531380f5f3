//! `custody bench`: measure the ledger on this machine, against a baseline measured in the
//! same run (the disk's own fsync rate, a bare head read), so numbers from a noisy or
//! different machine still compare.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_model::CanonicalJson;
use custody_store::{Append, Location, SqlStore, Store};
use serde_json::json;

use crate::Outcome;
use crate::datadir::DataDir;
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Durable appends (fsync on) from many concurrent writers, with group commit.
    ///
    /// Without --data-dir, a fresh ledger is made in a temporary directory here (or in the
    /// empty PostgreSQL database of --database-url) and removed afterwards.
    Append(AppendArgs),
    /// Fill a fresh ledger, then time inclusion and consistency proofs and report the
    /// bytes on disk per entry.
    Proofs(ProofsArgs),
    /// End-to-end promotions (request → evaluation → signed VSA → ledger append →
    /// receipt) from concurrent requesters on a fresh instance, then the deploy gate
    /// (`verify`) answered from the store they leave.
    Promotions(PromotionsArgs),
    /// Load a running server over HTTP from this process (verify or promote), with
    /// /healthz on the same server as the baseline.
    Http(crate::cmd::bench_http::HttpArgs),
    /// Offline verification of two large audit bundles (entries without envelopes, then
    /// with signed provenance), beside the test suite's Python verifier on the same files.
    Audit(crate::cmd::bench_audit::AuditArgs),
    /// The server's start-up check of the state against the ledger over a large ledger
    /// (the demo's story repeated), beside reading and hashing the same leaves.
    State(crate::cmd::bench_state::StateArgs),
    /// `custody key impact` over a large ledger (the demo's story repeated; its release
    /// and builder keys sign in every copy), beside reading and hashing every leaf.
    Keys(crate::cmd::bench_keys::KeysArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PromotionsArgs {
    /// Use this empty PostgreSQL database instead of a temporary SQLite file.
    #[arg(long, value_name = "postgres://…")]
    pub(crate) database_url: Option<String>,
    /// Releases to seed (3 artifacts each, with signed provenance and evidence).
    #[arg(long, default_value_t = 200)]
    pub(crate) releases: u64,
    /// Promotions to time.
    #[arg(long, default_value_t = 5000)]
    pub(crate) promotions: u64,
    /// Concurrent requesters.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: u64,
    /// Deploy-gate answers to time afterwards.
    #[arg(long, default_value_t = 5000)]
    pub(crate) verifies: u64,
    /// Then serve the store on loopback and time each dashboard page this many times
    /// (0: skip), beside /healthz.
    #[arg(long, default_value_t = 0)]
    pub(crate) pages: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AppendArgs {
    /// Append to this existing data directory's ledger instead of a fresh one. The events
    /// stay forever (the ledger is append-only): use a test instance, never production.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Use this PostgreSQL database (empty, for a fresh ledger; or overriding the data
    /// directory's).
    #[arg(long, value_name = "postgres://…")]
    database_url: Option<String>,
    /// Events to append in all.
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Concurrent writers, each appending one event at a time.
    #[arg(long, default_value_t = 64)]
    writers: u64,
    /// Print `ack INDEX WRITER SEQ` on stdout as each append is acknowledged (for crash
    /// tests: every acknowledged line must survive a kill).
    #[arg(long)]
    acks: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProofsArgs {
    /// Use this empty PostgreSQL database instead of a temporary SQLite file.
    #[arg(long, value_name = "postgres://…")]
    database_url: Option<String>,
    /// Entries to fill the ledger with.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Proofs of each kind to time.
    #[arg(long, default_value_t = 10_000)]
    samples: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: BenchCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async {
        match command {
            BenchCommand::Append(a) => append(a).await,
            BenchCommand::Proofs(a) => proofs(a).await,
            BenchCommand::Promotions(a) => crate::cmd::bench_promotions::run(a).await,
            BenchCommand::Http(a) => crate::cmd::bench_http::run(a).await,
            BenchCommand::Audit(a) => crate::cmd::bench_audit::run(a),
            BenchCommand::State(a) => crate::cmd::bench_state::run(a).await,
            BenchCommand::Keys(a) => crate::cmd::bench_keys::run(a).await,
        }
    })
}

/// A ledger to benchmark: an existing data directory, or a fresh one removed afterwards.
pub(crate) struct Subject {
    pub(crate) store: SqlStore,
    /// Where the ledger's disk is (for the fsync baseline).
    pub(crate) dir: PathBuf,
    pub(crate) _temp: Option<tempfile::TempDir>,
}

pub(crate) async fn subject(data_dir: Option<&Path>, url: Option<&str>) -> anyhow::Result<Subject> {
    if let Some(dir) = data_dir {
        let store = DataDir::new(dir).open(url).await?;
        return Ok(Subject {
            store,
            dir: dir.to_owned(),
            _temp: None,
        });
    }
    let temp = tempfile::Builder::new()
        .prefix(".custody-bench-")
        .tempdir_in(".")
        .context("creating a temporary directory here (the disk under test)")?;
    let dir = DataDir::new(temp.path().join("data"));
    let now = crate::context::now()?;
    let mut created = dir
        .create(url, Some("bench.custody/log"), Default::default(), now)
        .await?;
    Ok(Subject {
        store: created
            .store
            .take()
            .ok_or_else(|| anyhow::anyhow!("the new ledger is not open"))?,
        dir: dir.root().to_owned(),
        _temp: Some(temp),
    })
}

/// A benchmark's event: a custody event of a kind no rule reads (its time and actor are
/// there, so a server following the ledger reads it as one), about the size of a decision.
fn bench_event(
    run: &str,
    writer: u64,
    seq: u64,
    at: custody_model::Timestamp,
) -> anyhow::Result<CanonicalJson> {
    Ok(CanonicalJson::from_value(&json!({
        "type": "bench.appended",
        "at": at.to_string(),
        "actor": "custody bench",
        "run": run,
        "writer": writer,
        "seq": seq,
        "subject": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "note": "a benchmark event about the size of a promotion decision",
    }))?)
}

/// Checkpoints stored from size `from` on: one per committed batch.
async fn count_checkpoints(store: &SqlStore, mut from: u64) -> anyhow::Result<usize> {
    let mut n = 0;
    loop {
        let page = store.checkpoints(from, 1000).await?;
        n += page.len();
        match page.last() {
            Some(last) if page.len() == 1000 => from = last.size + 1,
            _ => return Ok(n),
        }
    }
}

/// Percentile of sorted durations, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Write 4 KiB and `fdatasync` in a loop for a second: how many durable writes per
/// second this disk does on its own, the bound group commit must beat.
fn fsync_baseline(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join(format!(".fsync-baseline-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

async fn append(args: AppendArgs) -> anyhow::Result<Outcome> {
    if args.writers == 0 || args.events == 0 {
        bail!("--writers and --events must be at least 1");
    }
    let subject = subject(args.data_dir.as_deref(), args.database_url.as_deref()).await?;
    let store = Arc::new(subject.store);
    let before_size = store.checkpoint().await?.size;
    let run = format!("{}-{}", std::process::id(), before_size);
    let at = crate::context::now()?;
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.writers {
        let events = args.events / args.writers + u64::from(w < args.events % args.writers);
        let (store, run, stdout) = (store.clone(), run.clone(), stdout.clone());
        let acks = args.acks;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(events as usize);
            for seq in 0..events {
                let t = Instant::now();
                let a = store
                    .append(Append::event(bench_event(&run, w, seq, at)?))
                    .await?;
                latencies.push(t.elapsed());
                if acks {
                    let mut out = stdout
                        .lock()
                        .map_err(|_| anyhow::anyhow!("stdout poisoned"))?;
                    writeln!(out, "ack {} {w} {seq} {run}", a.first_index)?;
                    out.flush()?;
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(args.events as usize);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let commits = count_checkpoints(&store, before_size + 1).await?.max(1);
    let rate = args.events as f64 / elapsed;
    if args.acks {
        // A crash-test writer: what it acknowledged is its output.
        return Ok(Outcome::Ok);
    }
    // Measured after the run, on the same disk, so that it never overlaps the appends.
    let baseline = fsync_baseline(&subject.dir).context("measuring the disk's fsync rate")?;
    let backend = match store.location() {
        Location::Sqlite(_) => "SQLite",
        Location::Postgres(_) => "PostgreSQL",
    };
    let result = json!({
        "backend": backend,
        "events": args.events,
        "writers": args.writers,
        "seconds": elapsed,
        "events_per_second": rate,
        "commits": commits,
        "events_per_commit": args.events as f64 / commits as f64,
        "latency_ms": {"p50": percentile_ms(&latencies, 0.5), "p99": percentile_ms(&latencies, 0.99)},
        "baseline_fsyncs_per_second": baseline,
        "events_per_fsync_second": rate / baseline,
    });
    if args.json {
        print_json(&result);
    } else {
        print_line(&format!(
            "durable appends ({backend}, fsync on): {} events from {} writers in {elapsed:.2} s = {rate:.0} events/s\n\
             group commit: {commits} commits, {:.1} events per commit; append latency p50 {:.2} ms, p99 {:.2} ms\n\
             baseline: this disk does {baseline:.0} fsyncs/s alone, so custody appends {:.1} events per fsync-second",
            args.events,
            args.writers,
            args.events as f64 / commits as f64,
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99),
            rate / baseline,
        ));
    }
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    Ok(Outcome::Ok)
}

async fn proofs(args: ProofsArgs) -> anyhow::Result<Outcome> {
    if args.entries < 2 || args.samples == 0 {
        bail!("--entries must be at least 2 and --samples at least 1");
    }
    let subject = subject(None, args.database_url.as_deref()).await?;
    let store = Arc::new(subject.store);
    let bar = crate::progress::bar(args.entries, 0, "filling the ledger");
    let fill_start = Instant::now();
    let at = crate::context::now()?;
    let batch = custody_store::MAX_EVENTS_PER_APPEND as u64;
    let mut next = 0;
    while next < args.entries {
        // Two appends in flight keep the committer busy while the next batch is built.
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let n = batch.min(args.entries - next);
            if n == 0 {
                break;
            }
            let events = (next..next + n)
                .map(|i| bench_event("fill", 0, i, at))
                .collect::<anyhow::Result<Vec<_>>>()?;
            next += n;
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append(Append {
                        events,
                        ..Append::default()
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await??;
        }
        bar.set_position(next);
    }
    bar.finish_and_clear();
    let fill_seconds = fill_start.elapsed().as_secs_f64();
    let size = store.checkpoint().await?.size;

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let samples = args.samples as usize;
    let mut head = Vec::with_capacity(samples);
    let mut inclusion = Vec::with_capacity(samples);
    let mut consistency = Vec::with_capacity(samples);
    for _ in 0..args.samples {
        let t = Instant::now();
        store.checkpoint().await?;
        head.push(t.elapsed());
        let index = rng.next() % size;
        let t = Instant::now();
        store.inclusion_proof(index, size).await?;
        inclusion.push(t.elapsed());
        let from = 1 + rng.next() % (size - 1);
        let t = Instant::now();
        store.consistency_proof(from, size).await?;
        consistency.push(t.elapsed());
    }
    for v in [&mut head, &mut inclusion, &mut consistency] {
        v.sort_unstable();
    }
    let bytes = match store.location() {
        Location::Sqlite(path) => ["", "-wal", "-shm"]
            .iter()
            .map(|s| {
                let mut p = path.clone().into_os_string();
                p.push(s);
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            })
            .sum(),
        Location::Postgres(_) => store.database_bytes().await?,
    };
    let stats = |v: &[Duration]| json!({"p50_ms": percentile_ms(v, 0.5), "p99_ms": percentile_ms(v, 0.99), "max_ms": percentile_ms(v, 1.0)});
    let result = json!({
        "entries": size,
        "fill_seconds": fill_seconds,
        "fill_events_per_second": size as f64 / fill_seconds,
        "samples": args.samples,
        "inclusion": stats(&inclusion),
        "consistency": stats(&consistency),
        "baseline_head_read": stats(&head),
        "bytes_on_disk": bytes,
        "bytes_per_entry": bytes as f64 / size as f64,
    });
    if args.json {
        print_json(&result);
    } else {
        print_line(&format!(
            "{size} entries (filled in {fill_seconds:.1} s), {} samples each:\n\
             inclusion proof    p50 {:.3} ms  p99 {:.3} ms\n\
             consistency proof  p50 {:.3} ms  p99 {:.3} ms\n\
             baseline head read p50 {:.3} ms  p99 {:.3} ms\n\
             storage: {bytes} bytes on disk = {:.0} bytes per entry",
            args.samples,
            percentile_ms(&inclusion, 0.5),
            percentile_ms(&inclusion, 0.99),
            percentile_ms(&consistency, 0.5),
            percentile_ms(&consistency, 0.99),
            percentile_ms(&head, 0.5),
            percentile_ms(&head, 0.99),
            bytes as f64 / size as f64,
        ));
    }
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    Ok(Outcome::Ok)
}

/// A tiny deterministic generator for sample positions (no need for cryptographic
/// randomness, and the same positions every run).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    /// A benchmark's events read as custody events, so a server following a ledger they
    /// were appended to takes them for what they are, not for damage.
    #[test]
    fn a_bench_event_is_a_custody_event() {
        let at: custody_model::Timestamp = "2026-11-10T10:00:00Z".parse().unwrap();
        let leaf = super::bench_event("run", 1, 2, at).unwrap();
        let event = custody_app::events::Event::from_leaf(leaf.as_bytes()).unwrap();
        assert_eq!(
            (event.kind(), event.at, event.actor.as_str()),
            ("bench.appended", at, "custody bench")
        );
    }
}
