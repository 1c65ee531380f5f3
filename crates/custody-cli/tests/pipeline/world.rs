//! The world the pipeline tests act in: a data directory whose policy trusts a builder, a
//! release signer and each approver's personal key, everyone's token, and the steps they
//! take (build, release, promote, review) as `custody` commands at a set time.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use super::common::*;

pub(crate) struct World {
    _temp: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) data: PathBuf,
    now: String,
    /// Each principal's API token, minted by the operator when the world is made.
    tokens: std::collections::BTreeMap<String, String>,
}

/// The pipeline these tests run through.
const POLICY: &str = include_str!("../testdata/policies/pipeline.toml");

/// The people and services who act in these tests: each gets a token. Approvers also
/// sign their reviews with a personal key the policy enrols (an approval counts only from
/// its approver, never from a token someone else minted for them).
const PRINCIPALS: [&str; 7] = ["alice", "bob", "carol", "ci-bot", "rita", "argo", "auditor"];
const APPROVERS: [&str; 5] = ["alice", "bob", "carol", "ci-bot", "rita"];

/// Acting as the data directory's operator (`local:USER`): no token.
pub(crate) const OPERATOR: &str = "operator";

impl World {
    pub(crate) fn new() -> World {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_owned();
        let data = root.join("data");
        let out = run(custody().args(["init", "--data-dir"]).arg(&data));
        expect_code(&out, 0);
        let policy = root.join("policy");
        fs::create_dir_all(policy.join("keys")).unwrap();
        generate_key(&root, "builder", "ed25519");
        generate_key(&root, "release", "ecdsa-p256");
        generate_key(&root, "rogue", "ecdsa-p256");
        fs::copy(root.join("builder.pub"), policy.join("keys/builder.pub")).unwrap();
        fs::copy(root.join("release.pub"), policy.join("keys/release.pub")).unwrap();
        let mut text = POLICY.replace(
            "[roles]\n",
            &format!(
                "[roles]\nadmin = [{:?}]\nauditor = [\"auditor\"]\n",
                operator(&data)
            ),
        );
        for who in APPROVERS {
            generate_key(&root, &format!("{who}.person"), "ed25519");
            fs::copy(
                root.join(format!("{who}.person.pub")),
                policy.join(format!("keys/{who}.pub")),
            )
            .unwrap();
            text.push_str(&format!(
                "\n[[person_key]]\nprincipal = {who:?}\npath = \"keys/{who}.pub\"\n"
            ));
        }
        fs::write(policy.join("custody.toml"), text).unwrap();
        let mut w = World {
            _temp: temp,
            root,
            data,
            now: "2026-11-02T09:00:00Z".into(),
            tokens: Default::default(),
        };
        // The starter policy has no owners yet: its operator puts the first real one in
        // force (recorded as a bootstrap), then mints everyone's token.
        let out = w.ok(
            &["policy", "propose"],
            OPERATOR,
            &[policy.to_str().unwrap()],
        );
        assert!(out.contains("bootstrap"), "{out}");
        for who in PRINCIPALS {
            let token = w.ok(&["token", "create"], OPERATOR, &["--principal", who]);
            w.tokens.insert(who.into(), token.trim().to_owned());
        }
        w
    }

    pub(crate) fn at(&mut self, now: &str) {
        self.now = now.into();
    }

    /// Runs `custody CMD ARGS` on the data directory as `principal` (by their token; the
    /// operator without one), approvers signing their reviews with their personal key.
    pub(crate) fn run(&self, cmd: &[&str], principal: &str, args: &[&str]) -> Output {
        let mut command = custody();
        command
            .args(cmd)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .env("CUSTODY_NOW", &self.now)
            .env_remove("CUSTODY_TOKEN");
        if principal != OPERATOR {
            let token = self
                .tokens
                .get(principal)
                .unwrap_or_else(|| panic!("no token for {principal}"));
            command.env("CUSTODY_TOKEN", token);
        }
        let reviews = matches!(cmd.first(), Some(&("approve" | "reject")));
        if reviews && APPROVERS.contains(&principal) {
            command
                .arg("--sign-key")
                .arg(self.root.join(format!("{principal}.person.key")));
        }
        run(&mut command)
    }

    #[track_caller]
    pub(crate) fn ok(&self, cmd: &[&str], principal: &str, args: &[&str]) -> String {
        let out = self.run(cmd, principal, args);
        expect_code(&out, 0);
        stdout(&out)
    }

    /// Runs a command that must fail (exit 2: not found, a conflict) with `reason` in its
    /// output.
    #[track_caller]
    pub(crate) fn failed(&self, cmd: &[&str], principal: &str, args: &[&str], reason: &str) {
        self.exits(2, cmd, principal, args, reason);
    }

    /// Runs a command that must say no (exit 1) with `reason` in its output.
    #[track_caller]
    pub(crate) fn refused(&self, cmd: &[&str], principal: &str, args: &[&str], reason: &str) {
        self.exits(1, cmd, principal, args, reason);
    }

    #[track_caller]
    fn exits(&self, code: i32, cmd: &[&str], principal: &str, args: &[&str], reason: &str) {
        let out = self.run(cmd, principal, args);
        expect_code(&out, code);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.contains(reason),
            "{cmd:?} {args:?}: {reason:?} not in:\n{all}"
        );
    }

    pub(crate) fn json(&self, cmd: &[&str], principal: &str, args: &[&str]) -> (i32, Value) {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(cmd, principal, &args);
        let code = out.status.code().unwrap();
        let value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}\n{}\n{}", stdout(&out), stderr(&out)));
        (code, value)
    }

    pub(crate) fn key(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_owned()
    }

    /// Builds, registers (with signed provenance) and attests an artifact; its digest.
    pub(crate) fn build(&self, name: &str, content: &str, commit: &str) -> String {
        let file = self.root.join(format!("{name}-{commit}.bin"));
        fs::write(&file, content).unwrap();
        let digest = self
            .ok(
                &["artifact", "register"],
                "ci-bot",
                &[
                    "--name",
                    name,
                    "--file",
                    file.to_str().unwrap(),
                    "--source-repo",
                    "https://git.example/acme/shop",
                    "--commit",
                    commit,
                    "--builder-id",
                    "https://ci.example/builder/v1",
                    "--param",
                    "profile=release",
                    "--invocation-id",
                    &format!("run-{commit}"),
                    "--builder-key",
                    &self.key("builder.key"),
                ],
            )
            .trim()
            .to_owned();
        for (kind, file_name, body) in [
            (
                "junit",
                "junit.xml",
                r#"<testsuite name="shop" tests="3" failures="0"><testcase name="a"/><testcase name="b"/><testcase name="c"/></testsuite>"#,
            ),
            (
                "sarif",
                "scan.sarif",
                r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"bandit"}},"results":[]}]}"#,
            ),
            (
                "trivy",
                "scan.trivy.json",
                r#"{"SchemaVersion":2,"Results":[]}"#,
            ),
            (
                "cyclonedx",
                "sbom.json",
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library","name":"left-pad","version":"1.3.0","licenses":[{"license":{"id":"MIT"}}]}]}"#,
            ),
        ] {
            let path = self.root.join(file_name);
            fs::write(&path, body).unwrap();
            self.ok(
                &["attest"],
                "ci-bot",
                &[
                    "--artifact",
                    &digest,
                    "--type",
                    kind,
                    path.to_str().unwrap(),
                ],
            );
        }
        digest
    }

    /// `custody release create` with `shop=A` and `worker=B`, signed with `key` if given.
    pub(crate) fn release(
        &self,
        name: &str,
        version: &str,
        shop: &str,
        worker: &str,
        key: Option<&str>,
    ) -> Output {
        let (shop, worker) = (format!("shop={shop}"), format!("worker={worker}"));
        let mut args = vec![name, version, "--artifact", &shop, "--artifact", &worker];
        let key = key.map(|k| self.key(k));
        if let Some(k) = &key {
            args.extend(["--sign-key", k.as_str()]);
        }
        self.run(&["release", "create"], "rita", &args)
    }

    pub(crate) fn promote(&self, release: &str, env: &str, who: &str) -> (i32, Value) {
        self.json(&["promote"], who, &[release, "--to", env])
    }

    /// Argo reports `digests` deployed to `env`, successfully.
    pub(crate) fn deployed(&self, env: &str, digests: &[&str]) {
        let mut args = vec!["--env", env];
        for digest in digests {
            args.extend(["--digest", digest]);
        }
        args.extend(["--status", "succeeded"]);
        self.ok(&["deploy", "report"], "argo", &args);
    }

    pub(crate) fn ledger_size(&self) -> u64 {
        ledger_size(&self.data)
    }
}

pub(crate) fn id(v: &Value) -> String {
    v["promotion"]["id"].as_str().unwrap().to_owned()
}

pub(crate) fn status(v: &Value) -> &str {
    v["promotion"]["status"].as_str().unwrap()
}
