//! natter's wire protocol: the one definition both the server and the client compile against.
//!
//! No tokio and no IO here, only types and the checks on them, so the rules a client applies
//! before sending are exactly the rules the server enforces on receipt.
//!
//! Layout:
//! - [`protocol`]: WebSocket frames ([`ClientFrame`], [`ServerFrame`]) and REST bodies.
//! - [`model`]: the stored [`Message`], ids and timestamps.
//! - [`validate`]: input rules and their limits, as constants.
//! - [`error`]: [`ErrorCode`] (visible on the wire) and [`ValidationError`].
//! - `usage` (feature `cli`): clap's usage errors in one line, for both binaries.
#![forbid(unsafe_code)]

pub mod error;
pub mod model;
pub mod protocol;
#[cfg(feature = "cli")]
pub mod usage;
pub mod validate;

pub use error::{ErrorBody, ErrorCode, ValidationError};
pub use model::{ClientId, Message, MessageId, Timestamp, Username};
pub use protocol::{ClientFrame, ErrorResponse, SendMessage, ServerFrame};
