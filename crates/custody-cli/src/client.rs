//! The CLI as a client of a custody server: `--server URL` (or `CUSTODY_SERVER`) and a
//! token (`--token` / `CUSTODY_TOKEN`: an API token, or a CI job's OIDC ID token). Answers
//! come back as the same values the local use cases return, and refusals as the same
//! errors, so a command prints and exits alike either way.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use custody_app::AppError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the server is, and who we are to it.
#[derive(Debug, Clone, Args)]
pub(crate) struct RemoteArgs {
    /// Talk to this custody server instead of the local data directory.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The token for --server: an API token (cst_…) or a CI OIDC ID token.
    #[arg(
        long,
        env = "CUSTODY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// For an https:// server whose certificate an internal CA signed: that CA (PEM).
    /// The system's CAs are trusted too.
    #[arg(long, env = "CUSTODY_CA_CERT", value_name = "PEM")]
    pub(crate) ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    /// The client, if --server was given.
    pub(crate) fn client(&self) -> anyhow::Result<Option<Client>> {
        let Some(base) = &self.server else {
            return Ok(None);
        };
        Ok(Some(Client {
            http: http_client(self.ca_cert.as_deref())?,
            base: base.trim_end_matches('/').to_owned(),
            token: self.token.clone(),
        }))
    }
}

/// The HTTP(S) client every server call uses: the system's CAs and `ca_cert`.
pub(crate) fn http_client(ca_cert: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    Ok(custody_server::http_client::client(ca_cert)?)
}

/// A custody server.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Calls `method path` with a JSON body and an optional idempotency key. A refusal
    /// (401, 403) is [`AppError::Denied`]; other 4xx are [`AppError::Invalid`] — the same
    /// errors the local use cases give.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Result<T, AppError>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}\nhint: is `custody serve` running there? (for https with an internal CA, pass --ca-cert)"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading {url}"))?;
        if status.is_success() {
            return Ok(Ok(serde_json::from_slice(&bytes).with_context(|| {
                format!("{method} {url}: the answer is not what this custody expects")
            })?));
        }
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{status}"));
        Ok(Err(match status.as_u16() {
            401 => AppError::Denied(format!(
                "{message}\nhint: pass --token or set CUSTODY_TOKEN"
            )),
            403 => AppError::Denied(message),
            400..=499 => AppError::Invalid(message),
            _ => AppError::Invalid(format!("the server failed: {status}: {message}")),
        }))
    }
}

/// `value` as one URL path segment: everything but letters, digits and `-._~` is
/// percent-encoded, so an id can never reach another route.
pub(crate) fn segment(value: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    // "." and ".." are dot-segments even when unencoded characters; encode their dots.
    if value == "." || value == ".." {
        return value.replace('.', "%2E");
    }
    utf8_percent_encode(value, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_segment_cannot_escape_its_route() {
        assert_eq!(segment("tok0123abc"), "tok0123abc");
        assert_eq!(segment("prm-1a2b"), "prm-1a2b");
        assert_eq!(segment("../../log"), "..%2F..%2Flog");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(
            segment("sha256:00ff"),
            "sha256%3A00ff",
            "a colon is escaped too"
        );
    }
}
