//! A person's sign-in to the dashboard through the organisation's OpenID Provider: the
//! authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1).
//!
//! What this module holds, and the invariants it keeps:
//! - the provider is found by discovery (`ISSUER/.well-known/openid-configuration`, read
//!   with a bounded body) and must say it is exactly the configured issuer; its endpoints
//!   are https:// (http:// only with `insecure_http`, for tests); a provider that says it
//!   does not support S256 is refused;
//! - each sign-in begins a *flight*: a fresh `state`, `nonce` and PKCE verifier (32
//!   random bytes each), kept here, keyed by the SHA-256 of a random id the browser holds
//!   in a cookie. A flight lives [`FLIGHT_LIFETIME`] and is taken (removed) by the first
//!   callback that names it, whatever comes of it: a callback is never good twice;
//! - the code is exchanged at the token endpoint with the verifier (S256: the provider
//!   saw only its hash), authenticated as the configuration says (client_secret_basic,
//!   client_secret_post, or none for a public client);
//! - the ID token is verified by the same code as CI tokens (`Issuer::verify`: signature
//!   by a key of the provider's JWKS, an asymmetric algorithm, `iss`, `aud` = the client
//!   id, `exp`/`nbf`/`iat`), and then its `nonce` must be the flight's, and, with several
//!   audiences, `azp` must be the client id; the rules map its claims to a principal
//!   (`Issuer::identity`, the templates of `[[oidc.rule]]`).
//!
//! It does not start sessions or render pages (the dashboard does), nor read userinfo:
//! the principal comes from the ID token's claims alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Issuer, OidcIdentity, RuleConfig};

/// How long a begun sign-in waits for its callback, in seconds.
pub const FLIGHT_LIFETIME: i64 = 600;
/// Sign-ins in flight kept at most (the oldest go first when full).
const MAX_FLIGHTS: usize = 10_000;
/// Sign-ins in progress kept per client address (a person starts one or two at a time).
const MAX_FLIGHTS_PER_CLIENT: usize = 16;
/// Largest discovery document or token response read.
const MAX_RESPONSE: usize = 256 * 1024;
/// How long a request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest client secret file read.
const MAX_SECRET: u64 = 64 * 1024;
/// Where the claim rules are configured, for errors.
const RULES: &str = "[[dashboard.sign_in.rule]]";

/// `[dashboard.sign_in]` in config.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// What the sign-in button calls the provider ("Acme SSO").
    pub name: String,
    /// The provider's issuer URL, exactly as its ID tokens' `iss` says it.
    pub issuer: String,
    /// custody's client id at the provider (the ID tokens' audience).
    pub client_id: String,
    /// The client secret in a file (relative to the data directory) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// … or in this environment variable (neither: a public client, PKCE alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// How custody authenticates at the token endpoint with its secret.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Where the provider sends the browser back: this server's public URL followed by
    /// `/login/oidc/callback`, registered at the provider.
    pub redirect_url: String,
    /// The scopes asked for (`openid` is always among them).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Allow an http:// issuer (tests only: the provider decides who is who).
    #[serde(default)]
    pub insecure_http: bool,
    /// Claims → principal, first match wins (as `[[oidc.rule]]`).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into()]
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// The id and secret in the request body.
    ClientSecretPost,
}

/// Why a sign-in did not complete, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The provider could not be reached or answered nonsense: try later.
    #[error("the sign-in provider {issuer} cannot be used now: {reason}")]
    Unavailable {
        /// The configured issuer.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
    /// The provider, or custody's checks, refused this sign-in.
    #[error("{0}")]
    Refused(String),
}

/// A begun sign-in, waiting for its callback.
#[derive(Clone)]
pub struct Flight {
    /// The `state` sent to the provider, to be returned unchanged.
    pub state: String,
    nonce: String,
    verifier: String,
    expires_at: i64,
    /// The address that began it (none when the server does not know it).
    client: Option<IpAddr>,
}

/// The provider as discovery described it, with its keys.
struct Provider {
    authorization_endpoint: reqwest::Url,
    token_endpoint: String,
    keys: Issuer,
}

/// The dashboard's OIDC sign-in: the provider, the client, and the sign-ins in flight.
pub struct SignIn {
    config: SignInConfig,
    secret: Option<String>,
    client: reqwest::Client,
    /// The provider once discovered (read without waiting: the sign-in page names it) …
    provider: Mutex<Option<Arc<Provider>>>,
    /// … and the one discovery at a time that may fill it.
    discovering: tokio::sync::Mutex<()>,
    flights: Mutex<HashMap<[u8; 32], Flight>>,
}

/// 32 random bytes, base64url: a state, a nonce, a verifier or a flight id.
fn random() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256(text: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier))
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl SignIn {
    /// The sign-in `config` describes, its secret read now (relative to `base`); every
    /// mistake is refused naming the field. Nothing is fetched yet.
    pub fn new(config: &SignInConfig, base: &Path) -> Result<SignIn, String> {
        let named = |e: String| format!("[dashboard.sign_in]: {e}");
        let https = |url: &str| {
            url.starts_with("https://") || (config.insecure_http && url.starts_with("http://"))
        };
        if !https(&config.issuer) {
            return Err(named(format!(
                "issuer {:?} is not https:// (`insecure_http = true` allows http:// for tests only)",
                config.issuer
            )));
        }
        let redirect = reqwest::Url::parse(&config.redirect_url)
            .map_err(|e| named(format!("redirect_url {:?}: {e}", config.redirect_url)))?;
        if !redirect.path().ends_with("/login/oidc/callback") {
            return Err(named(format!(
                "redirect_url {:?} must be this server's /login/oidc/callback",
                config.redirect_url
            )));
        }
        if config.client_id.is_empty() || config.name.is_empty() {
            return Err(named("name and client_id may not be empty".into()));
        }
        let secret = match (&config.client_secret_file, &config.client_secret_env) {
            (Some(_), Some(_)) => {
                return Err(named(
                    "give at most one of client_secret_file and client_secret_env".into(),
                ));
            }
            (Some(file), None) => {
                let path = base.join(file);
                let reading = |e: String| named(format!("reading {}: {e}", path.display()));
                let size = std::fs::metadata(&path).map_err(|e| reading(e.to_string()))?;
                if size.len() > MAX_SECRET {
                    return Err(reading(format!("larger than {MAX_SECRET} bytes")));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| reading(e.to_string()))?;
                Some(text.trim().to_owned())
            }
            (None, Some(var)) => {
                Some(std::env::var(var).map_err(|_| {
                    named(format!("client_secret_env names {var}, which is not set"))
                })?)
            }
            (None, None) => None,
        };
        if secret.as_deref() == Some("") {
            return Err(named("the client secret is empty".into()));
        }
        // Checked now, so that a bad rule is told at start (compiled again with the keys).
        super::compile_rules(&config.rules, RULES).map_err(named)?;
        let mut config = config.clone();
        if !config.scopes.iter().any(|s| s == "openid") {
            config.scopes.insert(0, "openid".into());
        }
        let client = crate::http_client::client_builder(None)
            .and_then(|b| {
                // The provider's answers are read here, never followed elsewhere.
                b.redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| crate::http_client::HttpClientError::Setup(e.to_string()))
            })
            .map_err(|e| named(e.to_string()))?;
        Ok(SignIn {
            config,
            secret,
            client,
            provider: Mutex::new(None),
            discovering: tokio::sync::Mutex::new(()),
            flights: Mutex::new(HashMap::new()),
        })
    }

    /// What the sign-in button calls the provider.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The origins a sign-in form may be redirected to: the issuer's and (once
    /// discovered) the authorization endpoint's.
    pub fn origins(&self) -> Vec<String> {
        let mut origins = Vec::new();
        if let Ok(url) = reqwest::Url::parse(&self.config.issuer) {
            origins.push(url.origin().ascii_serialization());
        }
        if let Some(p) = self.known() {
            origins.push(p.authorization_endpoint.origin().ascii_serialization());
        }
        origins.dedup();
        origins
    }

    /// The provider, discovered now if it was not yet (a failure is not kept: the next
    /// sign-in asks again).
    async fn provider(&self) -> Result<Arc<Provider>, SignInError> {
        if let Some(p) = self.known() {
            return Ok(p);
        }
        let _one = self.discovering.lock().await;
        if let Some(p) = self.known() {
            return Ok(p);
        }
        let p = Arc::new(
            self.discover()
                .await
                .map_err(|reason| self.unavailable(reason))?,
        );
        *self.provider.lock().unwrap_or_else(PoisonError::into_inner) = Some(p.clone());
        Ok(p)
    }

    /// The provider, if discovered already.
    fn known(&self) -> Option<Arc<Provider>> {
        self.provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn unavailable(&self, reason: String) -> SignInError {
        SignInError::Unavailable {
            issuer: self.config.issuer.clone(),
            reason,
        }
    }

    /// Discovery (OpenID Connect Discovery 1.0 §4), and the provider's keys.
    async fn discover(&self) -> Result<Provider, String> {
        let issuer = &self.config.issuer;
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Value = self.get_json(&url).await?;
        let text = |field: &str| {
            doc.get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("its discovery document has no {field}"))
        };
        let said = text("issuer")?;
        if said != *issuer {
            return Err(format!(
                "its discovery document says it is {said:?}, not the configured issuer"
            ));
        }
        let methods = doc.get("code_challenge_methods_supported");
        if let Some(methods) = methods.and_then(Value::as_array) {
            if !methods.iter().any(|m| m == "S256") {
                return Err("it does not support PKCE with S256".into());
            }
        }
        let secure = |field: &str| -> Result<String, String> {
            let url = text(field)?;
            let ok = url.starts_with("https://")
                || (self.config.insecure_http && url.starts_with("http://"));
            ok.then_some(url.clone())
                .ok_or_else(|| format!("its {field} {url:?} is not https://"))
        };
        let authorization_endpoint = reqwest::Url::parse(&secure("authorization_endpoint")?)
            .map_err(|e| format!("its authorization_endpoint: {e}"))?;
        let keys = Issuer::at_url(
            issuer,
            &self.config.client_id,
            &secure("jwks_uri")?,
            self.config.insecure_http,
            &self.config.rules,
            RULES,
        )?;
        keys.fetch_keys(&self.client).await?;
        Ok(Provider {
            authorization_endpoint,
            token_endpoint: secure("token_endpoint")?,
            keys,
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        crate::http_client::get_json(&self.client, url, PROVIDER_TIMEOUT, MAX_RESPONSE).await
    }

    /// Begins a sign-in at `now` (Unix seconds): the flight's id (for the browser's
    /// cookie) and the provider's authorization URL to send the browser to.
    pub async fn begin(
        &self,
        now: i64,
        client: Option<IpAddr>,
    ) -> Result<(String, String), SignInError> {
        let provider = self.provider().await?;
        let flight = Flight {
            state: random(),
            nonce: random(),
            verifier: random(),
            expires_at: now.saturating_add(FLIGHT_LIFETIME),
            client,
        };
        let mut url = provider.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", &flight.state)
            .append_pair("nonce", &flight.nonce)
            .append_pair("code_challenge", &challenge(&flight.verifier))
            .append_pair("code_challenge_method", "S256");
        Ok((self.keep(flight, now), url.to_string()))
    }

    /// Keeps `flight` until its callback, making room if needed: the id its browser holds.
    pub(super) fn keep(&self, flight: Flight, now: i64) -> String {
        let id = random();
        let client = flight.client;
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        // One address keeps at most MAX_FLIGHTS_PER_CLIENT sign-ins in progress: its own
        // oldest makes room, so a client flooding sign-ins evicts only its own.
        if client.is_some() {
            let mine = || flights.iter().filter(|(_, f)| f.client == client);
            if mine().count() >= MAX_FLIGHTS_PER_CLIENT {
                let oldest = mine().min_by_key(|(_, f)| f.expires_at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    flights.remove(&k);
                }
            }
        }
        crate::expiring::make_room(&mut flights, MAX_FLIGHTS, now, |f| f.expires_at);
        flights.insert(sha256(&id), flight);
        id
    }

    /// Takes the flight `id` names (it is gone after this, whatever follows), unless it
    /// expired or never was.
    pub fn take(&self, id: &str, now: i64) -> Option<Flight> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        flights
            .remove(&sha256(id))
            .filter(|flight| flight.expires_at > now)
    }

    /// Completes `flight` with the provider's `code` at `now`: exchanges it, verifies the
    /// ID token and maps it to a principal.
    pub async fn finish(
        &self,
        flight: &Flight,
        code: &str,
        now: i64,
    ) -> Result<OidcIdentity, SignInError> {
        let provider = self.provider().await?;
        let token = self.exchange(&provider, flight, code).await?;
        validate(
            &provider.keys,
            Some(&self.client),
            &token,
            &flight.nonce,
            now,
        )
        .await
    }

    /// The token request (RFC 6749 §4.1.3 with RFC 7636 §4.5): the ID token it returns.
    async fn exchange(
        &self,
        provider: &Provider,
        flight: &Flight,
        code: &str,
    ) -> Result<String, SignInError> {
        let c = &self.config;
        let mut body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            urlencode(code),
            urlencode(&c.redirect_url),
            urlencode(&flight.verifier)
        );
        let mut request = self
            .client
            .post(&provider.token_endpoint)
            .timeout(PROVIDER_TIMEOUT)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        match (&self.secret, c.client_auth) {
            // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
            (Some(secret), ClientAuth::ClientSecretBasic) => {
                request = request.basic_auth(urlencode(&c.client_id), Some(urlencode(secret)));
            }
            (Some(secret), ClientAuth::ClientSecretPost) => {
                body.push_str(&format!(
                    "&client_id={}&client_secret={}",
                    urlencode(&c.client_id),
                    urlencode(secret)
                ));
            }
            (None, _) => body.push_str(&format!("&client_id={}", urlencode(&c.client_id))),
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| self.unavailable(format!("its token endpoint: {e}")))?;
        let status = response.status();
        let bytes = crate::http_client::read_bounded(response, MAX_RESPONSE, "the token response")
            .await
            .map_err(|e| self.unavailable(e))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let error = answer.get("error").and_then(Value::as_str);
            let about = answer.get("error_description").and_then(Value::as_str);
            return match error {
                // RFC 6749 §5.2: the provider refused the code (used, expired, or not
                // issued for this verifier or client).
                Some(error) => Err(SignInError::Refused(format!(
                    "the provider refused the sign-in's code: {error}{}",
                    about.map(|d| format!(" ({d})")).unwrap_or_default()
                ))),
                None => Err(self.unavailable(format!("its token endpoint answered {status}"))),
            };
        }
        answer
            .get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                SignInError::Refused(
                    "the provider's token response holds no ID token (is `openid` among the client's scopes there?)".into(),
                )
            })
    }

    /// Discovers the provider (and its keys) until it answers, once a minute, so that the
    /// sign-in page can name its origin and the first sign-in does not wait.
    pub async fn warm_up(&self) {
        loop {
            match self.provider().await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(reason = %e, "the dashboard's sign-in provider is not reachable yet")
                }
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

/// Who the ID token `token` says signed in, if it verifies as `keys`' (the provider's,
/// with custody's client id as audience) and carries `nonce`.
async fn validate(
    keys: &Issuer,
    client: Option<&reqwest::Client>,
    token: &str,
    nonce: &str,
    now: i64,
) -> Result<OidcIdentity, SignInError> {
    let claims = keys
        .verify(client, token, now)
        .await
        .map_err(SignInError::Refused)?;
    check_nonce_and_azp(&claims, nonce, keys.audience())?;
    keys.identity(&claims).map_err(SignInError::Refused)
}

/// The ID token's `nonce` is the flight's (OIDC Core §3.1.3.7 item 11: the token was
/// issued for this browser's sign-in, not replayed from another), and with several
/// audiences `azp` is custody's client id (items 4–5).
fn check_nonce_and_azp(claims: &Value, nonce: &str, client_id: &str) -> Result<(), SignInError> {
    let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !crate::access::same_bytes(got.as_bytes(), nonce.as_bytes()) {
        return Err(SignInError::Refused(
            "the ID token's nonce is not this sign-in's: it was issued for another sign-in".into(),
        ));
    }
    if let Some(audiences) = claims.get("aud").and_then(Value::as_array) {
        let azp = claims.get("azp").and_then(Value::as_str);
        if audiences.len() > 1 && azp != Some(client_id) {
            return Err(SignInError::Refused(format!(
                "the ID token names several audiences and its azp is not {client_id:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "sign_in_tests.rs"]
mod tests;
