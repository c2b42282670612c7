//! Redis for the cluster tests, two ways:
//!
//! - [`TestBus::shared`]: the Redis at 127.0.0.1:6379 (`NATTER_TEST_REDIS_URL` names
//!   another), with a key and channel prefix of this test's own; its keys are deleted at the
//!   end (pub/sub ignores database numbers, so the prefix is what keeps runs apart). With
//!   nothing on that port, a throwaway one as below;
//! - [`TestBus::own`]: a throwaway `redis-server` on a free port, with no persistence, that
//!   the test may stop and start again (killed at the end): natter-testkit's
//!   [`ThrowawayRedis`], the one copy the client's tests and the bench use too.
//!
//! Without either, the test says what to install in one line and passes, unless
//! `NATTER_REQUIRE_REDIS` is set (`.ci/run` sets it), where that is a failure.

use std::time::Duration;

use natter_testkit::ServiceError;
use natter_testkit::redis::ThrowawayRedis;

/// A Redis and a prefix for one test.
pub struct TestBus {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// This test's key and channel prefix.
    pub prefix: String,
    /// The throwaway server, for [`TestBus::own`].
    server: Option<ThrowawayRedis>,
}

fn unique_prefix() -> String {
    natter_testkit::unique_name("natter_test")
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
        let server = match ThrowawayRedis::start() {
            Ok(server) => server,
            Err(ServiceError::Missing(_)) => return skip_or_fail("redis-server is not installed"),
            Err(e) => panic!("{e}"),
        };
        Some(TestBus {
            url: server.url(),
            prefix: unique_prefix(),
            server: Some(server),
        })
    }

    /// Stops the throwaway server (SIGKILL: Redis gone without a word).
    pub fn stop(&mut self) {
        self.server
            .as_mut()
            .expect("only an own server can stop")
            .stop();
    }

    /// Starts the throwaway server again on the same port.
    pub fn start_again(&mut self) {
        let server = self.server.as_mut().expect("only an own server can start");
        if let Err(e) = server.start_again() {
            panic!("{e}");
        }
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

impl Drop for TestBus {
    fn drop(&mut self) {
        // An own server is killed, reaped and its directory removed as it drops.
        if self.server.is_some() {
            return;
        }
        // Only this test's keys: those under its prefix.
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
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
