//! A throwaway `redis-server`: on a free port of 127.0.0.1, with no persistence (`--save ""
//! --appendonly no`) and a temporary directory of its own as `--dir`, so it shares nothing
//! with any other Redis on the machine. Ready once it answers `PING` (a raw `PING\r\n` on a
//! socket, `+PONG` back), waited for in a bounded loop. [`ThrowawayRedis::stop`] SIGKILLs
//! it (Redis gone without a word), [`ThrowawayRedis::start_again`] starts it again on the
//! same port; dropping it kills and reaps the process and removes the directory.
//!
//! Std only. A missing `redis-server` binary is [`ServiceError::Missing`], so a test can
//! skip in one line (or fail where `NATTER_REQUIRE_REDIS` says Redis must be there).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ServiceError;

/// How long, at most, a start waits for `PING` to be answered.
pub const READY_WITHIN: Duration = Duration::from_secs(10);
/// How often, at most, it asks meanwhile (one try every [`RETRY_EVERY`]).
pub const READY_TRIES: u32 = 200;
/// The pause between two tries.
pub const RETRY_EVERY: Duration = Duration::from_millis(50);

/// A `redis-server` of the caller's own; killed when dropped.
#[derive(Debug)]
pub struct ThrowawayRedis {
    /// The process; `None` while stopped.
    child: Option<Child>,
    port: u16,
    /// Its `--dir`, removed when this goes.
    dir: PathBuf,
}

impl ThrowawayRedis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Result<ThrowawayRedis, ServiceError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| ServiceError::Failed(format!("no free port for redis-server: {e}")))?
            .port();
        let dir = std::env::temp_dir().join(crate::unique_name("natter_redis"));
        std::fs::create_dir_all(&dir).map_err(|e| {
            ServiceError::Failed(format!(
                "cannot create {} for redis-server: {e}",
                dir.display()
            ))
        })?;
        let mut redis = ThrowawayRedis {
            child: None,
            port,
            dir,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same after [`Self::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it answers `PING` now (within a second).
    pub fn answers(&self) -> bool {
        answers_ping(self.port)
    }

    /// Kills it (SIGKILL: no shutdown, no goodbye to its clients) and reaps it. The port and
    /// the directory stay this one's, for [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`Self::stop`]; a running one is stopped
    /// first) and waits until it answers.
    pub fn start_again(&mut self) -> Result<(), ServiceError> {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ServiceError::Missing(
                        "redis-server is not installed (apt-get install redis-server)".to_owned(),
                    )
                } else {
                    ServiceError::Failed(format!("cannot start redis-server: {e}"))
                }
            })?;
        self.child = Some(child);
        self.wait_until_up()
    }

    /// Bounded both ways: [`READY_TRIES`] tries and [`READY_WITHIN`]. Stops it (and says
    /// why) when it exits or never answers.
    fn wait_until_up(&mut self) -> Result<(), ServiceError> {
        let deadline = Instant::now() + READY_WITHIN;
        for _ in 0..READY_TRIES {
            if self.answers() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(ServiceError::Failed(format!(
                    "redis-server on port {} exited at once ({status})",
                    self.port
                )));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(RETRY_EVERY);
        }
        self.stop();
        Err(ServiceError::Failed(format!(
            "redis-server did not answer PING on port {} within {READY_WITHIN:?}",
            self.port
        )))
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `PING` over a plain socket to 127.0.0.1:`port`, `+PONG` back, within a second each way.
pub fn answers_ping(port: u16) -> bool {
    let addr = (Ipv4Addr::LOCALHOST, port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway Redis, or `None` after one line when `redis-server` is not installed
    /// (a failure instead when `NATTER_REQUIRE_REDIS` is set).
    fn redis() -> Option<ThrowawayRedis> {
        match ThrowawayRedis::start() {
            Ok(r) => Some(r),
            Err(e) if e.is_missing() && std::env::var_os("NATTER_REQUIRE_REDIS").is_none() => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn it_answers_ping_and_is_gone_after_drop() {
        let Some(redis) = redis() else { return };
        let (port, dir) = (redis.port(), redis.dir.clone());
        assert!(answers_ping(port));
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
        assert!(dir.is_dir());
        drop(redis);
        assert!(!answers_ping(port), "still answering after drop");
        assert!(!dir.exists(), "its directory is left behind");
    }

    #[test]
    fn it_stops_and_starts_again_on_the_same_port() {
        let Some(mut redis) = redis() else { return };
        let port = redis.port();
        let pid = redis.pid();
        redis.stop();
        assert!(!redis.answers());
        assert_eq!(redis.pid(), None);
        redis.start_again().expect("started again");
        assert_eq!(redis.port(), port);
        assert!(answers_ping(port));
        assert_ne!(redis.pid(), pid);
    }
}
