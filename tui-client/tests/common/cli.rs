//! Running the real `natter` binary from end-to-end tests: one home directory per user
//! (XDG_CONFIG_HOME / XDG_STATE_HOME below it), the server from `NATTER_SERVER`, no
//! inherited token, and the output decoded.
#![allow(clippy::unwrap_used, dead_code)] // test helpers: a panic is the failure report

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use natter_shared::Message;

/// `natter` with `home`'s files, talking to `server`, stdin empty.
pub fn natter(home: &Path, server: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_natter"));
    c.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("NATTER_SERVER", server)
        .env_remove("NATTER_TOKEN")
        .stdin(Stdio::null());
    c
}

/// Runs it to the end.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// Runs `natter send - FLAGS…` with `input` on stdin.
pub fn send_stdin(cmd: &mut Command, flags: &[&str], input: &str) -> Output {
    let mut child = cmd
        .args(["send", "-"])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `--json` output: one message per line.
pub fn json_lines(o: &Output) -> Vec<Message> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
