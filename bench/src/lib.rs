//! natter-bench: a load generator for natter-server and the ceiling it is measured against.
//!
//! Layout:
//! - [`marker`]: the send stamp inside each message text, and the cheap scan for it.
//! - [`stats`]: per-connection tallies (HDR histograms) and the one-line JSON [`stats::Report`].
//! - [`load`]: open connections, pace senders (rate or window), count deliveries.
//! - [`reader`]: one connection's reader: markers into its tally; cut or failed at the end.
//! - [`target`]: start natter-server or the ceiling as a child process; RSS from `/proc`.
//! - [`scenario`]: routing (group, pairs, sink) → connections; one measured run.
//! - [`ceiling`]: the minimal tokio-tungstenite broadcast server.
//! - [`hog`]: busy-looping child process beside a run (a build sharing the machine).
//! - [`suite`]: the standard scenarios against both targets.
//! - [`table`]: the Markdown comparison table.
//! - [`client`]: the `natter tail --json` row.
#![forbid(unsafe_code)]

pub mod ceiling;
pub mod client;
pub mod hog;
pub mod load;
pub mod marker;
pub mod reader;
pub mod scenario;
pub mod stats;
pub mod suite;
pub mod table;
pub mod target;
