//! Bundles as the tamper tests handle them: read into members, changed, written back; and
//! a forger who holds the log key and re-signs the checkpoints around what it changed.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::path::Path;

use custody_crypto::note::NoteSigner;
use custody_ledger::{Checkpoint, Hash, MemoryTree, leaf_hash, prove_consistency};
use serde_json::Value;

/// A bundle's members, in order.
pub(crate) struct Bundle {
    pub(crate) members: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    pub(crate) fn read(path: &Path) -> Bundle {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        let mut members = Vec::new();
        for m in archive.entries().unwrap() {
            let mut m = m.unwrap();
            let name = m.path().unwrap().to_str().unwrap().to_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut m, &mut bytes).unwrap();
            members.push((name, bytes));
        }
        Bundle { members }
    }

    pub(crate) fn write(&self, path: &Path) {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        for (name, bytes) in &self.members {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, &bytes[..]).unwrap();
        }
        builder.into_inner().unwrap();
    }

    pub(crate) fn member(&mut self, name: &str) -> &mut Vec<u8> {
        &mut self
            .members
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no member {name}"))
            .1
    }

    /// Every entry line, in order: (member, line number, parsed).
    pub(crate) fn entries(&self) -> Vec<(String, usize, Value)> {
        let mut out = Vec::new();
        for (name, bytes) in &self.members {
            if name.starts_with("entries/") {
                for (n, line) in bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    out.push((name.clone(), n, serde_json::from_slice(line).unwrap()));
                }
            }
        }
        out
    }

    /// The entry line of the first entry whose event satisfies `pick`.
    pub(crate) fn find(&self, pick: impl Fn(&Value) -> bool) -> (String, usize, Value) {
        self.entries()
            .into_iter()
            .find(|(_, _, line)| pick(&event(line)))
            .expect("no such entry")
    }

    /// Replaces line `n` of entry file `member` (`None`: removes it).
    pub(crate) fn set_line(&mut self, member: &str, n: usize, line: Option<&Value>) {
        let bytes = self.member(member);
        let mut lines: Vec<Vec<u8>> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        match line {
            Some(v) => lines[n] = serde_json::to_vec(v).unwrap(),
            None => {
                lines.remove(n);
            }
        }
        *bytes = lines
            .iter()
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect();
    }

    /// Lines of a JSON-lines member.
    pub(crate) fn lines(&self, name: &str) -> Vec<Value> {
        let bytes = &self.members.iter().find(|(n, _)| n == name).unwrap().1;
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    pub(crate) fn set_lines(&mut self, name: &str, lines: &[Value]) {
        *self.member(name) = lines
            .iter()
            .flat_map(|l| serde_json::to_vec(l).unwrap().into_iter().chain([b'\n']))
            .collect();
    }

    /// Appends an entry holding `event` to a complete bundle, growing its anchor by one
    /// (a checkpoint of the new size and a consistency proof to it); [`Bundle::reseal`]
    /// then hashes and signs it, as the log would have.
    pub(crate) fn append_entry(&mut self, event: &Value) {
        let entries = self.entries();
        let (member, _, last) = entries.last().unwrap();
        let index = last["index"].as_u64().unwrap() + 1;
        let line = with_event(
            &serde_json::json!({"index": index, "leaf_hash": "00", "leaf": ""}),
            event,
        );
        let bytes = self.member(member);
        bytes.extend(serde_json::to_vec(&line).unwrap());
        bytes.push(b'\n');
        let mut manifest: Value = serde_json::from_slice(self.member("bundle.json")).unwrap();
        manifest["anchor"] = (index + 1).into();
        *self.member("bundle.json") = serde_json::to_vec(&manifest).unwrap();
        let mut end: Value = serde_json::from_slice(self.member("end.json")).unwrap();
        end["entries"] = (end["entries"].as_u64().unwrap() + 1).into();
        *self.member("end.json") = serde_json::to_vec(&end).unwrap();
        let mut checkpoints = self.lines("checkpoints.jsonl");
        checkpoints.push(serde_json::json!({"size": index + 1, "note": ""}));
        self.set_lines("checkpoints.jsonl", &checkpoints);
        let mut proofs = self.lines("consistency.jsonl");
        proofs.push(serde_json::json!({"from": index, "to": index + 1, "hashes": []}));
        self.set_lines("consistency.jsonl", &proofs);
    }

    /// A forger holding the log key: after changing leaves of a complete bundle, states
    /// their new hashes, re-signs every checkpoint over the new tree and remakes the
    /// consistency proofs, so that only the checks beyond the log can catch the change.
    pub(crate) fn reseal(&mut self, log_key: &NoteSigner) {
        let mut tree = MemoryTree::new();
        let mut fixed = Vec::new();
        for (member, n, mut line) in self.entries() {
            let h = leaf_hash(line["leaf"].as_str().unwrap().as_bytes());
            line["leaf_hash"] = Value::String(hex::encode(h));
            tree.append(h);
            fixed.push((member, n, line));
        }
        for (member, n, line) in fixed {
            self.set_line(&member, n, Some(&line));
        }
        let origin = log_key.verifier().name().to_owned();
        let mut checkpoints = self.lines("checkpoints.jsonl");
        for c in &mut checkpoints {
            let size = c["size"].as_u64().unwrap();
            c["note"] = Value::String(sign(log_key, &origin, size, tree.root(size).unwrap()));
        }
        self.set_lines("checkpoints.jsonl", &checkpoints);
        let mut proofs = self.lines("consistency.jsonl");
        for p in &mut proofs {
            let (a, b) = (p["from"].as_u64().unwrap(), p["to"].as_u64().unwrap());
            let hashes: Vec<String> = prove_consistency(&tree, a, b)
                .unwrap()
                .iter()
                .map(hex::encode)
                .collect();
            p["hashes"] = serde_json::json!(hashes);
        }
        self.set_lines("consistency.jsonl", &proofs);
    }
}

/// A checkpoint note signed by the log key.
pub(crate) fn sign(log_key: &NoteSigner, origin: &str, size: u64, root: Hash) -> String {
    Checkpoint {
        origin: origin.into(),
        size,
        root,
        extensions: vec![],
    }
    .sign(log_key)
    .unwrap()
}

/// The event of an entry line.
pub(crate) fn event(line: &Value) -> Value {
    serde_json::from_str(line["leaf"].as_str().unwrap()).unwrap()
}

/// An entry line with its event replaced (the leaf re-encoded as RFC 8785).
pub(crate) fn with_event(line: &Value, event: &Value) -> Value {
    let mut line = line.clone();
    let leaf = custody_model::CanonicalJson::from_value(event).unwrap();
    line["leaf"] = Value::String(String::from_utf8(leaf.into_bytes()).unwrap());
    line
}

/// The log's signing key of a data directory.
pub(crate) fn log_key(data: &Path) -> NoteSigner {
    let pem = std::fs::read_to_string(data.join("keys/log.key")).unwrap();
    let key = custody_crypto::PrivateKey::from_pkcs8_pem(&pem).unwrap();
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    let origin = config
        .lines()
        .find_map(|l| l.strip_prefix("origin = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    NoteSigner::new(&origin, Box::new(key)).unwrap()
}

/// Re-signs a DSSE envelope (a JSON value) with a fresh key no policy trusts.
pub(crate) fn resign(envelope: &Value) -> Value {
    use base64::Engine as _;
    let key = custody_crypto::PrivateKey::generate(custody_crypto::Algorithm::Ed25519);
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let signed = custody_crypto::dsse::sign(
        &key,
        envelope["payloadType"].as_str().unwrap(),
        &payload,
        custody_crypto::dsse::KeyIdHint::KeyId,
    )
    .unwrap();
    serde_json::to_value(signed).unwrap()
}

/// The digest custody records of an envelope (SHA-256 of its compact JSON).
pub(crate) fn envelope_digest(envelope: &Value) -> String {
    let e: custody_crypto::dsse::Envelope = serde_json::from_value(envelope.clone()).unwrap();
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(e.to_json().as_bytes()))
    )
}
