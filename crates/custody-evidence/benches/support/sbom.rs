//! The generated CycloneDX SBOM the bench and `bench/sbom-vs-python.sh` parse.

/// A CycloneDX 1.6 document of `n` components, each padded with the hashes, properties
/// and references real generators write (which the parser must skip), about 2.5 KB each.
pub(crate) fn sbom(n: usize) -> Vec<u8> {
    let mut out =
        String::from(r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let licence = match i % 4 {
            0 => r#"[{"license":{"id":"MIT"}}]"#,
            1 => r#"[{"expression":"Apache-2.0 OR MIT"}]"#,
            2 => r#"[{"license":{"name":"Custom EULA"}}]"#,
            _ => "[]",
        };
        out.push_str(&format!(
            r#"{{"type":"library","bom-ref":"pkg:npm/p{i}@1.{i}.0","name":"package-{i}","version":"1.{i}.0","purl":"pkg:npm/package-{i}@1.{i}.0","licenses":{licence},"description":"{desc}","hashes":[{{"alg":"SHA-256","content":"{h}"}},{{"alg":"SHA-512","content":"{h}{h}"}}],"externalReferences":[{{"type":"vcs","url":"https://example.invalid/p/{i}.git"}},{{"type":"website","url":"https://example.invalid/p/{i}"}}],"properties":[{p}]}}"#,
            desc = "A package that does a thing, described at length. ".repeat(26),
            h = "0123456789abcdef".repeat(4),
            p = (0..12).map(|k| format!(r#"{{"name":"build:prop{k}","value":"value-{k}-for-{i}"}}"#)).collect::<Vec<_>>().join(","),
        ));
    }
    out.push_str("]}");
    out.into_bytes()
}
