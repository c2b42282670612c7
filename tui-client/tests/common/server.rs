//! The real `natter-server` for end-to-end tests.
//!
//! Finding the binary: `CARGO_BIN_EXE_*` only names binaries of this package, so the server
//! is looked up next to `natter`'s own binary (same target directory, same profile) after
//! running `cargo build -p natter-server` once per test process (a no-op when it is fresh;
//! cargo no longer holds the build lock while tests run). Set `NATTER_SERVER_BIN` to use
//! another binary and skip the build.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers: a panic is the failure report

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

/// Path to a fresh `natter-server` binary.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NATTER_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let natter = Path::new(env!("CARGO_BIN_EXE_natter"));
        let dir = natter.parent().expect("target profile directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "natter-server", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("running cargo build -p natter-server");
        assert!(status.success(), "cargo build -p natter-server failed");
        let bin = dir.join("natter-server");
        assert!(bin.exists(), "no server binary at {}", bin.display());
        bin
    })
    .clone()
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
            let mut command = Command::new(server_binary());
            command
                .args(["--bind", bind, "--rate-limit", "0", "--db"])
                .arg(db)
                .args(&args)
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
