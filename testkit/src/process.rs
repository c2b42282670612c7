//! Server processes for the kill and freeze cases, which need a real process: started with
//! stdout piped, and the address read from the first line it prints (after libtest's, for
//! a test binary run again as the server) — `natter-server
//! listening on 127.0.0.1:PORT, database PATH` or `ceiling listening on 127.0.0.1:PORT`.
//! The parsing is here once; every test harness and the bench call it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The address in a server's `… listening on ADDR[, …]` line, if it has one.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    const MARK: &str = "listening on ";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let end = rest
        .find(|c: char| c == ',' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A started server: the child, the rest of its stdout (read it, or drop it once nothing
/// more is printed there), and where it listens.
#[derive(Debug)]
pub struct Listening {
    /// The process.
    pub child: Child,
    /// Its stdout after the first line.
    pub stdout: BufReader<ChildStdout>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Why [`spawn_listening`] got no address.
#[derive(Debug)]
pub enum SpawnError {
    /// The command could not be started.
    Spawn(std::io::Error),
    /// It started but its first line named no address (it exited, or the port was taken):
    /// that line, empty if it printed none. The process has been killed and reaped.
    NotListening(String),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Spawn(e) => write!(f, "cannot start the server: {e}"),
            SpawnError::NotListening(line) => {
                write!(f, "no address in the server's first line: {line:?}")
            }
        }
    }
}

impl std::error::Error for SpawnError {}

/// Starts `cmd` with stdout piped (its other streams as the caller set them) and waits for
/// its "listening on" line: the first line, or one of the first [`PREAMBLE_LINES`] (a test
/// binary run again as a server prints libtest's own lines first). Blocking: a server
/// prints that line as soon as it has bound, or exits.
pub fn spawn_listening(mut cmd: Command) -> Result<Listening, SpawnError> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(SpawnError::Spawn)?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SpawnError::NotListening(String::new()));
    };
    let mut stdout = BufReader::new(stdout);
    // The last line read that said something: what to report if none names an address.
    let mut last = String::new();
    for _ in 0..PREAMBLE_LINES {
        let mut line = String::new();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(addr) = parse_listening(&line) {
                    return Ok(Listening {
                        child,
                        stdout,
                        addr,
                    });
                }
                if !line.trim().is_empty() {
                    last = line;
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(SpawnError::NotListening(last))
}

/// Lines read, at most, looking for the "listening on" one.
pub const PREAMBLE_LINES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_either_servers_line() {
        let natter = "natter-server listening on 127.0.0.1:41234, database /tmp/x/bench.db\n";
        assert_eq!(
            parse_listening(natter),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(
            parse_listening("ceiling listening on 127.0.0.1:5"),
            Some(SocketAddr::from(([127, 0, 0, 1], 5)))
        );
        assert_eq!(
            parse_listening("natter-server listening on [::1]:8000, database x"),
            "[::1]:8000".parse().ok()
        );
        assert_eq!(parse_listening("hello"), None);
        assert_eq!(parse_listening("listening on nowhere"), None);
    }

    #[test]
    fn a_process_that_prints_no_address_is_reaped() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo port taken; echo; exit 1"]);
        match spawn_listening(cmd) {
            Err(SpawnError::NotListening(line)) => assert_eq!(line, "port taken\n"),
            other => panic!("{other:?}"),
        }
        // A test binary run again as the server: libtest's lines come first.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "printf '\\nrunning 1 test\\nx listening on 127.0.0.1:9, y\\n'; sleep 30",
        ]);
        let mut ok = spawn_listening(cmd).expect("an address");
        assert_eq!(ok.addr.port(), 9);
        let _ = ok.child.kill();
        let _ = ok.child.wait();
    }
}
