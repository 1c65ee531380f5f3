//! Merkle tree speed: appends per second in memory, and proof generation at 1,000,000
//! leaves. Targets (issue "Foundation"): ≥ 500,000 appends/s on one core; each proof
//! under 20 µs.
//!
//! Run: `cargo bench -p custody-ledger --bench merkle`

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use custody_ledger::{MemoryTree, leaf_hash, prove_consistency, prove_inclusion};
use std::hint::black_box;

const N: u64 = 1_000_000;

fn leaves(n: u64) -> Vec<[u8; 32]> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    // Appending a raw event includes hashing it as a leaf: a 200-byte event, like a
    // small canonical-JSON ledger entry.
    let events: Vec<Vec<u8>> = (0..100_000u32)
        .map(|i| format!("{{\"event\":{i},\"pad\":\"{}\"}}", "x".repeat(170)).into_bytes())
        .collect();
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(20);
    g.bench_function("100k_events_of_200_bytes", |b| {
        b.iter_batched(
            MemoryTree::new,
            |mut tree| {
                for e in &events {
                    tree.append(leaf_hash(e));
                }
                tree
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let mut tree = MemoryTree::new();
    for h in leaves(N) {
        tree.append(h);
    }
    let mut g = c.benchmark_group("proofs_at_1m");
    let mut i = 0u64;
    g.bench_function("inclusion", |b| {
        b.iter(|| {
            // Walk indexes across the tree so no single path is favoured.
            i = (i + 7_919) % N;
            black_box(prove_inclusion(&tree, i, N).unwrap())
        })
    });
    let mut s = 1u64;
    g.bench_function("consistency", |b| {
        b.iter(|| {
            s = (s + 7_919) % (N - 1) + 1;
            black_box(prove_consistency(&tree, s, N).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, append, proofs);
criterion_main!(benches);
