//! Outbound HTTP(S): the one way custody builds an HTTP client, whether the server fetches
//! an OIDC issuer's JWKS or the CLI talks to a custody server.
//!
//! TLS is rustls on the ring provider (the crypto custody already carries), trusting the
//! system's CA certificates plus any CA the caller names (a self-hosted server's internal
//! CA). Plain `http://` works as before.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The extra CA file is unreadable or holds no certificate.
    #[error(
        "CA certificate {path}: {reason}\nhint: give a PEM file with the CA that signed the server's certificate"
    )]
    CaFile {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// TLS or client set-up failed.
    #[error("setting up HTTPS: {0}")]
    Setup(String),
}

/// A client builder that speaks HTTPS with the system's CAs and `extra_ca` (a PEM file of
/// one or more certificates), ready for further settings.
pub fn client_builder(extra_ca: Option<&Path>) -> Result<reqwest::ClientBuilder, HttpClientError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: an extra CA alone may be enough.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = extra_ca {
        let ca_error = |reason: String| HttpClientError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    // With no CA at all (a machine without ca-certificates), plain http:// still works
    // and an https:// server is refused at its handshake as untrusted.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpClientError::Setup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

/// [`client_builder`], built.
pub fn client(extra_ca: Option<&Path>) -> Result<reqwest::Client, HttpClientError> {
    client_builder(extra_ca)?
        .build()
        .map_err(|e| HttpClientError::Setup(e.to_string()))
}

/// The body of `response`, at most `max` bytes whatever its length header says (a larger
/// one is refused, never read whole); `what` names it in errors.
pub async fn read_bounded(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {what}: {e}"))?
    {
        if bytes.len().saturating_add(chunk.len()) > max {
            return Err(format!("{what} is larger than {max} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// GETs `url` within `timeout` and reads its body as JSON of at most `max` bytes (a
/// discovery document, a JWKS): errors name the URL.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    timeout: std::time::Duration,
    max: usize,
) -> Result<T, String> {
    let response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("fetching {url}: {e}"))?;
    let bytes = read_bounded(response, max, url).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{url} does not parse: {e}"))
}
