//! natter-bench: a load generator for natter-server and the ceiling it is measured against.
//!
//! Layout:
//! - [`marker`]: the send stamp inside each message text, and the cheap scan for it.
//! - [`stats`]: per-connection tallies (HDR histograms) and the one-line JSON [`stats::Report`].
//! - [`load`]: open connections, pace senders (rate or window), count deliveries (`load/`:
//!   `conn`, one connection; `sender`, one sender task).
//! - [`reader`]: one connection's reader: markers into its tally; cut or failed at the end.
//! - [`target`]: start natter-server or the ceiling as a child process; RSS from `/proc`.
//! - [`scenario`]: routing (group, pairs, sink) → connections; one measured run.
//! - [`ceiling`]: the minimal tokio-tungstenite broadcast server.
//! - [`hog`]: busy-looping child process beside a run (a build sharing the machine).
//! - [`cluster`]: a cluster run's PostgreSQL database and Redis, and their CPU time.
//! - [`suite`]: the standard scenarios against both targets, the fixed-load ones as a table
//!   (`suite/`: `fanout`, the step-up; `cluster`, the cluster's).
//! - [`table`]: the Markdown comparison table.
//! - [`cluster_table`]: the cluster's table (1–3 instances beside SQLite) and CPU costs.
//! - [`client`]: the `natter tail --json` row.
#![forbid(unsafe_code)]

pub mod ceiling;
pub mod client;
pub mod cluster;
pub mod cluster_table;
pub mod hog;
pub mod load;
pub mod marker;
pub mod reader;
pub mod scenario;
pub mod stats;
pub mod suite;
pub mod table;
pub mod target;
