//! The core error type. Each error carries a framework-free [`ErrorKind`] that the HTTP
//! layer maps to a status code in one place.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller gave a value that cannot be accepted (maps to 400).
    InvalidInput,
    /// The thing asked for does not exist (maps to 404).
    NotFound,
    /// The database could not be reached (maps to 503).
    Unavailable,
    /// Anything else (maps to 500).
    Internal,
}

/// Errors raised by the core library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input parameter was rejected; `parameter` names it as the caller spelled it.
    #[error("invalid {parameter}: {message}")]
    Invalid {
        parameter: &'static str,
        message: String,
    },
    /// The named entity was not found.
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// A database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A sealed secret (an OAuth grant) did not open: the wrong key, or an altered value.
    #[error(transparent)]
    Sealed(#[from] crate::crypto::OpenError),
}

impl Error {
    /// Builds an [`Error::Invalid`] for `parameter`.
    pub fn invalid(parameter: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            parameter,
            message: message.into(),
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::InvalidInput,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Database(e) if is_unavailable(e) => ErrorKind::Unavailable,
            Error::Database(_) | Error::Migrate(_) | Error::Sealed(_) => ErrorKind::Internal,
        }
    }

    /// The parameter an [`Error::Invalid`] names.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            Error::Invalid { parameter, .. } => Some(parameter),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

/// Whether a database error means "the database is not reachable right now".
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // With TLS on, a connection cut while it is being set up fails in the SSLRequest
        // exchange (a protocol error) or the handshake: the server is not reachable as such.
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
            // 08xxx connection exceptions.
            db.code()
                .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"))
        }
        _ => false,
    }
}

/// Result alias for the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
