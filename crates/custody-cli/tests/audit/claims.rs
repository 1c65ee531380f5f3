//! What the manifest says and nothing signs (who exported the bundle, when, its scope):
//! an edited claim does not fail verification, since nothing vouched for it, but the
//! report shows it only apart, as the exporter's unverified claim, never among the
//! verified facts (in the JSON, the text and the HTML report).

use serde_json::{Value, json};

use super::common::*;
use super::{log_pub, python_verify, tampered, verify};

#[test]
fn edited_exporter_and_scope_still_verify_but_are_reported_only_as_unverified_claims() {
    let (by, release, at) = (
        "mallory-edited-this",
        "forged@6.6.6",
        "1999-12-31T23:59:59Z",
    );
    let path = tampered("edited-claims", |b| {
        let manifest = b.member("bundle.json");
        let mut m: Value = serde_json::from_slice(manifest).unwrap();
        m["exported_by"] = by.into();
        m["exported_at"] = at.into();
        m["scope"] = json!({"kind": "release", "release": release});
        *manifest = serde_json::to_vec(&m).unwrap();
    });
    // JSON: the claims are under `unverified`, said so, and nowhere else.
    let (code, mut r, err) = verify(&path);
    assert_eq!(code, 0, "{r:#} {err}");
    let claims = r.as_object_mut().unwrap().remove("unverified").unwrap();
    assert_eq!(claims["exported_by"], by);
    assert_eq!(claims["scope"]["release"], release);
    assert!(
        claims["status"]
            .as_str()
            .unwrap()
            .starts_with("unverified: as claimed by the exporter"),
        "{claims:#}"
    );
    let verified = r.to_string();
    for claim in [by, release, "1999-12-31"] {
        assert!(
            !verified.contains(claim),
            "{claim} among the verified facts: {r:#}"
        );
    }
    assert_eq!(python_verify(&path).0, 0);

    // Text: the claims only in their block, headed as unverified.
    let html = path.with_extension("html");
    let out = run(custody()
        .args(["audit", "verify", "--log-key"])
        .arg(log_pub())
        .arg(&path)
        .arg("--html")
        .arg(&html));
    expect_code(&out, 0);
    let text = stdout(&out);
    let header = "  unverified: as claimed by the exporter";
    let (before, block) = text.split_once(header).unwrap_or_else(|| panic!("{text}"));
    // The block is its header's line and the lines indented under it.
    let claimed: Vec<&str> = block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    let after: Vec<&str> = block.lines().skip(1 + claimed.len()).collect();
    assert!(claimed.iter().any(|l| l.contains(by)), "{text}");
    assert!(claimed.iter().any(|l| l.contains(release)), "{text}");
    for outside in [before.to_owned(), after.join("\n")] {
        for claim in [by, release] {
            assert!(
                !outside.contains(claim),
                "{claim} outside the claims: {text}"
            );
        }
    }
    assert!(text.contains("ok: every check passed"), "{text}");

    // HTML: only in the #unverified section, which says what it is.
    let page = std::fs::read_to_string(&html).unwrap();
    let start = page
        .find("<section id=\"unverified\">")
        .unwrap_or_else(|| panic!("no #unverified section"));
    let end = start + page[start..].find("</section>").unwrap();
    let section = &page[start..end];
    assert!(section.contains("Unverified: as claimed by the exporter"));
    assert!(
        section.contains(by) && section.contains(release),
        "{section}"
    );
    assert!(
        page.contains("Completeness against truncation: NOT checked"),
        "the page does not say truncation was not checked"
    );
    let rest = format!("{}{}", &page[..start], &page[end..]);
    for claim in [by, release] {
        assert!(!rest.contains(claim), "{claim} outside #unverified");
    }
}
