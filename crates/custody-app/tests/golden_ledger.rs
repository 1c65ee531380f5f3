//! Every leaf of a ledger written before events were typed parses into an `Event` and
//! encodes back to the identical RFC 8785 bytes (see testdata/ledger-0.1/README.md).

use std::collections::BTreeSet;

use custody_app::events::{Event, EventBody, KINDS};

const LEAVES: &str = include_str!("../testdata/ledger-0.1/leaves.jsonl");

#[test]
fn every_leaf_of_an_old_ledger_reads_as_its_kind_and_encodes_to_the_same_bytes() {
    let mut kinds = BTreeSet::new();
    for (i, leaf) in LEAVES.lines().enumerate() {
        let event = Event::from_leaf(leaf.as_bytes())
            .unwrap_or_else(|e| panic!("leaf {i} does not read: {e}\n{leaf}"));
        assert!(
            !matches!(event.body, EventBody::Unknown(_)),
            "leaf {i} is of a kind this version should know: {leaf}"
        );
        let again = event.to_leaf().unwrap();
        assert_eq!(
            std::str::from_utf8(again.as_bytes()).unwrap(),
            leaf,
            "leaf {i} ({}) encodes differently",
            event.kind()
        );
        let header = custody_model::EventHeader::read(leaf.as_bytes()).unwrap();
        assert_eq!(header.kind, event.kind());
        assert_eq!(header.environment.as_deref(), event.environment());
        let artifacts: Vec<String> = event.artifacts().iter().map(ToString::to_string).collect();
        assert_eq!(
            header.artifacts, artifacts,
            "leaf {i}: the header and the variant agree"
        );
        kinds.insert(event.kind().to_owned());
    }
    // Kinds added since that ledger was written cannot be in it (their leaves are read
    // back in the tests of the features that write them).
    const ADDED_SINCE: &[&str] = &[
        "policy.proposed",
        "proposal.reviewed",
        "log.recovered",
        "key.rotated",
        "key.revoked",
        "log.key_rotated",
        "artifact.rebuilt",
        "exception.requested",
        "exception.reviewed",
        "exception.revoked",
    ];
    let known: BTreeSet<String> = KINDS
        .iter()
        .filter(|k| !ADDED_SINCE.contains(k))
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(
        kinds, known,
        "the old ledger holds every kind that version wrote, and the rest are new"
    );
}
