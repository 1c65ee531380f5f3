//! `custody log watch`: hold a log's operator to an append-only history. Each run fetches
//! the server's checkpoint, checks its signature by the log key (and the cosignatures of
//! the witnesses named), and that it extends the checkpoint the last run verified (kept in
//! a state file): the same root at the same size, or a consistency proof from it. A fork,
//! a shrinking log or a bad signature fails loudly (exit 1) and leaves the state as it
//! was, so the evidence stays; the first run keeps what it saw (trust on first use).
//!
//! When the operator rotates the log key, the checkpoints after the hand-over are signed
//! by the new key alone. A run whose trusted key did not sign the head reads the
//! hand-overs since the last run's checkpoint (the server lists them publicly; an older
//! server's are read from its entries, with a token) and follows them
//! ([`crate::cmd::log_follow`], the one follower `custody log check` uses): each hand-over
//! checkpoint signed by the key trusted and by the next, its `log.key_rotated` event
//! proved its last leaf, and the log it signs consistent with what was kept. The state
//! file then records the key trusted now, so the next run, given the same `--log-key`,
//! needs no change.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use custody_crypto::cosignature::{self, CosignatureVerifier};
use custody_crypto::note::NoteVerifier;
use custody_ledger::{Checkpoint, LogKeys, verify_consistency};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cmd::log_follow::{Followed, Follower};
use crate::input::{load_public_key, print_json, print_line, read_text};
use crate::ledger_source::Ledger;
use crate::{Outcome, VerificationFailed};

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The custody server whose log to watch.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL", value_parser = crate::client::server_url)]
    server: String,
    /// The log's public key (SPKI PEM), obtained from the operator out of band.
    #[arg(long, value_name = "PUB")]
    log_key: PathBuf,
    /// Where the last verified checkpoint is kept between runs (created by the first).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// A witness whose cosignatures to verify and show: NAME=PUB, its name and its Ed25519
    /// public key (SPKI PEM). Repeatable.
    #[arg(long = "witness-key", value_name = "NAME=PUB")]
    witness_keys: Vec<String>,
    /// Ask for the server's final checkpoint and fail unless at least this many of the
    /// witnesses named cosigned it.
    #[arg(long, default_value_t = 0, value_name = "K")]
    witness_quorum: usize,
    /// A token that may read the ledger's entries: needed only to follow a log-key
    /// hand-over on a server that does not list its hand-overs publicly (an older custody;
    /// the checkpoints and proofs are public).
    #[arg(
        long,
        env = "CUSTODY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// For an https:// server whose certificate an internal CA signed: that CA (PEM).
    #[arg(long, env = "CUSTODY_CA_CERT", value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What the state file keeps: the last checkpoint verified, whole, so that each run
/// checks it again with the log key before trusting it; and, once a log-key hand-over
/// was followed, the key trusted now and the keys it was handed over from (absent
/// before: a state file written before log keys rotated reads the same).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeptFile {
    origin: String,
    size: u64,
    root: String,
    note: String,
    /// The key trusted now, as a C2SP verifier key, when it is not the one given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_key: Option<String>,
    /// The keys handed over from to reach it, oldest first (C2SP verifier keys): the
    /// `--log-key` given must be `log_key` or one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    followed_from: Vec<String>,
}

/// The state file as read and verified.
struct Kept {
    checkpoint: Checkpoint,
    trusted: NoteVerifier,
    followed_from: Vec<String>,
}

fn witnesses(specs: &[String]) -> anyhow::Result<Vec<CosignatureVerifier>> {
    specs
        .iter()
        .map(|spec| {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--witness-key {spec:?} is not NAME=PUB"))?;
            let key = load_public_key(std::path::Path::new(path))?;
            CosignatureVerifier::new(name, &key).with_context(|| format!("--witness-key {name}"))
        })
        .collect()
}

fn failed(why: String) -> anyhow::Error {
    VerificationFailed(why).into()
}

pub(crate) async fn run(args: WatchArgs) -> anyhow::Result<Outcome> {
    let json = args.json;
    let result = watch(args).await;
    // A monitor reading JSON learns of a fork, a shrinking log or a bad signature on
    // stdout too, not only from the exit code and stderr.
    if let (true, Err(e)) = (json, &result) {
        if e.downcast_ref::<VerificationFailed>().is_some() {
            print_json(&json!({"ok": false, "failure": e.to_string()}));
        }
    }
    result
}

async fn watch(args: WatchArgs) -> anyhow::Result<Outcome> {
    let key = load_public_key(&args.log_key)?;
    let witnesses = witnesses(&args.witness_keys)?;
    if args.witness_quorum > witnesses.len() {
        bail!(
            "--witness-quorum {} needs at least as many --witness-key",
            args.witness_quorum
        );
    }
    let ledger = Ledger::remote(
        &args.server,
        args.token.as_deref(),
        Some(key.clone()),
        args.ca_cert.as_deref(),
    )?;
    let note = ledger.checkpoint_note(args.witness_quorum > 0).await?;
    let origin = note.lines().next().unwrap_or_default();
    let given = NoteVerifier::new(origin, &key).context("the log key")?;
    let old = match std::fs::metadata(&args.state) {
        Ok(_) => Some(read_kept(&args.state, &given)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.state.display())),
    };
    let trusted = old
        .as_ref()
        .map_or_else(|| given.clone(), |o| o.trusted.clone());
    let (new, followed) = open_head(
        &ledger,
        &note,
        trusted.clone(),
        old.as_ref(),
        args.token.is_some(),
    )
    .await?;
    let cosigned = cosignature::verify(&note, &witnesses)
        .map_err(|e| failed(format!("the checkpoint of {} entries: {e}", new.size)))?;
    if cosigned.len() < args.witness_quorum {
        return Err(failed(format!(
            "the checkpoint of {} entries carries {} of the {} witness cosignatures required",
            new.size,
            cosigned.len(),
            args.witness_quorum
        )));
    }
    // The history, step by step: what the last run kept, each hand-over checkpoint (the
    // log the retiring key signed must be the one handed over), then the new head.
    let mut steps: Vec<(&Checkpoint, &str)> = Vec::new();
    if let Some(old) = &old {
        steps.push((&old.checkpoint, "the last run verified"));
    }
    for f in followed.iter().filter(|f| {
        old.as_ref()
            .is_none_or(|o| f.checkpoint.size >= o.checkpoint.size)
    }) {
        steps.push((&f.checkpoint, "the log-key hand-over signed"));
    }
    steps.push((&new, ""));
    for pair in steps.windows(2) {
        check_extends(&ledger, pair[0], pair[1].0).await?;
    }
    let grew_from = old.as_ref().map(|o| o.checkpoint.size);
    // The key trusted now, recorded once it is not the one given, with the keys it was
    // handed over from (so the next run, given the same --log-key, needs no change).
    let now = followed
        .last()
        .map_or_else(|| trusted.clone(), |f| f.to.clone());
    let mut from_keys = old.map(|o| o.followed_from).unwrap_or_default();
    from_keys.extend(followed.iter().map(|f| f.from.to_text()));
    write_kept(&args.state, &new, &note, &now, &given, from_keys)?;
    let root = hex::encode(new.root);
    let handovers: Vec<(String, String, u64)> = followed
        .iter()
        .map(|f| (key_id(&f.from), key_id(&f.to), f.checkpoint.size))
        .collect();
    if args.json {
        print_json(&json!({
            "ok": true, "origin": new.origin, "size": new.size, "root": root,
            "previous_size": grew_from,
            "log_key": key_id(&now),
            "handovers": handovers.iter().map(|(from, to, size)| json!({"from": from, "to": to, "size": size})).collect::<Vec<_>>(),
            "cosignatures": cosigned.iter().map(|c| json!({"witness": c.witness, "timestamp": c.timestamp})).collect::<Vec<_>>(),
        }));
    } else {
        let history = match grew_from {
            None => "first checkpoint seen: kept as the start of the history (trust on first use)"
                .to_owned(),
            Some(s) if s == new.size => format!("unchanged since the last run ({s} entries)"),
            Some(s) => format!("consistent with the last run's {s} entries"),
        };
        let handed: String = handovers
            .iter()
            .map(|(from, to, size)| {
                format!("; followed the log-key hand-over from {from} to {to} at {size} entries")
            })
            .collect();
        let witnessed = if cosigned.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = cosigned
                .iter()
                .map(|c| format!("{} (at {})", c.witness, c.timestamp))
                .collect();
            format!("; cosigned by {}", names.join(", "))
        };
        print_line(&format!(
            "ok: {} has {} entries, root {root}; {history}{handed}{witnessed}",
            new.origin, new.size
        ));
    }
    Ok(Outcome::Ok)
}

fn key_id(key: &NoteVerifier) -> String {
    key.public_key().key_id().to_string()
}

/// Verifies the server's head `note` with the `trusted` key; when that key did not sign
/// it, follows the log-key hand-overs in the entries since the last run's checkpoint
/// (from its last entry, which may be a hand-over itself; from the start on a first run)
/// through [`Follower`], and verifies it with the key in force at its size.
/// Returns the head and the hand-overs followed.
async fn open_head(
    ledger: &Ledger,
    note: &str,
    trusted: NoteVerifier,
    old: Option<&Kept>,
    may_read: bool,
) -> anyhow::Result<(Checkpoint, Vec<Followed>)> {
    let trusted_id = key_id(&trusted);
    let keys = LogKeys::new(trusted);
    let refused = match keys.open(note) {
        Ok(cp) => return Ok((cp, Vec::new())),
        Err(e) => e,
    };
    let body = note.split("\n\n").next().unwrap_or_default();
    let claimed = Checkpoint::from_body(&format!("{body}\n"))
        .map_err(|e| failed(format!("the server's checkpoint: {e}")))?;
    let start = old.map_or(0, |o| o.checkpoint.size.saturating_sub(1));
    let mut follower = Follower::new(keys.clone());
    // The server lists its hand-overs publicly; one that does not (an older custody) is
    // read through its entries, which needs a credential.
    let followed = match ledger.handovers(start).await {
        Ok(listed) => {
            let mut result = Ok(());
            for (index, leaf) in listed.iter().filter(|(i, _)| *i < claimed.size) {
                result = follower.leaf(ledger, *index, leaf).await?;
                if result.is_err() {
                    break;
                }
            }
            result
        }
        Err(_) if may_read => {
            follower
                .entries(ledger, start, claimed.size.max(start))
                .await?
        }
        Err(e) => {
            return Err(failed(format!(
                "the checkpoint does not verify with the log key {trusted_id} trusted ({refused}), and the server lists no log-key hand-overs to follow ({e:#}); pass --token (a credential that may read the ledger) to follow them through its entries"
            )));
        }
    };
    if let Err(why) = followed {
        return Err(failed(why));
    }
    let (keys, followed) = follower.into_parts();
    let cp = keys.open(note).map_err(|e| {
        failed(format!(
            "the checkpoint of {} entries does not verify with the log key {trusted_id} trusted, nor through a log-key hand-over from it: {e}",
            claimed.size
        ))
    })?;
    Ok((cp, followed))
}

/// Checks that `new` extends `old`: same origin, not smaller, the same root at the same
/// size, and otherwise a consistency proof from the server that verifies. `old.1` says
/// where `old` comes from ("the last run verified").
async fn check_extends(
    ledger: &Ledger,
    (old, what): (&Checkpoint, &str),
    new: &Checkpoint,
) -> anyhow::Result<()> {
    if old.origin != new.origin {
        return Err(failed(format!(
            "the log's origin changed from {:?} to {:?}",
            old.origin, new.origin
        )));
    }
    if new.size < old.size {
        return Err(failed(format!(
            "the log shrank: {what} {} entries, the server now signs {}: history was removed",
            old.size, new.size
        )));
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(failed(format!(
                "the log forked: the server signs a second root for {} entries ({} before, {} now)",
                new.size,
                hex::encode(old.root),
                hex::encode(new.root)
            )));
        }
        return Ok(());
    }
    if old.size == 0 {
        return Ok(());
    }
    let (proof, _, _) = ledger.consistency(old.size, new.size).await?;
    verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
        failed(format!(
            "the log forked: its checkpoint of {} entries is not consistent with the {} {what} ({e})",
            new.size, old.size
        ))
    })
}

/// Reads the state file and verifies the checkpoint it keeps with the key it trusts
/// (the `given` one, unless a hand-over was followed from it).
fn read_kept(path: &std::path::Path, given: &NoteVerifier) -> anyhow::Result<Kept> {
    let text = read_text(path, 1 << 20, "watch state")?;
    let kept: KeptFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a watch state file", path.display()))?;
    let trusted = match &kept.log_key {
        None => given.clone(),
        Some(text) => {
            let trusted = NoteVerifier::from_text(text)
                .with_context(|| format!("{}: its log_key {text:?}", path.display()))?;
            let handed_from = kept.followed_from.iter().any(|k| *k == given.to_text());
            if trusted != *given && !handed_from {
                return Err(failed(format!(
                    "the checkpoint kept in {} does not verify with the log key given: it trusts {} (followed by hand-over from {}), and the key given is neither",
                    path.display(),
                    key_id(&trusted),
                    kept.followed_from.join(", ")
                )));
            }
            trusted
        }
    };
    let cp = LogKeys::new(trusted.clone())
        .open(&kept.note)
        .map_err(|e| {
            failed(format!(
                "the checkpoint kept in {} does not verify with the log key: {e}",
                path.display()
            ))
        })?;
    if cp.size != kept.size || hex::encode(cp.root) != kept.root || cp.origin != kept.origin {
        bail!(
            "{} does not agree with the checkpoint it keeps",
            path.display()
        );
    }
    Ok(Kept {
        checkpoint: cp,
        trusted,
        followed_from: kept.followed_from,
    })
}

/// Replaces the state file whole (a temporary file renamed over it).
fn write_kept(
    path: &std::path::Path,
    cp: &Checkpoint,
    note: &str,
    trusted: &NoteVerifier,
    given: &NoteVerifier,
    followed_from: Vec<String>,
) -> anyhow::Result<()> {
    let handed_over = trusted != given;
    let kept = KeptFile {
        origin: cp.origin.clone(),
        size: cp.size,
        root: hex::encode(cp.root),
        note: note.to_owned(),
        log_key: handed_over.then(|| trusted.to_text()),
        followed_from: if handed_over {
            followed_from
        } else {
            Vec::new()
        },
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut temp, &kept)?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
