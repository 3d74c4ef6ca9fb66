/// What went wrong in the store, in terms the engine can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was hit: the thing already exists.
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    /// The database could not be reached or answered with an error.
    #[error("database unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<sqlx::Error>,
    },
    /// Every number of an id's format is taken.
    #[error("no {0} is left to allocate")]
    Exhausted(&'static str),
    /// The caller passed a value the store cannot use.
    #[error("invalid input: {0}")]
    Invalid(#[source] qrgate_domain::IdError),
    /// A stored value does not satisfy the domain's rules: a bug or a manual edit.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(what.to_string())
    }

    /// Maps a driver error; unique violations become [`StoreError::Conflict`] on `what`.
    pub(crate) fn from_sqlx(err: sqlx::Error, what: &'static str) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return StoreError::Conflict { what };
            }
        }
        if let sqlx::Error::RowNotFound = err {
            return StoreError::NotFound(what);
        }
        StoreError::Unavailable {
            message: err.to_string(),
            source: Some(err),
        }
    }

    /// Whether retrying the same transaction may succeed (a lost race on an allocated number,
    /// or SQLite's writer lock).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Conflict { .. } => true,
            StoreError::Unavailable { message, .. } => {
                message.contains("database is locked") || message.contains("busy")
            }
            _ => false,
        }
    }
}
