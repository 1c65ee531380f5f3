//! The CLI as a client of a custody server: `--server URL` (or `CUSTODY_SERVER`) and a
//! token (`--token` / `CUSTODY_TOKEN`: an API token, or a CI job's OIDC ID token). Every
//! call goes through [`Client::send`]: the use case's own request type as the body, the
//! use case's own result type back, and each error status mapped back to the fault the
//! server mapped it from, so a command prints and exits alike either way. Responses are
//! read with a bound ([`MAX_RESPONSE`]), whatever length the server claims.

use std::path::{Path, PathBuf};

use clap::Args;
use custody_app::{AppError, AppResult, Fault};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest response read from a server (1,000 ledger entries of at most 1 MiB, with room).
pub(crate) const MAX_RESPONSE: usize = 1 << 30;

/// Where the server is, and who we are to it.
#[derive(Debug, Clone, Args)]
pub(crate) struct RemoteArgs {
    /// Talk to this custody server instead of the local data directory.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL", value_parser = server_url)]
    pub(crate) server: Option<String>,
    /// Act as this token's holder: an API token (cst_…), or with --server a CI job's OIDC
    /// ID token. Without one, on a data directory you act as its operator (`local:USER`).
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

/// `--server`: an http(s) URL with a host and no query or fragment (the API's paths are
/// appended to it, and the token goes with each request: never to a host made up from a
/// half-filled URL).
pub(crate) fn server_url(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the server URL (--server or CUSTODY_SERVER) is empty: give one (https://custody.internal), or leave --server out and unset CUSTODY_SERVER to act on the data directory".into());
    }
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("{text:?} is not a server URL ({e}): e.g. https://custody.internal")
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "{text:?} is not a server URL: give http:// or https://, a host, and no ? or # (e.g. https://custody.internal)"
        ));
    }
    Ok(text.to_owned())
}

impl RemoteArgs {
    /// The client, if --server was given.
    pub(crate) fn client(&self) -> anyhow::Result<Option<Client>> {
        let Some(base) = &self.server else {
            return Ok(None);
        };
        Ok(Some(Client::new(
            base,
            self.token.clone(),
            self.ca_cert.as_deref(),
        )?))
    }
}

/// A custody server.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// The fault an HTTP status stands for: the inverse of the server's one mapping.
fn fault_of(status: StatusCode) -> Fault {
    match status.as_u16() {
        401 | 403 => Fault::Denied,
        404 => Fault::NotFound,
        409 => Fault::Conflict,
        400..=499 => Fault::Invalid,
        500 => Fault::Integrity,
        _ => Fault::Unavailable,
    }
}

impl Client {
    /// A client of the server at `base`, presenting `token`, trusting the system's CAs and
    /// `ca_cert`.
    pub(crate) fn new(
        base: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Client> {
        Ok(Client {
            http: custody_server::http_client::client(ca_cert)?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `GET path`, the answer parsed as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &(impl Serialize + ?Sized),
    ) -> AppResult<T> {
        self.send(Method::GET, path, query, None::<&()>, None).await
    }

    /// `POST path` with `body` (and an idempotency key), the answer parsed as `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> AppResult<T> {
        self.send(Method::POST, path, &(), Some(body), idempotency_key)
            .await
    }

    /// `method path?query` with a JSON body; a success's body parsed as `T`, an error
    /// status as the same fault the server mapped it from, with its message.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &(impl Serialize + ?Sized),
        body: Option<&impl Serialize>,
        idempotency_key: Option<&str>,
    ) -> AppResult<T> {
        let (status, bytes) = self
            .exchange(method.clone(), path, query, body, idempotency_key)
            .await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                AppError::Invalid(format!(
                    "{method} {path}: the server's answer is not what this custody expects ({e}); are the server and this CLI the same version?"
                ))
            });
        }
        Err(error_of(status, &bytes))
    }

    /// The raw exchange: status and body (read up to [`MAX_RESPONSE`]).
    pub(crate) async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &(impl Serialize + ?Sized),
        body: Option<&impl Serialize>,
        idempotency_key: Option<&str>,
    ) -> AppResult<(StatusCode, Vec<u8>)> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).query(query);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| {
            AppError::Unavailable(format!(
                "{method} {url}: {e}\nhint: is `custody serve` running there? (for https with an internal CA, pass --ca-cert)"
            ))
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE {
                return Err(AppError::Invalid(format!(
                    "{url} answered more than {MAX_RESPONSE} bytes; refusing the rest"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }
}

/// The error a failed answer stands for.
pub(crate) fn error_of(status: StatusCode, body: &[u8]) -> AppError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the server answered {status}"));
    let message = if status == StatusCode::UNAUTHORIZED {
        format!("{message}\nhint: pass --token or set CUSTODY_TOKEN")
    } else {
        message
    };
    AppError::of(fault_of(status), message)
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
    use super::*;

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

    #[test]
    fn each_status_comes_back_as_the_fault_the_server_mapped() {
        for (status, fault) in [
            (401, Fault::Denied),
            (403, Fault::Denied),
            (404, Fault::NotFound),
            (400, Fault::Invalid),
            (413, Fault::Invalid),
            (409, Fault::Conflict),
            (500, Fault::Integrity),
            (503, Fault::Unavailable),
        ] {
            let e = error_of(StatusCode::from_u16(status).unwrap(), br#"{"error":"why"}"#);
            assert_eq!(e.fault(), fault, "{status}");
            assert!(e.to_string().starts_with("why"));
        }
    }
}
