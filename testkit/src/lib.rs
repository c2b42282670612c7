//! natter-testkit: what natter's tests and its benchmark share, in one place instead of a
//! copy in each crate. Dev-only: no shipped binary depends on it.
//!
//! Layout:
//! - [`process`]: starting a server process (`natter-server`, the bench's ceiling) and
//!   reading the address from its first line, `… listening on ADDR[, …]`.
#![forbid(unsafe_code)]

pub mod process;
