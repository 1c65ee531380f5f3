//! DSSE verification speed on one core, per envelope (parse + base64 + PAE + signature).
//! The CLI's batch mode (`custody dsse verify --jsonl`) adds parallelism across cores;
//! `bench/dsse-vs-securesystemslib.sh` compares it with the Python reference.
//!
//! Run: `cargo bench -p custody-crypto --bench dsse`

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use custody_crypto::{Algorithm, PrivateKey, Signer};
use std::hint::black_box;

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("dsse_verify");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        let key = PrivateKey::generate(alg);
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"app","digest":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"x"}}}"#;
        let json = dsse::sign(
            &key,
            "application/vnd.in-toto+json",
            payload,
            KeyIdHint::KeyId,
        )
        .unwrap()
        .to_json();
        let trusted = [key.public_key().clone()];
        g.bench_function(alg.name(), |b| {
            b.iter(|| {
                let env = Envelope::from_json(json.as_bytes()).unwrap();
                black_box(dsse::verify(&env, &trusted, 1).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
