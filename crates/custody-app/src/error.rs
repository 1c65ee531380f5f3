//! Why a use case did not do what was asked.

use custody_store::StoreError;

/// A use case's failure. [`AppError::Denied`] is a decision (exit 1); everything else is
/// bad input or an operational failure (exit 2). Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A check said no: the request is well-formed but not allowed.
    #[error("{0}")]
    Denied(String),
    /// The request is malformed or names something that does not exist.
    #[error("{0}")]
    Invalid(String),
    /// The policy does not compile.
    #[error("the policy has mistakes:\n{0}")]
    Policy(#[from] custody_policy::PolicyErrors),
    /// A signature or statement could not be made or read.
    #[error(transparent)]
    Crypto(#[from] custody_crypto::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        AppError::Denied(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        AppError::Invalid(message.into())
    }
}

/// A use case's result.
pub type AppResult<T> = Result<T, AppError>;
