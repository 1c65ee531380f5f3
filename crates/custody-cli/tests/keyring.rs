//! The keyring end to end, through the real `custody` binary and a real server on a
//! loopback port: production keeps running through a release-key rotation (the hand-over
//! signed by both keys, checked by securesystemslib too); the retired key signs nothing
//! that counts; revoking a key with a compromise time makes `custody verify` deny exactly
//! the releases recorded after it, `custody key impact` lists exactly those, and the
//! revocation event names them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

const POLICY: &str = include_str!("testdata/keyring.toml");

struct World {
    _temp: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    tokens: std::collections::BTreeMap<&'static str, String>,
}

impl World {
    fn new() -> World {
        let (temp, root, data, policy) = data_and_policy();
        for (name, algorithm) in [
            ("builder", "ed25519"),
            ("release", "ecdsa-p256"),
            ("release-2", "ed25519"),
        ] {
            generate_key(&root, name, algorithm);
        }
        fs::copy(root.join("builder.pub"), policy.join("keys/builder.pub")).unwrap();
        fs::copy(root.join("release.pub"), policy.join("keys/release.pub")).unwrap();
        let text = POLICY.replace(
            "[roles]\n",
            &format!("[roles]\nadmin = [{:?}]\n", operator(&data)),
        );
        fs::write(policy.join("custody.toml"), text).unwrap();
        let out = run(custody()
            .args(["policy", "propose"])
            .arg(&policy)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("CUSTODY_TOKEN"));
        expect_code(&out, 0);
        let tokens = ["ci-bot", "rita", "sec", "argo", "audrey"]
            .into_iter()
            .map(|who| (who, token(&data, who, &[])))
            .collect();
        World {
            _temp: temp,
            server: Server::start(&data),
            root,
            tokens,
        }
    }

    /// `custody ARGS --server URL` as `who`.
    fn run(&self, who: &str, args: &[&str]) -> Output {
        run(custody()
            .args(args)
            .args(["--server", &self.server.base])
            .env("CUSTODY_TOKEN", &self.tokens[who]))
    }

    #[track_caller]
    fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.run(who, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    fn key(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_owned()
    }

    /// Builds and registers `shop` at `version`, and records release `shop@version`
    /// signed with `key`; returns the artifact's digest.
    fn release(&self, version: &str, key: &str) -> String {
        let file = self.root.join(format!("shop-{version}.bin"));
        fs::write(&file, format!("shop {version}")).unwrap();
        let digest = self
            .ok(
                "ci-bot",
                &[
                    "artifact",
                    "register",
                    "--name",
                    "shop",
                    "--file",
                    file.to_str().unwrap(),
                    "--source-repo",
                    "https://git.example/acme/shop",
                    "--commit",
                    &"1".repeat(40),
                    "--builder-id",
                    "https://ci.example/builder/v1",
                    "--param",
                    &format!("version={version}"),
                    "--builder-key",
                    &self.key("builder.key"),
                ],
            )
            .trim()
            .to_owned();
        self.ok(
            "rita",
            &[
                "release",
                "create",
                "shop",
                version,
                "--artifact",
                &format!("shop={digest}"),
                "--sign-key",
                &self.key(key),
            ],
        );
        digest
    }

    /// Promotes `shop@version` to `env`: its status, and the JSON.
    fn promote(&self, version: &str, env: &str) -> (String, Value) {
        let out = self.run(
            "rita",
            &["promote", &format!("shop@{version}"), "--to", env, "--json"],
        );
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
        (v["promotion"]["status"].as_str().unwrap().to_owned(), v)
    }

    /// The deploy gate's answer for `digest` in `env`, and its reasons.
    fn verify(&self, env: &str, digest: &str) -> (bool, String) {
        let out = self.run("argo", &["verify", "--env", env, digest, "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let allowed = v["allowed"].as_bool().unwrap();
        assert_eq!(out.status.code(), Some(if allowed { 0 } else { 1 }));
        (allowed, v["reasons"].to_string())
    }

    /// A dashboard page, as argo sees it (it must answer 200).
    fn page(&self, path: &str) -> String {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let cookie = session_cookie(&self.server.base, &self.tokens["argo"]).await;
            let r = http()
                .get(format!("{}{path}", self.server.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path}");
            r.text().await.unwrap()
        })
    }

    fn json(&self, who: &str, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(who, &args)).unwrap()
    }
}

fn key_id(root: &Path, name: &str) -> String {
    let out = run(custody()
        .args(["key", "show", "--json"])
        .arg(root.join(format!("{name}.pub"))));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn production_runs_through_a_rotation_and_a_compromise_denies_exactly_what_came_after() {
    let w = World::new();
    let (old, new) = (key_id(&w.root, "release"), key_id(&w.root, "release-2"));
    let d1 = w.release("1.0.0", "release.key");
    assert_eq!(w.promote("1.0.0", "build").0, "certified");
    assert_eq!(w.promote("1.0.0", "production").0, "certified");

    // Only someone with the policy permission rotates, and only with both keys.
    let rotate = |who: &str, from: &str, to: &str| {
        w.run(
            who,
            &[
                "key",
                "rotate",
                "release-signer",
                "--from",
                &w.key(from),
                "--to",
                &w.key(to),
            ],
        )
    };
    expect_refusal(
        &rotate("rita", "release.key", "release-2.key"),
        1,
        "may not",
    );
    expect_refusal(
        &rotate("sec", "builder.key", "release-2.key"),
        2,
        "builder key, not a release signer key",
    );
    let out = rotate("sec", "release.key", "release-2.key");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(&new), "{}", stdout(&out));
    // The Keys page (read from the keyring) shows the successor in force, at the file the
    // bundle still names its predecessor by, and the old key retired.
    let list = w.page("/keys");
    let signers = list
        .split_once(r#"<table id="release-keys">"#)
        .and_then(|(_, t)| t.split_once("</table>"))
        .unwrap_or_else(|| panic!("{list}"))
        .0;
    assert!(
        signers.contains(&format!(r#"data-key-id="{new}""#))
            && !signers.contains(&format!(r#"data-key-id="{old}""#))
            && signers.contains("keys/release.pub</code> (by hand-over from"),
        "{signers}"
    );

    // Production keeps running on what the old key signed while trusted.
    assert!(w.verify("production", &d1).0);
    // The retired key signs nothing that counts from now on; its successor does.
    w.release("1.1.0", "release.key");
    let (status, v) = w.promote("1.1.0", "build");
    assert_eq!(status, "pending", "{v}");
    assert!(v.to_string().contains("retired at"), "{v}");
    let d2 = w.release("2.0.0", "release-2.key");
    assert_eq!(w.promote("2.0.0", "build").0, "certified");
    assert_eq!(w.promote("2.0.0", "production").0, "certified");
    let d3 = w.release("2.0.1", "release-2.key");
    assert_eq!(w.promote("2.0.1", "build").0, "certified");

    // The hand-over the ledger holds verifies with securesystemslib against both keys.
    let history = w.json("argo", &["history", "--type", "key.rotated"]);
    let handover = &history[0]["event"]["handover"];
    let envelope = w.root.join("handover.json");
    fs::write(&envelope, handover.to_string()).unwrap();
    let check = python_script("sslib_verify.py")
        .arg(&envelope)
        .arg("2")
        .arg(w.root.join("release.pub"))
        .arg(w.root.join("release-2.pub"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    // Trusting one of the two keys and a key that did not sign, it is below the threshold
    // (two keys, as securesystemslib takes no fewer keys than the threshold).
    let one = python_script("sslib_verify.py")
        .arg(&envelope)
        .arg("2")
        .arg(w.root.join("release-2.pub"))
        .arg(w.root.join("builder.pub"))
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(REFUSED), "{}", stderr(&one));

    // The successor leaks; it was compromised since 2.0.1 was recorded.
    let recorded = w.json("argo", &["history", "--type", "release.created"]);
    let since = recorded
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["release"] == "shop@2.0.1")
        .unwrap()["event"]["at"]
        .as_str()
        .unwrap()
        .to_owned();
    // A key is named by its first digits, as `custody history` prints them; too few, or
    // digits no key has, are refused by name and revoke nothing.
    expect_refusal(
        &w.run("sec", &["key", "revoke", &new[..7], "--reason", "x"]),
        2,
        "at least 8 hex digits",
    );
    let unknown = ["00000000", "11111111", "22222222"]
        .into_iter()
        .find(|p| !new.starts_with(p) && !old.starts_with(p))
        .unwrap();
    expect_refusal(
        &w.run("argo", &["key", "impact", unknown]),
        2,
        &format!("no key {unknown} in the keyring; `custody key list` shows them"),
    );
    let out = w.run(
        "sec",
        &[
            "key",
            "revoke",
            &new[..10],
            "--reason",
            "key file leaked",
            "--compromised-since",
            &since,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Exactly what was recorded since then is denied, at once, over HTTP.
    let (allowed, why) = w.verify("build", &d3);
    assert!(
        !allowed && why.contains("was revoked") && why.contains("key file leaked"),
        "{why}"
    );
    assert!(w.verify("production", &d2).0);
    assert!(w.verify("production", &d2).0, "a cached verdict agrees");

    // The revocation is recorded by the whole id, never the digits it was given by.
    assert!(
        stdout(&out).contains(&format!("key {new} is revoked")),
        "{}",
        stdout(&out)
    );

    // `key impact` (by twelve digits) lists exactly those; the environments show what the
    // gate says, and only build's denial is the key's.
    let impact = w.json("argo", &["key", "impact", &new[..12]]);
    assert_eq!(impact["key"]["key_id"], new.as_str());
    let releases: Vec<(String, bool)> = impact["uses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["what"] == "release")
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["counts"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        releases,
        [
            ("shop@2.0.1".to_owned(), false),
            ("shop@2.0.0".to_owned(), true)
        ]
    );
    let env = |name: &str| {
        impact["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["environment"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (&env("build")["gate"], &env("build")["depends"]),
        (&Value::from("denies"), &serde_json::json!(["manifest"]))
    );
    assert_eq!(env("production")["gate"], "allows");
    assert_eq!(impact["denied"][0]["environment"], "build");
    assert_eq!(impact["denied"].as_array().unwrap().len(), 1, "{impact}");
    let text = w.ok("argo", &["key", "impact", &new[..12]]);
    let denied = text
        .split_once("the deploy gate now denies, because of this key:")
        .unwrap_or_else(|| panic!("{text}"))
        .1;
    assert!(
        denied.contains("build: shop@2.0.1 (depends: manifest)")
            && denied.contains("re-sign the release")
            && !denied.contains("production"),
        "{text}"
    );

    // The revocation event names what stopped counting (its alert's text is made from
    // it: app/tests/keyring/revocation.rs checks that text).
    let revoked = w.json("argo", &["history", "--type", "key.revoked"]);
    assert_eq!(revoked[0]["event"]["keys"][0]["key"], new.as_str());
    let line = revoked[0]["event"]["affected"].to_string();
    assert!(
        line.contains("shop@2.0.1")
            && line.contains("certified in build")
            && !line.contains("shop@2.0.0"),
        "{line}"
    );

    // The keyring lists both keys with their status.
    let keys = w.json("argo", &["key", "list"]);
    let status = |id: &str| {
        keys.as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        (status(&old), status(&new)),
        ("retired".into(), "revoked".into())
    );
    // The dashboard shows the blast radius: the key's page names the environment whose
    // gate now denies, and the uses that stopped counting.
    let page = w.page(&format!("/keys/{}", &new[..12]));
    let list = w.page("/keys");
    assert!(
        list.contains(&format!("href=\"/keys/{new}\"")) && list.contains("key file leaked"),
        "{list}"
    );
    assert!(
        page.contains("revoked") && page.contains("key file leaked"),
        "{page}"
    );
    assert!(
        page.contains(r#"<tr data-environment="build" class="denied">"#)
            && page.contains(r#"<tr data-environment="production">"#),
        "{page}"
    );
    assert!(page.contains(r#"class="not-counting""#), "{page}");
    assert!(
        page.contains(r#"<li data-environment="build" data-depends="manifest">"#)
            && !page.contains(r#"<li data-environment="production""#),
        "{page}"
    );
    // An auditor's offline check follows the hand-over and the revocation: every
    // manifest the successor signed verifies against the key history in the bundle.
    let data = w.root.join("data");
    let bundle = w.root.join("audit.tar");
    let out = run(custody()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data)
        .env("CUSTODY_TOKEN", &w.tokens["audrey"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(custody()
        .args(["audit", "verify", "--json", "--log-key"])
        .arg(data.join("keys/log.pub"))
        .arg(&bundle));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{report:#} {}", stderr(&out));
    // 1.0.0, 2.0.0 and 2.0.1 verify (1.1.0, by the retired key, is recorded, untrusted).
    assert_eq!(report["checked"]["manifests"], 3, "{report:#}");
    // The independent Python verifier follows the hand-over and the revocation too, and
    // agrees.
    let python = python_script("audit_verify.py")
        .arg(&bundle)
        .arg(data.join("keys/log.pub"))
        .output()
        .unwrap();
    assert_eq!(python.status.code(), Some(0), "{}", stdout(&python));
    // The revocation, entered after 2.0.1 was recorded, withdraws trust from its manifest
    // (and from nothing signed before the compromise): the report names it and marks build,
    // whose release rests on it; production's does not.
    let withdrawn = report["story"]["withdrawn"].as_array().unwrap();
    let named: Vec<(&str, &str)> = withdrawn
        .iter()
        .map(|w| (w["what"].as_str().unwrap(), w["name"].as_str().unwrap()))
        .collect();
    assert_eq!(named, [("release", "shop@2.0.1")], "{report:#}");
    assert_eq!(withdrawn[0]["key"], new.as_str());
    assert_eq!(withdrawn[0]["reason"], "key file leaked");
    assert_eq!(withdrawn[0]["environments"], serde_json::json!(["build"]));
    let marked = |name: &str| {
        report["story"]["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["trust_withdrawn"]
            .clone()
    };
    assert_eq!(
        (marked("build"), marked("production")),
        (true.into(), false.into())
    );
    let html = w.root.join("report.html");
    let out = run(custody()
        .args(["audit", "verify", "--log-key"])
        .arg(data.join("keys/log.pub"))
        .arg(&bundle)
        .arg("--html")
        .arg(&html));
    assert!(
        stdout(&out).contains("withdrawn: entry")
            && stdout(&out).contains("release shop@2.0.1")
            && stdout(&out).contains("build rest(s) on it"),
        "{}",
        stdout(&out)
    );
    let page = fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Trust withdrawn since")
            && page.contains(r#"<tr class="withdrawn"><td>build</td>"#),
        "{page}"
    );
    // And `log check` (with the projection check) agrees with the keyring record.
    let out = run(custody().args(["log", "check", "--data-dir"]).arg(&data));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
