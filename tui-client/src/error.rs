//! [`ApiError`]: how a request to the server can fail, sorted the way callers must react:
//! retry later (network), renew the token (unauthorized), slow down (rate limited), fix
//! the trust (untrusted certificate: nothing was sent), or give up on this request (any
//! other refusal).

use natter_shared::ErrorCode;

/// A failed request to the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached, or did not answer in time.
    #[error("cannot reach server at {server} ({detail}); is natter-server running?")]
    Network {
        /// The server URL.
        server: String,
        /// What the transport said.
        detail: String,
    },
    /// A TLS connection was made, but the server's certificate was refused.
    #[error("cannot connect securely to {server}: {why}")]
    Untrusted {
        /// The server URL.
        server: String,
        /// What is wrong with the certificate, and what to do (from `net::tls::refusal`).
        why: String,
    },
    /// The server answered with an error status.
    #[error("{message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The wire error code, when the body had one.
        code: Option<ErrorCode>,
        /// The server's message (or the status line).
        message: String,
    },
    /// The server answered something that is not the protocol.
    #[error("unexpected reply from server: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether trying again later may work without changing anything.
    pub fn is_network(&self) -> bool {
        match self {
            ApiError::Network { .. } => true,
            ApiError::Server { status, .. } => *status >= 500 || *status == 408,
            ApiError::Decode(_) | ApiError::Untrusted { .. } => false,
        }
    }

    /// Whether the server's certificate was refused: nothing reached it, and trying again
    /// will not help until `--ca-file` (or the server's certificate) changes.
    pub fn is_untrusted(&self) -> bool {
        matches!(self, ApiError::Untrusted { .. })
    }

    /// Whether the token (or password) was not accepted.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Server { status: 401, .. })
    }

    /// Whether the server asked us to slow down.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, ApiError::Server { status: 429, .. })
    }

    /// The wire code, if any.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Server { code, .. } => *code,
            _ => None,
        }
    }
}
