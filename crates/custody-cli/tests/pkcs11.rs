//! A key in a PKCS#11 token signs wherever a key file does: the CLI takes a `pkcs11:` URI in
//! place of a PEM path (`input::load_signer`). The token is a real SoftHSM2 token in a
//! temporary directory, set up with Debian's `softhsm2-util`; the key pairs are made by
//! `custody key generate` and imported, so the token key must have the file key's key id.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::token::{MODULE, Token};
use common::*;

#[test]
fn a_pkcs11_uri_signs_wherever_a_key_file_does() {
    let token = Token::new();
    let dir = token.dir.path();
    let payload = dir.join("statement.json");
    std::fs::write(&payload, br#"{"_type":"https://in-toto.io/Statement/v1"}"#).unwrap();
    for (i, algorithm) in ["ecdsa-p256", "ed25519"].into_iter().enumerate() {
        let (key, public) = generate_key(dir, algorithm, algorithm);
        token.import(&key, algorithm, &format!("0{i}"));
        let out = run(token
            .custody()
            .args(["dsse", "sign", "--payload-type", "t", "--key"])
            .arg(token.uri(algorithm, "pin.txt"))
            .arg(&payload));
        expect_code(&out, 0);
        let envelope = dir.join(format!("{algorithm}.dsse.json"));
        std::fs::write(&envelope, &out.stdout).unwrap();
        let out = run(custody()
            .args(["dsse", "verify", "--key"])
            .arg(&public)
            .arg(&envelope));
        expect_code(&out, 0);
    }

    // A signed note (log key) from the token, checked with the file key's verifier text.
    let out = run(custody()
        .args(["key", "show", "--note-name", "log", "--json"])
        .arg(dir.join("ed25519.pub")));
    expect_code(&out, 0);
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let note = dir.join("note.txt");
    std::fs::write(&note, "log\n1\nAAAA\n").unwrap();
    let out = run(token
        .custody()
        .args(["note", "sign", "--name", "log", "--key"])
        .arg(token.uri("ed25519", "pin.txt"))
        .arg(&note));
    expect_code(&out, 0);
    let signed = dir.join("note.signed");
    std::fs::write(&signed, &out.stdout).unwrap();
    let out = run(custody()
        .args(["note", "verify", "--verifier"])
        .arg(show["note_verifier_key"].as_str().unwrap())
        .arg(&signed));
    expect_code(&out, 0);
}

#[test]
fn a_wrong_pin_or_label_is_named_and_a_pin_in_the_uri_refused() {
    let token = Token::new();
    let dir = token.dir.path();
    let (key, _) = generate_key(dir, "k", "ecdsa-p256");
    token.import(&key, "release", "01");
    std::fs::write(dir.join("bad-pin.txt"), "0000\n").unwrap();
    std::fs::write(dir.join("p"), "x").unwrap();
    let sign = |key: &str| {
        run(token
            .custody()
            .args(["dsse", "sign", "--payload-type", "t", "--key", key])
            .arg(dir.join("p")))
    };
    expect_refusal(
        &sign(&token.uri("release", "bad-pin.txt")),
        2,
        "wrong PIN for token \"custody\"",
    );
    expect_refusal(
        &sign(&token.uri("relase", "pin.txt")),
        2,
        "no private key labelled \"relase\"",
    );
    expect_refusal(
        &sign(&format!(
            "pkcs11:token=custody;object=release?module-path={MODULE}&pin-value=4711"
        )),
        2,
        "pin-value is refused",
    );
}
