//! The one error type of this crate, each variant naming what was wrong with the input.

/// Why a key, envelope, statement or note was rejected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key file or key text could not be read as a key of a supported algorithm.
    #[error("invalid key: {0}")]
    Key(String),
    /// A signature did not verify, or no trusted key verified it.
    #[error("signature verification failed: {0}")]
    BadSignature(String),
    /// Fewer distinct trusted keys verified than the threshold demands.
    #[error(
        "only {verified} of the required {threshold} distinct trusted keys verified the envelope"
    )]
    BelowThreshold {
        /// Distinct trusted keys whose signature verified.
        verified: usize,
        /// Distinct keys required.
        threshold: usize,
    },
    /// The DSSE envelope is malformed.
    #[error("invalid DSSE envelope: {0}")]
    Envelope(String),
    /// The in-toto statement breaks the in-toto Statement v1 rules.
    #[error("invalid in-toto statement: {0}")]
    Statement(String),
    /// The signed note is malformed or a known signature on it failed.
    #[error("invalid signed note: {0}")]
    Note(String),
    /// A PKCS#11 token key could not be reached: the URI, PIN, module, token or key is wrong.
    #[error(transparent)]
    Token(#[from] crate::pkcs11::TokenError),
    /// The signer (a key file or a token) failed to produce a signature.
    #[error("signing failed: {0}")]
    Signing(String),
}
