//! Naming rules hold for the whole name: no rule can close its own anchoring group.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::compile;
use fixture::{bundle, keys};

fn with_rule(rule: &str) -> String {
    format!(
        "version = 1\n[naming]\nartifact = '{rule}'\nrelease = '{rule}'\nsemver = false\n[[environment]]\nname = \"a\"\n"
    )
}

#[test]
fn a_rule_that_closes_its_anchoring_group_is_refused_at_its_line() {
    // Wrapped as ^(?:RULE)$, this became `^(?:shop-[a-z]+)` OR `(shop)$`: any name
    // starting with shop-x or ending in shop.
    for rule in ["^shop-[a-z]+)|(shop$", "shop)|(.*", "a)|(?:b", "(?x)shop#"] {
        let err = compile(&bundle(&with_rule(rule), &keys()))
            .expect_err(rule)
            .to_string();
        assert!(
            err.contains("custody.toml:3:") && err.contains("naming rule"),
            "{rule}: {err}"
        );
    }
}

#[test]
fn a_rule_matches_whole_names_only() {
    for (rule, good, bad) in [
        (
            "^[a-z]+$",
            &["shop"][..],
            &["shop-1", "Shop", "shop\n", ""][..],
        ),
        (
            "shop|cart",
            &["shop", "cart"],
            &["shopcart", "xshop", "cartx"],
        ),
        (
            "^shop$|^cart$",
            &["shop", "cart"],
            &["shop\ncart", "shopcart"],
        ),
        ("(?m)^shop$", &["shop"], &["shop\nevil", "evil\nshop"]),
        ("(?x) shop \\# ", &["shop#"], &["shop", "shop# x"]),
        // A literal dollar at the end is the rule's own, not an anchor to trim.
        ("price\\$", &["price$"], &["price", "price$$"]),
    ] {
        let policy =
            compile(&bundle(&with_rule(rule), &keys())).unwrap_or_else(|e| panic!("{rule}: {e}"));
        for name in good {
            assert!(policy.check_artifact_name(name).is_ok(), "{rule} {name:?}");
            assert!(policy.check_release(name, "x").is_ok(), "{rule} {name:?}");
        }
        for name in bad {
            assert!(policy.check_artifact_name(name).is_err(), "{rule} {name:?}");
            assert!(policy.check_release(name, "x").is_err(), "{rule} {name:?}");
        }
    }
}

#[test]
fn the_rule_shown_in_reasons_is_the_anchored_form_recorded_decisions_carry() {
    let policy = compile(&bundle(&with_rule("^[a-z0-9-]+$"), &keys())).unwrap();
    assert_eq!(
        policy.check_artifact_name("Bad").unwrap_err(),
        "artifact name \"Bad\" does not match the naming rule ^(?:[a-z0-9-]+)$"
    );
}
