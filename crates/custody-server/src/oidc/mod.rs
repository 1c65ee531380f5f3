//! OIDC ID tokens (GitHub Actions, GitLab CI, a company's identity provider), verified
//! against the configured issuers' keys and mapped to a principal by rules on their claims.
//!
//! A token is accepted only if:
//! - its issuer is configured, and its header names a key id found in that issuer's JWKS
//!   (fetched again, at most once a minute, when a key id is new: issuers rotate keys);
//! - its algorithm is asymmetric (RS256/384/512, PS256/384/512, ES256/384; never `none`,
//!   never HMAC), and the JWK's own `alg`, where the JWKS says one, is the header's;
//! - the signature verifies, and `iss`, `aud`, `exp` and `iat` are all present: `aud` is the
//!   configured audience, `iss` the issuer; by custody's clock (`ServerState::now`),
//!   `exp` has not passed and `nbf` has come (60 s of skew either way), `iat` is not in the
//!   future beyond the skew; and the token lives no longer than [`MAX_LIFETIME`]
//!   (`exp − iat`);
//! - a rule maps its claims to a principal: every listed claim has the listed value (a
//!   trailing `*` matches any rest), and the rule's template, filled in one pass
//!   (template.rs), is a valid principal.
//!
//! Keys from a URL are fetched in the background (jwks.rs): a silent issuer never keeps
//! the server from starting, only its own tokens from being accepted.
//!
//! The same checks ([`Issuer::verify`], [`Issuer::identity`]) verify the ID token of a
//! person's dashboard sign-in (sign_in.rs: the authorization-code flow with PKCE, against
//! the provider `[dashboard.sign_in]` names, whose audience is custody's client id).

mod jwks;
pub mod sign_in;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

pub use template::Template;

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
    /// … or fetched from an https:// URL (and again every hour, and for new key ids).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Allow an http:// `jwks_url` (tests only: keys that decide identity need TLS).
    #[serde(default)]
    pub insecure_http: bool,
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

struct Rule {
    claims: BTreeMap<String, String>,
    principal: Template,
}

/// An issuer custody trusts for one purpose: CI tokens (`[[oidc]]`) or the dashboard's
/// sign-in (`[dashboard.sign_in]`, whose audience is custody's client id).
pub(crate) struct Issuer {
    issuer: String,
    audience: String,
    keys: jwks::KeySet,
    rules: Vec<Rule>,
    /// Where its rules are configured, for errors.
    section: &'static str,
}

/// The configured issuers with their keys.
#[derive(Default)]
pub struct Oidc {
    issuers: Vec<Issuer>,
    client: Option<reqwest::Client>,
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
    /// Until when the provider vouches for it (the token's `exp`, Unix seconds).
    pub expires_at: i64,
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

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const SKEW: u64 = 60;
/// The longest an ID token may live (`exp − iat`): CI tokens live minutes, sign-in tokens
/// an hour; a token valid for a century is refused.
pub const MAX_LIFETIME: i64 = 24 * 3600;

impl Oidc {
    /// The issuers of `configs`: files read now (relative to `base`), URLs checked and left
    /// for [`Oidc::refresh`] to fetch. Every mistake is refused with the issuer's name.
    pub fn new(configs: &[IssuerConfig], base: &std::path::Path) -> Result<Oidc, String> {
        let mut issuers = Vec::new();
        for c in configs {
            let named = |e: String| format!("OIDC issuer {}: {e}", c.issuer);
            let keys = match (&c.jwks_file, &c.jwks_url) {
                (Some(file), None) => {
                    let path = base.join(file);
                    let bytes = std::fs::read(&path)
                        .map_err(|e| named(format!("reading {}: {e}", path.display())))?;
                    jwks::KeySet::from_bytes(&bytes).map_err(named)?
                }
                (None, Some(url)) => jwks::KeySet::at_url(url, c.insecure_http).map_err(named)?,
                _ => return Err(named("give exactly one of jwks_file and jwks_url".into())),
            };
            let rules = compile_rules(&c.rules, "[[oidc.rule]]").map_err(named)?;
            issuers.push(Issuer {
                issuer: c.issuer.clone(),
                audience: c.audience.clone(),
                keys,
                rules,
                section: "[[oidc.rule]]",
            });
        }
        let client = crate::http_client::client(None)
            .map(Some)
            .map_err(|e| format!("OIDC: {e}"))?;
        Ok(Oidc { issuers, client })
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Fetches every URL issuer's keys now (a failure is kept as the reason its tokens are
    /// refused, and logged).
    pub async fn refresh(&self) {
        let Some(client) = &self.client else { return };
        for issuer in &self.issuers {
            if let Err(why) = issuer.keys.fetch(client).await {
                tracing::warn!(issuer = %issuer.issuer, reason = %why, "OIDC keys not fetched");
            }
        }
    }

    /// Fetches the URL issuers' keys at once and then every hour, until dropped.
    pub async fn keep_fresh(&self) {
        loop {
            self.refresh().await;
            tokio::time::sleep(jwks::REFRESH_EVERY).await;
        }
    }

    /// Verifies an ID token at `now` (Unix seconds) and maps it to a principal; `Err` says
    /// why not.
    pub async fn principal(&self, token: &str, now: i64) -> Result<OidcIdentity, String> {
        // The issuer only picks the configuration; the signature check binds it.
        let claimed = unverified_claims(token)?;
        let iss = claimed
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == iss)
            .ok_or_else(|| {
                format!("ID tokens from {iss:?} are not trusted (no such [[oidc]] issuer)")
            })?;
        let claims = issuer.verify(self.client.as_ref(), token, now).await?;
        issuer.identity(&claims)
    }
}

impl Issuer {
    /// An issuer whose keys come from `jwks_url`, whose tokens must name `audience`, mapped
    /// by `rules` (`section` names them in errors: `[[oidc.rule]]`, …).
    pub(crate) fn at_url(
        issuer: &str,
        audience: &str,
        jwks_url: &str,
        insecure_http: bool,
        rules: &[RuleConfig],
        section: &'static str,
    ) -> Result<Issuer, String> {
        Ok(Issuer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: jwks::KeySet::at_url(jwks_url, insecure_http)?,
            rules: compile_rules(rules, section)?,
            section,
        })
    }

    /// The `aud` its tokens must name.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// An issuer with the keys of a JWKS document (for unit tests).
    #[cfg(test)]
    pub(crate) fn from_jwks(
        issuer: &str,
        audience: &str,
        jwks: &[u8],
        rules: &[RuleConfig],
    ) -> Result<Issuer, String> {
        Ok(Issuer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: jwks::KeySet::from_bytes(jwks)?,
            rules: compile_rules(rules, "rule")?,
            section: "rule",
        })
    }

    /// Fetches the issuer's keys now (URL keys only).
    pub(crate) async fn fetch_keys(&self, client: &reqwest::Client) -> Result<(), String> {
        self.keys.fetch(client).await
    }

    /// The claims of `token` if it is this issuer's, signed by one of its keys with an
    /// allowed algorithm, for this audience, and live at `now` (see the module's list).
    pub(crate) async fn verify(
        &self,
        client: Option<&reqwest::Client>,
        token: &str,
        now: i64,
    ) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("not a valid ID token: {e}"))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(format!(
                "ID tokens signed with {:?} are not accepted",
                header.alg
            ));
        }
        let iss = &self.issuer;
        let kid = header.kid.ok_or("the ID token names no key id")?;
        let jwk = match self.keys.find(&kid) {
            Some(jwk) => jwk,
            None => {
                // A key id not seen yet: the issuer may have rotated; look once more.
                if let (true, Some(client)) = (self.keys.may_fetch_for_unknown_kid(), client) {
                    let _ = self.keys.fetch(client).await;
                }
                if let Some(why) = self.keys.not_loaded() {
                    return Err(format!("ID tokens from {iss} cannot be checked now: {why}"));
                }
                self.keys
                    .find(&kid)
                    .ok_or_else(|| format!("key id {kid:?} is not among {iss}'s keys"))?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm {
            if format!("{alg:?}") != format!("{:?}", header.alg) {
                return Err(format!(
                    "key {kid:?} is for {alg:?}; the token says {:?}",
                    header.alg
                ));
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        // `exp` and `nbf` are checked below against custody's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| format!("the ID token does not verify: {e}"))?
            .claims;
        check_times(&claims, now)?;
        Ok(claims)
    }

    /// Who verified `claims` say their bearer is: the first rule whose claims match, its
    /// template filled (a valid principal, or an error).
    pub(crate) fn identity(&self, claims: &Value) -> Result<OidcIdentity, String> {
        let (iss, section) = (&self.issuer, self.section);
        let rule = self
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
            .ok_or_else(|| {
                format!("no {section} of {iss} maps this token's claims to a principal")
            })?;
        let principal = rule.principal.fill(claims).map_err(|why| {
            format!("the {section} of {iss} that matched cannot name a principal: {why}")
        })?;
        Ok(OidcIdentity {
            principal: principal.to_string(),
            issuer: self.issuer.clone(),
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            expires_at: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}

/// The rules of a configuration, their templates parsed (at least one); `section` names
/// them in the error.
fn compile_rules(rules: &[RuleConfig], section: &str) -> Result<Vec<Rule>, String> {
    if rules.is_empty() {
        return Err(format!("no {section} maps its tokens to a principal"));
    }
    rules
        .iter()
        .map(|r| {
            Ok(Rule {
                claims: r.claims.clone(),
                principal: Template::parse(&r.principal)?,
            })
        })
        .collect()
}

/// `exp` not passed, `nbf` (if any) come, `iat` not in the future, each at `now` with
/// [`SKEW`] either way, and a bounded lifetime.
fn check_times(claims: &Value, now: i64) -> Result<(), String> {
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(iat), Some(exp)) = (time("iat"), time("exp")) else {
        return Err("the ID token's iat and exp must be whole seconds".into());
    };
    let skew = i64::try_from(SKEW).unwrap_or(60);
    if now > exp.saturating_add(skew) {
        return Err(format!(
            "the ID token does not verify: it expired at {exp} (now {now})"
        ));
    }
    match (claims.get("nbf"), time("nbf")) {
        (None, _) => {}
        (Some(_), Some(nbf)) if nbf <= now.saturating_add(skew) => {}
        (Some(_), Some(nbf)) => {
            return Err(format!(
                "the ID token does not verify: it is not valid before {nbf} (now {now})"
            ));
        }
        (Some(_), None) => return Err("the ID token's nbf must be whole seconds".into()),
    }
    if iat > now.saturating_add(skew) {
        return Err(format!(
            "the ID token was issued in the future (iat {iat}, now {now})"
        ));
    }
    if exp.saturating_sub(iat) > MAX_LIFETIME {
        return Err(format!(
            "the ID token lives {} s; custody accepts at most {MAX_LIFETIME} s",
            exp.saturating_sub(iat)
        ));
    }
    Ok(())
}

fn unverified_claims(token: &str) -> Result<Value, String> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| "the ID token's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the ID token's payload is not JSON".into())
}

/// How long [`Oidc::keep_fresh`] waits between fetches.
pub const REFRESH_EVERY: Duration = jwks::REFRESH_EVERY;
