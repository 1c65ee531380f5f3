//! Writes the bench's generated CycloneDX SBOM (20,000 components, about 50 MB) to a
//! file: `make_sbom FILE [COMPONENTS]`. Used by `bench/sbom-vs-python.sh`.

#![allow(clippy::unwrap_used, missing_docs, reason = "a bench helper")]

#[path = "../benches/support/sbom.rs"]
mod sbom_gen;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.get(1).map_or(20_000, |s| s.parse().unwrap());
    std::fs::write(&args[0], sbom_gen::sbom(n)).unwrap();
}
