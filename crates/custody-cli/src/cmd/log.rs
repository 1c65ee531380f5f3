//! `custody log`: read the ledger: its signed checkpoint, its entries, proofs, and a full
//! integrity check. Reading needs only the public log key (`keys/log.pub`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_ledger::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde_json::json;

use crate::Outcome;
use crate::datadir::{DEFAULT_DATA_DIR, DataDir};
use crate::input::{print_json, print_line, print_raw};

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Print the latest signed checkpoint: a C2SP signed note (origin, size, base64 root)
    /// signed by the log key. Any later checkpoint must be consistent with it.
    Checkpoint(CheckpointArgs),
    /// Print entries [START, END): one event per line, exactly the RFC 8785 JSON bytes
    /// that were hashed (leaf hash = SHA-256(0x00 ‖ line)).
    ///
    /// Example: custody log entries --start 0 --end 100 | python3 recompute.py
    Entries(EntriesArgs),
    /// Print an RFC 9162 proof, checked against the stored tree before it is printed.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Recompute the whole tree from the stored entries and check every stored hash and
    /// every signed checkpoint. Exit 1 if anything disagrees.
    Check(CheckArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProofCommand {
    /// Inclusion proof of entry INDEX in the tree of SIZE entries (hashes, leaf to root).
    Inclusion(InclusionArgs),
    /// Consistency proof between the trees of FROM and TO entries.
    Consistency(ConsistencyArgs),
}

/// Where the ledger is.
#[derive(Debug, Args)]
pub(crate) struct LedgerArgs {
    /// The data directory (its config.toml names the database; keys/log.pub verifies it).
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// Read this PostgreSQL database instead of the configured one.
    #[arg(long, value_name = "postgres://…")]
    pub(crate) database_url: Option<String>,
}

impl LedgerArgs {
    async fn open(&self) -> anyhow::Result<custody_store::SqlStore> {
        DataDir::new(&self.data_dir)
            .open_read_only(self.database_url.as_deref())
            .await
    }
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// Print origin, size, root and the note as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct EntriesArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// First index.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// One past the last index (default: the log's size).
    #[arg(long)]
    end: Option<u64>,
    /// One JSON object per line: index, leaf hash and the event.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InclusionArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The entry's index.
    #[arg(long)]
    index: u64,
    /// The tree size (default: the latest checkpoint's).
    #[arg(long)]
    size: Option<u64>,
    /// Print leaf hash, root and proof as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConsistencyArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The older tree size.
    #[arg(long)]
    from: u64,
    /// The newer tree size (default: the latest checkpoint's).
    #[arg(long)]
    to: Option<u64>,
    /// Print both roots and the proof as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: LogCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async {
        match command {
            LogCommand::Checkpoint(a) => checkpoint(a).await,
            LogCommand::Entries(a) => entries(a).await,
            LogCommand::Proof(ProofCommand::Inclusion(a)) => inclusion(a).await,
            LogCommand::Proof(ProofCommand::Consistency(a)) => consistency(a).await,
            LogCommand::Check(a) => check(a).await,
        }
    })
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<Outcome> {
    let store = args.ledger.open().await?;
    let cp = store.checkpoint().await?;
    if args.json {
        print_json(&json!({
            "origin": store.verifier().name(),
            "size": cp.size,
            "root": hex(&cp.root),
            "note": cp.note,
            "log_verifier_key": store.verifier().to_text(),
        }));
    } else {
        print_raw(&cp.note);
    }
    Ok(Outcome::Ok)
}

async fn entries(args: EntriesArgs) -> anyhow::Result<Outcome> {
    let store = args.ledger.open().await?;
    let size = store.checkpoint().await?.size;
    let end = args.end.unwrap_or(size);
    if args.start > end {
        bail!("--start {} is after --end {end}", args.start);
    }
    if end > size {
        bail!("--end {end} is beyond the log's size {size}");
    }
    let mut start = args.start;
    while start < end {
        let page_end = end.min(start + MAX_ENTRIES_PER_READ);
        let mut out = String::new();
        for entry in store.entries(start, page_end).await? {
            if args.json {
                let event: serde_json::Value = serde_json::from_slice(&entry.leaf)
                    .with_context(|| format!("entry {} is not JSON", entry.index))?;
                let line = json!({
                    "index": entry.index,
                    "leaf_hash": hex(&leaf_hash(&entry.leaf)),
                    "event": event,
                });
                out.push_str(&line.to_string());
            } else {
                out.push_str(&String::from_utf8_lossy(&entry.leaf));
            }
            out.push('\n');
        }
        print_raw(&out);
        start = page_end;
    }
    Ok(Outcome::Ok)
}

async fn inclusion(args: InclusionArgs) -> anyhow::Result<Outcome> {
    let store = args.ledger.open().await?;
    let size = match args.size {
        Some(s) => s,
        None => store.checkpoint().await?.size,
    };
    let proof = store.inclusion_proof(args.index, size).await?;
    let root = store.root_at(size).await?;
    let entry = store.entries(args.index, args.index + 1).await?;
    let leaf = leaf_hash(&entry[0].leaf);
    verify_inclusion(&leaf, args.index, size, &proof, &root)
        .context("the stored tree gave a proof that does not verify; run `custody log check`")?;
    let detail = json!({
        "index": args.index,
        "tree_size": size,
        "leaf_hash": hex(&leaf),
        "root": hex(&root),
    });
    print_proof(&proof, detail, args.json);
    Ok(Outcome::Ok)
}

async fn consistency(args: ConsistencyArgs) -> anyhow::Result<Outcome> {
    let store = args.ledger.open().await?;
    let to = match args.to {
        Some(s) => s,
        None => store.checkpoint().await?.size,
    };
    let proof = store.consistency_proof(args.from, to).await?;
    let (old, new) = (store.root_at(args.from).await?, store.root_at(to).await?);
    verify_consistency(args.from, to, &proof, &old, &new)
        .context("the stored tree gave a proof that does not verify; run `custody log check`")?;
    let detail = json!({
        "from": args.from,
        "to": to,
        "from_root": hex(&old),
        "to_root": hex(&new),
    });
    print_proof(&proof, detail, args.json);
    Ok(Outcome::Ok)
}

/// A proof as JSON (`detail` plus `hashes`) or as hex hashes, one per line.
fn print_proof(proof: &[Hash], mut detail: serde_json::Value, as_json: bool) {
    let hashes: Vec<String> = proof.iter().map(|h| hex(h)).collect();
    if as_json {
        detail["hashes"] = json!(hashes);
        print_json(&detail);
    } else {
        print_raw(&hashes.iter().map(|h| format!("{h}\n")).collect::<String>());
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    let store = args.ledger.open().await?;
    let size = store.checkpoint().await?.size;
    let bar = crate::progress::bar(size, 100_000, "checking entries");
    let result = store.check(|done| bar.set_position(done)).await;
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            if args.json {
                print_json(&json!({
                    "ok": true,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "root": hex(&report.root),
                }));
            } else {
                print_line(&format!(
                    "ok: {} entries recomputed; every stored hash and all {} signed checkpoints match (root {})",
                    report.entries,
                    report.checkpoints,
                    hex(&report.root)
                ));
            }
            Ok(Outcome::Ok)
        }
        Err(e @ custody_store::StoreError::Corrupt(_)) => {
            if args.json {
                print_json(&json!({"ok": false, "error": e.to_string()}));
            } else {
                print_line(&format!("FAILED: {e}"));
            }
            Ok(Outcome::Denied)
        }
        Err(e) => Err(e.into()),
    }
}
