//! The sign-in's own checks on locally signed ID tokens (the flow against a real provider
//! is tested end to end by custody-cli's `dashboard_oidc` tests): the nonce binds a token
//! to its sign-in, the audience is the client id, `azp` with several audiences, flights
//! are single-use and expire, and the PKCE challenge is RFC 7636's.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custody_crypto::{Algorithm, PrivateKey, Signer as _};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "https://login.acme.example";
const NOW: i64 = 1_800_000_000;

/// A provider's key, its JWKS, and an issuer that trusts it for the client `custody`.
fn provider() -> (EncodingKey, Issuer) {
    let key = PrivateKey::generate(Algorithm::EcdsaP256);
    let raw = key.public_key().raw_bytes().to_vec(); // 0x04 ‖ x ‖ y
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    }]});
    let rules = [RuleConfig {
        claims: BTreeMap::from([("hd".into(), "acme.example".into())]),
        principal: "{sub}".into(),
    }];
    let issuer = Issuer::from_jwks(ISSUER, "custody", jwks.to_string().as_bytes(), &rules).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    (EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(), issuer)
}

fn id_token(key: &EncodingKey, extra: Value) -> String {
    let mut claims = json!({
        "iss": ISSUER, "aud": "custody", "sub": "alice", "hd": "acme.example",
        "iat": NOW - 5, "exp": NOW + 600, "nonce": "n-1",
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

async fn check(issuer: &Issuer, token: &str) -> Result<OidcIdentity, String> {
    validate(issuer, None, token, "n-1", NOW)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_id_token_for_this_sign_in_names_its_person() {
    let (key, issuer) = provider();
    let who = check(&issuer, &id_token(&key, json!({}))).await.unwrap();
    assert_eq!(
        who,
        OidcIdentity {
            principal: "alice".into(),
            issuer: ISSUER.into(),
            subject: "alice".into(),
            expires_at: NOW + 600,
        }
    );
    // Several audiences are fine when custody is the authorized party.
    let both = json!({"aud": ["custody", "other"], "azp": "custody"});
    assert!(check(&issuer, &id_token(&key, both)).await.is_ok());
}

#[tokio::test]
async fn a_token_for_another_sign_in_client_or_time_is_refused() {
    let (key, issuer) = provider();
    let refusals = [
        (json!({"nonce": "n-2"}), "nonce"),
        (json!({"nonce": null}), "nonce"),
        (json!({"aud": "other-client"}), "does not verify"),
        (json!({"aud": ["custody", "other"]}), "azp"),
        (json!({"aud": ["custody", "other"], "azp": "other"}), "azp"),
        (json!({"iss": "https://evil.example"}), "does not verify"),
        (json!({"exp": NOW - 3600, "iat": NOW - 7200}), "expired"),
        (json!({"iat": NOW + 3600, "exp": NOW + 7200}), "future"),
        (json!({"hd": "evil.example"}), "maps"),
        (json!({"nbf": NOW + 3600}), "not valid before"),
        (json!({"sub": "a b"}), "cannot name a principal"),
    ];
    for (claims, why) in refusals {
        let token = id_token(&key, claims.clone());
        let err = check(&issuer, &token).await.unwrap_err();
        assert!(err.contains(why), "{claims}: {err}");
    }
    // Signed by another key under the same key id.
    let (other, _) = provider();
    let err = check(&issuer, &id_token(&other, json!({})))
        .await
        .unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    // A flipped payload byte.
    let token = id_token(&key, json!({}));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let claims = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let text = String::from_utf8(claims).unwrap().replace("alice", "alicf");
    parts[1] = URL_SAFE_NO_PAD.encode(text);
    assert!(check(&issuer, &parts.join(".")).await.is_err());
}

fn sign_in() -> SignIn {
    let config: SignInConfig = toml_like(json!({
        "name": "Acme", "issuer": ISSUER, "client_id": "custody",
        "redirect_url": "https://custody.acme.example/login/oidc/callback",
        "rule": [{"claims": {"sub": "*"}, "principal": "{sub}"}],
    }));
    SignIn::new(&config, Path::new(".")).unwrap()
}

fn toml_like(v: Value) -> SignInConfig {
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_flight_is_taken_once_and_not_after_it_expires() {
    let s = sign_in();
    let flight = Flight {
        state: random(),
        nonce: random(),
        verifier: random(),
        expires_at: NOW + FLIGHT_LIFETIME,
        client: None,
    };
    let id = random();
    s.flights
        .lock()
        .unwrap()
        .insert(sha256(&id), flight.clone());
    assert!(s.take(&random(), NOW).is_none(), "an unknown id");
    assert_eq!(s.take(&id, NOW).unwrap().state, flight.state);
    assert!(s.take(&id, NOW).is_none(), "a second callback");
    s.flights.lock().unwrap().insert(sha256(&id), flight);
    assert!(s.take(&id, NOW + FLIGHT_LIFETIME).is_none(), "expired");
}

/// One address flooding sign-ins evicts only its own oldest: another person's sign-in in
/// progress survives it.
#[test]
fn a_client_flooding_sign_ins_evicts_only_its_own() {
    let s = sign_in();
    let flight = |client: &str, at: i64| Flight {
        state: random(),
        nonce: random(),
        verifier: random(),
        expires_at: at + FLIGHT_LIFETIME,
        client: Some(client.parse().unwrap()),
    };
    let alice = s.keep(flight("192.0.2.7", NOW), NOW);
    let flood: Vec<String> = (0..200)
        .map(|i| s.keep(flight("198.51.100.9", NOW + i), NOW + i))
        .collect();
    assert_eq!(s.flights.lock().unwrap().len(), MAX_FLIGHTS_PER_CLIENT + 1);
    assert!(
        s.take(&alice, NOW + 200).is_some(),
        "alice's sign-in was evicted"
    );
    // The flooder keeps its newest.
    assert!(s.take(&flood[0], NOW + 200).is_none());
    assert!(s.take(&flood[199], NOW + 200).is_some());
}

#[test]
fn pkce_s256_is_rfc_7636s() {
    // RFC 7636 Appendix B.
    assert_eq!(
        challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(random().len(), 43, "32 bytes, base64url");
}

#[test]
fn a_configuration_mistake_is_named() {
    let base = json!({
        "name": "Acme", "issuer": ISSUER, "client_id": "custody",
        "redirect_url": "https://custody.acme.example/login/oidc/callback",
        "rule": [{"claims": {"sub": "*"}, "principal": "{sub}"}],
    });
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        SignIn::new(&toml_like(c), Path::new("."))
            .err()
            .unwrap_or_default()
    };
    assert!(with("issuer", json!("http://login.acme.example")).contains("not https"));
    assert!(with("redirect_url", json!("https://custody.acme.example/")).contains("callback"));
    assert!(with("rule", json!([])).contains("[[dashboard.sign_in.rule]]"));
    assert!(with("client_secret_env", json!("CUSTODY_TEST_UNSET_SECRET")).contains("not set"));
    assert!(
        with("client_secret_file", json!("/nonexistent/secret")).contains("/nonexistent/secret")
    );
    assert!(sign_in().config.scopes.contains(&"openid".to_owned()));
}
