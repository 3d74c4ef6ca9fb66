use qrgate_store::StoreError;

use crate::MasterKeyError;

/// Errors of the engine's use cases.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The input breaks a rule; the message says which, for the caller to show as is.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// Lost too many races for a shared resource; retrying later should work.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Store(StoreError),
    /// The HTTP client for merchant notifications could not be built (its TLS setup failed).
    #[error("cannot build the HTTP client for merchant notifications")]
    HttpClient(#[source] reqwest::Error),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => EngineError::NotFound(what),
            StoreError::Conflict { what } => EngineError::AlreadyExists(what),
            other => EngineError::Store(other),
        }
    }
}
