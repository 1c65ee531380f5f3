//! Builders' `source_repos` match normalised URLs, segment by segment: no dot segments,
//! encoded dots or slashes, empty segments, backslashes, userinfo or look-alike hosts get
//! past a pattern.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::{Builder, Gate, Status, compile, evaluate};
use fixture::{bundle, keys, passing_facts};
use proptest::prelude::*;
use std::sync::LazyLock;

const BUILDER: &str = "https://ci.example/builder/v1";

fn builder_with(patterns: &[&str]) -> Builder {
    let list = patterns
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "version = 1\n[[builder]]\nid = \"{BUILDER}\"\nkey = \"keys/builder.pub\"\nsource_repos = [{list}]\n[[environment]]\nname = \"a\"\n"
    );
    let policy = compile(&bundle(&text, &keys())).unwrap_or_else(|e| panic!("{text}\n{e}"));
    policy.builders()[0].clone()
}

const ACME: &str = "https://git.example.com/acme/*";

#[test]
fn the_reviewers_bypasses_are_refused() {
    let b = builder_with(&[ACME]);
    assert!(b.may_build("https://git.example.com/acme/shop"));
    for repo in [
        "https://git.example.com/acme/../evil/backdoor",
        "https://git.example.com/acme/%2e%2e/evil/backdoor",
        "https://git.example.com/acme/%2E%2E/evil",
        "https://git.example.com/acme/shop/../../evil/x",
        "https://git.example.com/acme/./shop",
        "https://git.example.com/acme/.",
        "https://git.example.com/acme//shop",
        "https://git.example.com/acme/shop/",
        "https://git.example.com/acme/shop%2fx",
        "https://git.example.com/acme/shop%2Fx",
        "https://git.example.com/acme\\..\\evil",
        "https://git.example.com/acme/sh\top",
        "https://git.example.com/acme/shop?x=1",
        "https://git.example.com/acme/shop#frag",
        "https://git.example.com.evil.org/acme/shop",
        "https://git.example.com@evil.org/acme/shop",
        "https://user:pw@git.example.com/acme/shop",
        "https://git.example.com:444/acme/shop",
        "http://git.example.com/acme/shop",
        "https://git.example.co/acme/shop",
        "https://git.example.com/acme",
        "https://git.example.com/acme/shop/sub",
        "https://git.example.com/acmeX/shop",
        "git.example.com/acme/shop",
        "",
    ] {
        assert!(!b.may_build(repo), "{repo:?} passed {ACME}");
    }
}

#[test]
fn hosts_schemes_and_ports_are_compared_normalised() {
    let b = builder_with(&[ACME]);
    for repo in [
        "https://GIT.Example.COM/acme/shop",
        "HTTPS://git.example.com/acme/shop",
        "https://git.example.com:443/acme/shop",
        "https://git.example.com/acme/%73hop",
    ] {
        assert!(b.may_build(repo), "{repo:?}");
    }
    // Paths are case-sensitive, as git hosts' paths are.
    assert!(!b.may_build("https://git.example.com/ACME/shop"));
    let b = builder_with(&["https://git.example.com:8443/acme/shop"]);
    assert!(b.may_build("https://git.example.com:8443/acme/shop"));
    assert!(!b.may_build("https://git.example.com/acme/shop"));
}

#[test]
fn a_star_is_one_segment_and_a_trailing_double_star_any_depth() {
    let b = builder_with(&["https://git.example.com/acme/**"]);
    assert!(b.may_build("https://git.example.com/acme/shop"));
    assert!(b.may_build("https://git.example.com/acme/team/shop"));
    assert!(!b.may_build("https://git.example.com/acme"));
    assert!(!b.may_build("https://git.example.com/acme/team/../../evil"));
    let b = builder_with(&["https://git.example.com/*/shop"]);
    assert!(b.may_build("https://git.example.com/acme/shop"));
    assert!(!b.may_build("https://git.example.com/acme/cart"));
    let b = builder_with(&["https://git.example.com/acme/shop"]);
    assert!(b.may_build("https://git.example.com/acme/shop"));
    assert!(!b.may_build("https://git.example.com/acme/shop2"));
    assert!(!b.may_build("https://git.example.com/acme/shop/x"));
}

#[test]
fn a_pattern_reads_as_written() {
    let written = [
        ACME,
        "https://git.example.com:8443/acme/**",
        "https://git-mirror.example.com/acme/*",
    ];
    let b = builder_with(&written);
    assert_eq!(b.source_repos, written);
    // A parsed pattern shows as written, not as normalised for matching.
    let pattern = custody_policy::RepoPattern::parse("HTTPS://Git.Example.com:443/acme/*").unwrap();
    assert_eq!(pattern.to_string(), "HTTPS://Git.Example.com:443/acme/*");
}

#[test]
fn a_pattern_that_is_not_a_clean_url_is_refused_at_its_line() {
    for (pattern, needle) in [
        ("https://git.example.com/acme/sho*", "whole path segment"),
        (
            "https://git.example.com/**/shop",
            "only as the last segment",
        ),
        ("https://*.example.com/acme/*", "host"),
        ("https://git.example.com/acme/../*", "`..`"),
        ("https://git.example.com/acme/%2e%2e/*", "encoded"),
        ("https://git.example.com//acme/*", "empty"),
        ("https://me@git.example.com/acme/*", "userinfo"),
        ("https://git.example.com", "no path"),
        ("git.example.com/acme/*", "scheme"),
        ("https://git.example.com/acme/*?", "query"),
        // A host is non-empty labels of letters, digits and `-`.
        ("https:///acme/*", "non-empty labels"),
        ("https://git..example.com/acme/*", "non-empty labels"),
        ("https://git.example.com./acme/*", "non-empty labels"),
        ("https://git_hub.example.com/acme/*", "non-empty labels"),
        ("https://git.exa+mple.com/acme/*", "non-empty labels"),
    ] {
        let text = format!(
            "version = 1\n[[builder]]\nid = \"b\"\nkey = \"keys/builder.pub\"\nsource_repos = [\n  \"https://ok.example/x\",\n  {pattern:?},\n]\n[[environment]]\nname = \"a\"\n"
        );
        let err = compile(&bundle(&text, &keys())).expect_err(pattern);
        assert!(
            err.0
                .iter()
                .any(|e| e.line == 7 && e.message.contains(needle)),
            "{pattern}: no error at line 7 containing {needle:?}:\n{err}"
        );
    }
}

#[test]
fn the_provenance_gate_refuses_a_traversal_out_of_the_allowed_tree() {
    let k = keys();
    let policy = compile(&bundle(fixture::POLICY, &k)).unwrap();
    let mut f = passing_facts(&policy, &k, 1);
    f.release.artifacts[0]
        .provenance
        .as_mut()
        .unwrap()
        .source_repo = "https://git.example/acme/../evil/backdoor".into();
    let d = evaluate(&policy, &f);
    let g = d.gates.iter().find(|g| g.gate == Gate::Provenance).unwrap();
    assert_eq!(g.status, Status::Fail, "{g:?}");
    assert!(g.reason.contains("may not build service-0"), "{g:?}");
}

/// A path segment, clean or crafted.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,6}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => prop::sample::select(vec!["%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2e."])
            .prop_map(str::to_owned),
        1 => prop::sample::select(vec!["a%2fb", "a%2Fb", "a%5cb", "a\\b", "a%00", "%252e%252e"])
            .prop_map(str::to_owned),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "git.example.com",
        "GIT.EXAMPLE.COM",
        "git.example.com:443",
        "git.example.com.evil.org",
        "git.example.com@evil.org",
        "evil.org@git.example.com",
        "git.example.com%2eevil.org",
        "git-example.com",
        "git.example.com.",
        "xgit.example.com",
        "git.example.com:443@evil.org",
    ])
    .prop_map(str::to_owned)
}

static ONE: LazyLock<Builder> = LazyLock::new(|| builder_with(&[ACME]));
static ANY: LazyLock<Builder> =
    LazyLock::new(|| builder_with(&["https://git.example.com/acme/**"]));

fn clean(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

proptest! {
    /// Whatever the path and host, a URL passes `acme/*` only when it is the honest
    /// spelling of one repository directly under acme on that very host, and `acme/**`
    /// only when every segment under acme is a plain name.
    #[test]
    fn nothing_crafted_gets_past_a_pattern(host in host(), path in prop::collection::vec(segment(), 0..6)) {
        let url = format!("https://{host}/acme/{}", path.join("/"));
        let honest_host = matches!(host.as_str(), "git.example.com" | "GIT.EXAMPLE.COM" | "git.example.com:443");
        prop_assert_eq!(
            ONE.may_build(&url),
            honest_host && path.len() == 1 && clean(&path[0]),
            "{}", url
        );
        prop_assert_eq!(
            ANY.may_build(&url),
            honest_host && !path.is_empty() && path.iter().all(|s| clean(s)),
            "{}", url
        );
    }
}
