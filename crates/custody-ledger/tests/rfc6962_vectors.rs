//! Every probe of the transparency-dev/merkle RFC 6962 test data, one test per file.
//!
//! A probe gives a proof and says whether it must verify; a flipped bit, a truncated or
//! padded proof, a wrong size or index, a swapped root: each must be rejected.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use custody_ledger::{verify_consistency, verify_inclusion};
use libtest_mimic::{Arguments, Failed, Trial};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProbe {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("test data is valid base64")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("testdata directory") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn check(path: &Path, kind: &str) -> Result<(), Failed> {
    let text = fs::read_to_string(path)?;
    let (result, want_err) = if kind == "inclusion" {
        let p: InclusionProbe = serde_json::from_str(&text)?;
        let proof: Vec<Vec<u8>> = p.proof.unwrap_or_default().iter().map(|s| b64(s)).collect();
        let r = verify_inclusion(
            &b64(&p.leaf_hash),
            p.leaf_idx,
            p.tree_size,
            &proof,
            &b64(&p.root),
        );
        (r, p.want_err)
    } else {
        let p: ConsistencyProbe = serde_json::from_str(&text)?;
        let proof: Vec<Vec<u8>> = p.proof.unwrap_or_default().iter().map(|s| b64(s)).collect();
        let r = verify_consistency(p.size1, p.size2, &proof, &b64(&p.root1), &b64(&p.root2));
        (r, p.want_err)
    };
    match (result, want_err) {
        (Ok(()), false) | (Err(_), true) => Ok(()),
        (Ok(()), true) => Err("accepted a probe that must be rejected".into()),
        (Err(e), false) => Err(format!("rejected a valid probe: {e}").into()),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rfc6962");
    let mut trials = Vec::new();
    for kind in ["inclusion", "consistency"] {
        let mut paths = Vec::new();
        files(&root.join(kind), &mut paths);
        paths.sort();
        for path in paths {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            trials.push(Trial::test(name, move || check(&path, kind)));
        }
    }
    assert_eq!(trials.len(), 196, "the vector set has 196 probes");
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
