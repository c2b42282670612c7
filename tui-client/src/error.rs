//! [`ApiError`]: how a request to the server can fail, and [`ApiError::disposition`], the
//! one place that decides what a failure means for the request: try it again later
//! (unreachable, rate limited, or an untrusted certificate: nothing was stored), renew the
//! token and try again, or refused for good. The chat screen's fallback, `natter send` and
//! login all sort failures through it; each decides only how long to wait.

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

/// What a failed request means for it (see [`ApiError::disposition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Nothing is known to have been stored: the same request may succeed later, unchanged.
    Retry(Retry),
    /// The token (or password) was not accepted: log in again, then retry.
    Renew,
    /// The server refused the request itself: sent again as it is, it would be refused
    /// again. (A success status whose body did not decode lands here too: it was stored.)
    Refused,
}

/// Why a request may be tried again, which says how soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// No answer, or the server failed (5xx, 408): back off and try again.
    Unreachable,
    /// The server asked us to slow down (429).
    RateLimited,
    /// The server's certificate was refused, so nothing reached it; trying again will not
    /// help until `--ca-file` (or the server's certificate) changes.
    Untrusted,
}

impl ApiError {
    /// What this failure means for the request that met it.
    pub fn disposition(&self) -> Disposition {
        if self.is_untrusted() {
            Disposition::Retry(Retry::Untrusted)
        } else if self.is_network() {
            Disposition::Retry(Retry::Unreachable)
        } else if self.is_rate_limited() {
            Disposition::Retry(Retry::RateLimited)
        } else if self.is_unauthorized() {
            Disposition::Renew
        } else {
            Disposition::Refused
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ApiError {
        ApiError::Server {
            status,
            code: None,
            message: String::new(),
        }
    }

    #[test]
    fn every_failure_has_one_disposition() {
        use Disposition::{Refused, Renew};
        let network = ApiError::Network {
            server: "s".into(),
            detail: "d".into(),
        };
        let untrusted = ApiError::Untrusted {
            server: "s".into(),
            why: "w".into(),
        };
        let cases = [
            (network, Disposition::Retry(Retry::Unreachable)),
            (untrusted, Disposition::Retry(Retry::Untrusted)),
            (status(500), Disposition::Retry(Retry::Unreachable)),
            (status(503), Disposition::Retry(Retry::Unreachable)),
            (status(408), Disposition::Retry(Retry::Unreachable)),
            (status(429), Disposition::Retry(Retry::RateLimited)),
            (status(401), Renew),
            (status(400), Refused),
            (status(403), Refused),
            (status(409), Refused),
            (status(413), Refused),
            (ApiError::Decode("x".into()), Refused),
        ];
        for (e, want) in cases {
            assert_eq!(e.disposition(), want, "{e:?}");
        }
    }
}
