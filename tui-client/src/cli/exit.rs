//! Exit codes, as `--help` lists them, and [`Failure`]: a one-line message with its code,
//! which every subcommand ends in when it does not succeed. Map a new kind of error to a
//! code in `From<ApiError>`.

use crate::error::ApiError;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// Bad command line or arguments (also clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// No credentials, wrong password, name taken, token refused.
pub const EXIT_AUTH: u8 = 3;
/// The server cannot be reached (or its TLS certificate is not trusted).
pub const EXIT_NETWORK: u8 = 4;
/// The server refused the request (invalid text, unknown receiver, …).
pub const EXIT_REFUSED: u8 = 5;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure
  2  usage error (bad flags or arguments)
  3  authentication (no stored credentials, wrong password, name taken, token refused)
  4  network (cannot reach the server, or its certificate is not trusted; tail waits
     for a server it cannot reach instead)
  5  refused by the server (invalid message, unknown receiver, ...)

Environment:
  NATTER_SERVER  server URL (like --server)
  NATTER_CA_FILE  PEM certificates to trust for https:// (like --ca-file)
  NATTER_TOKEN   bearer token; overrides stored credentials
  NO_COLOR       no colours on the chat screen
  XDG_CONFIG_HOME, XDG_STATE_HOME  where credentials.toml and the outbox live";

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    pub(super) fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let code = if e.is_network() || e.is_untrusted() {
            EXIT_NETWORK
        } else if e.is_unauthorized() {
            EXIT_AUTH
        } else if matches!(e, ApiError::Server { .. }) {
            EXIT_REFUSED
        } else {
            EXIT_FAILURE
        };
        Failure::new(code, e.to_string())
    }
}

/// What a subcommand ends in.
pub(super) type Outcome = Result<(), Failure>;
