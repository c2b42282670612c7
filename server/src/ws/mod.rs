//! The WebSocket endpoint `/ws/chat/`, after the upgrade (which is an HTTP handler,
//! `http::upgrade`: it checks the request, authenticates it, answers 101 and spawns the
//! connection).
//!
//! - [`connection`]: one socket's life: replay, ready, then frames both ways until it closes;
//!   catching up when it falls behind (`connection::catch_up`); the client's frames admitted
//!   (`connection::admit`); how it ends (`connection::close`).
//! - [`outgoing`]: the sending half: a deadline on every write, the cursor that keeps each
//!   message to once.
//! - [`linger`]: after the server's close frame, discard what the peer still sends, so the
//!   close is read rather than lost to a TCP reset.

pub mod connection;
pub mod linger;
mod outgoing;
