//! Every duration a policy accepts is bounded when it is compiled, so no arithmetic on it
//! can wrap; evaluation never panics or wraps on extreme recorded times either.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::{Gate, Span, Status, compile, evaluate};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts, refused_at};

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn a_soak_too_long_to_represent_is_refused_not_wrapped() {
    // 9999999999999999999 s fits a u64 but not an i64: cast, it went negative and the
    // soak was over before it began.
    let text = POLICY.replace("soak = \"24h\"", "soak = \"9999999999999999999s\"");
    refused_at(&text, line_of(&text, "soak ="), "longer than");
}

#[test]
fn every_duration_field_is_bounded_at_its_line() {
    for (from, to) in [
        ("soak = \"24h\"", "soak = \"3651d\""),
        (
            "evidence_max_age = \"30d\"",
            "evidence_max_age = \"99999999999d\"",
        ),
        ("expires = \"24h\"", "expires = \"87601h\""),
        ("expires = \"72h\"", "expires = \"5256001m\""),
    ] {
        let text = POLICY.replace(from, to);
        assert_ne!(text, POLICY, "{from}");
        refused_at(&text, line_of(&text, to), "longer than");
    }
    // A multiplication that overflows is the same mistake, said the same way.
    let text = POLICY.replace("soak = \"24h\"", "soak = \"18446744073709551615d\"");
    refused_at(&text, line_of(&text, "soak ="), "longer than");
}

#[test]
fn the_longest_span_is_ten_years_and_it_holds() {
    assert_eq!(Span::MAX.seconds(), 3650 * 86_400);
    assert_eq!(Span::parse("3650d"), Ok(Span::MAX));
    assert!(Span::parse("3651d").is_err());
    assert!(Span::parse("315360001s").is_err());
    // At the bound, a soak still holds the promotion (it never certifies at once).
    let k = keys();
    let policy = compile(&bundle(
        &POLICY.replace("soak = \"24h\"", "soak = \"3650d\""),
        &k,
    ))
    .unwrap();
    let d = evaluate(&policy, &passing_facts(&policy, &k, 1));
    let g = d
        .gates
        .iter()
        .find(|g| g.gate == Gate::PreviousEnvironment)
        .unwrap();
    assert_eq!(g.status, Status::Waiting, "{g:?}");
}

#[test]
fn a_freeze_window_longer_than_ten_years_is_refused() {
    let text = POLICY.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nfreeze = [{ from = \"2026-01-01T00:00:00Z\", until = \"2046-01-01T00:00:00Z\", reason = \"forever\" }]",
    );
    refused_at(&text, line_of(&text, "freeze ="), "longer than");
}

#[test]
fn extreme_recorded_times_neither_panic_nor_wrap() {
    let (policy, k) = fixture::policy();
    let base = passing_facts(&policy, &k, 1);
    for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
        let mut f = base.clone();
        f.release.artifacts[0].evidence[0].at = t;
        f.approvals[0].at = t;
        f.approvals[0].expires_at = t;
        if let Some(p) = f.previous.as_mut() {
            p.certified_at = Some(t);
        }
        let d = evaluate(&policy, &f);
        assert!(!d.allowed, "{t}: {d:#?}");
        let mut f = base.clone();
        f.now = t;
        let _ = evaluate(&policy, &f);
    }
    // Evidence from the far past is stale, whatever the subtraction would have said.
    let mut f = base.clone();
    f.release.artifacts[0].evidence[0].at = i64::MIN;
    let d = evaluate(&policy, &f);
    let g = d.gates.iter().find(|g| g.gate == Gate::Evidence).unwrap();
    assert_eq!(g.status, Status::Fail, "{g:?}");
    let _ = HOUR + NOW;
}

/// A freeze window of exactly the longest span is accepted; an empty one (ending as it
/// begins) is refused.
#[test]
fn a_freeze_window_is_at_most_ten_years_and_not_empty() {
    let freeze = |until: &str| {
        POLICY.replace(
            "evidence_max_age = \"30d\"",
            &format!(
                "evidence_max_age = \"30d\"\nfreeze = [{{ from = \"2026-01-01T00:00:00Z\", until = \"{until}\", reason = \"r\" }}]"
            ),
        )
    };
    // 3,650 days after 2026-01-01.
    let longest = compile(&bundle(&freeze("2035-12-30T00:00:00Z"), &keys())).unwrap();
    assert_ne!(
        longest.digest(),
        compile(&bundle(POLICY, &keys())).unwrap().digest()
    );
    let text = freeze("2035-12-30T00:00:01Z");
    refused_at(&text, line_of(&text, "freeze ="), "longer than");
    let text = freeze("2026-01-01T00:00:00Z");
    refused_at(&text, line_of(&text, "freeze ="), "`from` before `until`");
}
