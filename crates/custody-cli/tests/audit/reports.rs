//! The raw reports custody read travel in the bundle byte for byte, named by their
//! SHA-256 and equal to what the server serves; a changed, swapped, removed, added or
//! renamed report is caught, named by the entry that names it.

use serde_json::Value;

use super::bundle::{Bundle, event};
use super::common::*;
use super::{caught, fixture, tampered, verify};

/// The members holding raw reports: (name, bytes).
fn raw_reports(b: &Bundle) -> Vec<(String, Vec<u8>)> {
    b.members
        .iter()
        .filter(|(n, _)| n.starts_with("reports/sha256/"))
        .cloned()
        .collect()
}

/// Sets `end.json`'s count of reports to what the bundle holds, as a careful forger would.
fn recount_reports(b: &mut Bundle) {
    let n = raw_reports(b).len();
    let mut end: Value = serde_json::from_slice(b.member("end.json")).unwrap();
    end["reports"] = n.into();
    *b.member("end.json") = serde_json::to_vec(&end).unwrap();
}

#[test]
fn the_raw_reports_travel_byte_for_byte_and_a_changed_or_removed_one_is_caught() {
    use sha2::Digest as _;
    let f = fixture();
    let b = Bundle::read(&f.all);
    // Every report an evidence entry says custody read is in the bundle, named by the
    // SHA-256 of its bytes, and is exactly what the server serves as that report.
    let named: Vec<(u64, String)> = b
        .entries()
        .iter()
        .filter(|(_, _, line)| {
            let e = event(line);
            e["type"] == "evidence.attached" && e.get("report").is_some()
        })
        .map(|(_, _, line)| {
            let e = event(line);
            (
                line["index"].as_u64().unwrap(),
                e["evidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(named.len() >= 9, "{named:?}");
    let reports = raw_reports(&b);
    for (_, digest) in &named {
        let name = digest.replace("sha256:", "reports/sha256/");
        let (_, bytes) = reports.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
            *digest
        );
        let served = run(custody()
            .args(["report", digest, "--data-dir"])
            .arg(&f.data));
        expect_code(&served, 0);
        assert_eq!(served.stdout, *bytes, "{digest}");
    }
    let (_, r, _) = verify(&f.all);
    assert_eq!(
        r["checked"]["reports"].as_u64(),
        Some(reports.len() as u64),
        "{r:#}"
    );

    // One changed byte in a report: named, with the first entry that names it.
    let (first_report, _) = &reports[0];
    let naming = named
        .iter()
        .find(|(_, d)| d.replace("sha256:", "reports/sha256/") == *first_report)
        .unwrap()
        .0;
    let path = tampered("report-byte", |b| {
        let bytes = b.member(first_report);
        let at = bytes.len() / 2;
        bytes[at] = if bytes[at] == b' ' { b'\t' } else { b' ' };
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"].to_string().contains("the report was altered"),
        "{r:#}"
    );

    // One report's bytes put under another's name.
    let path = tampered("report-swapped", |b| {
        let other = raw_reports(b)[1].1.clone();
        *b.member(first_report) = other;
    });
    caught(&path, Some(naming), "report");

    // A removed report, the trailer recounted: the entry naming it says it is gone.
    let path = tampered("report-removed", |b| {
        b.members.retain(|(n, _)| n != first_report);
        recount_reports(b);
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"].to_string().contains("is not in the bundle"),
        "{r:#}"
    );
    // A report nobody names, counted in: an export carries only named reports.
    let path = tampered("report-added", |b| {
        let end = b.members.len() - 1;
        let bytes = b"{\"SchemaVersion\": 2, \"Results\": []}".to_vec();
        let name = format!(
            "reports/sha256/{}",
            hex::encode(sha2::Sha256::digest(&bytes))
        );
        b.members.insert(end, (name, bytes));
        recount_reports(b);
    });
    caught(&path, None, "report");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"]
            .to_string()
            .contains("the entry that named it was removed or altered, or the report was added"),
        "{r:#}"
    );
    // A report under another name (and so out of order): its own entry is told it is
    // missing, and nothing blames the reports around it.
    let path = tampered("report-renamed", |b| {
        let at = b
            .members
            .iter()
            .position(|(n, _)| n == first_report)
            .unwrap();
        b.members[at].0 = format!("reports/sha256/{}", "f".repeat(64));
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    let failures = r["failures"].as_array().unwrap();
    assert!(failures.len() <= 3, "{failures:#?}");
    // Removed without recounting: the trailer says so too.
    let path = tampered("report-removed-uncounted", |b| {
        b.members.retain(|(n, _)| n != first_report);
    });
    caught(&path, None, "trailer");
}
