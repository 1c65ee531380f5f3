//! `custody log`: read the ledger: its signed checkpoint, its entries, proofs, and a full
//! integrity check. Reading needs only the public log key (`keys/log.pub`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_ledger::{Frontier, Hash, leaf_hash, verify_consistency, verify_inclusion};
use custody_store::MAX_ENTRIES_PER_READ;
use serde_json::json;

use crate::Outcome;
use crate::cmd::log_follow as follow;
use crate::datadir::{DEFAULT_DATA_DIR, DataDir};
use crate::input::{load_public_key, print_json, print_line, print_raw};
use crate::ledger_source::{Head, Ledger};
use custody_crypto::note::NoteVerifier;

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
    /// Recompute the whole tree from the entries and check it against the signed
    /// checkpoint (locally also every stored hash and checkpoint, and the state the
    /// decisions read: tokens, the policy in force, releases, environments and
    /// certifications, rebuilt from the ledger's events and compared record by record;
    /// from --server with --log-key), and with --since-checkpoint that the log grew from
    /// one you kept. Exit 1 if anything disagrees, naming it.
    Check(CheckArgs),
    /// Watch a server's log: check its signed checkpoint (and witnesses' cosignatures)
    /// extends the one the last run verified, kept in --state. Exit 1 on a fork, a
    /// shrinking log or a bad signature.
    ///
    /// Example: custody log watch --server https://custody.example --log-key log.pub --state log.watch
    Watch(crate::cmd::log_watch::WatchArgs),
    /// After custody found the log's history changed behind its back (rolled back,
    /// truncated or forked; it then refuses to write), accept the log as the database
    /// holds it: shows what was found, then records your decision and what was lost in a
    /// `log.recovered` event, and the ledger appends again. Stop the server first.
    ///
    /// Example: custody log recover --reason "restored from the 02:00 backup; INC-7"
    Recover(crate::cmd::log_recover::RecoverArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProofCommand {
    /// Inclusion proof of entry INDEX in the tree of SIZE entries (hashes, leaf to root).
    Inclusion(InclusionArgs),
    /// Consistency proof between the trees of FROM and TO entries.
    Consistency(ConsistencyArgs),
}

/// Where the ledger is: the local data directory, or a server.
#[derive(Debug, Args)]
pub(crate) struct LedgerArgs {
    /// The data directory (its config.toml names the database; keys/log.pub verifies it).
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// Read this PostgreSQL database instead of the configured one.
    #[arg(long, value_name = "postgres://…")]
    pub(crate) database_url: Option<String>,
    /// Read a custody server instead of the local data directory. Its checkpoint and
    /// proofs are public; its entries need --token.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL", value_parser = crate::client::server_url)]
    pub(crate) server: Option<String>,
    /// The token for --server, to read its entries (any role that may read the ledger).
    #[arg(
        long,
        env = "CUSTODY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// The log's public key (SPKI PEM). A checkpoint from --server counts as signed only
    /// if it verifies with this key; without it nothing the server says is trusted.
    #[arg(long, value_name = "PUB")]
    pub(crate) log_key: Option<PathBuf>,
    /// For an https:// server whose certificate an internal CA signed: that CA (PEM).
    #[arg(long, env = "CUSTODY_CA_CERT", value_name = "PEM")]
    pub(crate) ca_cert: Option<PathBuf>,
}

impl LedgerArgs {
    async fn open(&self) -> anyhow::Result<Ledger> {
        match &self.server {
            Some(server) => {
                let key = self.log_key.as_deref().map(load_public_key).transpose()?;
                Ledger::remote(server, self.token.as_deref(), key, self.ca_cert.as_deref())
            }
            None => Ok(Ledger::Local(
                DataDir::new(&self.data_dir)
                    .open_read_only(self.database_url.as_deref())
                    .await?,
            )),
        }
    }

    /// [`LedgerArgs::open`] and the head, for a command that vouches for it: locally, the
    /// head must also extend the checkpoint file (its `Ledger::head` already refuses one
    /// the database's own rows contradict), so that nobody keeps a rolled-back checkpoint.
    /// The database's finding comes first: when it still holds what the head was moved
    /// back over, recovering loses nothing, and that is the hint to give.
    async fn open_vouched(&self) -> anyhow::Result<(Ledger, Head)> {
        let ledger = self.open().await?;
        let head = ledger.head().await?;
        if let Ledger::Local(store) = &ledger {
            let dir = DataDir::new(&self.data_dir);
            if let Some(path) = dir.checkpoint_file_path(self.database_url.as_deref())? {
                if let Some(failure) = store.check_checkpoint_file(&path).await? {
                    let failure = custody_store::StoreError::Integrity(Box::new(failure));
                    return Err(custody_app::AppError::Store(failure).into());
                }
            }
        }
        Ok((ledger, head))
    }

    /// The key that verifies this ledger's checkpoints.
    fn verifying_key(&self) -> anyhow::Result<custody_crypto::PublicKey> {
        match (&self.log_key, &self.server) {
            (Some(path), _) => load_public_key(path),
            (None, None) => load_public_key(&DataDir::new(&self.data_dir).log_pub_path()),
            (None, Some(_)) => {
                bail!("checking a server's log needs the log's public key: --log-key PUB")
            }
        }
    }
}

/// Why a server's answer cannot be trusted: a verdict (exit 1), not an error.
fn untrusted(what: String) -> anyhow::Result<Outcome> {
    eprintln!("FAILED: {what}");
    Ok(Outcome::Denied)
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
    /// A signed checkpoint you kept from before (`custody log checkpoint > FILE`): the log
    /// must be consistent with it (grown, not rewritten or forked).
    #[arg(long, value_name = "FILE")]
    since_checkpoint: Option<PathBuf>,
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
            LogCommand::Watch(a) => crate::cmd::log_watch::run(a).await,
            LogCommand::Recover(a) => crate::cmd::log_recover::recover(a).await,
        }
    })
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<Outcome> {
    let (_, head) = args.ledger.open_vouched().await?;
    if !head.signed {
        eprintln!(
            "warning: this checkpoint's signature was not checked; pass --log-key PUB to check it"
        );
    }
    if args.json {
        print_json(&json!({
            "origin": head.origin,
            "size": head.size,
            "root": hex(&head.root),
            "note": head.note,
            "signed": head.signed,
            "log_verifier_key": head.verifier,
        }));
    } else {
        print_raw(&head.note);
    }
    Ok(Outcome::Ok)
}

async fn entries(args: EntriesArgs) -> anyhow::Result<Outcome> {
    let (ledger, head) = args.ledger.open_vouched().await?;
    let size = head.size;
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
        for (index, leaf) in (start..).zip(ledger.entries(start, page_end).await?) {
            if args.json {
                let event: serde_json::Value = serde_json::from_slice(&leaf)
                    .with_context(|| format!("entry {index} is not JSON"))?;
                let line = json!({
                    "index": index,
                    "leaf_hash": hex(&leaf_hash(&leaf)),
                    "event": event,
                });
                out.push_str(&line.to_string());
            } else {
                out.push_str(&String::from_utf8_lossy(&leaf));
            }
            out.push('\n');
        }
        print_raw(&out);
        start = page_end;
    }
    Ok(Outcome::Ok)
}

async fn inclusion(args: InclusionArgs) -> anyhow::Result<Outcome> {
    let (ledger, head) = args.ledger.open_vouched().await?;
    let size = args.size.unwrap_or(head.size);
    let (proof, given_root) = ledger.inclusion(args.index, size).await?;
    // Against the signed root when the proof is for the checkpoint's size.
    let (root, root_signed) = if size == head.size {
        (head.root, head.signed)
    } else {
        (given_root, false)
    };
    let leaf = ledger
        .entries(args.index, args.index + 1)
        .await?
        .pop()
        .map(|l| leaf_hash(&l))
        .ok_or_else(|| anyhow::anyhow!("entry {} is missing", args.index))?;
    let checked = verify_inclusion(&leaf, args.index, size, &proof, &root);
    let what = || format!("the inclusion proof of entry {} in {size}", args.index);
    let detail = json!({
        "index": args.index,
        "tree_size": size,
        "leaf_hash": hex(&leaf),
        "root": hex(&root),
        "root_signed": root_signed,
    });
    report_proof(&proof, checked, what, detail, args.json)
}

async fn consistency(args: ConsistencyArgs) -> anyhow::Result<Outcome> {
    let (ledger, head) = args.ledger.open_vouched().await?;
    if args.from > head.size {
        bail!(
            "--from {} is beyond the log's size {}: a consistency proof runs from a size the log had",
            args.from,
            head.size
        );
    }
    let to = args.to.unwrap_or(head.size);
    let (proof, old, given_new) = ledger.consistency(args.from, to).await?;
    let (new, to_signed) = if to == head.size {
        (head.root, head.signed)
    } else {
        (given_new, false)
    };
    let checked = verify_consistency(args.from, to, &proof, &old, &new);
    let what = || format!("the consistency proof from {} to {to}", args.from);
    let detail = json!({
        "from": args.from,
        "to": to,
        "from_root": hex(&old),
        "to_root": hex(&new),
        "to_root_signed": to_signed,
    });
    report_proof(&proof, checked, what, detail, args.json)
}

/// A proof that verified (`checked`) printed as JSON (`detail` plus `hashes`) or as hex hashes,
/// one per line; or the failure of the one that did not, named by `what`.
fn report_proof<E: std::fmt::Display>(
    proof: &[Hash],
    checked: Result<(), E>,
    what: impl FnOnce() -> String,
    mut detail: serde_json::Value,
    as_json: bool,
) -> anyhow::Result<Outcome> {
    if let Err(e) = checked {
        return untrusted(format!("{} does not verify: {e}", what()));
    }
    let hashes: Vec<String> = proof.iter().map(|h| hex(h)).collect();
    if as_json {
        detail["hashes"] = json!(hashes);
        print_json(&detail);
    } else {
        print_raw(&hashes.iter().map(|h| format!("{h}\n")).collect::<String>());
    }
    Ok(Outcome::Ok)
}

async fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    let ledger = args.ledger.open().await?;
    let key = args.ledger.verifying_key()?;
    // A server's head is checked once the hand-overs are followed (below).
    let head = ledger.head_unchecked().await?;
    // The keys from the one the checker holds to the one signing now, each hand-over
    // verified (a retired key follows them; the current key needs none). Locally the
    // store says where the hand-overs are; from a server, the entries read show them.
    let mut keys = match &ledger {
        Ledger::Local(store) => match follow::local(store, &key, &ledger).await? {
            Ok(keys) => keys,
            Err(why) => return report_check(args.json, Err(why)),
        },
        Ledger::Remote { .. } => {
            custody_ledger::LogKeys::new(NoteVerifier::new(&head.origin, &key)?)
        }
    };
    if matches!(ledger, Ledger::Local(_)) {
        if let Err(e) = keys.open(&head.note) {
            return report_check(args.json, Err(format!("the head checkpoint: {e}")));
        }
    }
    let bar = crate::progress::bar(head.size, 100_000, "checking entries");
    let mut state = None;
    let recomputed = match &ledger {
        // Locally: every stored hash and every stored checkpoint, not only the root; then
        // the state against the ledger's events.
        Ledger::Local(store) => match store.check(|done| bar.set_position(done)).await {
            Ok(report) => {
                bar.set_position(0);
                bar.set_message("checking the state against the ledger");
                state = Some(custody_app::check_state(store, |done| bar.set_position(done)).await?);
                Ok((report.entries, report.root, report.checkpoints))
            }
            Err(
                e @ (custody_store::StoreError::Corrupt(_)
                | custody_store::StoreError::Integrity(_)),
            ) => Err(e.to_string()),
            Err(e) => return Err(e.into()),
        },
        // From a server: the leaves it serves must give the root it signed.
        Ledger::Remote { .. } => {
            let mut frontier = Frontier::new();
            let mut follower = follow::Follower::new(keys);
            let mut start = 0;
            while start < head.size {
                let end = head.size.min(start + MAX_ENTRIES_PER_READ);
                for (index, leaf) in (start..).zip(ledger.entries(start, end).await?) {
                    frontier.append(leaf_hash(&leaf));
                    if let Err(why) = follower.leaf(&ledger, index, &leaf).await? {
                        bar.finish_and_clear();
                        return report_check(args.json, Err(why));
                    }
                }
                bar.set_position(end);
                start = end;
            }
            keys = follower.into_keys();
            if let Err(e) = keys.open(&head.note) {
                bar.finish_and_clear();
                return report_check(args.json, Err(format!("the head checkpoint: {e}")));
            }
            if frontier.root() == head.root {
                Ok((head.size, head.root, 1))
            } else {
                Err(format!(
                    "the {} leaves the server serves give root {}, but its signed checkpoint says {}",
                    head.size,
                    hex(&frontier.root()),
                    hex(&head.root)
                ))
            }
        }
    };
    bar.finish_and_clear();
    let (entries, root, checkpoints) = match recomputed {
        Ok(r) => r,
        Err(why) => return report_check(args.json, Err(why)),
    };
    // Locally, the head must extend the checkpoint file too: a database rolled back or
    // forked while custody was stopped checks out on its own.
    if let (Ledger::Local(store), None) = (&ledger, &args.ledger.server) {
        let dir = DataDir::new(&args.ledger.data_dir);
        if let Some(path) = dir.checkpoint_file_path(args.ledger.database_url.as_deref())? {
            if let Some(failure) = store.check_checkpoint_file(&path).await? {
                let refused = custody_store::StoreError::Integrity(Box::new(failure));
                return report_check(args.json, Err(refused.to_string()));
            }
        }
    }
    if let Some(state) = &state {
        if !state.differences.is_empty() {
            let lines: Vec<String> = state.differences.iter().map(ToString::to_string).collect();
            return report_check(
                args.json,
                Err(format!(
                    "{} state record(s) do not match the ledger (someone changed the database behind it):\n{}",
                    lines.len(),
                    lines.join("\n")
                )),
            );
        }
    }
    // An older checkpoint the auditor kept: the log must have grown from it, not forked.
    let mut since = None;
    if let Some(path) = &args.since_checkpoint {
        let old_note = crate::input::read_text(path, 1 << 20, "checkpoint")?;
        let old = match keys.open(&old_note) {
            Ok(cp) => cp,
            Err(e) => {
                return report_check(
                    args.json,
                    Err(format!("{}: the checkpoint you kept: {e}", path.display())),
                );
            }
        };
        if old.size > head.size {
            return report_check(
                args.json,
                Err(format!(
                    "the log shrank: the kept checkpoint has {} entries, the log now {}",
                    old.size, head.size
                )),
            );
        }
        let consistent = if old.size == 0 {
            true
        } else {
            let (proof, _, _) = ledger.consistency(old.size, head.size).await?;
            verify_consistency(old.size, head.size, &proof, &old.root, &head.root).is_ok()
        };
        if !consistent {
            return report_check(
                args.json,
                Err(format!(
                    "the log forked: the checkpoint of {} entries you kept is not consistent with the current one of {}",
                    old.size, head.size
                )),
            );
        }
        since = Some(old.size);
    }
    report_check(
        args.json,
        Ok((entries, root, checkpoints, since, state.map(|s| s.records))),
    )
}

/// What a passing check found: entries, root, signed checkpoints checked, the size of
/// the user's checkpoint it extends, state records checked.
type Passed = (u64, Hash, u64, Option<u64>, Option<u64>);

fn report_check(as_json: bool, result: Result<Passed, String>) -> anyhow::Result<Outcome> {
    match result {
        Ok((entries, root, checkpoints, since, records)) => {
            if as_json {
                print_json(&json!({
                    "ok": true,
                    "entries": entries,
                    "checkpoints": checkpoints,
                    "root": hex(&root),
                    "consistent_since": since,
                    "state_records_checked": records,
                }));
            } else {
                let mut line = format!(
                    "ok: {entries} entries recomputed; the root {} matches the signed checkpoint ({checkpoints} signed checkpoint(s) checked)",
                    hex(&root)
                );
                if let Some(s) = since {
                    line.push_str(&format!("; consistent with your checkpoint of {s} entries"));
                }
                if let Some(r) = records {
                    line.push_str(&format!("; {r} state record(s) match the ledger"));
                }
                print_line(&line);
            }
            Ok(Outcome::Ok)
        }
        Err(why) => {
            if as_json {
                print_json(&json!({"ok": false, "error": why}));
            } else {
                print_line(&format!("FAILED: {why}"));
            }
            Ok(Outcome::Denied)
        }
    }
}
