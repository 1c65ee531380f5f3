//! Signing speed: file keys against the same algorithms in a SoftHSM2 token (PKCS#11), in
//! the same run, one signature per iteration over a DSSE PAE of a typical statement.
//!
//! The token half needs SoftHSM2 (scripts/test.sh installs it). Like the PKCS#11 tests, the
//! bench re-executes itself with `SOFTHSM2_CONF` pointing at a fresh token directory (see
//! tests/softhsm/mod.rs).
//!
//! Run: `cargo bench -p custody-crypto --bench signing`

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark harness"
)]

#[path = "../tests/softhsm/mod.rs"]
mod softhsm;

use criterion::{Criterion, Throughput};
use custody_crypto::{Algorithm, PrivateKey, Signer, dsse, pkcs11};
use std::hint::black_box;

fn sign(c: &mut Criterion) {
    let message = dsse::pae(
        "application/vnd.in-toto+json",
        br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"x"}}}"#,
    );
    let config = softhsm::init_token("bench", "unused");
    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        let file = PrivateKey::generate(algorithm);
        let token = pkcs11::generate_key_pair(
            &pkcs11::Pkcs11Config {
                key_label: algorithm.name().into(),
                ..config.clone()
            },
            algorithm,
        )
        .unwrap();
        g.bench_function(format!("file/{algorithm}"), |b| {
            b.iter(|| black_box(file.sign(&message).unwrap()))
        });
        g.bench_function(format!("softhsm/{algorithm}"), |b| {
            b.iter(|| black_box(token.sign(&message).unwrap()))
        });
    }
    g.finish();
}

fn main() {
    if std::env::var_os(softhsm::CHILD_CASE).is_none() {
        let status = softhsm::rerun_in_child_inheriting("bench");
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut c = Criterion::default().configure_from_args();
    sign(&mut c);
    c.final_summary();
}
