//! The command line's conventions, run as the real `natter-server` binary: a usage error is
//! one line with exit code 2 and nothing listens, `--help` stays whole, and `completions`
//! and `man` print their scripts on stdout instead of serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output, Stdio};

use common::TestServer;

/// Runs `natter-server ARGS` to the end, with a database path in an empty temp dir so a
/// server that wrongly starts fails the test by never exiting rather than by a stray file.
fn server_with(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args(args)
        .env("NATTER_DB", dir.path().join("chat.db"))
        .env("NATTER_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a usage error: nothing on stdout (so nothing listened), one stderr line starting
/// `natter-server: ` and containing `needle`, exit code 2.
fn assert_usage_error(args: &[&str], needle: &str) {
    let o = server_with(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
    assert_eq!(text(&o.stdout), "", "{args:?}");
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: stderr {err:?}");
    assert!(
        lines[0].starts_with("natter-server: ") && lines[0].contains(needle),
        "{args:?}: {:?} should start with `natter-server: ` and mention {needle:?}",
        lines[0]
    );
    assert!(!lines[0].contains("error:"), "{:?}", lines[0]);
    assert!(
        !lines[0].contains('\x1b'),
        "no colour codes: {:?}",
        lines[0]
    );
}

/// A bad flag, a flag without its value and a bad value (also from the environment) are
/// each one line on stderr with exit code 2.
#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    only_on!(Sqlite; "the command line opens no database: the same on every backend");
    assert_usage_error(&["--frob"], "'--frob'");
    assert_usage_error(&["--frob"], "--help");
    assert_usage_error(&["--bind"], "'--bind <BIND>'");
    assert_usage_error(&["--rate-limit", "lots"], "'lots'");
    assert_usage_error(&["--idle-timeout", "0"], "'0'");
    assert_usage_error(&["--max-message-chars", "0"], "'--max-message-chars");
    assert_usage_error(&["--bind", "nowhere"], "'nowhere'");
    assert_usage_error(&["completions", "tcsh"], "'tcsh'");
    assert_usage_error(&["completions"], "<SHELL>");
}

/// `--help` is the whole help on stdout, exit 0; `--version` is one line, exit 0.
#[test]
fn help_and_version_stay_whole() {
    only_on!(Sqlite; "the command line opens no database: the same on every backend");
    let o = server_with(&["--help"]);
    assert!(o.status.success(), "{o:?}");
    let help = text(&o.stdout);
    assert!(help.lines().count() > 20, "{help}");
    assert!(help.contains("Usage: natter-server") && help.contains("--max-connections"));
    assert_eq!(text(&o.stderr), "");
    let o = server_with(&["--version"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        text(&o.stdout),
        format!("natter-server {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `completions SHELL` prints a script for each shell clap_complete knows, with the flags,
/// and does not serve.
#[test]
fn completions_print_a_script_per_shell() {
    only_on!(Sqlite; "the command line opens no database: the same on every backend");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = server_with(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = text(&o.stdout);
        assert!(
            script.contains("natter-server") && script.contains("max-connections"),
            "{shell}: {script}"
        );
        assert!(!script.contains("listening"), "{shell}");
        assert_eq!(text(&o.stderr), "", "{shell}");
    }
}

/// `man` prints natter-server(1) as roff, with the flags and their environment variables
/// (not the hidden test flag); `man completions` prints the page it refers to.
#[test]
fn man_prints_the_manual_page() {
    only_on!(Sqlite; "the command line opens no database: the same on every backend");
    let o = server_with(&["man"]);
    assert!(o.status.success(), "{o:?}");
    let page = text(&o.stdout);
    assert!(page.contains(".TH natter-server 1"), "{page}");
    for needle in [
        "\\-\\-bind",
        "NATTER_BIND",
        "\\-\\-max\\-connections",
        "completions",
    ] {
        assert!(page.contains(needle), "man page lacks {needle:?}: {page}");
    }
    assert!(
        !page.contains("test\\-max\\-page\\-count"),
        "hidden flag shown: {page}"
    );
    assert!(page.contains("natter\\-server\\-completions(1)"), "{page}");
    let o = server_with(&["man", "completions"]);
    assert!(o.status.success(), "{o:?}");
    assert!(text(&o.stdout).contains(".TH natter-server-completions 1"));
    assert_usage_error(&["man", "frob"], "'frob'");
}

/// With no subcommand it serves as before: flags only, the "listening on" line, answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subcommand_still_serves() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    assert!(!token.is_empty());
}
