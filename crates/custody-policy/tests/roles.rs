//! Roles are a closed set; a grant may be scoped to an environment where that means
//! something, and may end; holding a role is a function of the time passed in.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;

use custody_policy::{Gate, Grant, Policy, Role, Status, compile, evaluate};
use fixture::{HOUR, NOW, POLICY, bundle, keys, passing_facts};

const UNTIL: &str = "2026-11-18T21:06:40Z"; // NOW + 10 hours

fn with_roles(extra: &str) -> String {
    POLICY.replace("[roles]\n", &format!("[roles]\n{extra}\n"))
}

fn compiled(extra: &str) -> Policy {
    compile(&bundle(&with_roles(extra), &keys())).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn refused(extra: &str, needle: &str) {
    let text = with_roles(extra);
    let err = compile(&bundle(&text, &keys())).expect_err(extra);
    // The first added line follows the fixture's [roles] header.
    let first = 2 + POLICY
        .lines()
        .position(|line| line == "[roles]")
        .expect("the fixture has a [roles] table");
    assert!(
        err.0.iter().any(|e| e.line >= first
            && e.line < first + extra.lines().count()
            && e.message.contains(needle)),
        "{extra}: no error on its lines containing {needle:?}:\n{err}"
    );
}

#[test]
fn the_set_of_roles_is_closed() {
    assert_eq!(
        Role::ALL.map(Role::name),
        [
            "admin", "builder", "signer", "approver", "security", "deployer", "auditor", "viewer"
        ]
    );
    for role in Role::ALL {
        assert_eq!(role.name().parse::<Role>(), Ok(role));
        assert_eq!(
            serde_json::to_string(&role).unwrap(),
            format!("{:?}", role.name())
        );
    }
    refused("ghosts = [\"eve\"]", "unknown role \"ghosts\"");
    refused("Approver = [\"eve\"]", "unknown role \"Approver\"");
    refused("\"sre\" = [\"olga\"]", "custody's roles are admin, builder");
    assert!("approver:production".parse::<Role>().is_err());
}

#[test]
fn scopes_mean_something_or_are_refused() {
    // Administration, building, signing and reading are not per environment.
    for key in [
        "admin:readonly",
        "builder:staging",
        "signer:production",
        "auditor:production",
        "viewer:staging",
    ] {
        refused(&format!("{key:?} = [\"eve\"]"), "cannot be scoped");
    }
    refused(
        "\"deployer:prod\" = [\"eve\"]",
        "not a declared environment",
    );
    refused("\"approver:\" = [\"eve\"]", "not a declared environment");
    refused(
        "\"approver:production:x\" = [\"eve\"]",
        "not a declared environment",
    );
    for role in [Role::Approver, Role::Deployer, Role::Security] {
        assert!(role.scopable());
        let policy = compiled(&format!("\"{role}:staging\" = [\"eve\"]"));
        assert!(policy.holds("eve", role, Some("staging"), NOW));
        assert!(!policy.holds("eve", role, Some("production"), NOW));
        assert!(
            !policy.holds("eve", role, None, NOW),
            "no scope outside its environment"
        );
    }
    // Approvals and break_glass name roles; grants are scoped, not rules.
    let text = POLICY.replace(
        "roles = [\"approver\", \"security\"]",
        "roles = [\"approver:production\", \"security\"]",
    );
    let err = compile(&bundle(&text, &keys())).unwrap_err().to_string();
    assert!(err.contains("scope its grants in [roles]"), "{err}");
}

#[test]
fn an_unscoped_grant_holds_everywhere_and_a_scoped_one_only_there() {
    let policy = compiled("\"deployer:staging\" = [\"argo-staging\"]\ndeployer = [\"argo\"]");
    for env in [Some("build"), Some("staging"), Some("production"), None] {
        assert!(policy.holds("argo", Role::Deployer, env, NOW), "{env:?}");
        assert_eq!(
            policy.holds("argo-staging", Role::Deployer, env, NOW),
            env == Some("staging"),
            "{env:?}"
        );
    }
    // Holding one role says nothing of another.
    assert!(!policy.holds("argo", Role::Approver, Some("staging"), NOW));
    assert!(!policy.holds("nobody", Role::Deployer, None, NOW));
    // The existing plain form still reads as unscoped, unending grants.
    assert!(policy.holds("alice", Role::Approver, Some("production"), i64::MAX));
}

#[test]
fn a_grant_ends_at_its_until() {
    let policy = compiled(&format!(
        "\"approver:production\" = [\"dave\", {{ principal = \"cleo\", until = \"{UNTIL}\" }}]\nviewer = [{{ principal = \"vic\", until = 2026-11-18T21:06:40Z }}]"
    ));
    let end = NOW + 10 * HOUR;
    assert!(policy.holds("cleo", Role::Approver, Some("production"), end - 1));
    assert!(!policy.holds("cleo", Role::Approver, Some("production"), end));
    assert!(!policy.holds("cleo", Role::Approver, Some("production"), i64::MAX));
    assert!(policy.holds("dave", Role::Approver, Some("production"), i64::MAX));
    // A TOML date-time reads the same as a quoted one.
    assert!(policy.holds("vic", Role::Viewer, None, end - 1));
    assert!(!policy.holds("vic", Role::Viewer, None, end));

    let live: Vec<&Grant> = policy.grants_of("cleo", end - 1).collect();
    assert_eq!(
        live,
        [&Grant {
            principal: "cleo".into(),
            role: Role::Approver,
            environment: Some("production".into()),
            until: Some(end),
        }]
    );
    assert_eq!(live[0].key(), "approver:production");
    assert_eq!(policy.grants_of("cleo", end).count(), 0);
    // The listing keeps ended grants (an access review shows them), sorted by principal.
    let all: Vec<(&str, String)> = policy
        .grants()
        .iter()
        .map(|g| (g.principal.as_str(), g.key()))
        .collect();
    assert!(
        all.contains(&("cleo", "approver:production".into())),
        "{all:?}"
    );
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
}

#[test]
fn mistakes_in_a_member_name_their_line() {
    refused(
        "auditor = [{ principal = \"cleo\", until = \"next week\" }]",
        "`until` of \"cleo\"",
    );
    refused(
        "auditor = [{ principal = \"cleo\", until = \"2027-01-31T00:00:00+01:00\" }]",
        "`until` of \"cleo\"",
    );
    refused("auditor = [{ who = \"cleo\" }]", "unknown key \"who\"");
    refused(
        "auditor = [{ until = \"2027-01-31T00:00:00Z\" }]",
        "names no principal",
    );
    refused("auditor = [42]", "a member of a role is a principal's name");
    refused("auditor = [\"\"]", "non-empty string");
    refused("auditor = [\" alice\"]", "without surrounding spaces");
    refused("viewer = [\"vic\", \"vic\"]", "listed twice");
    refused("viewer = []", "has no members");
}

#[test]
fn approvals_count_only_from_grants_that_hold_there_and_then() {
    let k = keys();
    // sam's security grant is for staging only; cleo's production grant has ended.
    let text = POLICY
        .replace("security = [\"sam\"]", "\"security:staging\" = [\"sam\"]\nsecurity = [\"sec\"]")
        .replace(
            "[roles]\n",
            &format!(
                "[roles]\n\"approver:production\" = [{{ principal = \"cleo\", until = \"{UNTIL}\" }}]\n"
            ),
        );
    let policy = compile(&bundle(&text, &k)).unwrap();
    let facts = passing_facts(&policy, &k, 1);
    let d = evaluate(&policy, &facts);
    let g = d.gates.iter().find(|g| g.gate == Gate::Approvals).unwrap();
    assert_eq!(g.status, Status::Waiting, "{g:?}");
    assert!(g.reason.contains("2 of 3 approvals"), "{g:?}");
    assert!(g.reason.contains("sam ("), "{g:?}");

    let mut f = facts.clone();
    f.approvals[2].by = "cleo".into();
    assert!(
        evaluate(&policy, &f).allowed,
        "cleo's grant holds before {UNTIL}"
    );
    f.now = NOW + 10 * HOUR;
    for a in &mut f.approvals {
        a.expires_at = f.now + HOUR;
    }
    let d = evaluate(&policy, &f);
    assert!(!d.allowed, "cleo's grant has ended: {d:#?}");
}

#[test]
fn break_glass_takes_the_role_in_that_environment() {
    let k = keys();
    let text =
        with_roles("\"deployer:production\" = [\"olga\"]\n\"deployer:staging\" = [\"stan\"]")
            .replace(
                "evidence_max_age = \"30d\"",
                "evidence_max_age = \"30d\"\nbreak_glass = [\"deployer\"]",
            );
    let policy = compile(&bundle(&text, &k)).unwrap();
    let mut f = passing_facts(&policy, &k, 1);
    f.approvals.clear();
    f.break_glass = Some("checkout is down".into());
    f.requested_by = "olga".into();
    assert!(evaluate(&policy, &f).allowed);
    f.requested_by = "stan".into();
    let d = evaluate(&policy, &f);
    let g = d.gates.iter().find(|g| g.gate == Gate::BreakGlass).unwrap();
    assert_eq!(g.status, Status::Fail, "{g:?}");
    assert!(
        g.reason.contains(
            "stan may not break glass into production: it takes one of the roles [\"deployer\"]"
        ),
        "{g:?}"
    );
    // A role nobody holds there cannot be a break-glass role there.
    let text = POLICY.replace(
        "evidence_max_age = \"30d\"",
        "evidence_max_age = \"30d\"\nbreak_glass = [\"deployer\"]",
    );
    let err = compile(&bundle(&text, &k)).unwrap_err().to_string();
    assert!(
        err.contains("role \"deployer\" is not granted to anyone in production"),
        "{err}"
    );
}

/// Names that read as one person and count as two are refused at their line: a case
/// variant of a name granted elsewhere (three spellings of sam as three owners towards a
/// quorum), or a name with an invisible character. A recorded policy is read as it was.
#[test]
fn look_alike_names_are_refused() {
    for (extra, needle) in [
        ("admin = [\"Sam\", \"SAM\"]", "only by case"),
        ("deployer = [\"ALICE\"]", "only by case"),
        ("admin = [\"sa\u{200B}m\"]", "invisible character U+200B"),
        ("admin = [\"sam\u{00AD}\"]", "invisible character U+00AD"),
        ("admin = [\"sam\u{FE0F}\"]", "invisible character U+FE0F"),
        ("admin = [\"sam\u{E0061}\"]", "invisible character U+E0061"),
        ("admin = [\"\u{3164}sam\"]", "invisible character U+3164"),
        ("admin = [\"sam\u{00A0}x\"]", "invisible character U+00A0"),
        ("admin = [\"\u{017F}am\"]", "reads the same as"),
        (
            "admin = [\"ren\u{00E9}\", \"rene\u{0301}\"]",
            "reads the same as",
        ),
    ] {
        let text = with_roles(extra);
        let err = compile(&bundle(&text, &keys())).unwrap_err();
        assert!(
            err.0.iter().any(|e| e.message.contains(needle)),
            "{extra}: {err}"
        );
        assert!(custody_policy::compile_recorded(&bundle(&text, &keys())).is_ok());
    }
}
