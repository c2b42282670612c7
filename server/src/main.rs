//! `natter-server`: serves chat (see `natter_server::cli::serve`: flags, logging, the
//! database, bind, and serving until SIGINT/SIGTERM; with TLS, SIGHUP rereads the
//! certificate and key). `natter-server completions SHELL` and `natter-server man` print
//! instead of serving, `natter-server migrate` copies a SQLite database into PostgreSQL,
//! and usage errors are one line (`natter_server::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    natter_server::cli::serve::main_from(std::env::args_os())
}
