//! The command line's conventions, for the flags [`serve`] defines: a usage error is one line
//! on stderr (`natter-server: …`) with [`EXIT_USAGE`], not clap's four; `--help` and
//! `--version` stay clap's, whole, on stdout with 0; the [`Tool`] subcommands print a
//! completion script or a manual page, or copy a SQLite database into PostgreSQL, instead of
//! serving. With no subcommand the binary serves, as it always has ([`serve::main_from`],
//! which `main.rs` calls).

pub mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::Shell;

use crate::store::DbTarget;

/// The exit code of a usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;

/// What the binary does instead of serving.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Print a completion script for SHELL on stdout, instead of serving.
    ///
    /// For example `natter-server completions bash >
    /// ~/.local/share/bash-completion/completions/natter-server`.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Copy a SQLite database into an empty PostgreSQL database, instead of serving.
    ///
    /// Users with their password hashes, tokens, and messages with their ids, timestamps and
    /// client_ids, in one transaction; prints the counts. For example `natter-server migrate
    /// --from natter.db --to postgres://natter@db/natter`, then serve with that URL as --db.
    Migrate {
        /// The natter SQLite file to copy; it is only read. Refused while a natter-server is
        /// running on it: stop that first.
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
        /// The PostgreSQL database to copy into, postgres://USER[:PASSWORD]@HOST[:PORT]/NAME.
        /// It must exist and hold no natter users or messages.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Print the manual page, natter-server(1) or a subcommand's, as roff on stdout, instead
    /// of serving.
    ///
    /// `natter-server man | man -l -` reads it, `natter-server man > natter-server.1` keeps
    /// it.
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
    },
}

/// Parses `args` (the program's name first) into `A`. `Err` is the process's end, already printed:
/// 0 after help or version, [`EXIT_USAGE`] after a one-line usage error.
pub fn parse_from<A: Parser, I, T>(args: I) -> Result<A, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    A::try_parse_from(args).map_err(|e| {
        if e.use_stderr() {
            eprintln!("natter-server: {}", natter_shared::usage::usage_line(&e));
            ExitCode::from(EXIT_USAGE)
        } else {
            // Help and version: clap's, whole, with its colours at a terminal.
            let _ = e.print();
            ExitCode::SUCCESS
        }
    })
}

impl Tool {
    /// Prints what was asked for; `cmd` is the whole command line (`Args::command()`).
    pub fn run(self, cmd: clap::Command) -> ExitCode {
        let bytes = match self {
            Tool::Migrate { from, to } => return migrate(&from, &to),
            Tool::Completions { shell } => {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cmd.clone(), "natter-server", &mut script);
                script
            }
            Tool::Man { subcommand } => match man_page(cmd, subcommand.as_deref()) {
                Ok(roff) => roff,
                Err(message) => {
                    eprintln!("natter-server: {message}");
                    return ExitCode::from(EXIT_USAGE);
                }
            },
        };
        match print(&bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("natter-server: cannot write to stdout: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

/// `migrate`: the copy, then one line with the counts; or one line saying why not.
fn migrate(from: &Path, to: &str) -> ExitCode {
    let target = match DbTarget::parse(to) {
        Ok(DbTarget::Postgres(pg)) => pg,
        Ok(DbTarget::Sqlite(_)) => {
            eprintln!("natter-server: --to must be a postgres:// or postgresql:// URL");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("natter-server: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match crate::store::sqlite_to_postgres(from, &target) {
        Ok(copied) => {
            println!(
                "copied {} users, {} tokens and {} messages from {} to {target}",
                copied.users,
                copied.tokens,
                copied.messages,
                from.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("natter-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// natter-server(1), or natter-server-SUBCOMMAND(1), as roff; `Err` is the usage error
/// line for an unknown subcommand.
fn man_page(cmd: clap::Command, subcommand: Option<&str>) -> Result<Vec<u8>, String> {
    let source = format!("natter-server {}", env!("CARGO_PKG_VERSION"));
    natter_shared::usage::man_page(cmd, subcommand, source)
}

/// Writes it all to stdout. A closed pipe (`| head`) is the reader's choice, not an error.
fn print(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
