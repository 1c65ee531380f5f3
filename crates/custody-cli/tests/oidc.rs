//! CI workload identity over real HTTP: OIDC ID tokens signed by a test issuer's key verify
//! (from a JWKS file, and from a JWKS URL that rotates its keys), map to a principal by claim
//! rules, and get that principal's roles; a wrong or missing audience, an expired token, one
//! issued in the future or living a century, an unknown key id, a key used with another
//! algorithm than its JWK says, `alg: none`, an HMAC token made with the public key, a token
//! from an issuer not configured, claims no rule maps, and a claim that tries to fill
//! another claim's placeholder are all refused. An issuer that never answers does not keep
//! the server from starting.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::io::BufRead;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn jwks(pub_pem: &Path, kid: &str) -> Value {
    let key =
        custody_crypto::PublicKey::from_pem(&std::fs::read_to_string(pub_pem).unwrap()).unwrap();
    let raw = key.raw_bytes(); // SEC1 uncompressed: 0x04 ‖ x ‖ y
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    }]})
}

fn now() -> i64 {
    use custody_app::Clock as _;
    custody_app::SystemClock.now().unix_seconds()
}

/// An RSA private key (PKCS#8 PEM), made once with openssl… or rather, by Python's
/// `cryptography`, which the interop venv has.
fn rsa_pem() -> Vec<u8> {
    let out = run(std::process::Command::new(python()).args([
        "-c",
        "from cryptography.hazmat.primitives.asymmetric import rsa;\
         from cryptography.hazmat.primitives import serialization as s;\
         k = rsa.generate_private_key(public_exponent=65537, key_size=2048);\
         print(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode())",
    ]));
    expect_code(&out, 0);
    out.stdout
}

fn sign(key: &Path, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(key).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

async fn verify_as(base: &str, token: &str) -> (u16, Value) {
    let r = http()
        .get(format!(
            "{base}/api/v1/verify?env=production&digest=sha256:{}",
            "a".repeat(64)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_id_tokens_verify_map_to_principals_and_forgeries_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let (gh_key, gh_pub) = generate_key(temp.path(), "github", "ecdsa-p256");
    let (gl_key, gl_pub) = generate_key(temp.path(), "gitlab", "ecdsa-p256");
    std::fs::create_dir_all(data.join("oidc")).unwrap();
    std::fs::write(
        data.join("oidc/github.json"),
        jwks(&gh_pub, "gh-1").to_string(),
    )
    .unwrap();
    // The second issuer's keys are served over HTTP, as an issuer's JWKS URL is.
    let site = temp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("jwks.json"), jwks(&gl_pub, "gl-1").to_string()).unwrap();
    let mut http = std::process::Command::new(python())
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&site)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(http.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .split("port ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    let config = data.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[[oidc]]
issuer = "https://token.actions.example"
audience = "custody"
jwks_file = "oidc/github.json"

[[oidc.rule]]
claims = {{ repository = "acme/*", ref = "refs/heads/main" }}
principal = "ci:{{repository}}"

[[oidc.rule]]
claims = {{ repository = "acme/*", workflow = "main" }}
principal = "gh:{{repository}}:ref:{{ref}}"

[[oidc]]
issuer = "https://silent.example"
audience = "custody"
jwks_url = "https://127.0.0.1:9/never-answers.json"

[[oidc.rule]]
claims = {{ sub = "*" }}
principal = "silent:{{sub}}"

[[oidc]]
issuer = "https://gitlab.example"
audience = "custody"
jwks_url = "http://127.0.0.1:{port}/jwks.json"
insecure_http = true

[[oidc.rule]]
claims = {{ project_path = "acme/shop" }}
principal = "gitlab:{{project_path}}"
"#
    ));
    std::fs::write(&config, text).unwrap();
    let policy = data.join("policy/custody.toml");
    let p = std::fs::read_to_string(&policy).unwrap().replace(
        "[roles]\n",
        "[roles]\ndeployer = [\"ci:acme/shop\"]\nviewer = [\"gitlab:acme/shop\"]\n",
    );
    std::fs::write(&policy, p).unwrap();
    expect_code(
        &run(custody()
            .args(["policy", "propose", "--data-dir"])
            .arg(&data)),
        0,
    );

    // The silent issuer's keys never arrive: the server starts anyway.
    let server = Server::start(&data);
    let b = server.base.clone();
    let claims = |extra: Value| {
        let mut c = json!({
            "iss": "https://token.actions.example", "aud": "custody", "exp": now() + 600,
            "iat": now() - 5, "sub": "repo:acme/shop:ref:refs/heads/main",
            "repository": "acme/shop", "ref": "refs/heads/main", "workflow": "release",
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };

    // A CI job's token: the deployer's verdict, not a refusal of identity.
    let (status, verdict) = verify_as(&b, &sign(&gh_key, "gh-1", &claims(json!({})))).await;
    assert_eq!(status, 403, "{verdict}");
    assert_eq!(verdict["allowed"], false, "{verdict}");
    // From the URL-configured issuer too.
    let gl = json!({"iss": "https://gitlab.example", "aud": "custody", "exp": now() + 600, "iat": now(), "project_path": "acme/shop"});
    let (status, verdict) = verify_as(&b, &sign(&gl_key, "gl-1", &gl)).await;
    assert_eq!(
        (status, verdict["allowed"].clone()),
        (403, Value::Bool(false)),
        "{verdict}"
    );

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"gh-1"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let hmac = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("gh-1".into());
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(&std::fs::read(&gh_pub).unwrap()),
        )
        .unwrap()
    };
    let refusals = [
        (
            "wrong audience",
            sign(&gh_key, "gh-1", &claims(json!({"aud": "someone-else"}))),
            "does not verify",
        ),
        (
            "expired",
            sign(&gh_key, "gh-1", &claims(json!({"exp": now() - 3600}))),
            "does not verify",
        ),
        (
            "no audience",
            sign(&gh_key, "gh-1", &{
                let mut c = claims(json!({}));
                c.as_object_mut().unwrap().remove("aud");
                c
            }),
            "does not verify",
        ),
        (
            "issued a year from now",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"iat": now() + 365 * 86_400, "exp": now() + 365 * 86_400 + 600})),
            ),
            "in the future",
        ),
        (
            "not valid before a year from now",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"nbf": now() + 365 * 86_400})),
            ),
            "does not verify",
        ),
        (
            "valid for a century",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"exp": now() + 100 * 365 * 86_400})),
            ),
            "at most",
        ),
        (
            "a branch named like a placeholder",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"ref": "refs/heads/{workflow}", "workflow": "main"})),
            ),
            "cannot name a principal",
        ),
        (
            "unknown key id",
            sign(&gh_key, "gh-9", &claims(json!({}))),
            "key id \"gh-9\"",
        ),
        (
            "signed by another key",
            sign(&gl_key, "gh-1", &claims(json!({}))),
            "does not verify",
        ),
        ("alg none", none, "not a valid ID token"),
        ("HMAC with the public key", hmac, "not accepted"),
        (
            "issuer not configured",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"iss": "https://evil.example"})),
            ),
            "not trusted",
        ),
        (
            "no rule maps it",
            sign(
                &gh_key,
                "gh-1",
                &claims(json!({"ref": "refs/heads/feature"})),
            ),
            "no [[oidc.rule]]",
        ),
    ];
    // The ES256 key used for PS256: refused by the key's own algorithm.
    let ps = {
        let mut header = Header::new(Algorithm::PS256);
        header.kid = Some("gh-1".into());
        let rsa = rsa_pem();
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_rsa_pem(&rsa).unwrap(),
        )
        .unwrap()
    };
    let (status, reply) = verify_as(&b, &ps).await;
    assert_eq!(status, 401, "{reply}");
    let silent = sign(
        &gh_key,
        "s-1",
        &json!({"iss": "https://silent.example", "aud": "custody", "exp": now() + 600, "iat": now(), "sub": "x"}),
    );
    let (status, reply) = verify_as(&b, &silent).await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("cannot be checked now"),
        "{reply}"
    );
    // The URL issuer rotates to a new key: a token under it is checked after one fetch.
    let (gl2_key, gl2_pub) = generate_key(temp.path(), "gitlab-2", "ecdsa-p256");
    std::fs::write(site.join("jwks.json"), jwks(&gl2_pub, "gl-2").to_string()).unwrap();
    let (status, verdict) = verify_as(&b, &sign(&gl2_key, "gl-2", &gl)).await;
    assert_eq!(
        (status, verdict["allowed"].clone()),
        (403, Value::Bool(false)),
        "{verdict}"
    );
    let _ = http.kill();
    let _ = http.wait();
    for (what, token, needle) in refusals {
        let (status, reply) = verify_as(&b, &token).await;
        assert_eq!(status, 401, "{what}: {reply}");
        let message = reply["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: {needle:?} not in {message:?}"
        );
    }
    // The mapped identity is who the access log names.
    let root = {
        let out = run(custody()
            .args(["token", "create", "--principal", "root", "--data-dir"])
            .arg(&data));
        expect_code(&out, 0);
        stdout(&out).trim().to_owned()
    };
    grant_admin(&data, "root");
    // Until the server has seen the grant (another process's write).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let log: Value = loop {
        let answer = common::http()
            .get(format!("{b}/api/v1/access-log?limit=1000"))
            .bearer_auth(&root)
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            break answer.json().await.unwrap();
        }
        assert!(
            answer.status() == 403 && std::time::Instant::now() < deadline,
            "{}",
            answer.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["principal"] == "ci:acme/shop"),
        "{log}"
    );
    assert!(server.stop().success());
}

fn grant_admin(data: &Path, who: &str) {
    let policy = data.join("policy/custody.toml");
    let p = with_roles(
        &std::fs::read_to_string(&policy).unwrap(),
        &format!("admin = [\"{who}\"]"),
    );
    std::fs::write(&policy, p).unwrap();
    expect_code(
        &run(custody()
            .args(["policy", "propose", "--data-dir"])
            .arg(data)),
        0,
    );
    until_servers_see_local_writes();
}
