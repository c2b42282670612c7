//! `ServerError`: every way a request or frame can fail, and how each maps to an HTTP status
//! and a wire [`ErrorCode`]. Handlers return it; `http/mod.rs` turns it into a response.
//! [`OpenError`]: why `Server::open` cannot start a server.

use hyper::StatusCode;
use natter_shared::{ErrorBody, ErrorCode, ValidationError};

use crate::store::StoreError;
use crate::tls::TlsError;

/// Why the server cannot start: its database or its TLS files. Either is reported before
/// anything listens.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A bus was asked for with a SQLite file.
    #[error(
        "--bus needs a PostgreSQL --db: instances on a bus share one database, and a SQLite file cannot be shared"
    )]
    BusNeedsPostgres,
}

/// A failed request. Client mistakes carry their message; server faults are logged, never
/// shown in detail.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Input broke a rule (bad JSON, bad field, too large).
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// No usable bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Wrong username or password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Posting as somebody else.
    #[error("{0}")]
    Forbidden(String),
    /// No such route.
    #[error("no route for {0}")]
    NotFound(String),
    /// A direct message to nobody.
    #[error("no user named {0:?}")]
    UnknownReceiver(String),
    /// Route exists, method doesn't; carries the allowed methods.
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    /// Registration with a taken name.
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    /// Over the per-user send rate.
    #[error("sending too fast; slow down and retry")]
    RateLimited,
    /// Too many failed logins for one name.
    #[error("too many failed logins for this name; wait a few seconds and retry")]
    LoginThrottled,
    /// At the connection limit.
    #[error("server is at its connection limit; try again later")]
    TooManyConnections,
    /// This account has as many WebSockets open as one account may.
    #[error("this account has {0} connections open, the most one account may; close one and retry")]
    TooManyUserConnections(usize),
    /// The password-hashing queue is full (a flood of registrations or logins).
    #[error("server is busy; retry in a moment")]
    Busy,
    /// The request body did not arrive within the request timeout.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// Too many registrations from this address.
    #[error("too many registrations from this address; wait a minute and retry")]
    RegistrationThrottled,
    /// The HTTP request is malformed in a way our handlers see, such as a WebSocket
    /// handshake with an invalid key. (hyper answers unparsable requests itself; see
    /// `http::canned`.)
    #[error("{0}")]
    BadRequest(&'static str),
    /// GET on the WebSocket path without upgrade headers.
    #[error("this path speaks WebSocket; connect with a WebSocket client")]
    UpgradeRequired,
    /// Shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The store failed: a full disk or a database that cannot be written (503, retry
    /// later), else a bug or a failing disk.
    #[error("{}", store_message(.0))]
    Store(#[from] StoreError),
    /// Any other fault on our side; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl ServerError {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::Invalid(e) => e.code,
            ServerError::Unauthorized(_) => ErrorCode::Unauthorized,
            ServerError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ServerError::Forbidden(_) => ErrorCode::Forbidden,
            ServerError::NotFound(_) => ErrorCode::NotFound,
            ServerError::UnknownReceiver(_) => ErrorCode::UnknownReceiver,
            ServerError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ServerError::UsernameTaken(_) => ErrorCode::UsernameTaken,
            ServerError::RateLimited | ServerError::LoginThrottled => ErrorCode::RateLimited,
            ServerError::TooManyConnections | ServerError::TooManyUserConnections(_) => {
                ErrorCode::TooManyConnections
            }
            ServerError::Busy => ErrorCode::Busy,
            ServerError::RequestTimeout => ErrorCode::RequestTimeout,
            ServerError::RegistrationThrottled => ErrorCode::RateLimited,
            ServerError::BadRequest(_) => ErrorCode::BadRequest,
            ServerError::UpgradeRequired => ErrorCode::UpgradeRequired,
            ServerError::ShuttingDown => ErrorCode::ShuttingDown,
            ServerError::Store(StoreError::Full) => ErrorCode::StorageFull,
            // The writer is gone: the server is stopping.
            ServerError::Store(StoreError::Closed) => ErrorCode::ShuttingDown,
            // Open: a read connection could not open the file (deleted while running).
            ServerError::Store(
                StoreError::Unavailable | StoreError::Open { .. } | StoreError::Connect { .. },
            ) => ErrorCode::StorageUnavailable,
            ServerError::Store(_) | ServerError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self.code() {
            ErrorCode::InvalidJson | ErrorCode::InvalidField | ErrorCode::UnknownType => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::BinaryFrame | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized | ErrorCode::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound | ErrorCode::UnknownReceiver => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UsernameTaken => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ErrorCode::TooManyConnections
            | ErrorCode::ShuttingDown
            | ErrorCode::Busy
            | ErrorCode::StorageUnavailable
            | ErrorCode::StorageFull => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `{"code","message"}` body. A server fault's detail stays out of it (see
    /// [`ServerError::log_fault`]).
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }

    /// Logs a server fault's detail, which the client is not shown: a store failure or an
    /// internal error. Called once, where the reply for the client is built (an HTTP error
    /// response, a WebSocket error frame).
    pub fn log_fault(&self) {
        match self {
            // The writer logged the cause once when the database became full or unwritable.
            ServerError::Store(StoreError::Full | StoreError::Unavailable) => {}
            ServerError::Store(e) => tracing::error!(error = %Chain(e), "store failure"),
            ServerError::Internal(e) => tracing::error!(error = %e, "internal failure"),
            _ => {}
        }
    }
}

/// What a client is told about a store failure: what to do for the two it can wait out,
/// nothing of the detail otherwise.
fn store_message(e: &StoreError) -> &'static str {
    match e {
        StoreError::Full => "the server's disk is full; nothing was stored, retry later",
        StoreError::Unavailable | StoreError::Open { .. } | StoreError::Connect { .. } => {
            "the server cannot write its database right now; nothing was stored, retry later"
        }
        _ => "internal error",
    }
}

/// Shows an error and each of its sources, `error: cause: cause`, for the log: a
/// [`StoreError`]'s message leaves its cause to `source()`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
