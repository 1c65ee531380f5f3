//! The store against a model: random rounds of appends (preconditions that hold or fail,
//! idempotency keys reused with the same or another fingerprint, several events each),
//! submitted together so that they share group commits, must give exactly the results a
//! one-at-a-time reading of the contract gives, and leave exactly the model's log and state.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::HashMap;

use common::{Backend, event, json, log_key_from_seed, now, random_seed, recompute};
use custody_store::{Append, Expect, IdempotencyKey, SqlStore, StateWrite, Store, StoreError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Op {
    events: u64,
    /// (key number, expectation: 0 any, 1 absent, 2 + v version v)
    writes: Vec<(u8, u8)>,
    /// (key number, fingerprint byte)
    idempotency: Option<(u8, u8)>,
}

fn op() -> impl Strategy<Value = Op> {
    (
        1..4u64,
        proptest::collection::vec((0..4u8, 0..5u8), 0..3),
        proptest::option::of((0..3u8, 0..2u8)),
    )
        .prop_map(|(events, writes, idempotency)| Op {
            events,
            writes,
            idempotency,
        })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Appended {
        first: u64,
        count: u64,
        replayed: bool,
    },
    Conflict,
    IdempotencyConflict,
}

#[derive(Default)]
struct Model {
    size: u64,
    versions: HashMap<u8, u64>,
    keys: HashMap<u8, (u8, u64, u64)>,
}

impl Model {
    fn apply(&mut self, op: &Op) -> Outcome {
        if let Some((k, f)) = op.idempotency {
            if let Some((fingerprint, first, count)) = self.keys.get(&k) {
                return if *fingerprint == f {
                    Outcome::Appended {
                        first: *first,
                        count: *count,
                        replayed: true,
                    }
                } else {
                    Outcome::IdempotencyConflict
                };
            }
        }
        let mut staged = self.versions.clone();
        for (key, expect) in &op.writes {
            let current = staged.get(key).copied();
            let holds = match expect {
                0 => true,
                1 => current.is_none(),
                v => current == Some(u64::from(*v) - 2),
            };
            if !holds {
                return Outcome::Conflict;
            }
            staged.insert(*key, current.unwrap_or(0) + 1);
        }
        self.versions = staged;
        let first = self.size;
        self.size += op.events;
        if let Some((k, f)) = op.idempotency {
            self.keys.insert(k, (f, first, op.events));
        }
        Outcome::Appended {
            first,
            count: op.events,
            replayed: false,
        }
    }
}

fn to_append(op: &Op, round: usize, i: usize) -> Append {
    Append {
        events: (0..op.events)
            .map(|e| event(round as u64 * 100 + i as u64, e))
            .collect(),
        state: op
            .writes
            .iter()
            .map(|(key, expect)| StateWrite {
                kind: "model".into(),
                key: format!("k{key}"),
                value: json(serde_json::json!({"round": round, "op": i})),
                expect: match expect {
                    0 => Expect::Any,
                    1 => Expect::Absent,
                    v => Expect::Version(u64::from(*v) - 2),
                },
            })
            .collect(),
        idempotency: op.idempotency.map(|(k, f)| IdempotencyKey {
            key: format!("idem-{k}"),
            fingerprint: [f; 32],
        }),
    }
}

async fn run(rounds: Vec<Vec<Op>>) {
    let db = Backend::Sqlite.fresh().await;
    let store = SqlStore::create(&db.location, log_key_from_seed(random_seed()), now())
        .await
        .unwrap();
    let mut model = Model::default();
    for (r, round) in rounds.iter().enumerate() {
        // Polled in order, so enqueued in order: the committer sees the model's order,
        // and takes as many of them per batch as are waiting.
        let appends = round
            .iter()
            .enumerate()
            .map(|(i, op)| store.append(to_append(op, r, i)));
        let results = futures_util::future::join_all(appends).await;
        for (op, result) in round.iter().zip(results) {
            let expected = model.apply(op);
            let got = match result {
                Ok(a) => {
                    assert!(a.tree_size >= a.first_index + a.count);
                    Outcome::Appended {
                        first: a.first_index,
                        count: a.count,
                        replayed: a.replayed,
                    }
                }
                Err(StoreError::Conflict { .. }) => Outcome::Conflict,
                Err(StoreError::IdempotencyConflict(_)) => Outcome::IdempotencyConflict,
                Err(e) => panic!("unexpected error {e}"),
            };
            assert_eq!(got, expected, "{op:?}");
        }
    }
    let cp = store.checkpoint().await.unwrap();
    assert_eq!(cp.size, model.size);
    let (tree, _) = recompute(&store).await;
    assert_eq!(tree.root(cp.size).unwrap(), cp.root);
    for key in 0..4u8 {
        let got = store
            .state("model", &format!("k{key}"))
            .await
            .unwrap()
            .map(|r| r.version);
        assert_eq!(got, model.versions.get(&key).copied(), "state k{key}");
    }
    store.check(|_| {}).await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn batched_appends_match_the_one_at_a_time_model(
        rounds in proptest::collection::vec(proptest::collection::vec(op(), 1..10), 1..5)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(rounds));
    }
}
