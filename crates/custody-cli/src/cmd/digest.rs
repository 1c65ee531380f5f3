//! `custody digest`: content digests of files, the way artifacts are identified.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use custody_crypto::hashing::digest_reader;
use custody_model::DigestAlgorithm;
use serde_json::json;

use crate::Outcome;
use crate::input::{print_json, print_line};

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgorithmArg {
    Sha256,
    Sha512,
}

/// Print `sha256:HEX  FILE` for each file, reading it once in constant memory.
///
/// The digest is the artifact's identity everywhere in custody (OCI style). Large files show
/// a progress bar on a terminal.
#[derive(Debug, Args)]
pub(crate) struct DigestArgs {
    /// Files to hash; `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The hash algorithm.
    #[arg(long, value_enum, default_value = "sha256")]
    algorithm: AlgorithmArg,
    /// Print a JSON array of {"file", "digest", "size"}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: DigestArgs) -> anyhow::Result<Outcome> {
    let algorithm = match args.algorithm {
        AlgorithmArg::Sha256 => DigestAlgorithm::Sha256,
        AlgorithmArg::Sha512 => DigestAlgorithm::Sha512,
    };
    let mut results = Vec::new();
    for path in &args.files {
        let (digest, size) = if path.as_os_str() == "-" {
            let mut size = 0;
            let d = digest_reader(std::io::stdin(), algorithm, |n| size = n)
                .context("reading standard input")?;
            (d, size)
        } else {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let len = file
                .metadata()
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            let bar =
                crate::progress::bytes_bar(len, PROGRESS_THRESHOLD, &path.display().to_string());
            let mut size = 0;
            let d = digest_reader(file, algorithm, |n| {
                size = n;
                bar.set_position(n);
            })
            .with_context(|| format!("reading {}", path.display()))?;
            bar.finish_and_clear();
            (d, size)
        };
        if args.json {
            results.push(json!({"file": path, "digest": digest.to_string(), "size": size}));
        } else {
            print_line(&format!("{digest}  {}", path.display()));
        }
    }
    if args.json {
        print_json(&serde_json::Value::Array(results));
    }
    Ok(Outcome::Ok)
}
