//! What the compiler refuses, naming the line (or the file): mistakes, contradictions, a
//! quorum more than the people who could approve there, a file over the size bound; and
//! the policy digest covering every file of the bundle.

use custody_crypto::Signer as _;
use custody_policy::compile;

use super::{POLICY, bundle, keys};
use crate::fixture::refused_at;

#[track_caller]
fn compile_error(text: &str, line: usize, needle: &str) {
    let err = refused_at(text, line, needle);
    assert!(err.to_string().starts_with("custody.toml:"), "{err}");
}

#[test]
fn mistakes_in_a_policy_name_their_line() {
    let env = |rest: &str| {
        format!(
            "version = 1\n[roles]\napprover = [\"alice\", \"bob\"]\n\n[[environment]]\nname = \"build\"\n\n[[environment]]\nname = \"test\"\n{rest}"
        )
    };
    compile_error(
        &env("after = \"nowhere\"\n"),
        10,
        "unknown environment \"nowhere\"",
    );
    compile_error(
        &env("after = \"prod\"\n[[environment]]\nname = \"prod\"\n"),
        10,
        "declared later",
    );
    compile_error(
        &env("approvals = { quorum = 0, roles = [\"approver\"] }\n"),
        10,
        "quorum of 0",
    );
    compile_error(
        &env("approvals = { quorum = 3, roles = [\"approver\"] }\n"),
        10,
        "can never be met",
    );
    compile_error(
        &env("approvals = { quorum = 1, roles = [\"ghosts\"] }\n"),
        10,
        "unknown role \"ghosts\"",
    );
    compile_error(
        &env("approvals = { quorum = 1, roles = [] }\n"),
        10,
        "nobody could approve",
    );
    compile_error(&env("soak = \"1h\"\n"), 9, "no `after`");
    compile_error(
        &env("after = \"build\"\nsoak = \"a day\"\n"),
        11,
        "not a duration",
    );
    compile_error(&env("colour = \"red\"\n"), 10, "unknown field `colour`");
    compile_error(
        &env("[[environment]]\nname = \"test\"\n"),
        11,
        "declared twice",
    );
    compile_error(&env("evidence = [\"Tests\"]\n"), 10, "evidence type");
    compile_error(
        "version = 2\n[[environment]]\nname = \"a\"\n",
        1,
        "version 2 is not supported",
    );
    compile_error("version = 1\n[[environment]\nname = \"a\"\n", 2, "");
    compile_error(
        "version = 1\n[naming]\nartifact = \"([a-z\"\n[[environment]]\nname = \"a\"\n",
        3,
        "not a valid regular expression",
    );
    compile_error(
        "version = 1\n[[release_key]]\npath = \"keys/missing.pub\"\n[[environment]]\nname = \"a\"\n",
        3,
        "not in the policy bundle",
    );
    compile_error(
        "version = 1\n[[builder]]\nid = \"b\"\nkey = \"keys/builder.pub\"\nsource_repos = []\n[[environment]]\nname = \"a\"\n",
        5,
        "no source repositories",
    );
    compile_error(
        "version = 1\n[[release_key]]\npath = \"keys/builder.pub\"\n[[builder]]\nid = \"b\"\nkey = \"keys/builder.pub\"\nsource_repos = [\"x\"]\n[[environment]]\nname = \"a\"\n",
        6,
        "separation of signing duties",
    );
    // Several mistakes are all reported at once.
    let err = compile(&bundle(
        &env("after = \"nowhere\"\nsoak = \"x\"\n"),
        &keys(),
    ))
    .unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
}

#[test]
fn the_policy_digest_covers_every_file() {
    let k = keys();
    let a = compile(&bundle(POLICY, &k)).unwrap();
    let mut b = bundle(POLICY, &k);
    b.files.insert(
        "keys/release.pub".into(),
        custody_crypto::PrivateKey::ed25519_from_seed(&[9; 32])
            .unwrap()
            .public_key()
            .to_pem(),
    );
    assert_ne!(a.digest(), compile(&b).unwrap().digest());
}

/// A quorum counts only the people who hold an approving role in that environment: as
/// many as the quorum compiles; a viewer beside too few approvers does not make up the
/// number.
#[test]
fn a_quorum_counts_only_those_who_could_approve_there() {
    let env = |roles: &str| {
        format!(
            "version = 1\n[roles]\n{roles}\n\n[[environment]]\nname = \"build\"\napprovals = {{ quorum = 2, roles = [\"approver\"] }}\n"
        )
    };
    compile(&bundle(&env("approver = [\"alice\", \"bob\"]"), &keys())).unwrap();
    let text = env("approver = [\"alice\"]\nviewer = [\"vic\"]");
    let line = text
        .lines()
        .position(|l| l.starts_with("approvals"))
        .unwrap()
        + 1;
    compile_error(&text, line, "only 1 people hold");
}

/// A policy file is at most [`MAX_POLICY_FILE`] bytes, that many included, however it
/// arrives; a larger one is refused naming the file, and nothing of it is compiled.
#[test]
fn a_policy_file_is_bounded() {
    let k = keys();
    let mut b = bundle(POLICY, &k);
    let pad = |text: &str, to: usize| format!("{text}#{}\n", "x".repeat(to - text.len() - 2));
    let at = pad(POLICY, custody_policy::MAX_POLICY_FILE);
    assert_eq!(at.len(), custody_policy::MAX_POLICY_FILE);
    b.files.insert("custody.toml".into(), at);
    compile(&b).unwrap();
    let over = pad(POLICY, custody_policy::MAX_POLICY_FILE + 1);
    b.files.insert("notes.rego".into(), over);
    let err = compile(&b).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].file, "notes.rego");
    assert!(err.0[0].message.contains("at most 1048576"), "{err}");
}

/// A bundle's files are named by relative paths of plain names: one that climbs out of
/// the policy directory, is absolute or hides as `.` is refused, naming the file, and
/// nothing compiles (a recorded policy is read as it was recorded).
#[test]
fn a_file_named_outside_the_policy_directory_is_refused() {
    for name in [
        "keys/../../../../tmp/pwned.pub",
        "/etc/custody.pub",
        "keys/./release.pub",
        "keys\\release.pub",
        "keys//release.pub",
    ] {
        let mut b = bundle(POLICY, &keys());
        b.files.insert(name.into(), "x".into());
        let err = compile(&b).unwrap_err();
        assert!(
            err.0.iter().any(|e| e.file == name
                && (e.message.contains("climbs out")
                    || e.message.contains("not a relative path of plain names"))),
            "{name}: {err}"
        );
    }
    // Ordinary names compile.
    let mut b = bundle(POLICY, &keys());
    b.files.insert("notes/README.md".into(), "x".into());
    b.files.insert(".gitignore".into(), "x".into());
    compile(&b).unwrap();
}
