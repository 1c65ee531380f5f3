//! `custody key list | impact | rotate | revoke`: the keyring's lifecycle, on the local data
//! directory or through a server (see `custody_app::keyring` for the rule every signature
//! check follows: the key valid when the ledger recorded the signature).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use custody_app::{Dependence, GateNow, Handover, RevokeKey, RotateKey};
use custody_policy::KeyPurpose;

use crate::Outcome;
use crate::context::{Acting, ReadTarget};
use crate::custody::Custody;
use crate::input::{load_signer, print_json, print_line, printable, when};

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImpactArgs {
    /// The key id (from `custody key list` or `custody key show`), or its first 8 or more
    /// hex digits when only one key starts with them.
    key: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The key handing over (its private key file, or a `pkcs11:` URI): it signs the
    /// hand-over, so only its holder can rotate it.
    #[arg(long, value_name = "KEY")]
    from: PathBuf,
    /// The successor's private key (file or `pkcs11:` URI); it signs the hand-over too,
    /// proving it is held. A new key the keyring has never seen.
    #[arg(long, value_name = "KEY")]
    to: PathBuf,
    #[command(flatten)]
    acting: Acting,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The key id, or its first 8 or more hex digits when only one key starts with them
    /// (the revocation records the whole id).
    key: String,
    /// What happened (recorded in the ledger and named in the alert).
    #[arg(long)]
    reason: String,
    /// When the key was compromised (RFC 3339, e.g. 2026-11-24T00:00:00Z): nothing it
    /// signed from then on counts. Without it: nothing signed from now on.
    #[arg(long, value_name = "TIME")]
    compromised_since: Option<String>,
    #[command(flatten)]
    acting: Acting,
}

pub(crate) async fn list(a: ListArgs) -> anyhow::Result<Outcome> {
    let keys = Custody::reading(&a.target).await?.keys().await?;
    if a.json {
        print_json(&serde_json::json!(keys));
        return Ok(Outcome::Ok);
    }
    if keys.is_empty() {
        print_line("the keyring is empty: no policy names a key yet");
    }
    for k in &keys {
        let span = k.trusted.last().map_or_else(String::new, |s| {
            format!(
                "since {}{}",
                when(s.from),
                s.until
                    .map(|u| format!(" until {}", when(u)))
                    .unwrap_or_default()
            )
        });
        print_line(&format!(
            "{:8} {:18} {:11} {}  {}{}  {span}{}",
            k.status,
            k.purpose.as_str(),
            k.algorithm,
            k.key_id,
            printable(&k.name, false),
            k.owner
                .as_deref()
                .map(|o| format!(" (held by {})", printable(o, false)))
                .unwrap_or_default(),
            k.revoked
                .as_ref()
                .map(|r| format!(
                    "  revoked {} by {}{}: {}",
                    when(r.at),
                    r.by,
                    r.compromised_since
                        .map(|c| format!(", compromised since {}", when(c)))
                        .unwrap_or_default(),
                    printable(&r.reason, false)
                ))
                .or_else(|| k.successor.as_ref().map(|s| format!("  succeeded by {s}")))
                .unwrap_or_default()
        ));
    }
    Ok(Outcome::Ok)
}

pub(crate) async fn impact(a: ImpactArgs) -> anyhow::Result<Outcome> {
    let impact = Custody::reading(&a.target)
        .await?
        .key_impact(&a.key)
        .await?;
    if a.json {
        print_json(&serde_json::json!(impact));
        return Ok(Outcome::Ok);
    }
    let k = &impact.key;
    print_line(&format!(
        "key {} ({}, {} key, {}): {}",
        k.key_id,
        printable(&k.name, false),
        k.purpose.describe(),
        k.algorithm,
        k.status
    ));
    print_line(&format!(
        "{} recorded use(s), {} no longer counting{}",
        impact.uses.len(),
        impact.not_counting,
        if impact.truncated {
            " (the oldest left out)"
        } else {
            ""
        }
    ));
    for u in &impact.uses {
        print_line(&format!(
            "  {} {:17} {}  [entry {}]{}",
            if u.counts { " " } else { "✗" },
            u.what,
            printable(&u.name, false),
            u.ledger_index,
            u.why_not
                .as_ref()
                .map(|w| format!("\n      {}", printable(w, false)))
                .unwrap_or_default()
        ));
    }
    print_line("environments:");
    for e in &impact.environments {
        let gate = match e.gate {
            None => "nothing certified",
            Some(GateNow::Allows) => "gate allows",
            Some(GateNow::Denies) => "gate DENIES because of this key",
            Some(GateNow::DeniesOtherwise) => {
                "gate denies, not because of this key (custody verify says why)"
            }
        };
        print_line(&format!(
            "  {:12} certified {}{}{}; {gate}",
            e.environment,
            e.certified.as_deref().unwrap_or("-"),
            if e.depends.is_empty() {
                String::new()
            } else {
                format!(" (depends on this key: {})", depends(&e.depends))
            },
            if e.running.is_empty() {
                String::new()
            } else {
                format!(
                    "; running and depending on it: {}",
                    e.running
                        .iter()
                        .map(|r| format!("{} ({})", r.digest, depends(&r.depends)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    }
    if impact.denied.is_empty() {
        print_line("the deploy gate denies nothing because of this key");
    } else {
        print_line("the deploy gate now denies, because of this key:");
    }
    for d in &impact.denied {
        print_line(&format!(
            "  {}: {} (depends: {})",
            d.environment,
            d.release,
            depends(&d.depends)
        ));
        for remedy in d.depends.iter().map(|x| x.remedy()) {
            print_line(&format!("      to restore it: {remedy}"));
        }
        for reason in &d.reasons {
            print_line(&format!("      {}", printable(reason, false)));
        }
    }
    Ok(Outcome::Ok)
}

/// How something depends on the key, e.g. `approval` or `manifest, provenance`.
fn depends(how: &[Dependence]) -> String {
    how.iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn rotate(purpose: KeyPurpose, a: RotateArgs) -> anyhow::Result<Outcome> {
    let old = load_signer(&a.from)?;
    let new = load_signer(&a.to)?;
    if old.public_key().key_id() == new.public_key().key_id() {
        bail!(
            "--from and --to are the same key: the successor must be a new key (custody key generate makes one)"
        );
    }
    let handover = Handover::sign(purpose, old.as_ref(), new.as_ref())?;
    let done = Custody::open(&a.acting.target)
        .await?
        .rotate_key(&RotateKey { handover })
        .await?;
    if a.acting.json {
        print_json(&serde_json::json!(done));
    } else {
        print_line(&format!(
            "{} key {} retired; its successor {} signs in its place from now on (ledger entry {})",
            purpose.describe(),
            done.key,
            done.successor.as_deref().unwrap_or("?"),
            done.ledger_index
        ));
        eprintln!(
            "what {} signed while it was trusted keeps verifying; update the policy bundle's key file when its owners next change it",
            done.key
        );
    }
    Ok(Outcome::Ok)
}

pub(crate) async fn revoke(a: RevokeArgs) -> anyhow::Result<Outcome> {
    let compromised_since = match &a.compromised_since {
        None => None,
        Some(t) => Some(t.parse::<custody_model::Timestamp>().map_err(|e| {
            anyhow::anyhow!(
                "--compromised-since {t:?}: {e} (an RFC 3339 time such as 2026-11-24T00:00:00Z)"
            )
        })?),
    };
    let done = Custody::open(&a.acting.target)
        .await?
        .revoke_key(
            &a.key,
            &RevokeKey {
                reason: a.reason.clone(),
                compromised_since,
            },
        )
        .await?;
    if a.acting.json {
        print_json(&serde_json::json!(done));
    } else {
        print_line(&format!(
            "key {} is revoked{}{} (ledger entry {}); `custody key impact {}` lists what it touches",
            done.key,
            done.revocation
                .as_ref()
                .map(|r| format!(": nothing it signed from {} on counts", when(r.cutoff)))
                .unwrap_or_default(),
            if done.revoked_with.is_empty() {
                String::new()
            } else {
                format!(
                    ", nor what the successor(s) it handed over to since then signed: {}",
                    done.revoked_with.join(", ")
                )
            },
            done.ledger_index,
            done.key
        ));
        for line in done.revocation.iter().flat_map(|r| &r.affected) {
            print_line(&format!("  no longer counting: {}", printable(line, false)));
        }
    }
    Ok(Outcome::Ok)
}
