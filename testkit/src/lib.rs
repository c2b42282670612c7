//! natter-testkit: what natter's tests and its benchmark share, in one place instead of a
//! copy in each crate. Dev-only: no shipped binary depends on it.
//!
//! Layout:
//! - [`process`]: starting a server process (`natter-server`, the bench's ceiling) and
//!   reading the address from its first line, `… listening on ADDR[, …]`.
//! - `in_process` (feature `in-process`): the real server started through its library on
//!   127.0.0.1 port 0, inside the test's own runtime, so that a test can stop it, start it
//!   again on the same port, and use paused time.
#![forbid(unsafe_code)]

#[cfg(feature = "in-process")]
pub mod in_process;
pub mod process;
