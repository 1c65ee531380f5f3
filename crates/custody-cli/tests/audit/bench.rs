//! `custody bench audit` on small bundles: both verify, the Python verifier agrees and is
//! timed beside it, and the signatures' own time bounds the factor over Python.

use super::*;

#[test]
fn the_audit_bench_verifies_both_bundles_and_bounds_the_factor_over_python() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/audit_verify.py");
    let out = run(custody()
        .current_dir(dir.path())
        .args(["bench", "audit", "--entries", "3000", "--json", "--python"])
        .arg(python())
        .arg("--python-verifier")
        .arg(&script));
    expect_code(&out, 0);
    let bench: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = bench["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["bundle"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hashing", "signed"]);
    for r in results {
        assert_eq!(r["entries"], 3000, "{r}");
        assert!(r["python_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["times_python"].as_f64().unwrap() > 0.0, "{r}");
    }
    let signed = &results[1];
    // Every fourth entry carries a signed provenance envelope.
    assert!(signed["envelopes"].as_u64().unwrap() >= 700, "{signed}");
    assert!(
        signed["signatures"].as_u64() >= signed["envelopes"].as_u64(),
        "{signed}"
    );
    let alone = signed["signatures_alone_seconds"].as_f64().unwrap();
    let ceiling = signed["ceiling_times_python"].as_f64().unwrap();
    let python = signed["python_seconds"].as_f64().unwrap();
    assert!(alone > 0.0, "{signed}");
    assert!(
        (ceiling - python / alone).abs() < 1e-6 * ceiling,
        "{signed}"
    );
    // The bundles were made in a temporary directory and removed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
