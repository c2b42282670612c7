//! Redis for the cluster tests, two ways:
//!
//! - [`TestBus::shared`]: the Redis at 127.0.0.1:6379 (`NATTER_TEST_REDIS_URL` names
//!   another), with a key and channel prefix of this test's own; its keys are deleted at the
//!   end (pub/sub ignores database numbers, so the prefix is what keeps runs apart). With
//!   nothing on that port, a throwaway one as below;
//! - [`TestBus::own`]: a throwaway `redis-server` on a free port, with no persistence, that
//!   the test may stop and start again (killed by PID at the end).
//!
//! Without either, the test says what to install in one line and passes, unless
//! `NATTER_REQUIRE_REDIS` is set (`.ci/run` sets it), where that is a failure.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A Redis and a prefix for one test.
pub struct TestBus {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// This test's key and channel prefix.
    pub prefix: String,
    /// The throwaway server, for [`TestBus::own`].
    server: Option<(Child, u16, tempfile::TempDir)>,
}

fn unique_prefix() -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "natter_test_{}_{nanos}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn skip_or_fail(why: &str) -> Option<TestBus> {
    if std::env::var_os("NATTER_REQUIRE_REDIS").is_some() {
        panic!("NATTER_REQUIRE_REDIS is set but {why}");
    }
    eprintln!("skipped: {why}; install redis-server or set NATTER_TEST_REDIS_URL");
    None
}

/// Whether a Redis at `url` answers PING within a second.
fn answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
        return false;
    };
    redis::cmd("PING").query::<String>(&mut conn).is_ok()
}

impl TestBus {
    /// The shared Redis, with a prefix of this test's own; when none answers on the
    /// standard port (and `NATTER_TEST_REDIS_URL` names none), a throwaway one.
    pub fn shared() -> Option<TestBus> {
        let named = std::env::var("NATTER_TEST_REDIS_URL").ok();
        let url = named
            .clone()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        if !answers(&url) {
            if named.is_none() {
                return Self::own();
            }
            return skip_or_fail(&format!("no Redis answers at {url}"));
        }
        Some(TestBus {
            url,
            prefix: unique_prefix(),
            server: None,
        })
    }

    /// A `redis-server` of this test's own, on a free port.
    pub fn own() -> Option<TestBus> {
        let probe = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return skip_or_fail("redis-server is not installed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = spawn_redis(port, dir.path());
        let bus = TestBus {
            url: format!("redis://127.0.0.1:{port}"),
            prefix: unique_prefix(),
            server: Some((child, port, dir)),
        };
        bus.wait_until_up();
        Some(bus)
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + super::WAIT;
        while !answers(&self.url) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the throwaway server (SIGKILL: Redis gone without a word).
    pub fn stop(&mut self) {
        let (child, _, _) = self.server.as_mut().expect("only an own server can stop");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the throwaway server again on the same port.
    pub fn start_again(&mut self) {
        let (child, port, dir) = self.server.as_mut().expect("only an own server can start");
        *child = spawn_redis(*port, dir.path());
        self.wait_until_up();
    }

    /// The flags that put a natter-server on this bus.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--bus".into(),
            self.url.clone(),
            "--bus-prefix".into(),
            self.prefix.clone(),
        ]
    }
}

fn spawn_redis(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for TestBus {
    fn drop(&mut self) {
        match &mut self.server {
            Some((child, _, _)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                // Only this test's keys: those under its prefix.
                let Ok(client) = redis::Client::open(self.url.as_str()) else {
                    return;
                };
                let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1))
                else {
                    return;
                };
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.prefix))
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _ = redis::cmd("DEL").arg(keys).query::<()>(&mut conn);
                }
            }
        }
    }
}

/// `let bus = test_bus!(shared);` or `test_bus!(own)` — or the test ends here, skipped.
#[macro_export]
macro_rules! test_bus {
    ($how:ident) => {
        match $crate::common::redis::TestBus::$how() {
            Some(bus) => bus,
            None => return,
        }
    };
}
