//! `ServerError`: every way a request or frame can fail, and how each maps to an HTTP status
//! and a wire [`ErrorCode`]. Handlers return it; `http/mod.rs` turns it into a response.

use hyper::StatusCode;
use natter_shared::{ErrorBody, ErrorCode, ValidationError};

use crate::store::StoreError;

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
    /// The store failed: a bug or a failing disk.
    #[error("internal error")]
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
            ServerError::TooManyConnections => ErrorCode::TooManyConnections,
            ServerError::BadRequest(_) => ErrorCode::BadRequest,
            ServerError::UpgradeRequired => ErrorCode::UpgradeRequired,
            ServerError::ShuttingDown => ErrorCode::ShuttingDown,
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

    /// The `{"code","message"}` body. A store failure is logged here, once, and its detail
    /// stays out of the reply.
    pub fn body(&self) -> ErrorBody {
        match self {
            ServerError::Store(e) => tracing::error!(error = %e, "store failure"),
            ServerError::Internal(e) => tracing::error!(error = %e, "internal failure"),
            _ => {}
        }
        ErrorBody::new(self.code(), self.to_string())
    }
}
