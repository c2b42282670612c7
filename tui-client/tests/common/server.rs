//! The real `natter-server` for end-to-end tests, as a process of its own (the tests kill
//! it with SIGKILL, freeze it with SIGSTOP, restart it on the same port).
//!
//! No server binary needs building: the process is this test binary run again as
//! [`natter_server_child`], which runs the server's whole command line
//! (`natter_server::cli::serve::main_from`, what the binary's `main` calls) with the flags
//! it was given. Set `NATTER_SERVER_BIN` to run another binary instead (a release build,
//! say).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers: a panic is the failure report

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The child's flags, one per field, separated by [`ARG_SEPARATOR`].
const CHILD_ARGS: &str = "NATTER_SERVER_CHILD_ARGS";
const ARG_SEPARATOR: char = '\u{1f}';

/// The server process of the end-to-end tests: serves until killed, with the flags its
/// parent gave it. Runs only when a test starts it.
#[test]
#[ignore = "the server process of the end-to-end tests; runs only when they start it"]
fn natter_server_child() {
    let Some(args) = std::env::var_os(CHILD_ARGS) else {
        return;
    };
    let args = args.into_string().expect("UTF-8 flags");
    let argv = std::iter::once("natter-server").chain(args.split(ARG_SEPARATOR));
    // How it ended is on stderr; a server that never said where it listens fails its
    // parent's test with what it printed.
    let _ = natter_server::cli::serve::main_from(argv);
}

/// A command that runs the server with `args`.
fn server_command(args: &[OsString]) -> Command {
    if let Some(bin) = std::env::var_os("NATTER_SERVER_BIN") {
        let mut command = Command::new(bin);
        command.args(args);
        return command;
    }
    let joined: Vec<&str> = args
        .iter()
        .map(|a| a.to_str().expect("UTF-8 flags"))
        .collect();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "common::server::natter_server_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ARGS, joined.join(&ARG_SEPARATOR.to_string()));
    command
}

/// A running server; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The database file.
    pub db: PathBuf,
    /// The flags beyond address and database, for a restart.
    args: Vec<OsString>,
    /// Whether it serves TLS.
    tls: bool,
}

impl Server {
    /// Starts a server on a free port with `db`, rate limit off.
    pub fn start(db: &Path) -> Server {
        Server::start_on(db, "127.0.0.1:0")
    }

    /// Starts a server bound to `bind` (retrying for a few seconds if the port is busy).
    pub fn start_on(db: &Path, bind: &str) -> Server {
        Server::launch(db, bind, Vec::new(), false)
    }

    /// Starts a server on a free port that serves TLS with `cert` and `key` (PEM files).
    pub fn start_tls(db: &Path, cert: &Path, key: &Path) -> Server {
        let args = vec![
            "--tls-cert".into(),
            cert.into(),
            "--tls-key".into(),
            key.into(),
        ];
        Server::launch(db, "127.0.0.1:0", args, true)
    }

    /// Starts a server on a free port with more flags.
    pub fn start_with(db: &Path, args: &[&str]) -> Server {
        let args = args.iter().map(OsString::from).collect();
        Server::launch(db, "127.0.0.1:0", args, false)
    }

    fn launch(db: &Path, bind: &str, args: Vec<OsString>, tls: bool) -> Server {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut flags: Vec<OsString> = ["--bind", bind, "--rate-limit", "0", "--db"]
                .into_iter()
                .map(OsString::from)
                .collect();
            flags.push(db.into());
            flags.extend(args.iter().cloned());
            let mut command = server_command(&flags);
            command
                .env_remove("NATTER_BIND")
                .env_remove("NATTER_DB")
                .env_remove("NATTER_TLS_CERT")
                .env_remove("NATTER_TLS_KEY")
                .stderr(Stdio::null());
            let line = match natter_testkit::process::spawn_listening(command) {
                Ok(started) => {
                    return Server {
                        child: started.child,
                        stdout: started.stdout,
                        addr: started.addr.to_string(),
                        db: db.to_owned(),
                        args,
                        tls,
                    };
                }
                // A fixed port still held by the server just killed: try again.
                Err(natter_testkit::process::SpawnError::NotListening(line)) => line,
                Err(e) => panic!("{e}"),
            };
            assert!(
                std::time::Instant::now() < deadline,
                "server did not start on {bind}: {line:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// The next line the server prints after "listening on" (with `--metrics-bind`, where
    /// its metrics are).
    pub fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process stops answering but every socket stays open, as when a host
    /// hangs or a tunnel freezes. [`Server::resume`] undoes it; drop still kills it.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Server::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Kills it and starts a new one on the same address and database.
    pub fn restart(&mut self) {
        self.kill();
        *self = Server::launch(
            &self.db.clone(),
            &self.addr.clone(),
            self.args.clone(),
            self.tls,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
