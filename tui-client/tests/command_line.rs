//! The command line's conventions, run as the real `natter` binary (no server needed): a
//! usage error is one line with exit code 2, `--help` stays whole, and `completions` and
//! `man` print their scripts on stdout.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod cli;
}

use common::cli::{natter, run, stderr, stdout};
use natter::cli::EXIT_USAGE;

/// Runs `natter ARGS` with its own empty home, pointed at a port nothing listens on.
fn natter_with(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    run(natter(home.path(), "http://127.0.0.1:9").args(args))
}

/// Asserts a usage error: nothing on stdout, one stderr line starting `natter: ` and
/// containing `needle`, exit code 2.
fn assert_usage_error(args: &[&str], needle: &str) {
    let o = natter_with(args);
    assert_eq!(
        o.status.code(),
        Some(i32::from(EXIT_USAGE)),
        "{args:?}: {o:?}"
    );
    assert_eq!(stdout(&o), "", "{args:?}");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: stderr {err:?}");
    assert!(
        lines[0].starts_with("natter: ") && lines[0].contains(needle),
        "{args:?}: {:?} should start with `natter: ` and mention {needle:?}",
        lines[0]
    );
    assert!(!lines[0].contains("error:"), "{:?}", lines[0]);
    assert!(
        !lines[0].contains('\x1b'),
        "no colour codes: {:?}",
        lines[0]
    );
}

/// A bad flag, a flag without its value, a bad value and a missing argument are each one
/// line on stderr with exit code 2, top-level and in a subcommand.
#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    assert_usage_error(&["--frob"], "'--frob'");
    assert_usage_error(&["--frob"], "--help");
    assert_usage_error(&["history", "--frob"], "'--frob'");
    assert_usage_error(&["--name"], "'--name <NAME>'");
    assert_usage_error(&["history", "--limit", "lots"], "'lots'");
    assert_usage_error(&["send"], "<TEXT>");
    assert_usage_error(&["frobnicate"], "'frobnicate'");
    assert_usage_error(&["completions", "tcsh"], "'tcsh'");
}

/// A misspelt flag keeps clap's suggestion, on the same line.
#[test]
fn a_usage_error_keeps_the_suggestion() {
    assert_usage_error(&["--sever", "x"], "'--server'");
}

/// `--help` (and a subcommand's) is the whole help on stdout, exit 0; so is `--version`.
#[test]
fn help_and_version_stay_whole() {
    for args in [&["--help"][..], &["send", "--help"], &["help"]] {
        let o = natter_with(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        assert!(stdout(&o).lines().count() > 5, "{args:?}: {}", stdout(&o));
        assert!(stdout(&o).contains("Usage: natter"), "{args:?}");
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    let o = natter_with(&["--version"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        stdout(&o),
        format!("natter {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `completions SHELL` prints a script for each shell clap_complete knows, naming natter's
/// subcommands; it needs no server and ignores a bad NATTER_SERVER.
#[test]
fn completions_print_a_script_per_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let home = tempfile::tempdir().unwrap();
        let o = run(natter(home.path(), "not a url").args(["completions", shell]));
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = stdout(&o);
        assert!(
            script.contains("natter") && script.contains("history") && script.contains("server"),
            "{shell}: {script}"
        );
        assert_eq!(stderr(&o), "", "{shell}");
    }
    let bash = stdout(&natter_with(&["completions", "bash"]));
    assert!(bash.contains("complete -F _natter"), "{bash}");
}

/// `man` prints natter(1) as roff, with the subcommands and the exit codes; `man send`
/// prints natter-send(1), which natter(1) refers to.
#[test]
fn man_prints_the_manual_page() {
    let o = natter_with(&["man"]);
    assert!(o.status.success(), "{o:?}");
    let page = stdout(&o);
    assert!(page.contains(".TH natter 1"), "{page}");
    for needle in [
        "send",
        "tail",
        "history",
        "completions",
        "\\-\\-server",
        "Exit codes",
    ] {
        assert!(page.contains(needle), "man page lacks {needle:?}: {page}");
    }
    assert!(page.contains("natter\\-send(1)"), "{page}");
    assert!(!page.contains("natter\\-help(1)"), "{page}");
    let o = natter_with(&["man", "send"]);
    assert!(o.status.success(), "{o:?}");
    let page = stdout(&o);
    assert!(page.contains(".TH natter-send 1"), "{page}");
    assert!(page.contains("\\-\\-retry\\-for"), "{page}");
    assert_usage_error(&["man", "frob"], "'frob'");
}

/// A closed stdout (`natter completions bash | head -1`) is not an error.
#[test]
fn completions_into_a_closed_pipe_exit_quietly() {
    use std::process::Stdio;
    let home = tempfile::tempdir().unwrap();
    let mut child = natter(home.path(), "http://127.0.0.1:9")
        .args(["completions", "zsh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stderr(&o), "", "{o:?}");
}
