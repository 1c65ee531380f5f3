//! The evidence rules' every field, each moving its way: tests and static analysis,
//! vulnerabilities, licences, rebuilds and standing.

use super::{Looser, POLICY, Stricter, texts, with};

#[test]
fn test_and_static_analysis_rules_move_their_way() {
    let tests = "[environment.tests]\nmin_tests = 10\n";
    texts(
        POLICY,
        &with(tests),
        Stricter,
        "production: test reports are now read",
        "production: test reports are no longer read",
    );
    texts(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 1\n"),
        Looser,
        "production: at least 1 test cases (was 10)",
        "production: at least 10 test cases (was 1)",
    );
    texts(
        &with(tests),
        &with("[environment.tests]\nmin_tests = 10\nallow_failures = true\n"),
        Looser,
        "production: failing tests are now allowed",
        "production: failing tests are no longer allowed",
    );
    let sarif = |limits: &str| with(&format!("[environment.static_analysis]\n{limits}\n"));
    texts(
        POLICY,
        &sarif("max_error = 0"),
        Stricter,
        "production: static analysis is now read",
        "production: static analysis is no longer read",
    );
    texts(
        &sarif("max_error = 0"),
        &sarif("max_error = 2"),
        Looser,
        "production: 2 error-level findings allowed (was 0)",
        "production: 0 error-level findings allowed (was 2)",
    );
    texts(
        &sarif("max_error = 0"),
        &sarif("max_error = 0\nmax_warning = 5"),
        Stricter,
        "production: 5 warning-level findings allowed (was any number)",
        "production: any number warning-level findings allowed (was 5)",
    );
    texts(
        &sarif("max_error = 0\nmax_note = 5"),
        &sarif("max_error = 0\nmax_note = 4"),
        Stricter,
        "production: 4 note-level findings allowed (was 5)",
        "production: 5 note-level findings allowed (was 4)",
    );
}

#[test]
fn vulnerability_rules_move_their_way() {
    let vulns = |rule: &str| with(&format!("[environment.vulnerabilities]\n{rule}\n"));
    let medium = vulns("max_severity = \"medium\"");
    // The default rule allows up to high.
    texts(
        POLICY,
        &medium,
        Stricter,
        "production: vulnerabilities up to medium allowed (was high)",
        "production: vulnerabilities up to high allowed (was medium)",
    );
    texts(
        &medium,
        &vulns("max_severity = \"critical\""),
        Looser,
        "production: vulnerabilities up to critical allowed (was medium)",
        "production: vulnerabilities up to medium allowed (was critical)",
    );
    texts(
        &medium,
        &vulns("max_severity = \"none\""),
        Stricter,
        "production: vulnerabilities up to none allowed (was medium)",
        "production: vulnerabilities up to medium allowed (was none)",
    );
    texts(
        POLICY,
        &vulns("fixable_only = false"),
        Stricter,
        "production: vulnerabilities without a fix now block",
        "production: vulnerabilities without a fix no longer block",
    );
    texts(
        POLICY,
        &vulns("unknown_as = \"low\""),
        Looser,
        "production: a vulnerability of unknown severity counts as low (was high)",
        "production: a vulnerability of unknown severity counts as high (was low)",
    );
    texts(
        POLICY,
        &vulns("max_age = \"24h\""),
        Stricter,
        "production: vulnerability scans up to 1d old (was any)",
        "production: vulnerability scans up to any old (was 1d)",
    );
    texts(
        &vulns("max_age = \"24h\""),
        &vulns("max_age = \"48h\""),
        Looser,
        "production: vulnerability scans up to 2d old (was 1d)",
        "production: vulnerability scans up to 1d old (was 2d)",
    );
}

#[test]
fn licence_rebuild_and_standing_rules_move_their_way() {
    let licences = |rule: &str| with(&format!("[environment.licences]\n{rule}\n"));
    let gpl = licences("deny = [\"GPL-3.0-only\"]");
    texts(
        POLICY,
        &gpl,
        Stricter,
        "production: licences are now checked",
        "production: licences are no longer checked",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\", \"AGPL-3.0-only\"]"),
        Stricter,
        "production: licence AGPL-3.0-only now denied",
        "production: licence AGPL-3.0-only no longer denied",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\"]\nallow = [\"MIT\"]"),
        Stricter,
        "production: only listed licences are allowed",
        "production: every licence not denied is allowed",
    );
    texts(
        &licences("allow = [\"MIT\"]"),
        &licences("allow = [\"MIT\", \"Apache-2.0\"]"),
        Looser,
        "production: licence Apache-2.0 now allowed",
        "production: licence Apache-2.0 no longer allowed",
    );
    texts(
        &gpl,
        &licences("deny = [\"GPL-3.0-only\"]\nallow_unknown = true"),
        Looser,
        "production: unknown or missing licences now pass",
        "production: unknown or missing licences no longer pass",
    );
    texts(
        POLICY,
        &with("reproducible = 2\n"),
        Stricter,
        "production: agreeing rebuilds required 2 (was none)",
        "production: agreeing rebuilds required none (was 2)",
    );
    texts(
        &with("reproducible = 2\n"),
        &with("reproducible = 3\n"),
        Stricter,
        "production: agreeing rebuilds required 3 (was 2)",
        "production: agreeing rebuilds required 2 (was 3)",
    );
    texts(
        POLICY,
        &with("standing = \"warn\"\n"),
        Looser,
        "production: when evidence rules fail after certification the deploy gate only warns",
        "production: when evidence rules fail after certification the deploy gate denies",
    );
}
