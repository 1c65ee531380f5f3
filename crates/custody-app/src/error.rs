//! Why a use case did not do what was asked, classified by who is at fault.
//!
//! Every error has one [`Fault`]; the server maps a fault to one HTTP status, the CLI to
//! one exit code, and the CLI's client maps a status back to the same fault, so a command
//! fails alike whether it ran locally or through a server.

use custody_store::StoreError;

/// A use case's failure. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A check said no: the request is well-formed but not allowed.
    #[error("{0}")]
    Denied(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what is recorded (a decided promotion, an existing
    /// release, an idempotency key used for another request).
    #[error("{0}")]
    Conflict(String),
    /// custody's own records contradict themselves: someone must look.
    #[error("{0}")]
    Integrity(String),
    /// Something custody needs is not answering (the store, a server); retrying may help.
    #[error("{0}")]
    Unavailable(String),
    /// The policy does not compile (every mistake, by line).
    #[error("the policy has mistakes:\n{0}")]
    Policy(custody_policy::PolicyErrors),
    /// A signature or statement could not be made or read.
    #[error(transparent)]
    Crypto(#[from] custody_crypto::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<custody_policy::PolicyErrors> for AppError {
    // By hand, not `#[from]`: that would also make the mistakes the error's source, and a
    // report of the whole chain would print them twice.
    fn from(e: custody_policy::PolicyErrors) -> Self {
        AppError::Policy(e)
    }
}

/// Who is at fault for an [`AppError`], and so what a caller does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request was refused by a check (HTTP 403 / 401, exit 1).
    Denied,
    /// The request names what does not exist (HTTP 404, exit 2).
    NotFound,
    /// The request is malformed (HTTP 400, exit 2).
    Invalid,
    /// The request conflicts with what is recorded (HTTP 409, exit 2).
    Conflict,
    /// custody's records contradict themselves (HTTP 500, exit 2; an alarm).
    Integrity,
    /// A dependency is down or the outcome is unknown; retry (HTTP 503, exit 2).
    Unavailable,
}

impl AppError {
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        AppError::Denied(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        AppError::Invalid(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        AppError::NotFound(message.into())
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        AppError::Conflict(message.into())
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            AppError::Denied(_) => Fault::Denied,
            AppError::NotFound(_) => Fault::NotFound,
            AppError::Invalid(_) | AppError::Policy(_) | AppError::Crypto(_) => Fault::Invalid,
            AppError::Conflict(_) => Fault::Conflict,
            AppError::Integrity(_) => Fault::Integrity,
            AppError::Unavailable(_) => Fault::Unavailable,
            AppError::Store(e) => match e {
                // A range past the head or out of order is the request's mistake.
                StoreError::OutOfRange(_) | StoreError::InvalidInput(_) => Fault::Invalid,
                StoreError::IdempotencyConflict(_) | StoreError::Conflict { .. } => Fault::Conflict,
                // A history that went back or forked is found by the store itself, not
                // a database that is away: it is an integrity failure, never "retry later".
                StoreError::Corrupt(_)
                | StoreError::Integrity(_)
                | StoreError::KeyMismatch { .. }
                | StoreError::RetiredKey { .. } => Fault::Integrity,
                _ => Fault::Unavailable,
            },
        }
    }

    /// An error of `fault` with `message` (how a client rebuilds a server's error).
    pub fn of(fault: Fault, message: String) -> AppError {
        match fault {
            Fault::Denied => AppError::Denied(message),
            Fault::NotFound => AppError::NotFound(message),
            Fault::Invalid => AppError::Invalid(message),
            Fault::Conflict => AppError::Conflict(message),
            Fault::Integrity => AppError::Integrity(message),
            Fault::Unavailable => AppError::Unavailable(message),
        }
    }
}

/// A use case's result.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_survives_the_round_trip_a_client_makes() {
        for fault in [
            Fault::Denied,
            Fault::NotFound,
            Fault::Invalid,
            Fault::Conflict,
            Fault::Integrity,
            Fault::Unavailable,
        ] {
            assert_eq!(AppError::of(fault, "x".into()).fault(), fault);
        }
    }

    #[test]
    fn store_failures_are_classified_by_cause() {
        let conflict = AppError::Store(StoreError::IdempotencyConflict("k".into()));
        assert_eq!(conflict.fault(), Fault::Conflict);
        let corrupt = AppError::Store(StoreError::Corrupt("root".into()));
        assert_eq!(corrupt.fault(), Fault::Integrity);
        let down = AppError::Store(StoreError::Unavailable("disk full".into()));
        assert_eq!(down.fault(), Fault::Unavailable);
        let past = AppError::Store(StoreError::OutOfRange("index 9 past 3".into()));
        assert_eq!(past.fault(), Fault::Invalid);
    }
}
