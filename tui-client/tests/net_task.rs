//! The network task alone, without the app or a terminal: what the chat screen starts
//! (`natter::chat::start`: the outbox keeper and the network task), driven through its
//! runner and read through its events, against the real server started in-process on
//! port 0 (`natter_testkit::in_process`) or against a port where nothing listens.
//!
//! With nothing to connect to, the clock is paused: the whole backoff schedule, minutes of
//! it, runs in an instant and exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

mod common {
    pub mod proxy;
}

use std::path::Path;
use std::time::Duration;

use common::proxy::Proxy;
use natter::chat::{Parts, Runner};
use natter::credentials::{self, Account};
use natter::msg::{Cmd, Link, NetEvent};
use natter::net::tls::Tls;
use natter::net::{NetConfig, ServerUrl};
use natter::outbox::{Outbox, Outgoing};
use natter::paths::Paths;
use natter_shared::{ClientId, Message, Timestamp, Username};
use natter_testkit::in_process::InProcess;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Generous bound (real time) for what should happen soon; never a measurement.
const PATIENCE: Duration = Duration::from_secs(30);

struct Net {
    runner: Runner,
    events: mpsc::Receiver<NetEvent>,
    parts: Parts,
    paths: Paths,
    server: ServerUrl,
}

impl Net {
    /// Starts the keeper and the network task for `server`, with files under `home`, and
    /// logs in as `name`.
    fn start(server: &str, home: &Path, name: &str) -> Net {
        let paths = Paths::under(home);
        let server = ServerUrl::parse(server).unwrap();
        let (runner, events, parts) = natter::chat::start(NetConfig {
            server: server.clone(),
            paths: paths.clone(),
            tls: Tls::new(&server, None).unwrap(),
        })
        .unwrap();
        runner.carry_out(Cmd::Login {
            username: user(name),
            password: None,
        });
        Net {
            runner,
            events,
            parts,
            paths,
            server,
        }
    }

    /// The next event; panics after [`PATIENCE`] of real time. Real, not the test's clock:
    /// with the clock paused, a test waiting on the keeper's thread (real work, no timer)
    /// would see its own timeout fire at once, the clock skipping ahead to it. So it waits
    /// in short steps of the test's clock and counts the real time.
    async fn next(&mut self) -> NetEvent {
        let started = std::time::Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(100), self.events.recv()).await {
                Ok(Some(event)) => return event,
                Ok(None) => panic!("the network task ended"),
                Err(_) => assert!(started.elapsed() < PATIENCE, "no event within {PATIENCE:?}"),
            }
        }
    }

    /// Events until one matches; returns it.
    async fn until(&mut self, what: &str, done: impl Fn(&NetEvent) -> bool) -> NetEvent {
        let started = std::time::Instant::now();
        loop {
            assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
            let event = self.next().await;
            if done(&event) {
                return event;
            }
        }
    }

    async fn until_link(&mut self, link: Link) {
        self.until(
            &format!("{link:?}"),
            |e| matches!(e, NetEvent::Link { link: l, .. } if *l == link),
        )
        .await;
    }

    /// Sends `text` as `name` and waits for the server's copy of it.
    async fn say(&mut self, name: &str, id: &str, text: &str) -> Message {
        self.runner.carry_out(Cmd::Send {
            sender: user(name),
            outgoing: Outgoing {
                client_id: ClientId::parse(id).unwrap(),
                receiver: None,
                text: text.to_owned(),
                typed_at: Some(Timestamp::now()),
            },
        });
        let stored = self
            .until(&format!("{text:?} stored"), |e| match e {
                NetEvent::Message(m) => m.client_id.as_ref().map(ClientId::as_str) == Some(id),
                _ => false,
            })
            .await;
        let NetEvent::Message(m) = stored else {
            unreachable!()
        };
        m
    }

    /// Stops the task and the keeper (which first writes what it was given); returns what
    /// alice's outbox still holds.
    async fn stop(self) -> Vec<Outgoing> {
        let outbox = Outbox::new(
            &self.paths.outbox_dir(self.server.http_base()),
            &user("alice"),
        );
        self.parts.stop(self.runner, self.events).await;
        outbox.entries().unwrap()
    }
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

async fn in_process(db: &Path) -> InProcess {
    let mut config = natter_server::Config::new(db.to_path_buf());
    config.rate_per_sec = 0;
    InProcess::start(config).await.unwrap()
}

/// With a stored token and no server, every socket attempt fails, and the badge follows the
/// schedule docs/client.md gives: waits doubling from 0.5–1 s to a 15–30 s ceiling, each
/// half fixed and half random, `CONNECTING` for the first two failures (never live yet)
/// and `OFFLINE` from the third. Each wait is read off the badge's countdown the moment
/// it is set: the first event whose deadline (now + `retry_in`) is new.
#[tokio::test(start_paused = true)]
async fn the_backoff_schedule_with_nothing_listening() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let paths = Paths::under(dir.path());
    credentials::save(
        &paths.credentials(),
        &Account {
            server: ServerUrl::parse(&url).unwrap().http_base().to_owned(),
            username: "alice".into(),
            token: "a-token-from-before".into(),
            password: Some("a-password".into()),
        },
    )
    .unwrap();
    let mut net = Net::start(&url, dir.path(), "alice");

    let mut attempts: Vec<(Duration, Link)> = Vec::new();
    let mut deadline: Option<Instant> = None;
    for _ in 0..10_000 {
        if attempts.len() == 8 {
            break;
        }
        if let NetEvent::Link {
            link,
            retry_in: Some(wait),
        } = net.next().await
        {
            let due = Instant::now() + wait;
            // A countdown already run out (a poll that ended past the deadline) is the old
            // attempt's, not a new one.
            let new = wait > Duration::ZERO
                && deadline
                    .is_none_or(|d| due.saturating_duration_since(d) > Duration::from_millis(1));
            if new {
                attempts.push((wait, link));
                deadline = Some(due);
            }
        }
    }
    assert_eq!(attempts.len(), 8, "{attempts:?}");
    for (i, (wait, link)) in attempts.iter().enumerate() {
        let ceiling = Duration::from_secs(1u64 << i.min(5)).min(Duration::from_secs(30));
        assert!(
            *wait >= ceiling / 2 && *wait <= ceiling,
            "attempt {}: waited {wait:?}, not within {:?}..={ceiling:?}: {attempts:?}",
            i + 1,
            ceiling / 2
        );
        let expected = if i < 2 {
            Link::Connecting
        } else {
            Link::Offline
        };
        assert_eq!(*link, expected, "attempt {}: {attempts:?}", i + 1);
    }
    net.stop().await;
}

/// Behind a proxy that refuses WebSockets but forwards HTTP, the task says FALLBACK and
/// sends by POST; once the socket is let through it is LIVE at the next attempt, sends over
/// the socket, and the message sent by POST is neither sent again nor left in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_then_live_once_the_socket_is_let_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(&dir.path().join("chat.db")).await;
    let proxy = Proxy::start(server.addr.to_string()).await;
    let mut net = Net::start(&proxy.url(), dir.path(), "alice");
    net.until_link(Link::Fallback).await;
    let by_post = net.say("alice", "p-1", "sent by POST").await;

    proxy.allow_sockets();
    net.until_link(Link::Live).await;
    let by_socket = net.say("alice", "s-1", "sent over the socket").await;
    assert!(by_socket.id > by_post.id);
    // Over the live socket for a moment: nothing more of ours arrives (the POSTed one is
    // not resent, so the server has nothing to echo).
    let quiet = Instant::now() + Duration::from_millis(500);
    while let Ok(Some(event)) = tokio::time::timeout_at(quiet, net.events.recv()).await {
        if let NetEvent::Message(m) = event {
            assert!(m.id != by_post.id && m.id != by_socket.id, "again: {m:?}");
        }
    }
    let left = net.stop().await;
    assert!(left.is_empty(), "{left:?}");
    server.stop().await;
}

/// The server forgets the token (here: it comes back on the same port with a new
/// database): the refused socket makes the task log in again with the stored password,
/// register the name anew when the server does not know it, store the new token, and go
/// LIVE again; what is sent then is stored once, as this user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_token_is_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(&dir.path().join("first.db")).await;
    let addr = server.addr;
    let mut net = Net::start(&server.url(), dir.path(), "alice");
    net.until_link(Link::Live).await;
    net.say("alice", "a-1", "before").await;
    let base = net.server.http_base().to_owned();
    let first_token = credentials::find(&net.paths.credentials(), &base, "alice")
        .unwrap()
        .unwrap()
        .token;

    server.stop().await;
    net.until(
        "the socket lost",
        |e| matches!(e, NetEvent::Link { link, .. } if *link != Link::Live),
    )
    .await;
    let mut config = natter_server::Config::new(dir.path().join("second.db"));
    config.rate_per_sec = 0;
    let server = InProcess::start_on(config, addr).await.unwrap();
    net.until_link(Link::Live).await;
    let after = net.say("alice", "a-2", "after").await;
    assert_eq!(after.sender_username.as_str(), "alice");
    let renewed = credentials::find(&net.paths.credentials(), &base, "alice")
        .unwrap()
        .unwrap()
        .token;
    assert_ne!(renewed, first_token, "the new token is stored");
    let left = net.stop().await;
    assert!(left.is_empty(), "{left:?}");
    server.stop().await;
}
