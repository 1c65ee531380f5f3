//! `custody key rotate log`: hands the log over to a new key, offline (the server stopped,
//! like `custody log recover`).
//!
//! Order of work, so that a crash at any point loses nothing:
//! 1. the successor is written beside the current key (`keys/log.next.key`/`.pub`, never
//!    over an existing file);
//! 2. the ledger commits the `log.key_rotated` event and the hand-over checkpoint signed by
//!    both keys (opening the ledger with the current key first: a wrong current key is
//!    refused there, before anything is written, and the staged files are removed);
//! 3. the current key pair moves to `keys/retired/log-<key id>.key`/`.pub` (kept, never
//!    deleted: the public half verifies history) and the successor takes its place.
//!
//! A crash between 2 and 3 leaves the ledger handed over and the old key in place: the next
//! open refuses it as a retired key, and the operator finishes step 3 by hand (the message
//! says how).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use custody_crypto::note::NoteSigner;
use custody_crypto::{Algorithm, PrivateKey};
use serde_json::json;

use crate::Outcome;
use crate::context::{ActorArgs, InstanceArgs};
use crate::input::{load_private_key, print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct RotateLogArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    actor: ActorArgs,
    /// The successor's private key (Ed25519, PKCS#8 PEM); by default a new one is generated.
    #[arg(long, value_name = "FILE")]
    new_key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Where the current key pair goes when it retires.
fn retired(dir: &Path, key_id: &str) -> (PathBuf, PathBuf) {
    let base = dir.join("keys/retired");
    (
        base.join(format!("log-{key_id}.key")),
        base.join(format!("log-{key_id}.pub")),
    )
}

pub(crate) async fn rotate_log(args: RotateLogArgs) -> anyhow::Result<Outcome> {
    let dir = args.instance.dir();
    let config = dir.config()?;
    let current = dir.log_signer(&config)?;
    let successor_key = match &args.new_key {
        Some(path) => load_private_key(path)?,
        None => PrivateKey::generate(Algorithm::Ed25519),
    };
    let old_id = current.verifier().public_key().key_id().to_string();
    let (retired_key, retired_pub) = retired(dir.root(), &old_id);
    if retired_key.exists() || retired_pub.exists() {
        bail!(
            "{} already exists: this key was retired before; nothing was written",
            retired_key.display()
        );
    }
    // Everything the key files' move needs is made ready before the ledger commits, so
    // that step cannot fail for want of a directory.
    let retired_dir = dir.root().join("keys/retired");
    let made_retired_dir = !retired_dir.exists();
    fs::create_dir_all(&retired_dir)
        .context("making keys/retired for the retiring key; nothing was written")?;
    let next_key = dir.root().join("keys/log.next.key");
    let next_pub = dir.root().join("keys/log.next.pub");
    crate::cmd::key::write_key_pair(&successor_key, &next_key, &next_pub).with_context(|| {
        "staging the successor key: keys/log.next.* is left from an unfinished rotation. If `custody log check` says the log key is retired, the ledger holds that hand-over: finish it by moving keys/log.key and keys/log.pub to keys/retired/ and keys/log.next.* to keys/log.* (never delete keys/log.next.key then: it is the only copy of the new key). Otherwise remove keys/log.next.*"
    })?;
    let committed = hand_over(&args, &dir, current, successor_key).await;
    let (handover, new_id) = match committed {
        Ok(done) => done,
        Err(e) => {
            // Nothing was committed: the successor is not wanted (nor an empty keys/retired).
            let _ = fs::remove_file(&next_key);
            let _ = fs::remove_file(&next_pub);
            if made_retired_dir {
                let _ = fs::remove_dir(&retired_dir);
            }
            return Err(e.context("the log key was not rotated; nothing was written"));
        }
    };
    let swap = || -> anyhow::Result<()> {
        fs::rename(dir.log_key_path(), &retired_key)?;
        fs::rename(dir.log_pub_path(), &retired_pub)?;
        fs::rename(&next_key, dir.log_key_path())?;
        fs::rename(&next_pub, dir.log_pub_path())?;
        Ok(())
    };
    swap().with_context(|| {
        format!(
            "the ledger is handed over to the new key, but the key files were not all moved: move keys/log.key and keys/log.pub to {} and {}, then keys/log.next.key and keys/log.next.pub to keys/log.key and keys/log.pub",
            retired_key.display(),
            retired_pub.display()
        )
    })?;
    if args.json {
        print_json(&json!({
            "old_key_id": old_id,
            "new_key_id": new_id,
            "size": handover.size,
            "handover_checkpoint": handover.note,
            "retired_key": retired_key,
            "retired_pub": retired_pub,
        }));
    } else {
        print_line(&format!(
            "the log key {old_id} handed over to {new_id} at {} entries; the hand-over checkpoint (signed by both) follows, and monitors holding the old key follow it to the new one\nthe old key pair is in {}\n{}",
            handover.size,
            retired_key.display(),
            handover.note.trim_end()
        ));
    }
    Ok(Outcome::Ok)
}

/// Opens the ledger with the current key and commits the hand-over to `successor`.
async fn hand_over(
    args: &RotateLogArgs,
    dir: &crate::datadir::DataDir,
    current: NoteSigner,
    successor: PrivateKey,
) -> anyhow::Result<(custody_store::SignedCheckpoint, String)> {
    let old = current.verifier().clone();
    let successor = NoteSigner::new(old.name(), Box::new(successor))
        .context("the successor must be an Ed25519 key")?;
    let new = successor.verifier().clone();
    if new == old {
        bail!("the successor is the current log key");
    }
    let app = dir.open_app(args.instance.database_url.as_deref()).await?;
    // Only the operator of the data directory rotates its log key: no token is taken.
    let actor = args.actor.local_actor(&app, None).await?;
    let handover = app.rotate_log_key(&actor, successor).await?;
    Ok((handover, new.public_key().key_id().to_string()))
}
