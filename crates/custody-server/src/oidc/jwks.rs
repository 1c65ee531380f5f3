//! An issuer's signing keys (JWKS): read from a file once, or fetched from its URL with a
//! timeout, over HTTPS only (unless the configuration says `insecure_http`, for tests),
//! refreshed periodically and when a token names a key id not seen yet (at most once a
//! minute). A start never waits for an issuer: until its keys arrive, its tokens are
//! refused with a reason, and everything else (the deploy gate with API tokens) answers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};

/// Largest JWKS read.
const MAX_JWKS: usize = 1 << 20;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often keys fetched from a URL are fetched again.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The least time between two fetches for unknown key ids.
const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(60);

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Read once, at configuration.
    File,
    /// Fetched, and fetched again.
    Url(String),
}

/// One issuer's keys as last read, and when.
pub(crate) struct KeySet {
    pub(crate) source: Source,
    keys: Mutex<Option<JwkSet>>,
    /// When a token's unknown key id last caused a fetch (they are rate-limited).
    last_kid_fetch: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
}

impl KeySet {
    /// Keys read from a file's bytes.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<KeySet, String> {
        if bytes.len() > MAX_JWKS {
            return Err(format!("the JWKS is larger than {MAX_JWKS} bytes"));
        }
        let keys: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| format!("the JWKS does not parse: {e}"))?;
        Ok(KeySet {
            source: Source::File,
            keys: Mutex::new(Some(keys)),
            last_kid_fetch: Mutex::new(None),
            last_error: Mutex::new(None),
        })
    }

    /// Keys to fetch from `url` (nothing fetched yet).
    pub(crate) fn at_url(url: &str, insecure_http: bool) -> Result<KeySet, String> {
        let allowed = url.starts_with("https://") || (insecure_http && url.starts_with("http://"));
        if !allowed {
            return Err(format!(
                "the JWKS URL {url:?} is not https:// (keys that decide who is who must come over TLS; `insecure_http = true` allows http:// for tests only)"
            ));
        }
        Ok(KeySet {
            source: Source::Url(url.to_owned()),
            keys: Mutex::new(None),
            last_kid_fetch: Mutex::new(None),
            last_error: Mutex::new(None),
        })
    }

    /// The key named `kid`, if known now.
    pub(crate) fn find(&self, kid: &str) -> Option<Jwk> {
        self.keys.lock().ok()?.as_ref()?.find(kid).cloned()
    }

    /// Whether any keys were read yet, and why not if not.
    pub(crate) fn not_loaded(&self) -> Option<String> {
        let loaded = self.keys.lock().ok().is_some_and(|k| k.is_some());
        if loaded {
            return None;
        }
        let why = self.last_error.lock().ok().and_then(|e| e.clone());
        Some(why.unwrap_or_else(|| "its keys have not been fetched yet".into()))
    }

    /// Whether a fetch for an unknown key id may go out now (at most one a minute, so a
    /// flood of made-up key ids cannot make custody hammer the issuer); if so, it is
    /// counted as made.
    pub(crate) fn may_fetch_for_unknown_kid(&self) -> bool {
        if !matches!(self.source, Source::Url(_)) {
            return false;
        }
        let Ok(mut last) = self.last_kid_fetch.lock() else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Fetches the keys from the URL (a file source does nothing), keeping the old ones if
    /// the fetch fails.
    pub(crate) async fn fetch(&self, client: &reqwest::Client) -> Result<(), String> {
        let Source::Url(url) = &self.source else {
            return Ok(());
        };
        let fetched = fetch(client, url).await;
        match fetched {
            Ok(keys) => {
                if let Ok(mut k) = self.keys.lock() {
                    *k = Some(keys);
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                Ok(())
            }
            Err(why) => {
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(why.clone());
                }
                Err(why)
            }
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<JwkSet, String> {
    crate::http_client::get_json(client, url, FETCH_TIMEOUT, MAX_JWKS)
        .await
        .map_err(|e| format!("the JWKS: {e}"))
}
