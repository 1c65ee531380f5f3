//! `custody dsse`: sign and verify DSSE envelopes.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use custody_crypto::Signer;
use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use rayon::prelude::*;
use serde_json::json;

use crate::Outcome;
use crate::input::{
    MAX_DOCUMENT, load_public_key, load_signer, print_json, print_line, read_limited,
};

#[derive(Debug, Subcommand)]
pub(crate) enum DsseCommand {
    /// Sign a file into a DSSE v1.0.2 envelope, printed as JSON on stdout.
    ///
    /// Example: custody dsse sign --key builder.key --payload-type application/vnd.in-toto+json statement.json > statement.dsse.json
    Sign(SignArgs),
    /// Verify DSSE envelopes against trusted public keys. Exits 0 only if every envelope
    /// carries valid signatures from at least --threshold distinct trusted keys.
    ///
    /// Several envelopes may be given (or, with --jsonl, files of one envelope per line);
    /// they are verified in parallel and summarised.
    ///
    /// Example: custody dsse verify --key builder.pub statement.dsse.json
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum KeyIdArg {
    /// custody's key id: hex SHA-256 of the public key's SPKI DER.
    Custody,
    /// The key id securesystemslib computes, so Python verifiers find the key.
    Securesystemslib,
    /// No keyid hint.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// Private key (PKCS#8 PEM file, or a `pkcs11:` URI naming a key in a token). Repeat to
    /// add one signature per key.
    #[arg(long = "key", required = true, value_name = "KEY")]
    keys: Vec<PathBuf>,
    /// The payload type, e.g. application/vnd.in-toto+json.
    #[arg(long, value_name = "TYPE")]
    payload_type: String,
    /// Which key id to put in each signature's `keyid` hint.
    #[arg(long, value_enum, default_value = "custody")]
    keyid: KeyIdArg,
    /// The payload file; `-` reads standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// A trusted public key (SPKI PEM). Repeat for several.
    #[arg(long = "key", required = true, value_name = "PUB")]
    keys: Vec<PathBuf>,
    /// How many distinct trusted keys must have signed.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// Each ENVELOPE file holds one envelope per line (JSON Lines).
    #[arg(long)]
    jsonl: bool,
    /// Write the verified payload here (one envelope only).
    #[arg(long, value_name = "FILE")]
    payload_out: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Envelope files; `-` reads standard input.
    #[arg(required = true, value_name = "ENVELOPE")]
    envelopes: Vec<PathBuf>,
}

pub(crate) fn run(command: DsseCommand) -> anyhow::Result<Outcome> {
    match command {
        DsseCommand::Sign(a) => sign(a),
        DsseCommand::Verify(a) => verify(a),
    }
}

fn sign(args: SignArgs) -> anyhow::Result<Outcome> {
    let hint = match args.keyid {
        KeyIdArg::Custody => KeyIdHint::KeyId,
        KeyIdArg::Securesystemslib => KeyIdHint::Securesystemslib,
        KeyIdArg::None => KeyIdHint::Omit,
    };
    let keys = args
        .keys
        .iter()
        .map(|p| load_signer(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let payload = read_limited(&args.file, MAX_DOCUMENT, "payload")?;
    let mut envelope: Option<Envelope> = None;
    for key in &keys {
        match &mut envelope {
            None => envelope = Some(dsse::sign(key, &args.payload_type, &payload, hint)?),
            Some(env) => env.add_signature(key, hint)?,
        }
        eprintln!(
            "signed with {} key {}",
            key.public_key().algorithm(),
            key.key_id()
        );
    }
    if let Some(env) = envelope {
        print_line(&env.to_json());
    }
    Ok(Outcome::Ok)
}

/// One envelope to check, and where it came from (for messages).
struct Item {
    source: String,
    /// The envelope's index among the well-formed ones, or why it is malformed.
    parsed: Result<usize, String>,
}

fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let trusted = args
        .keys
        .iter()
        .map(|p| load_public_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.threshold == 0 {
        bail!("--threshold must be at least 1");
    }
    if args.threshold > trusted.len() {
        bail!(
            "--threshold {} is more than the {} trusted key(s) given: it can never be met",
            args.threshold,
            trusted.len()
        );
    }

    let mut items = Vec::new();
    let mut envelopes: Vec<Envelope> = Vec::new();
    let mut parse = |source: String, bytes: &[u8]| {
        let parsed = Envelope::from_json(bytes)
            .map(|env| {
                envelopes.push(env);
                envelopes.len() - 1
            })
            .map_err(|e| e.to_string());
        items.push(Item { source, parsed });
    };
    for path in &args.envelopes {
        let bytes = read_limited(path, MAX_DOCUMENT, "envelope")?;
        if args.jsonl {
            for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    parse(format!("{}:{}", path.display(), n + 1), line);
                }
            }
        } else {
            parse(path.display().to_string(), &bytes);
        }
    }
    if args.payload_out.is_some() && items.len() != 1 {
        bail!(
            "--payload-out needs exactly one envelope, got {}",
            items.len()
        );
    }

    let started = Instant::now();
    // Well-formed envelopes are verified in chunks, one chunk per core at a time
    // (`dsse::verify_many`, which verifies exactly as `dsse::verify` does).
    let outcomes: Vec<_> = envelopes
        .par_chunks(256)
        .flat_map_iter(|chunk| dsse::verify_many(chunk, &trusted, args.threshold))
        .collect();
    // `true` in an error: the input was malformed (exit 2), not merely unverified (exit 1).
    let results: Vec<Result<&dsse::VerifiedPayload, (bool, String)>> = items
        .iter()
        .map(|item| match &item.parsed {
            Ok(i) => outcomes[*i].as_ref().map_err(|e| (false, e.to_string())),
            Err(e) => Err((true, e.clone())),
        })
        .collect();
    let elapsed = started.elapsed();

    let verified = results.iter().filter(|r| r.is_ok()).count();
    let malformed = results.iter().any(|r| matches!(r, Err((true, _))));
    if args.json {
        let list: Vec<_> = items
            .iter()
            .zip(&results)
            .map(|(item, r)| match r {
                Ok(v) => json!({
                    "source": item.source,
                    "verified": true,
                    "payload_type": v.payload_type(),
                    "key_ids": v.key_ids().iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
                Err((_, e)) => json!({"source": item.source, "verified": false, "error": e}),
            })
            .collect();
        print_json(&json!({
            "total": items.len(),
            "verified": verified,
            "failed": items.len() - verified,
            "threshold": args.threshold,
            "results": list,
        }));
    } else {
        for (item, r) in items.iter().zip(&results) {
            match r {
                Ok(v) if items.len() == 1 => {
                    let ids: Vec<_> = v.key_ids().iter().map(ToString::to_string).collect();
                    print_line(&format!(
                        "verified: {} of {} required trusted key(s) signed this {} envelope: {}",
                        ids.len(),
                        args.threshold,
                        v.payload_type(),
                        ids.join(", ")
                    ));
                }
                Ok(_) => {}
                Err((_, e)) => eprintln!("{}: {e}", item.source),
            }
        }
        if items.len() > 1 {
            print_line(&format!(
                "{} envelopes: {verified} verified, {} failed ({:.0} envelopes/s)",
                items.len(),
                items.len() - verified,
                items.len() as f64 / elapsed.as_secs_f64().max(1e-9)
            ));
        }
    }
    if let (Some(out), [Ok(v)]) = (&args.payload_out, results.as_slice()) {
        fs::write(out, v.payload()).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(if malformed {
        bail!("some envelopes are malformed (see above)");
    } else if verified == items.len() {
        Outcome::Ok
    } else {
        Outcome::Denied
    })
}
