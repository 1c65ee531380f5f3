//! Mistakes refused with a message that names them, recording nothing: a policy's errors by
//! file, line and column, and bad command-line input of every kind.

use std::fs;

use serde_json::Value;

use super::common::*;
use super::world::{OPERATOR, World};

#[test]
fn policy_mistakes_name_the_line_and_change_nothing() {
    let w = World::new();
    let dir = w.root.join("broken");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("custody.toml"),
        "version = 1\n\n[roles]\napprover = [\"alice\"]\n\n[[environment]]\nname = \"build\"\n\n[[environment]]\nname = \"prod\"\nafter = \"staging\"\napprovals = { quorum = 2, roles = [\"approver\"] }\n",
    )
    .unwrap();
    let out = run(custody().args(["policy", "check"]).arg(&dir));
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("custody.toml:11:9: unknown environment \"staging\" in `after`"),
        "{err}"
    );
    assert!(err.contains("custody.toml:12:"), "{err}");
    assert!(
        err.contains("a quorum of 2 can never be met: only 1 people"),
        "{err}"
    );
    let (code, json) = {
        let out = run(custody().args(["policy", "check", "--json"]).arg(&dir));
        (
            out.status.code(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!(code, Some(1));
    assert_eq!(json["errors"][0]["line"], 11);

    let before = w.ledger_size();
    let out = w.run(&["policy", "propose"], OPERATOR, &[dir.to_str().unwrap()]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("custody.toml:11:9"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.ledger_size(), before, "a refused policy was recorded");

    // The good one checks clean, and applying it again records nothing.
    let good = w.root.join("policy");
    let out = run(custody().args(["policy", "check"]).arg(&good));
    expect_code(&out, 0);
    assert!(stdout(&out).contains("build → test → staging → production"));
    // It names no owners of its own (the starter's default: one holder of security
    // needed, none named): valid, with the warning that a governed instance's `policy
    // propose` would refuse it; the operator bootstraps it below.
    assert!(
        stderr(&out).contains("warning: this version names no more owners (holders of security, unscoped) than its quorum of 1"),
        "{}",
        stderr(&out)
    );
    let out = run(custody().args(["policy", "check", "--json"]).arg(&good));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["warnings"].as_array().map(Vec::len), Some(1), "{json}");
    // Two security owners for a quorum of one: governed, no warning.
    let governed = w.root.join("policy-governed");
    copy_dir(&good, &governed);
    let toml = fs::read_to_string(governed.join("custody.toml")).unwrap();
    fs::write(
        governed.join("custody.toml"),
        toml.replacen("[roles]\n", "[roles]\nsecurity = [\"sam\", \"sasha\"]\n", 1),
    )
    .unwrap();
    let out = run(custody().args(["policy", "check", "--json"]).arg(&governed));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["warnings"], serde_json::json!([]), "{json}");
    let out = w.ok(&["policy", "propose"], OPERATOR, &[good.to_str().unwrap()]);
    assert!(out.contains("already in force"), "{out}");
    assert_eq!(w.ledger_size(), before);
}

#[test]
fn bad_input_is_refused_with_a_message_and_records_nothing() {
    let w = World::new();
    let shop = w.build(
        "shop",
        "shop v1",
        "1111111111111111111111111111111111111111",
    );
    let before = w.ledger_size();
    let missing = w.root.join("missing.xml");
    let junit = w.root.join("junit.xml").to_str().unwrap().to_owned();
    let not_json = w.root.join("not.json");
    fs::write(&not_json, "this is not JSON").unwrap();
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "artifact",
                "register",
                "--name",
                "shop",
                "--digest",
                "sha256:ABC",
            ],
            "ci-bot",
            "lowercase",
        ),
        (
            vec!["artifact", "register", "--name", "shop"],
            "ci-bot",
            "--file PATH",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "shop",
                "--file",
                missing.to_str().unwrap(),
            ],
            "ci-bot",
            "missing.xml",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "x",
                "--digest",
                &shop,
                "--source-repo",
                "r",
                "--commit",
                "c",
            ],
            "ci-bot",
            "--builder-id",
        ),
        (
            vec![
                "artifact",
                "register",
                "--name",
                "x",
                "--digest",
                &shop,
                "--source-repo",
                "r",
                "--commit",
                "c",
                "--builder-id",
                "b",
                "--param",
                "novalue",
                "--builder-key",
                "k",
            ],
            "ci-bot",
            "NAME=VALUE",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "sarif",
                not_json.to_str().unwrap(),
            ],
            "ci-bot",
            "sarif: $: expected ident at line 1",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "junit",
                missing.to_str().unwrap(),
            ],
            "ci-bot",
            "missing.xml",
        ),
        (
            vec![
                "attest",
                "--artifact",
                &shop,
                "--type",
                "junit",
                "--kind",
                "Code Review",
                &junit,
            ],
            "ci-bot",
            "evidence type \"Code Review\"",
        ),
        (
            vec!["release", "create", "shop", "2.0.0", "--artifact", "shop"],
            "rita",
            "NAME=sha256:HEX",
        ),
        (
            vec!["promote", "shop-9.9.9", "--to", "build"],
            "rita",
            "write NAME@VERSION",
        ),
        (
            vec!["promote", "shop@9.9.9", "--to", "build"],
            "rita",
            "no release shop@9.9.9",
        ),
        (
            vec!["approve", "prm-nope", "--rationale", "x"],
            "alice",
            "no promotion prm-nope",
        ),
        (
            vec!["approve", "prm-nope", "--rationale", " "],
            "alice",
            "needs a rationale",
        ),
        (
            vec!["rollback", "--env", "build", "--reason", ""],
            "rita",
            "needs a reason",
        ),
        (
            vec!["decision", "show", "dec-nope"],
            "auditor",
            "no decision dec-nope",
        ),
        (
            vec!["token", "create", "--principal", "two words"],
            OPERATOR,
            "without spaces",
        ),
    ];
    for (args, who, needle) in cases {
        let out = w.run(&args, who, &[]);
        expect_code(&out, 2);
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: {needle:?} not in {}",
            stderr(&out)
        );
    }
    // Nobody claims a name: `--as` is refused, and without a token the operator acts.
    let out = w.run(
        &["promote"],
        "rita",
        &["shop@1.0.0", "--to", "build", "--as", "rita"],
    );
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("nobody can claim a name"),
        "{}",
        stderr(&out)
    );
    let me = w.ok(&["whoami"], OPERATOR, &[]);
    assert!(
        me.starts_with("local:") && me.contains("local operator") && me.contains("admin"),
        "{me}"
    );
    // Nor can an admin mint a token under another operator's name.
    let out = w.run(
        &["token", "create"],
        OPERATOR,
        &["--principal", "local:alice"],
    );
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("a name only that operator holds"),
        "{}",
        stderr(&out)
    );
    // Nor under a name that passes for someone the policy names: by case, or by a
    // full-width or zero-width character. Nothing is made.
    for (name, needle) in [
        (
            "Rita",
            "differs from \"rita\", whom the policy's [roles] name, only by case",
        ),
        ("\u{ff52}ita", "has the character '\u{ff52}' (U+FF52)"),
        (
            "ri\u{200b}ta",
            "(U+200B): a token an admin makes is for a plain ASCII name",
        ),
    ] {
        let out = w.run(&["token", "create"], OPERATOR, &["--principal", name]);
        expect_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{name}: {}", stderr(&out));
    }
    let tokens = w.ok(&["token", "list"], OPERATOR, &["--json"]);
    assert!(
        !tokens.contains("Rita") && !tokens.contains('\u{200b}'),
        "{tokens}"
    );
    let rita = w.ok(&["whoami"], "rita", &[]);
    assert!(
        rita.starts_with("rita\n") && rita.contains("token tok"),
        "{rita}"
    );
    let out = w.run(&["history"], "auditor", &["--since", "yesterday"]);
    expect_code(&out, 2);
    assert_eq!(w.ledger_size(), before, "bad input changed the ledger");
}

/// Copies the flat directory `from` (and its `keys/`) to `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for dir in ["", "keys"] {
        fs::create_dir_all(to.join(dir)).unwrap();
        for entry in fs::read_dir(from.join(dir)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), to.join(dir).join(entry.file_name())).unwrap();
            }
        }
    }
}
