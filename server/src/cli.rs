//! The command line's conventions, for the flags `main.rs` defines: a usage error is one line
//! on stderr (`natter-server: …`) with [`EXIT_USAGE`], not clap's four; `--help` and
//! `--version` stay clap's, whole, on stdout with 0; the [`Tool`] subcommands print a
//! completion script or a manual page instead of serving. With no subcommand the binary
//! serves, as it always has; the flags and serving stay in `main.rs`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use clap_complete::Shell;

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

/// Parses the process's arguments into `A`. `Err` is the process's end, already printed:
/// 0 after help or version, [`EXIT_USAGE`] after a one-line usage error.
pub fn parse<A: Parser>() -> Result<A, ExitCode> {
    A::try_parse().map_err(|e| {
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

/// natter-server(1), or natter-server-SUBCOMMAND(1), as roff; `Err` is the usage error
/// line for an unknown subcommand.
fn man_page(cmd: clap::Command, subcommand: Option<&str>) -> Result<Vec<u8>, String> {
    // Built as clap_mangen's own generate_to does: no `help` subcommand in the list, and
    // each subcommand named `natter-server-NAME`, as the list refers to it.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                return Err(format!(
                    "no subcommand '{name}'; the pages are: {}",
                    names.join(", ")
                ));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        // The footer names the program and its version on every page (a subcommand has no
        // version of its own).
        .source(format!("natter-server {}", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .expect("writing into a Vec cannot fail");
    Ok(roff)
}

/// Writes it all to stdout. A closed pipe (`| head`) is the reader's choice, not an error.
fn print(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
