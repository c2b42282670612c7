//! natter-testkit: what natter's tests and its benchmark share, in one place instead of a
//! copy in each crate. Dev-only: no shipped binary depends on it.
//!
//! Layout:
//! - [`process`]: starting a server process (`natter-server`, the bench's ceiling) and
//!   reading the address from its first line, `… listening on ADDR[, …]`.
//! - [`redis`]: a throwaway `redis-server` on a free port (no persistence, its own
//!   temporary directory), ready when it answers PING, killed when dropped; it can be
//!   stopped and started again on the same port.
//! - [`pg`]: a PostgreSQL database of the caller's own, with a unique name, created and
//!   dropped (`WITH (FORCE)`) through the `psql` CLI or a runner of the caller's; the
//!   naming and the create and drop statements are here only.
//! - `certs` (feature `certs`): test certificates made with rcgen — a CA and a server
//!   certificate it signs for `localhost` and `127.0.0.1` — in memory and as PEM files.
//! - `in_process` (feature `in-process`): the real server started through its library on
//!   127.0.0.1 port 0, inside the test's own runtime, so that a test can stop it, start it
//!   again on the same port, and use paused time.
//!
//! [`redis`] and [`pg`] return a [`ServiceError`] that tells a missing program (skip the
//! test, or fail it where `NATTER_REQUIRE_*` says the service must be there) from a service
//! that is installed but did not come up.
#![forbid(unsafe_code)]

#[cfg(feature = "certs")]
pub mod certs;
#[cfg(feature = "in-process")]
pub mod in_process;
pub mod pg;
pub mod process;
pub mod redis;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a throwaway service is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// The program it needs is not installed (`redis-server`, `psql`): the message says
    /// what to install. Tests skip on this unless told the service is required.
    Missing(String),
    /// It is installed but could not be started or reached, or refused what was asked.
    Failed(String),
}

impl ServiceError {
    /// Whether this is [`ServiceError::Missing`].
    pub fn is_missing(&self) -> bool {
        matches!(self, ServiceError::Missing(_))
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Missing(why) | ServiceError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ServiceError {}

/// `PREFIX_PID_NANOS_SEQ`: unique across processes (the PID), runs (the clock) and calls
/// within one process (a counter). Lower-case letters, digits and `_` when `prefix` is, so
/// it needs no quoting as a PostgreSQL name.
pub fn unique_name(prefix: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn unique_names_differ_within_a_process() {
        let (a, b) = (super::unique_name("x"), super::unique_name("x"));
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("x_{}_", std::process::id())), "{a}");
    }
}
