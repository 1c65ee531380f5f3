//! What custody signed in the pipeline's ledger (approvals, VSAs, release manifests,
//! provenance), checked by securesystemslib and in-toto-attestation.

use std::fs;

use serde_json::Value;

use super::common::*;
use super::world::World;

/// What custody signed, checked by the Python reference implementations.
pub(crate) fn check_interop(w: &World, history: &Value) {
    let attestor = w.data.join("keys/attestor.pub");
    let (mut checked, mut approvals) = (0, 0);
    for e in history.as_array().unwrap() {
        let event = &e["event"];
        let (envelope, key) = match event["type"].as_str().unwrap() {
            // An approval signed with the approver's own key: anyone holding that key's
            // public half checks it offline, with custody or with securesystemslib.
            "approval.recorded" if event["statement"].is_object() => {
                approvals += 1;
                let actor = event["actor"].as_str().unwrap();
                let key = w.root.join(format!("{actor}.person.pub"));
                let path = w.root.join(format!("approval-{}.json", e["index"]));
                fs::write(&path, event["statement"].to_string()).unwrap();
                let out = run(custody()
                    .args(["dsse", "verify", "--key"])
                    .arg(&key)
                    .arg(&path));
                expect_code(&out, 0);
                let other = w.root.join("rogue.pub");
                let out = run(custody()
                    .args(["dsse", "verify", "--key"])
                    .arg(&other)
                    .arg(&path));
                expect_code(&out, 1);
                (&event["statement"], key)
            }
            "decision.recorded" => (&event["vsa"], attestor.clone()),
            "release.created" if event["release"] == "shop@1.0.0" => {
                (&event["manifest"], w.root.join("release.pub"))
            }
            "artifact.registered" => (&event["provenance"], w.root.join("builder.pub")),
            _ => continue,
        };
        let env_path = w.root.join(format!("envelope-{}.json", e["index"]));
        fs::write(&env_path, envelope.to_string()).unwrap();
        let out = run(python_script("sslib_verify.py")
            .arg(&env_path)
            .arg("1")
            .arg(&key));
        expect_code(&out, 0);
        let payload = base64_decode(envelope["payload"].as_str().unwrap());
        let statement_path = w.root.join(format!("statement-{}.json", e["index"]));
        fs::write(&statement_path, &payload).unwrap();
        let out = run(python_script("statement_validate.py").arg(&statement_path));
        expect_code(&out, 0);
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
    assert!(approvals >= 3, "signed approvals checked: {approvals}");
    // And a tampered VSA does not verify.
    let vsa = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "decision.recorded")
        .unwrap();
    let mut forged = vsa["event"]["vsa"].clone();
    let payload = base64_decode(forged["payload"].as_str().unwrap());
    let text = String::from_utf8(payload)
        .unwrap()
        .replace("FAILED", "PASSED");
    forged["payload"] = Value::from(base64_encode(text.as_bytes()));
    let path = w.root.join("forged.json");
    fs::write(&path, forged.to_string()).unwrap();
    let out = run(python_script("sslib_verify.py")
        .arg(&path)
        .arg("1")
        .arg(&attestor));
    expect_code(&out, REFUSED);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
