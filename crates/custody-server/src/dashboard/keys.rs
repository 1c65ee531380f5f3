//! Keys by name. `GET /keys` lists every key custody trusts — release signers, builders,
//! personal approval keys (each with the name, holder and file the policy gives it, and
//! since when it has been trusted) — then those retired or revoked, all read from the
//! keyring (`App::keys`), and custody's own (the VSA attestor, the ledger's checkpoint
//! key). `GET /keys/{key}` is one key's blast radius. [`key_name`] is how any page shows a
//! key id: by name, the hex on hover.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use custody_app::keyring::{Introduced, KeyView};
use custody_app::{Dependence, GateNow};
use custody_model::Timestamp;
use custody_policy::{KeyPurpose, Policy};
use maud::{Markup, html};

use super::{Viewer, age, when};
use crate::ServerState;

/// A key id as people read it: the policy's name for the key, what it is for and who holds
/// it, with the whole id (and the key's file) on hover; a key the policy in force does not
/// name shows as the first 12 hex digits of its id.
pub(crate) fn key_name(policy: &Policy, key_id: &str) -> Markup {
    match policy.named_key(key_id) {
        Some(k) => html! {
            span.key data-key-id=(key_id) title={ "key id " (key_id) " · file " (k.file) } {
                strong { (k.name) } " (" (k.purpose.describe())
                @if let Some(owner) = k.owner.as_ref().filter(|o| **o != k.name) { ", held by " (owner) }
                ")"
            }
        },
        None => html! {
            code.key data-key-id=(key_id) title={ "key id " (key_id) " (not a key the policy in force names)" } {
                (key_id.get(..12).unwrap_or(key_id)) "…"
            }
        },
    }
}

/// [`key_name`] as plain text, for a tooltip: `release signer (release signer, held by
/// rita; key id …)`.
pub(crate) fn key_text(policy: &Policy, key_id: &str) -> String {
    match policy.named_key(key_id) {
        Some(k) => {
            let owner = match k.owner.as_ref().filter(|o| **o != k.name) {
                Some(o) => format!(", held by {o}"),
                None => String::new(),
            };
            format!(
                "{} ({}{owner}; key id {key_id})",
                k.name,
                k.purpose.describe()
            )
        }
        None => format!("key id {key_id}"),
    }
}

/// Where the policy bundle holds a key: the file the policy in force gives it, else the
/// one it came in by, or (a successor by hand-over, which the bundle still names by its
/// predecessor until its owners catch up) the file of the key it succeeded.
fn file_of(policy: &Policy, key: &KeyView, keys: &[KeyView]) -> Markup {
    if let Some(named) = policy.named_key(&key.key_id) {
        return html! { code { (named.file) } };
    }
    let mut k = key;
    // A chain of hand-overs is short; the bound only guards a malformed keyring.
    for _ in 0..keys.len() {
        match &k.introduced {
            Introduced::Policy { file } if k.key_id == key.key_id => {
                return html! { code { (file) } };
            }
            Introduced::Policy { file } => {
                return html! { code { (file) } " (by hand-over from " (short(&k.key_id)) ")" };
            }
            Introduced::Rotation { from } => match keys.iter().find(|p| &p.key_id == from) {
                Some(p) => k = p,
                None => break,
            },
        }
    }
    html! { "by hand-over" }
}

/// `text` (a gate's reason, an alert) with each 64-hex-digit id in it (a key id, a digest's
/// hex) shown by its first 12 digits, the whole on hover: a sentence people read, not a
/// wall of hex. A key the policy names shows by its name.
pub(crate) fn with_short_ids(text: &str, policy: &Policy) -> Markup {
    const ID: usize = 64;
    let bytes = text.as_bytes();
    let mut parts: Vec<(&str, bool)> = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let run = bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        let bounded = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if run == ID && bounded {
            parts.push((&text[start..i], false));
            parts.push((&text[i..i + ID], true));
            start = i + ID;
        }
        i += run.max(1);
    }
    parts.push((&text[start..], false));
    html! {
        @for (part, id) in parts {
            @if !id { (part) }
            @else if policy.named_key(part).is_some() { (key_name(policy, part)) }
            @else { (short(part)) }
        }
    }
}

/// A key id's first 12 hex digits, the whole id on hover.
fn short(key_id: &str) -> Markup {
    html! { code title=(key_id) { (key_id.get(..12).unwrap_or(key_id)) "…" } }
}

/// The table of one purpose's keys in force.
fn keys_table(
    id: &str,
    purpose: KeyPurpose,
    policy: &Policy,
    keys: &[KeyView],
    now: Timestamp,
) -> Markup {
    let shown: Vec<&KeyView> = keys
        .iter()
        .filter(|k| k.purpose == purpose && k.status == "active")
        .collect();
    html! {
        @if shown.is_empty() { p.none { "none" } } @else {
            table id=(id) {
                tr { th { "name" } th { "held by" } th { "file" } th { "algorithm" } th { "trusted since" } th { "key id" } }
                @for k in shown {
                    tr data-key-id=(k.key_id) {
                        td.name { a href={ "/keys/" (k.key_id) } { strong { (k.name) } } }
                        td { (k.owner.as_deref().unwrap_or("—")) }
                        td { (file_of(policy, k, keys)) }
                        td { (k.algorithm) }
                        td {
                            // Since the start of its current span: the policy version
                            // (or hand-over) from which it has been trusted without a break.
                            @match k.trusted.last() {
                                Some(s) => { (when(s.from)) " (" (age(s.from, now)) ")" },
                                None => span.none { "not recorded" },
                            }
                        }
                        td { (short(&k.key_id)) }
                    }
                }
            }
        }
    }
}

/// Where custody's own keys are when the server was not told (a test's server).
const DATA_DIR: &str = "this custody instance (its data directory)";

/// A row of custody's own keys: what it signs, its name, where the private key is (a file
/// in the data directory, or a token and key label), algorithm and key id.
fn own_key_row(
    id: &str,
    purpose: &str,
    name: Markup,
    public: &custody_crypto::PublicKey,
    source: &str,
) -> Markup {
    let key_id = public.key_id().to_string();
    html! {
        tr data-own-key=(id) data-key-id=(key_id) {
            td { (purpose) } td { (name) }
            td.source { (source) } td { (public.algorithm()) }
            td { code title=(key_id) { (key_id.get(..12).unwrap_or(&key_id)) "…" } }
        }
    }
}

/// `GET /keys`: the keys custody trusts now, by name, and its own.
pub(crate) async fn keys(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
) -> Result<Response, Response> {
    let policy = s.app.policy().await.map_err(|e| v.fail(e))?;
    // Every key custody has trusted, from the keyring (built once per policy version and
    // key change, and kept): those in force by purpose, then the retired and revoked.
    let keys = s.app.keys().await.map_err(|e| v.fail(e))?;
    let gone: Vec<&KeyView> = keys.iter().filter(|k| k.status != "active").collect();
    let attestor = s.app.attestor_key();
    let own = s.own_keys();
    let receipts_source = own.map_or(DATA_DIR, |o| o.receipts.source.as_str());
    let body = html! {
        h1 { "Keys" }
        p {
            "The keys policy " code title=(policy.digest()) { (policy.digest().get(..19).unwrap_or(policy.digest())) "…" }
            " trusts, by the name it gives them; the ledger records them by key id (hover for the whole id)."
        }
        h2 { "Release signers" }
        p.none { "Sign release manifests; a promotion needs a signature by one of them." }
        (keys_table("release-keys", KeyPurpose::ReleaseSigner, &policy, &keys, v.now))
        h2 { "Builders" }
        p.none { "Sign the provenance of what they build, for the repositories listed." }
        (keys_table("builders", KeyPurpose::Builder, &policy, &keys, v.now))
        @if !policy.builders().is_empty() {
            table #builder-repos {
                tr { th { "builder" } th { "may build" } }
                @for b in policy.builders() { tr { td { (b.id) } td { (b.source_repos.join(", ")) } } }
            }
        }
        h2 { "Personal approval keys" }
        p.none { "People sign their approvals with these; an approval so signed counts without their session." }
        (keys_table("person-keys", KeyPurpose::PersonalApproval, &policy, &keys, v.now))
        h2 { "Retired and revoked" }
        p.none { "Keys rotated away or revoked: what they signed while trusted still counts, up to a revocation's cutoff. Each links to what its trust touches." }
        @if gone.is_empty() { p.none { "none" } } @else {
            table #keyring {
                tr { th { "name" } th { "purpose" } th { "status" } th { "since" } th { "successor" } th { "key id" } }
                @for k in gone {
                    tr data-key-id=(k.key_id) {
                        td.name { a href={ "/keys/" (k.key_id) } { strong { (k.name) } } }
                        td { (k.purpose.describe()) }
                        td.status { (k.status) }
                        td {
                            @if let Some(r) = &k.revoked {
                                "revoked " (when(r.at)) " by " (r.by)
                                @if let Some(c) = r.compromised_since { ", compromised since " (when(c)) }
                                ": " (r.reason)
                            } @else if let Some(end) = k.trusted.last().and_then(|t| t.until) {
                                "retired " (when(end))
                            }
                        }
                        td { @if let Some(n) = &k.successor { (short(n)) } @else { "—" } }
                        td { (short(&k.key_id)) }
                    }
                }
            }
        }
        h2 { "custody's own" }
        table #own-keys {
            tr { th { "purpose" } th { "name" } th { "where the private key is" } th { "algorithm" } th { "key id" } }
            (own_key_row("receipts", "attestor (signs each decision's VSA)", html! { strong { "custody attestor" } }, &attestor, receipts_source))
            @if let Some(log) = own.map(|o| &o.log) {
                (own_key_row("log", "ledger (signs checkpoints)", html! { strong { (s.app.log().verifier_key()) } }, &log.public, &log.source))
            } @else {
                tr data-own-key="log" {
                    td { "ledger (signs checkpoints)" } td { strong { (s.app.log().verifier_key()) } }
                    td { (DATA_DIR) } td { "ed25519" }
                    td { "verifier key: " code { "custody key show --note-name NAME DATA_DIR/keys/log.pub" } }
                }
            }
        }
    };
    Ok(v.shown("Keys", body))
}

/// `GET /keys/{key}` (the key's id, or a unique prefix of it): one key's blast radius:
/// every release, provenance, approval and receipt the ledger recorded as signed by it
/// (whether each still counts), per environment what is certified and running that
/// depends on it and how (manifest, provenance, or only an approval), and what the deploy
/// gate now denies because of it.
pub(crate) async fn key(
    State(s): State<Arc<ServerState>>,
    v: Viewer,
    Path(key): Path<String>,
) -> Result<Response, Response> {
    let impact = s
        .app
        .key_impact(&key, s.now())
        .await
        .map_err(|e| v.fail(e))?;
    let k = &impact.key;
    let body = html! {
        h1 { (k.name) }
        p {
            (k.purpose.describe()) " key, " (k.algorithm)
            @if let Some(o) = &k.owner { ", held by " (o) }
            " — " strong.status { (k.status) }
            br; code { (k.key_id) }
        }
        @if let Some(r) = &k.revoked {
            p.revoked {
                "Revoked " (when(r.at)) " by " (r.by)
                @if let Some(c) = r.compromised_since { ", compromised since " (when(c)) }
                ": " (r.reason) ". Nothing it signed from " (when(r.cutoff())) " on counts."
            }
        }
        @if let Some(n) = &k.successor { p { "Succeeded by " a href={ "/keys/" (n) } { code { (n) } } } }
        @if let Some(n) = &k.predecessor { p { "Succeeds " a href={ "/keys/" (n) } { code { (n) } } } }
        h2 { "Blast radius" }
        p.none {
            "How each environment's release depends on the key: its " em { "manifest" } " (re-sign it), an artifact's "
            em { "provenance" } " (rebuild it), or only an " em { "approval" } " of the promotion that certified it (re-approve it)."
        }
        table #environments {
            tr { th { "environment" } th { "certified" } th { "depends on it" } th { "running and depending on it" } th { "deploy gate now" } }
            @for e in &impact.environments {
                tr data-environment=(e.environment) class=[(e.gate == Some(GateNow::Denies)).then_some("denied")] {
                    td { (e.environment) }
                    td { (e.certified.as_deref().unwrap_or("—")) }
                    td.depends data-depends=(depends(&e.depends)) {
                        @if e.depends.is_empty() { "no" } @else { (depends(&e.depends)) }
                    }
                    td { @for r in &e.running { code { (r.digest) } " (" (depends(&r.depends)) ")" br; } }
                    td {
                        @match e.gate {
                            None => "nothing certified",
                            Some(GateNow::Allows) => "allows",
                            Some(GateNow::Denies) => { strong { "denies" } " because of this key: " (e.reasons.join("; ")) },
                            Some(GateNow::DeniesOtherwise) => "denies, not because of this key",
                        }
                    }
                }
            }
        }
        @if !impact.denied.is_empty() {
            h2 { "The deploy gate now denies, because of this key" }
            ul #denied {
                @for d in &impact.denied {
                    li data-environment=(d.environment) data-depends=(depends(&d.depends)) {
                        strong { (d.environment) ": " (d.release) } " — depends on it through its " (depends(&d.depends)) ": "
                        (d.depends.iter().map(|x| x.remedy()).collect::<Vec<_>>().join("; "))
                    }
                }
            }
        }
        h2 { (impact.uses.len()) " recorded uses, " (impact.not_counting) " no longer counting" }
        table #uses {
            tr { th { "what" } th { "" } th { "recorded" } th { "counts" } th { "ledger entry" } }
            @for u in &impact.uses {
                tr class=[(!u.counts).then_some("not-counting")] {
                    td { (u.what) } td { (u.name) } td { (when(u.at)) }
                    td { @if u.counts { "yes" } @else { "no: " (u.why_not.as_deref().unwrap_or("")) } }
                    td { (u.ledger_index) }
                }
            }
        }
    };
    Ok(v.shown(&format!("Key {}", k.name), body))
}

/// How something depends on the key: `manifest, provenance`, `approval`.
fn depends(how: &[Dependence]) -> String {
    how.iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_in_a_sentence_are_shortened_and_kept_on_hover() {
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            "custody.toml".to_owned(),
            "version = 1\n[[environment]]\nname = \"production\"\n".to_owned(),
        );
        let policy = custody_policy::compile(&custody_policy::Bundle { files }).unwrap();
        let id = "b8686c51406a7603a95b8f01035281bbceef66cac186f2d7609691f0a7aa5cf7";
        let text = format!("key {id} (release signer) was revoked; digest sha256:{id}; not {id}0");
        let html = with_short_ids(&text, &policy).into_string();
        assert_eq!(html.matches("b8686c51406a…").count(), 2, "{html}");
        assert_eq!(
            html.matches(&format!("title=\"{id}\"")).count(),
            2,
            "{html}"
        );
        // A run of another length is left as it is.
        assert!(html.contains(&format!("not {id}0")), "{html}");
        assert!(html.starts_with("key ") && html.contains(" (release signer) was revoked"));
    }
}
