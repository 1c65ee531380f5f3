//! The README's walkthrough, `examples/walkthrough.sh`, run as a new user would paste it:
//! on a fresh directory, against this build of `custody`. Then the outputs people read
//! from what it left behind: times to the second, an empty answer said as such, a closed
//! pipe ending quietly, the access review counting what the ledger records.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "audit/bundle.rs"]
mod bundle;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{custody, expect_code, expect_refusal, python_script, run, stderr, stdout, token};
use serde_json::Value;

/// Runs the walkthrough in a fresh temporary directory; returns its output and the
/// directory it worked in (under `temp`).
fn walkthrough(temp: &Path) -> (String, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/walkthrough.sh");
    let out = run(Command::new("bash")
        .arg(&script)
        .env("CUSTODY", env!("CARGO_BIN_EXE_custody"))
        .env("TMPDIR", temp)
        .env_remove("CUSTODY_TOKEN")
        .env_remove("CUSTODY_SERVER")
        .env_remove("CUSTODY_DATA_DIR")
        .env_remove("CUSTODY_NOW"));
    expect_code(&out, 0);
    let text = stdout(&out);
    let dir = PathBuf::from(
        text.lines()
            .find_map(|l| l.strip_prefix("walkthrough in "))
            .expect("the walkthrough names its directory"),
    );
    assert!(dir.starts_with(temp), "{dir:?} is not under {temp:?}");
    (text, dir)
}

#[track_caller]
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let temp = tempfile::tempdir().unwrap();
    let (text, dir) = walkthrough(temp.path());

    // The release went through every environment and ended certified in production, where
    // it is certified again after the hotfix failed and rolled back.
    for env in ["build", "test", "staging", "production"] {
        assert_has(&text, &format!("shop@1.4.2 → {env}: certified"));
    }
    // Re-promoting after the missing scan was attached names the first promotion and
    // says why its approval stays there.
    assert_has(&text, "note: this is a new promotion: the earlier prm-");
    assert_has(
        &text,
        "keeps its 1 review(s) (alice approved), which do not carry over",
    );
    // Break glass: certified past the gates, then reviewed after the fact by someone else.
    assert_has(&text, "shop@1.4.3 → production: certified");
    assert_has(
        &text,
        "bob approved after the fact shop@1.4.3 → production: hotfix diff checked",
    );
    assert_has(&text, "rolled back shop@1.4.3 → shop@1.4.2 in production");
    // olga broke glass with her own key: the history says she did, with no other hand.
    assert_has(&text, ", breaking glass)");
    assert!(!text.contains("breaking glass with a token"), "{text}");
    // History lines name what they are about.
    assert_has(&text, "reported a failed deploy in production of ");
    assert_has(
        &text,
        "attached vulnerability-scan evidence (osv) to artifact ",
    );
    assert_has(&text, "replayed to the same outcome");
    assert_has(&text, "of argo is revoked");
    // The policy change took effect with two owners' approvals; the second was rejected.
    assert_has(&text, "approved by sasha, sol");
    assert_has(&text, "rejected");
    // The nightly scan closes production's gate; the approved exception opens it, saying so.
    assert_has(
        &text,
        "1 vulnerabilities above high with a known fix: CVE-2024-3094",
    );
    assert_has(
        &text,
        "APPROVED  vulnerability CVE-2024-3094 in release shop@1.4.2",
    );
    assert_has(&text, "by exception, not a clean pass: vulnerabilities");

    // The deploy gate agrees: 1.4.2 runs in production, the rolled-back hotfix may not.
    let data = dir.join("custody-data");
    let digest = |file: &str| {
        let out = run(custody().arg("digest").arg(dir.join(file)));
        stdout(&out).split_whitespace().next().unwrap().to_owned()
    };
    let gate = |d: &str| {
        run(custody()
            .args(["verify", "--env", "production", d, "--data-dir"])
            .arg(&data))
    };
    expect_code(&gate(&digest("shop-1.4.2.tar")), 0);
    expect_code(&gate(&digest("shop-1.4.3.tar")), 1);
    // What the policy in force asks, as `policy show` says it: the walkthrough's governance
    // (2 of security), no environment yet counting only signed approvals.
    let shown = run(custody()
        .args(["policy", "show", "--json", "--data-dir"])
        .arg(&data));
    expect_code(&shown, 0);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["governance"]["quorum"], 2, "{shown:#}");
    assert_eq!(shown["governance"]["signed"], false, "{shown:#}");
    assert_eq!(
        shown["signed_approvals_only"],
        serde_json::json!([]),
        "{shown:#}"
    );
    expect_code(
        &run(custody().args(["log", "check", "--data-dir"]).arg(&data)),
        0,
    );

    // Breaking glass overrides the approvals, so, like an approval, it counts only from
    // the person's own credential: the token the operator made for olga does not break
    // glass in her name, and nothing is recorded.
    let size = || {
        let out = run(custody()
            .args(["log", "checkpoint", "--data-dir"])
            .arg(&data));
        stdout(&out).lines().nth(1).unwrap_or_default().to_owned()
    };
    let olga = token(&data, "olga", &[]);
    let before = size();
    let glass = run(custody()
        .args(["promote", "shop@1.4.3", "--to", "production"])
        .args(["--break-glass", "in olga's name", "--data-dir"])
        .arg(&data)
        .env("CUSTODY_TOKEN", &olga));
    expect_refusal(
        &glass,
        1,
        "breaking glass overrides the approvals gate, so it counts only from olga's own credential",
    );
    assert!(
        stderr(&glass).contains("--sign-key KEY"),
        "{}",
        stderr(&glass)
    );
    assert_eq!(size(), before, "a refused break-glass recorded something");
    // Nor does another person's key, or a statement for another release.
    let out = run(custody()
        .args(["promote", "shop@1.4.3", "--to", "production"])
        .args(["--break-glass", "in olga's name", "--sign-key"])
        .arg(dir.join("alice.key"))
        .arg("--data-dir")
        .arg(&data)
        .env("CUSTODY_TOKEN", &olga));
    expect_refusal(&out, 1, "the signed break-glass request does not count");
    assert_eq!(size(), before);

    // The whole story verifies offline, the signed break-glass with it; re-signed by a key
    // the policy never enrolled (under a log the forger re-signed), it is caught, by
    // custody and by the independent Python verifier.
    let bundle = dir.join("walkthrough.bundle");
    let out = run(custody()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data));
    expect_code(&out, 0);
    let verify = |path: &Path| {
        let out = run(custody()
            .args(["audit", "verify", "--json", "--log-key"])
            .arg(data.join("keys/log.pub"))
            .arg(path));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let python = run(python_script("audit_verify.py")
            .arg(path)
            .arg(data.join("keys/log.pub")));
        (
            out.status.code().unwrap(),
            report,
            python.status.code().unwrap(),
        )
    };
    let (code, report, python) = verify(&bundle);
    assert_eq!((code, python), (0, 0), "{report:#}");
    let b = bundle::Bundle::read(&bundle);
    let glass = |e: &Value| e["type"] == "promotion.requested" && e["statement"].is_object();
    let signed = b
        .entries()
        .iter()
        .filter(|(_, _, l)| {
            let e = bundle::event(l);
            glass(&e) || (e["type"] == "approval.recorded" && e["statement"].is_object())
        })
        .count() as u64;
    assert!(
        signed >= 2,
        "no signed break-glass or approvals in the bundle"
    );
    assert_eq!(
        report["checked"]["approvals_signed"].as_u64(),
        Some(signed),
        "{report:#}"
    );
    let (_, _, line) = b.find(glass);
    let mut forged = bundle::Bundle::read(&bundle);
    let (m, n, l) = forged.find(glass);
    let mut e = bundle::event(&l);
    e["statement"] = bundle::resign(&e["statement"]);
    forged.set_line(&m, n, Some(&bundle::with_event(&l, &e)));
    forged.reseal(&bundle::log_key(&data));
    let path = dir.join("forged-glass.bundle");
    forged.write(&path);
    let (code, report, python) = verify(&path);
    assert_eq!((code, python), (1, 1), "{report:#}");
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "approval" && f["entry"] == line["index"]),
        "{report:#}"
    );

    // A signed break-glass breaks glass once: the same statement sent again (the same
    // key, time and fields sign the same bytes) is refused, and records nothing.
    let now = {
        use custody_app::Clock as _;
        custody_app::SystemClock.now().to_second().to_string()
    };
    let glass_again = || {
        run(custody()
            .args(["promote", "shop@1.4.3", "--to", "production"])
            .args(["--break-glass", "again", "--sign-key"])
            .arg(dir.join("olga.key"))
            .arg("--data-dir")
            .arg(&data)
            .env("CUSTODY_NOW", &now)
            .env("CUSTODY_TOKEN", &olga))
    };
    let first = glass_again();
    assert!(
        !stderr(&first).contains("already used"),
        "{}",
        stderr(&first)
    );
    let after_first = size();
    expect_refusal(
        &glass_again(),
        1,
        "this signed break-glass was already used",
    );
    assert_eq!(size(), after_first);

    // A promotion asked for again after one was left waiting says so in --json too.
    let promote = || {
        run(custody()
            .args([
                "promote",
                "shop@1.4.3",
                "--to",
                "test",
                "--json",
                "--data-dir",
            ])
            .arg(&data))
    };
    let first = promote();
    expect_code(&first, 1);
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(first.get("supersedes").is_none(), "{first}");
    let again = promote();
    expect_code(&again, 1);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    let earlier = &again["supersedes"];
    assert_eq!(earlier["promotion"], first["promotion"]["id"], "{again}");
    assert_eq!(earlier["status"], "pending");
    assert_eq!(earlier["reviews"], 0);
    assert!(
        earlier["note"]
            .as_str()
            .unwrap()
            .contains("an approval binds to its promotion and to the decision and policy version"),
        "{again}"
    );

    // Times for people are to the second; --json keeps the recorded precision.
    let history = run(custody()
        .args(["history", "--limit", "0", "--data-dir"])
        .arg(&data));
    expect_code(&history, 0);
    for line in stdout(&history).lines() {
        let at = line.split_whitespace().nth(1).unwrap();
        assert_eq!(at.len(), "2026-11-30T01:02:58Z".len(), "{line}");
        assert!(at.ends_with('Z') && !at.contains('.'), "{line}");
    }

    // A full page says there is more, and how to see it.
    let page = run(custody()
        .args(["history", "--limit", "3", "--data-dir"])
        .arg(&data));
    expect_code(&page, 0);
    assert_eq!(stdout(&page).lines().count(), 3);
    let first = stdout(&page).split_whitespace().next().unwrap().to_owned();
    assert_eq!(
        stderr(&page).trim(),
        format!("the newest 3 shown; older ones: --before {first} (or --limit 0 for all)")
    );

    // An empty answer is said, not a blank line; exit 0.
    let none = run(custody()
        .args(["history", "--principal", "nobody-at-all", "--data-dir"])
        .arg(&data));
    expect_code(&none, 0);
    assert_eq!(stdout(&none), "");
    // (The operator, local:USER, is among the names: USER is whoever runs the tests.)
    let hint = stderr(&none);
    assert!(
        hint.starts_with("no events match\nhint: the policy in force gives \"nobody-at-all\" no role (names match exactly; it names alice, argo, bob, ci-bot, contractor, ")
            && hint.trim().ends_with("olga, rita, sam, sasha, sol); a former holder's events still match"),
        "{hint}"
    );
    // An artifact by the start of its digest, as history prints it: the same events as by
    // the whole digest; too few digits are refused, saying how many.
    let registered: Vec<Value> = serde_json::from_slice(
        &run(custody()
            .args([
                "history",
                "--type",
                "artifact.registered",
                "--json",
                "--data-dir",
            ])
            .arg(&data))
        .stdout,
    )
    .unwrap();
    let digest = registered[0]["event"]["artifact"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let by = |artifact: &str| {
        run(custody()
            .args(["history", "--artifact", artifact, "--data-dir"])
            .arg(&data))
    };
    let whole = by(&digest);
    expect_code(&whole, 0);
    assert!(!stdout(&whole).is_empty());
    assert_eq!(
        stdout(&by(&digest["sha256:".len()..][..12])),
        stdout(&whole)
    );
    expect_refusal(&by("sha256:abc"), 2, "at least its first 8 hex digits");
    // A near miss is named.
    let near = run(custody()
        .args(["history", "--principal", "Alice", "--data-dir"])
        .arg(&data));
    assert_eq!(
        stderr(&near).trim(),
        "no events match\nhint: the policy in force gives \"Alice\" no role; did you mean alice? (names match exactly)"
    );
    // An environment the policy does not name: said, with those it does.
    let prod = run(custody()
        .args(["history", "--env", "prod", "--data-dir"])
        .arg(&data));
    expect_code(&prod, 0);
    assert_eq!(
        stderr(&prod).trim(),
        "no events match\nhint: the policy in force has no environment \"prod\"; it names build, test, staging, production"
    );

    // The access review counts what the ledger records, not only token use: bob and
    // alice approved with their keys (no token of theirs was ever used), sasha and sol
    // approved a policy change; nobody acted as contractor.
    let review = run(custody()
        .args(["access", "review", "--json", "--data-dir"])
        .arg(&data));
    expect_code(&review, 0);
    let holdings: Vec<Value> = serde_json::from_slice(&review.stdout).unwrap();
    let unused = |who: &str, role: &str| {
        holdings
            .iter()
            .find(|h| h["principal"] == who && h["role"] == role)
            .unwrap_or_else(|| panic!("{who} {role} in {holdings:?}"))["unused"]
            .as_bool()
            .unwrap()
    };
    for (who, role) in [
        ("alice", "approver"),
        ("bob", "approver"),
        ("sasha", "security"),
        ("sol", "security"),
        ("ci-bot", "builder"),
        ("rita", "signer"),
        ("olga", "deployer:production"),
        ("sam", "security"),
    ] {
        assert!(!unused(who, role), "{who} used {role}");
    }
    // Nobody acted as contractor, but the grant is minutes old: new, not unused.
    assert!(!unused("contractor", "approver"));
    let contractor = holdings
        .iter()
        .find(|h| h["principal"] == "contractor")
        .unwrap();
    assert!(contractor["held_since"].is_string(), "{contractor}");
    // The text says until when a grant holds, and that an ended one is gone.
    let text = |now: Option<&str>| {
        let mut c = custody();
        c.args(["access", "review", "--data-dir"]).arg(&data);
        if let Some(now) = now {
            c.env("CUSTODY_NOW", now);
        }
        let out = run(&mut c);
        expect_code(&out, 0);
        stdout(&out)
            .lines()
            .find(|l| l.starts_with("contractor "))
            .unwrap()
            .to_owned()
    };
    let fresh = text(None);
    assert!(
        fresh.contains("not used yet: granted ")
            && fresh.contains("less than 90 days ago (held until 2030-03-31T00:00:00Z)"),
        "{fresh}"
    );
    // Held for the whole window and never used: a candidate for removal.
    let later = text(Some("2029-01-01T00:00:00Z"));
    assert!(
        later
            .contains("UNUSED for 90 days: consider removing it (held until 2030-03-31T00:00:00Z)"),
        "{later}"
    );
    let ended = text(Some("2030-04-01T00:00:00Z"));
    assert!(
        ended.contains("ENDED at 2030-03-31T00:00:00Z: no longer held; remove it from the policy"),
        "{ended}"
    );
}

/// A reader that stops early (`custody history --json | head -c 10`) ends the command
/// quietly, as it ends any command-line tool: no panic, no backtrace, the status a shell
/// gives a tool the SIGPIPE signal ended.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    for args in [
        &["history", "--json"][..],
        &["history"][..],
        &["policy", "show", "--json"][..],
    ] {
        // The reader is gone before custody starts: its first write meets EPIPE.
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let out = custody()
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
    }
}

/// `custody demo` ends with the way into the dashboard: where to sign in, a token for its
/// admin (who approves too), an auditor's and a viewer's, and the cast with their roles.
#[test]
fn the_demo_says_how_to_sign_in() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let out = run(custody().args(["demo", "--data-dir"]).arg(&data));
    expect_code(&out, 0);
    let text = stdout(&out);
    assert_has(&text, "open http://127.0.0.1:8080/login (where config.toml");
    let me = stdout(&run(custody().args(["whoami", "--data-dir"]).arg(&data)));
    let me = me.lines().next().unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(me))
        .unwrap_or_else(|| panic!("no sign-in line for {me}:\n{text}"));
    assert_has(line, "admin, approver");
    let token = line.split_whitespace().last().unwrap();
    assert!(token.starts_with("cst_"), "{line}");
    // The token printed is one custody accepts, for the operator.
    let who = run(custody()
        .args(["whoami", "--data-dir"])
        .arg(&data)
        .env("CUSTODY_TOKEN", token));
    expect_code(&who, 0);
    assert_has(&stdout(&who), &format!("{me}\n"));
    assert_has(&stdout(&who), "token");
    for cast in [
        "alice        approver",
        "olga         deployer:production",
        "audrey       auditor",
    ] {
        assert_has(&text, cast);
    }
}

/// README.md shows the walkthrough's commands exactly as the script runs them, section by
/// section, so that what is pasted is what is tested.
#[test]
fn the_readme_shows_the_walkthrough_as_the_script_runs_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = std::fs::read_to_string(root.join("examples/walkthrough.sh")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let sections: Vec<&str> = script.split("\nstep \"").skip(1).collect();
    assert_eq!(sections.len(), 5, "the script's five sections");
    for section in sections {
        let (title, body) = section.split_once("\"\n").unwrap();
        let body = body.trim_end();
        assert!(
            readme.contains(&format!("## {title}")),
            "README has no section {title:?}"
        );
        assert!(
            readme.contains(&format!("```sh\n{body}\n```")),
            "README's {title:?} block differs from examples/walkthrough.sh:\n{body}"
        );
    }
}
