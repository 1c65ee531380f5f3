use custody_crypto::note::{self, NoteSigner};
use custody_crypto::{Algorithm, PrivateKey};

use super::*;
use crate::{MemoryTree, prove_inclusion};

const ORIGIN: &str = "custody.example/log";

fn key() -> NoteSigner {
    NoteSigner::new(ORIGIN, Box::new(PrivateKey::generate(Algorithm::Ed25519))).unwrap()
}

/// A log of `before` plain leaves, then the hand-over event from `old` to `new` (as
/// `rotation` makes it), then `after` plain leaves.
struct Log {
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
}

impl Log {
    fn new(before: usize) -> Log {
        let mut log = Log {
            tree: MemoryTree::new(),
            leaves: Vec::new(),
        };
        for i in 0..before {
            log.push(format!(r#"{{"type":"release.created","n":{i}}}"#).into_bytes());
        }
        log
    }

    fn push(&mut self, leaf: Vec<u8>) {
        self.tree.append(leaf_hash(&leaf));
        self.leaves.push(leaf);
    }

    fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size: self.size(),
            root: self.tree.root(self.size()).unwrap(),
            extensions: vec![],
        }
    }

    fn proof_of_last(&self) -> Vec<Hash> {
        prove_inclusion(&self.tree, self.size() - 1, self.size()).unwrap()
    }

    /// Appends the hand-over from `old` to `new`: the checkpoint both sign, the event and
    /// its inclusion proof.
    fn hand_over(&mut self, old: &NoteSigner, new: &NoteSigner) -> (String, Vec<u8>, Vec<Hash>) {
        let rotation = LogKeyRotation::new(old.verifier(), new.verifier(), self.size() + 1);
        self.push(rotation_leaf(&rotation));
        (
            self.checkpoint().sign_handover(old, new).unwrap(),
            self.leaves[self.leaves.len() - 1].clone(),
            self.proof_of_last(),
        )
    }
}

fn rotation_leaf(rotation: &LogKeyRotation) -> Vec<u8> {
    let mut fields = serde_json::to_value(rotation).unwrap();
    fields["type"] = LOG_KEY_ROTATED.into();
    fields["at"] = "2026-01-01T00:00:00Z".into();
    fields["actor"] = "local:ops".into();
    serde_json::to_vec(&fields).unwrap()
}

/// What a monitor trusting `old` says following a log of two plain leaves and then
/// `rotation`, whose checkpoint `old` and `new` both sign: it must refuse; its keys after.
fn refused_hand_over(
    old: &NoteSigner,
    new: &NoteSigner,
    rotation: &LogKeyRotation,
) -> (LogKeys, String) {
    let mut log = Log::new(2);
    log.push(rotation_leaf(rotation));
    let note = log.checkpoint().sign_handover(old, new).unwrap();
    let mut keys = LogKeys::new(old.verifier().clone());
    let err = keys
        .follow(&note, &log.leaves[2], &log.proof_of_last())
        .unwrap_err()
        .to_string();
    (keys, err)
}

#[test]
fn a_monitor_follows_a_hand_over_and_refuses_the_wrong_signers() {
    let (old, new) = (key(), key());
    let mut log = Log::new(3);
    let before = log.checkpoint().sign(&old).unwrap();
    let forged_before = log.checkpoint().sign(&new).unwrap();
    let rotation = LogKeyRotation::new(old.verifier(), new.verifier(), 4);
    log.push(rotation_leaf(&rotation));
    let handover = log.checkpoint().sign_handover(&old, &new).unwrap();
    let proof = log.proof_of_last();
    log.push(b"{\"type\":\"release.created\"}".to_vec());
    let after = log.checkpoint().sign(&new).unwrap();
    let stale_after = log.checkpoint().sign(&old).unwrap();

    let mut keys = LogKeys::new(old.verifier().clone());
    assert!(keys.open(&after).is_err(), "the new key is unknown yet");
    let cp = keys.follow(&handover, &log.leaves[3], &proof).unwrap();
    assert_eq!(cp.size, 4);
    assert_eq!(keys.current(), new.verifier());
    assert_eq!(keys.handovers().collect::<Vec<_>>(), [4]);
    assert_eq!(keys.retirement(old.verifier()), Some((4, new.verifier())));
    assert_eq!(keys.retirement(new.verifier()), None, "the current key");
    assert_eq!(keys.retirement(key().verifier()), None, "another log's key");

    assert_eq!(keys.open(&before).unwrap().size, 3);
    assert_eq!(keys.open(&handover).unwrap().size, 4);
    assert_eq!(keys.open(&after).unwrap().size, 5);
    let err = keys.open(&forged_before).unwrap_err().to_string();
    assert!(err.contains("must be signed by log key"), "{err}");
    let err = keys.open(&stale_after).unwrap_err().to_string();
    assert!(err.contains("in force after the hand-over at 4"), "{err}");
    // A hand-over checkpoint carrying only one of its two signatures is refused.
    for one in [&old, &new] {
        let single = log_at(&log, 4).sign(one).unwrap();
        assert!(keys.open(&single).is_err());
    }
}

fn log_at(log: &Log, size: u64) -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: log.tree.root(size).unwrap(),
        extensions: vec![],
    }
}

#[test]
fn a_hand_over_not_signed_by_both_keys_or_not_naming_them_is_refused() {
    let (old, new, other) = (key(), key(), key());
    let mut log = Log::new(2);
    let rotation = LogKeyRotation::new(old.verifier(), new.verifier(), 3);
    log.push(rotation_leaf(&rotation));
    let leaf = log.leaves[2].clone();
    let proof = log.proof_of_last();
    let cp = log.checkpoint();

    let follow = |note: &str, leaf: &[u8], proof: &[Hash]| {
        let mut keys = LogKeys::new(old.verifier().clone());
        let result = keys.follow(note, leaf, proof).map(|_| ());
        if result.is_err() {
            assert_eq!(
                keys.current(),
                old.verifier(),
                "nothing changes on an error"
            );
        }
        result.map_err(|e| e.to_string())
    };
    let good = cp.sign_handover(&old, &new).unwrap();
    follow(&good, &leaf, &proof).unwrap();

    // Signed by the new key only (not by the key the monitor trusts).
    let err = follow(&cp.sign(&new).unwrap(), &leaf, &proof).unwrap_err();
    assert!(err.contains("not signed by the log key"), "{err}");
    // Signed by the old key only (the successor never signed).
    let err = follow(&cp.sign(&old).unwrap(), &leaf, &proof).unwrap_err();
    assert!(err.contains("not signed by the new log key"), "{err}");
    // Old and a third key: the event names another successor.
    let err = follow(&cp.sign_handover(&old, &other).unwrap(), &leaf, &proof).unwrap_err();
    assert!(err.contains("not signed by the new log key"), "{err}");
    // A leaf that is not under the checkpoint, or not a hand-over at all.
    let mut forged = rotation.clone();
    forged.new_key = other.verifier().to_text();
    forged.new_key_hash = format!("{:08x}", other.verifier().key_hash());
    forged.new_key_id = other.verifier().public_key().key_id().to_string();
    let err = follow(&good, &rotation_leaf(&forged), &proof).unwrap_err();
    assert!(err.contains("not the last leaf"), "{err}");
    let err = follow(&good, &log.leaves[0], &proof).unwrap_err();
    assert!(err.contains("not a log.key_rotated event"), "{err}");
    let err = follow(&good, &leaf, &proof[1..]).unwrap_err();
    assert!(err.contains("not the last leaf"), "{err}");
}

#[test]
fn a_hand_over_event_must_name_the_trusted_key_and_its_own_size() {
    let (old, new, other) = (key(), key(), key());
    for (rotation, why) in [
        (
            LogKeyRotation::new(other.verifier(), new.verifier(), 3),
            "hands over",
        ),
        (
            LogKeyRotation::new(old.verifier(), new.verifier(), 7),
            "names the hand-over at 7",
        ),
        (
            LogKeyRotation {
                new_key_hash: "00000000".into(),
                ..LogKeyRotation::new(old.verifier(), new.verifier(), 3)
            },
            "recorded hash",
        ),
    ] {
        let (_, err) = refused_hand_over(&old, &new, &rotation);
        assert!(err.contains(why), "{why}: {err}");
    }
}

#[test]
fn rotation_events_read_back_and_reject_unknown_fields() {
    let (old, new) = (key(), key());
    let rotation = LogKeyRotation::new(old.verifier(), new.verifier(), 9);
    let leaf = rotation_leaf(&rotation);
    assert_eq!(LogKeyRotation::from_leaf(&leaf).unwrap().unwrap(), rotation);
    assert!(LogKeyRotation::from_leaf(b"{\"type\":\"release.created\"}").is_none());
    assert!(LogKeyRotation::from_leaf(b"not json").is_none());
    let mut extra: serde_json::Value = serde_json::from_slice(&leaf).unwrap();
    extra["new_key_valid_until"] = "never".into();
    let extra = serde_json::to_vec(&extra).unwrap();
    assert!(LogKeyRotation::from_leaf(&extra).unwrap().is_err());
    // The two signatures are ordinary C2SP signature lines under one origin.
    let note = log_note(&old, &new);
    let opened = note::open(&note, std::slice::from_ref(new.verifier())).unwrap();
    assert_eq!(opened.unknown_signatures(), 1);
}

fn log_note(old: &NoteSigner, new: &NoteSigner) -> String {
    Log::new(1).checkpoint().sign_handover(old, new).unwrap()
}

#[test]
fn a_verifier_trusting_the_new_key_follows_the_hand_over_back() {
    let (old, new) = (key(), key());
    let mut log = Log::new(3);
    let before = log.checkpoint().sign(&old).unwrap();
    let rotation = LogKeyRotation::new(old.verifier(), new.verifier(), 4);
    log.push(rotation_leaf(&rotation));
    let handover = log.checkpoint().sign_handover(&old, &new).unwrap();
    let (leaf, proof) = (log.leaves[3].clone(), log.proof_of_last());
    log.push(b"{\"type\":\"release.created\"}".to_vec());
    let after = log.checkpoint().sign(&new).unwrap();

    let mut keys = LogKeys::new(new.verifier().clone());
    assert!(keys.open(&before).is_err(), "the old key is unknown yet");
    assert_eq!(keys.follow_back(&handover, &leaf, &proof).unwrap().size, 4);
    assert_eq!(keys.first(), old.verifier());
    assert_eq!(keys.current(), new.verifier());
    assert_eq!(keys.retirement(old.verifier()), Some((4, new.verifier())));
    assert_eq!(keys.open(&before).unwrap().size, 3);
    assert_eq!(keys.open(&after).unwrap().size, 5);
    // Forward and backward follow the same hand-over to the same history.
    let mut forward = LogKeys::new(old.verifier().clone());
    forward.follow(&handover, &leaf, &proof).unwrap();
    assert_eq!(forward, keys);

    // The trusted key must be the successor the event names, and the retiring key must
    // have signed too; nothing changes on an error.
    let refuse = |trusted: &NoteSigner, note: &str| {
        let mut keys = LogKeys::new(trusted.verifier().clone());
        let err = keys
            .follow_back(note, &leaf, &proof)
            .unwrap_err()
            .to_string();
        assert_eq!(keys.first(), trusted.verifier());
        assert_eq!(keys.handovers().count(), 0);
        err
    };
    let err = refuse(&old, &handover);
    assert!(err.contains("not the log key"), "{err}");
    let new_only = log_at(&log, 4).sign(&new).unwrap();
    let err = refuse(&new, &new_only);
    assert!(err.contains("not signed by the retiring log key"), "{err}");
    let err = refuse(&key(), &handover);
    assert!(err.contains("not signed by the log key"), "{err}");
    // A hand-over already followed cannot be followed back again.
    let err = keys
        .follow_back(&handover, &leaf, &proof)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot precede the one at 4"), "{err}");
}

#[test]
fn a_hand_over_names_the_trusted_key_by_its_id_too() {
    let (old, new, other) = (key(), key(), key());
    // The retiring key's text is right, its recorded id another key's.
    let rotation = LogKeyRotation {
        old_key_id: other.verifier().public_key().key_id().to_string(),
        ..LogKeyRotation::new(old.verifier(), new.verifier(), 3)
    };
    let (keys, err) = refused_hand_over(&old, &new, &rotation);
    assert!(err.contains("hands over"), "{err}");
    assert_eq!(keys.keys().count(), 1, "nothing changes on an error");
}

/// A log handed over from `first` to `second` at 3 entries, then from `second` to `third`
/// at 5: the hand-over notes (each signed by both its keys), leaves and proofs.
fn two_hand_overs(
    first: &NoteSigner,
    second: &NoteSigner,
    third: &NoteSigner,
) -> [(String, Vec<u8>, Vec<Hash>); 2] {
    let mut log = Log::new(2);
    let one = log.hand_over(first, second);
    log.push(b"{\"type\":\"release.created\"}".to_vec());
    let two = log.hand_over(second, third);
    [one, two]
}

#[test]
fn a_hand_over_never_returns_to_a_key_of_the_history() {
    let (a, b, c) = (key(), key(), key());
    // A → B → C: every key listed in the order it signed, each known.
    let mut keys = LogKeys::new(a.verifier().clone());
    for (note, leaf, proof) in two_hand_overs(&a, &b, &c) {
        keys.follow(&note, &leaf, &proof).unwrap();
    }
    let listed: Vec<_> = keys.keys().cloned().collect();
    assert_eq!(
        listed,
        [a.verifier(), b.verifier(), c.verifier()].map(Clone::clone)
    );
    assert!(keys.contains(a.verifier()) && keys.contains(c.verifier()));
    assert!(!keys.contains(key().verifier()));
    // A → B → A: the retired key, though it signs under the same origin, is refused.
    let [(note, leaf, proof), back] = two_hand_overs(&a, &b, &a);
    let mut keys = LogKeys::new(a.verifier().clone());
    keys.follow(&note, &leaf, &proof).unwrap();
    let err = keys
        .follow(&back.0, &back.1, &back.2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must be a fresh key"), "{err}");
    assert_eq!(keys.current(), b.verifier());
}

#[test]
fn a_successor_under_another_origin_is_refused() {
    let old = key();
    let stranger = NoteSigner::new(
        "elsewhere.example/log",
        Box::new(PrivateKey::generate(Algorithm::Ed25519)),
    )
    .unwrap();
    let mut log = Log::new(2);
    log.push(rotation_leaf(&LogKeyRotation::new(
        old.verifier(),
        stranger.verifier(),
        3,
    )));
    let note = log.checkpoint().sign(&old).unwrap();
    let mut keys = LogKeys::new(old.verifier().clone());
    let err = keys
        .follow(&note, &log.leaves[2], &log.proof_of_last())
        .unwrap_err()
        .to_string();
    assert!(err.contains("same origin"), "{err}");
}
