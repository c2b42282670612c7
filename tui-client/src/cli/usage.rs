//! What the command line owes the shell beyond the subcommands, in one place: a usage error
//! is one line on stderr (`natter: …`) with [`EXIT_USAGE`], not clap's four; `--help` and
//! `--version` stay clap's, whole, on stdout with 0; `completions SHELL` and `man` print a
//! completion script and a manual page on stdout. The flags themselves live in `mod.rs`.

use std::io::Write;

use clap::{CommandFactory, Parser};
use clap_complete::Shell;

use super::Cli;
use super::exit::{EXIT_FAILURE, EXIT_USAGE, Failure, Outcome};

/// Parses the process's arguments. Help and version are printed here and end the process
/// with 0, as clap does; any other clap error becomes a one-line [`Failure`] with
/// [`EXIT_USAGE`].
pub(super) fn parse() -> Result<Cli, Failure> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            e.exit();
        }
        Failure::new(EXIT_USAGE, natter_shared::usage::usage_line(&e))
    })
}

/// `natter completions SHELL`: the completion script for `shell` on stdout.
pub(super) fn completions(shell: Shell) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "natter", &mut script);
    print(&script)
}

/// `natter man [SUBCOMMAND]`: natter(1), or natter-SUBCOMMAND(1), as roff on stdout.
pub(super) fn man(subcommand: Option<&str>) -> Outcome {
    let source = format!("natter {}", env!("CARGO_PKG_VERSION"));
    let roff = natter_shared::usage::man_page(Cli::command(), subcommand, source)
        .map_err(|e| Failure::new(EXIT_USAGE, e))?;
    print(&roff)
}

/// Writes it all to stdout. A closed pipe (`| head`) is the reader's choice, not an error;
/// any other failure (a full disk under `> natter.1`) is.
fn print(bytes: &[u8]) -> Outcome {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::new(
            EXIT_FAILURE,
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}
