//! Error codes that travel on the wire, and the validation error both sides raise.
//!
//! `ErrorCode` is part of the protocol: add variants freely, never rename one (clients match
//! on the string). The HTTP status for each code lives in the server, not here.

use serde::{Deserialize, Serialize};

/// A machine-readable error code, serialized in `snake_case` (`"invalid_json"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or frame is not JSON (or not UTF-8).
    InvalidJson,
    /// A field is missing, of the wrong type, or breaks a rule (empty text, bad username...).
    InvalidField,
    /// A WebSocket frame with a `type` the server does not know.
    UnknownType,
    /// A binary WebSocket frame; natter speaks JSON text frames only.
    BinaryFrame,
    /// The body, frame or text is over its size limit.
    TooLarge,
    /// Missing, malformed or unknown bearer token.
    Unauthorized,
    /// Authenticated, but not allowed: posting as somebody else.
    Forbidden,
    /// Wrong username or password at login.
    InvalidCredentials,
    /// Registration with a name that exists (compared case-insensitively).
    UsernameTaken,
    /// A direct message to a user that does not exist.
    UnknownReceiver,
    /// The sender is over the per-user send rate.
    RateLimited,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// A plain GET on the WebSocket path, without the upgrade headers.
    UpgradeRequired,
    /// The server is at its connection limit.
    TooManyConnections,
    /// The server is shutting down.
    ShuttingDown,
    /// The server is too busy for this request right now (e.g. its password-hashing queue
    /// is full); retry in a moment.
    Busy,
    /// The request's head or body did not arrive within the server's deadline.
    RequestTimeout,
    /// The HTTP request itself is malformed (bad request line, bad header).
    BadRequest,
    /// The request's headers are larger than the server accepts.
    HeadersTooLarge,
    /// The database cannot be written right now (its file was deleted or became read-only,
    /// or an I/O error); nothing was stored.
    StorageUnavailable,
    /// The disk holding the database is full; nothing was stored.
    StorageFull,
    /// A fault on the server's side (a bug or a failing disk), never a client's mistake.
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `"invalid_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::UnknownReceiver => "unknown_receiver",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UpgradeRequired => "upgrade_required",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Busy => "busy",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::StorageFull => "storage_full",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"code","message"}`: the error object inside HTTP error bodies and WebSocket error frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorBody {
    /// An error body from a code and a human message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

/// A rule broken by some input. Its message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// `InvalidField`, `InvalidJson` or `TooLarge`.
    pub code: ErrorCode,
    /// A short lowercase sentence such as "text is empty".
    pub message: String,
}

impl ValidationError {
    /// An `invalid_field` error.
    pub fn field(message: impl Into<String>) -> Self {
        ValidationError {
            code: ErrorCode::InvalidField,
            message: message.into(),
        }
    }

    /// An error with any code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ValidationError {
            code,
            message: message.into(),
        }
    }
}

impl From<ValidationError> for ErrorBody {
    fn from(e: ValidationError) -> Self {
        ErrorBody::new(e.code, e.message)
    }
}
