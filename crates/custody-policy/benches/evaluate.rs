//! Gate evaluation of a promotion with 10 artifacts, 5 evidence items each and 3 approvals
//! (the target: under 100 µs), with the facts' digest it records; and the same
//! release's standing, as the deploy gate asks it. Baseline in the same run: canonicalising
//! and hashing those facts alone.

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark")]

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../tests/fixture/mod.rs"]
mod fixture;

fn bench(c: &mut Criterion) {
    let (policy, keys) = fixture::policy();
    let facts = fixture::passing_facts(&policy, &keys, 10);
    assert!(custody_policy::evaluate(&policy, &facts).allowed);
    c.bench_function(
        "evaluate production promotion (10 artifacts, 5 evidence, 3 approvals)",
        |b| b.iter(|| custody_policy::evaluate(&policy, std::hint::black_box(&facts))),
    );
    assert!(custody_policy::evaluate_standing(&policy, &facts).allowed);
    c.bench_function(
        "evaluate_standing of the same release (10 artifacts)",
        |b| b.iter(|| custody_policy::evaluate_standing(&policy, std::hint::black_box(&facts))),
    );
    c.bench_function(
        "baseline: digest of the same facts (RFC 8785 + SHA-256)",
        |b| b.iter(|| custody_policy::facts_digest(std::hint::black_box(&facts))),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
