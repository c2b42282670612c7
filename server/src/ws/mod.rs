//! The WebSocket endpoint `/ws/chat/`.
//!
//! - [`upgrade`]: checks the request, authenticates it, answers 101 and spawns the connection.
//! - [`connection`]: one socket's life: replay, ready, then frames both ways until it closes.

pub mod connection;
pub mod upgrade;
