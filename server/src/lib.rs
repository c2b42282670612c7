//! natter-server: chat over REST and WebSocket on one port, stored in SQLite or PostgreSQL.
//!
//! Data flows one way: socket → connection task (`ws::connection`) or REST handler
//! (`http::*`) → store writer (commit) → feed (`bus`; and Redis, to the other instances) →
//! hub (fan-out) → each connection's queue → socket.
//!
//! Layout:
//! - [`server`]: `Server::open` (the database, the shared state), then `Server::serve`: the
//!   accept loop and shutdown.
//! - [`cli`]: the command line: its conventions (one-line usage errors, `completions`,
//!   `man`, `migrate`) and `cli::serve`, the binary's whole run (flags, logging, serving),
//!   which `main.rs` calls.
//! - [`config`]: settings and defaults.
//! - [`tls`]: the certificate and key from PEM files, the rustls configuration, reloading.
//! - [`state`]: `AppState`, shared by every request and connection; the send admission check.
//! - [`http`]: routing, the REST handlers (`auth`, `messages`, `users`), the probes (`health`),
//!   the WebSocket upgrade (`upgrade`), and `canned` (the JSON body for the 400 and 431 hyper
//!   sends by itself).
//! - [`ws`]: the per-connection loop after the upgrade.
//! - [`hub`]: connected users, per-connection bounded queues, who receives what.
//! - [`bus`]: the feed that hands every committed message to the hub once, in id order, and,
//!   with several instances, Redis between them (messages, presence, revoked tokens).
//! - [`store`]: the `Store` handle over SQLite or PostgreSQL (`store::DbTarget`), migrations,
//!   the group-committing writers.
//! - [`auth`]: password hashing, tokens, request authentication.
//! - [`rate`]: token buckets: send rate, login and registration throttles.
//! - [`limits`]: caps on open connections (WebSockets in all and per user, plain HTTP).
//! - [`peer`]: the client's address, through trusted proxies.
//! - [`metrics`]: Prometheus metrics and their `/metrics` listener; counting refusals.
//! - [`error`]: `ServerError` and its HTTP status / wire code; `OpenError`, why the server
//!   cannot start.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod peer;
pub mod rate;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod ws;

pub use config::Config;
pub use server::Server;
