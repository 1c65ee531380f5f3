//! `custody note`: C2SP signed notes, the format of ledger checkpoints and witness
//! cosignatures.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use custody_crypto::Error as CryptoError;
use custody_crypto::note::{self, MAX_NOTE_LEN, NoteSigner, NoteVerifier};
use serde_json::json;

use crate::Outcome;
use crate::input::{load_signer, print_json, print_line, print_raw, read_text};

#[derive(Debug, Subcommand)]
pub(crate) enum NoteCommand {
    /// Sign a text file as a C2SP signed note with an Ed25519 key; prints the note.
    ///
    /// The text must end with a newline. The verifier key to hand out is printed by
    /// `custody key show --note-name NAME KEY.pub`.
    Sign(SignArgs),
    /// Verify a signed note: exit 0 if a known key signed it, 1 if a known key's signature
    /// fails or none is present, 2 if the note is malformed. Signatures by keys not given
    /// (e.g. witnesses' cosignatures) are ignored.
    ///
    /// Example: custody note verify --verifier 'log.example+3f2a9c1d+AXk…' checkpoint.txt
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// Ed25519 private key (PKCS#8 PEM file, or a `pkcs11:` URI naming a key in a token).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The key name written on the signature line (for a log: its origin).
    #[arg(long)]
    name: String,
    /// The text to sign; `-` reads standard input.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// A trusted verifier key, `name+hash+base64`. Repeat for several.
    #[arg(long = "verifier", required = true, value_name = "VKEY")]
    verifiers: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The signed note; `-` reads standard input.
    file: PathBuf,
}

pub(crate) fn run(command: NoteCommand) -> anyhow::Result<Outcome> {
    match command {
        NoteCommand::Sign(a) => sign(a),
        NoteCommand::Verify(a) => verify(a),
    }
}

fn sign(args: SignArgs) -> anyhow::Result<Outcome> {
    let signer = NoteSigner::new(&args.name, load_signer(&args.key)?)?;
    let text = read_text(&args.file, MAX_NOTE_LEN as u64, "note text")?;
    let signed = note::sign(&text, &[&signer])?;
    // The note already ends with a newline.
    print_raw(&signed);
    Ok(Outcome::Ok)
}

fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let verifiers = args
        .verifiers
        .iter()
        .map(|v| NoteVerifier::from_text(v).with_context(|| format!("--verifier {v:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = read_text(&args.file, MAX_NOTE_LEN as u64, "signed note")?;
    match note::open(&text, &verifiers) {
        Ok(opened) => {
            if args.json {
                print_json(&json!({
                    "verified": true,
                    "verified_by": opened.verified_by(),
                    "unknown_signatures": opened.unknown_signatures(),
                    "text": opened.text(),
                }));
            } else {
                print_line(&format!(
                    "verified: signed by {} ({} signature(s) by other keys ignored)",
                    opened.verified_by().join(", "),
                    opened.unknown_signatures()
                ));
            }
            Ok(Outcome::Ok)
        }
        Err(e @ CryptoError::BadSignature(_)) => {
            if args.json {
                print_json(&json!({"verified": false, "error": e.to_string()}));
            }
            eprintln!("{}: {e}", args.file.display());
            Ok(Outcome::Denied)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", args.file.display())),
    }
}
