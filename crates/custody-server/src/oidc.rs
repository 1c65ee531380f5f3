//! CI workload identity: OIDC ID tokens (GitHub Actions, GitLab…) verified against the
//! configured issuers' keys, and mapped to a principal by rules on their claims.
//!
//! A token is accepted only if: its issuer is configured; its header names a key id found
//! in that issuer's JWKS and an asymmetric algorithm (RS256/RS384/RS512, PS256…, ES256,
//! ES384; never `none`, never HMAC); the signature verifies; `aud` is the configured
//! audience; `exp` has not passed (60 s leeway); and a rule maps its claims to a principal.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// One trusted issuer, as the configuration declares it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim, exactly.
    pub issuer: String,
    /// The `aud` claim custody requires.
    pub audience: String,
    /// The issuer's JWKS as a file (relative to the data directory) …
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// … or fetched from a URL at start.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Claims → principal, first match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// A mapping rule: when every listed claim has the listed value, the token is `principal`,
/// in which `{claim}` is replaced by that claim's value.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Claim name → required value (a trailing `*` matches any suffix).
    pub claims: BTreeMap<String, String>,
    /// The principal, e.g. `ci:{repository}`.
    pub principal: String,
}

struct Issuer {
    config: IssuerConfig,
    keys: JwkSet,
}

/// Who an ID token says its bearer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The principal its claims map to.
    pub principal: String,
    /// The token's issuer.
    pub issuer: String,
    /// The token's subject.
    pub subject: String,
}

/// The configured issuers with their keys.
#[derive(Default)]
pub struct Oidc {
    issuers: Vec<Issuer>,
}

/// Algorithms an ID token may use: asymmetric only.
const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Largest JWKS read.
const MAX_JWKS: usize = 1 << 20;

impl Oidc {
    /// Loads every issuer's keys (files relative to `base`, URLs fetched now).
    pub async fn load(configs: &[IssuerConfig], base: &std::path::Path) -> Result<Oidc, String> {
        let mut issuers = Vec::new();
        for c in configs {
            let text = match (&c.jwks_file, &c.jwks_url) {
                (Some(file), None) => {
                    let path = base.join(file);
                    let bytes = std::fs::read(&path).map_err(|e| {
                        format!("OIDC issuer {}: reading {}: {e}", c.issuer, path.display())
                    })?;
                    if bytes.len() > MAX_JWKS {
                        return Err(format!(
                            "OIDC issuer {}: {} is too large",
                            c.issuer,
                            path.display()
                        ));
                    }
                    bytes
                }
                (None, Some(url)) => {
                    let client = crate::http_client::client(None)
                        .map_err(|e| format!("OIDC issuer {}: {e}", c.issuer))?;
                    let mut response = client
                        .get(url)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| format!("OIDC issuer {}: fetching {url}: {e}", c.issuer))?;
                    // Read at most MAX_JWKS, whatever the server says its length is.
                    let mut bytes = Vec::new();
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .map_err(|e| format!("OIDC issuer {}: reading {url}: {e}", c.issuer))?
                    {
                        if bytes.len() + chunk.len() > MAX_JWKS {
                            return Err(format!("OIDC issuer {}: {url} is too large", c.issuer));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    bytes
                }
                _ => {
                    return Err(format!(
                        "OIDC issuer {}: give exactly one of jwks_file and jwks_url",
                        c.issuer
                    ));
                }
            };
            let keys: JwkSet = serde_json::from_slice(&text)
                .map_err(|e| format!("OIDC issuer {}: the JWKS does not parse: {e}", c.issuer))?;
            if c.rules.is_empty() {
                return Err(format!(
                    "OIDC issuer {}: no [[oidc.rule]] maps its tokens to a principal",
                    c.issuer
                ));
            }
            issuers.push(Issuer {
                config: c.clone(),
                keys,
            });
        }
        Ok(Oidc { issuers })
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies an ID token and maps it to a principal; `Err` says why not.
    pub fn principal(&self, token: &str) -> Result<OidcIdentity, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("not a valid ID token: {e}"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(format!(
                "ID tokens signed with {:?} are not accepted",
                header.alg
            ));
        }
        // The issuer only picks the configuration; the signature check below binds it.
        let claimed = unverified_claims(token)?;
        let iss = claimed
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| {
                format!("ID tokens from {iss:?} are not trusted (no such [[oidc]] issuer)")
            })?;
        let kid = header.kid.ok_or("the ID token names no key id")?;
        let jwk = issuer
            .keys
            .find(&kid)
            .ok_or_else(|| format!("key id {kid:?} is not among {iss}'s keys"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&issuer.config.audience]);
        validation.set_issuer(&[&issuer.config.issuer]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| format!("the ID token does not verify: {e}"))?
            .claims;
        issuer
            .config
            .rules
            .iter()
            .find(|r| {
                r.claims.iter().all(|(name, want)| {
                    let got = claims.get(name).and_then(Value::as_str).unwrap_or_default();
                    match want.strip_suffix('*') {
                        Some(prefix) => got.starts_with(prefix),
                        None => got == want,
                    }
                })
            })
            .map(|r| OidcIdentity {
                principal: substitute(&r.principal, &claims),
                issuer: issuer.config.issuer.clone(),
                subject: claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .ok_or_else(|| {
                format!("no [[oidc.rule]] of {iss} maps this token's claims to a principal")
            })
    }
}

fn unverified_claims(token: &str) -> Result<Value, String> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the ID token's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the ID token's payload is not JSON".into())
}

/// `ci:{repository}` with the claim's value; claims that are not strings stay as written.
fn substitute(template: &str, claims: &Value) -> String {
    let mut out = template.to_owned();
    if let Some(map) = claims.as_object() {
        for (name, value) in map {
            if let Some(v) = value.as_str() {
                out = out.replace(&format!("{{{name}}}"), v);
            }
        }
    }
    out
}
