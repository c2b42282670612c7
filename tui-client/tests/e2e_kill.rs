//! "Nothing typed is ever lost" when natter itself is killed with SIGKILL, against the real
//! server binary.
//!
//! The chat screen cannot run here without a pty (`scripts/e2e-tmux` drives the real one),
//! so the killed process is this test binary re-run as a child: it runs the screen's app,
//! outbox runner and network task (the same `Client` the other end-to-end tests use), types,
//! and is SIGKILLed at once. A fresh client with the same files then has to deliver every
//! message typed, each exactly once.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod client;
    pub mod server;
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::client::{Client, PATIENCE, count};
use common::server::Server;
use natter::credentials;
use natter::net::ServerUrl;
use natter::net::http::{Http, Query};
use natter::paths::Paths;

/// What the child prints once every message is shown queued.
const TYPED: &str = "natter-child: typed";

/// The child's side: runs only when re-run by [`type_then_get_killed`].
#[test]
#[ignore = "the child process of the SIGKILL tests; runs only when they start it"]
fn child_types_then_waits_for_sigkill() {
    let (Some(server), Some(home), Some(texts)) = (
        std::env::var_os("NATTER_CHILD_SERVER"),
        std::env::var_os("NATTER_CHILD_HOME"),
        std::env::var_os("NATTER_CHILD_TEXTS"),
    ) else {
        return;
    };
    let wait_live = std::env::var_os("NATTER_CHILD_WAIT_LIVE").is_some();
    let wait_saved = std::env::var_os("NATTER_CHILD_NO_WAIT").is_none();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let server = server.to_str().unwrap();
        let mut alice = Client::start(server, Path::new(&home), "alice").await;
        if wait_live {
            alice.wait_live().await;
        }
        for text in texts.to_str().unwrap().split('|') {
            alice.say(text).await;
        }
        // Killed the moment every message is shown queued (or already delivered): the
        // promise is that what is shown queued is on disk. Or, with NATTER_CHILD_NO_WAIT,
        // the moment the last Enter is handled, while the keeper is still writing.
        if wait_saved {
            alice.wait_saved().await;
        }
        println!("{TYPED}");
        // Keep the network task working (the burst goes out) until the SIGKILL; bounded,
        // so that a child whose parent died does not linger.
        let work = async {
            while let Some(event) = alice.events.recv().await {
                alice.update(natter::msg::Msg::Net(event)).await;
            }
        };
        let _ = tokio::time::timeout(PATIENCE, work).await;
    });
}

/// Re-runs this test binary as the child, lets it type `texts` as alice (files under
/// `home`), and SIGKILLs it the moment it reports they are typed.
fn type_then_get_killed(server: &str, home: &Path, texts: &[String], wait_live: bool) {
    type_then_get_killed_when(server, home, texts, wait_live, true);
}

/// [`type_then_get_killed`], killed before every message is shown queued unless
/// `wait_saved`.
fn type_then_get_killed_when(
    server: &str,
    home: &Path,
    texts: &[String],
    wait_live: bool,
    wait_saved: bool,
) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_types_then_waits_for_sigkill",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("NATTER_CHILD_SERVER", server)
    .env("NATTER_CHILD_HOME", home)
    .env("NATTER_CHILD_TEXTS", texts.join("|"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if wait_live {
        cmd.env("NATTER_CHILD_WAIT_LIVE", "1");
    }
    if !wait_saved {
        cmd.env("NATTER_CHILD_NO_WAIT", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest may print the test's name before it on the same line. The child gives up by
    // itself (the client's PATIENCE) if something hangs, which ends this read.
    let typed = lines.any(|l| l.is_ok_and(|l| l.ends_with(TYPED)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(typed, "the child never reported its messages typed");
}

/// How often the server stores each of `texts`, as bob reads the history over HTTP.
async fn stored_counts(server: &str, bob_home: &Path, texts: &[String]) -> Vec<usize> {
    let url = ServerUrl::parse(server).unwrap();
    let token = credentials::find(
        &Paths::under(bob_home).credentials(),
        url.http_base(),
        "bob",
    )
    .unwrap()
    .unwrap()
    .token;
    let tls = natter::net::tls::Tls::new(&url, None).unwrap();
    let history = Http::new(url, &tls)
        .messages(
            &token,
            Query {
                limit: Some(1000),
                ..Query::default()
            },
        )
        .await
        .unwrap();
    texts
        .iter()
        .map(|t| history.iter().filter(|m| &m.text == t).count())
        .collect()
}

/// A server on a fresh database in `dir`, and bob LIVE on it (files under `bob_home`).
async fn with_bob_live(dir: &Path, bob_home: &Path) -> (Server, String, Client) {
    let server = Server::start(&dir.join("chat.db"));
    let url = server.url();
    let mut bob = Client::start(&url, bob_home, "bob").await;
    bob.wait_live().await;
    (server, url, bob)
}

fn homes(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("a"), dir.join("b"))
}

/// With the server down, natter queues a message and is SIGKILLed; once the server is back
/// and natter runs again as the same user, the message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_server_is_down_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = homes(dir.path());
    let mut server = Server::start(&dir.path().join("chat.db"));
    let url = server.url();
    let mut alice = Client::start(&url, &a, "alice").await;
    alice.wait_live().await;
    alice.quit().await;

    server.kill();
    let texts = vec!["queued, then killed".to_owned()];
    type_then_get_killed(&url, &a, &texts, false);
    server.restart();

    let mut alice = Client::start(&url, &a, "alice").await;
    let mut bob = Client::start(&url, &b, "bob").await;
    bob.wait_text(&texts[0]).await;
    alice.wait_text(&texts[0]).await;
    alice
        .wait_for("the outbox to empty", |a| a.timeline.waiting() == 0)
        .await;
    assert_eq!(count(&bob.app, &texts[0]), 1);
    assert_eq!(stored_counts(&url, &b, &texts).await, [1]);
}

/// natter is SIGKILLed in the middle of sending a burst over a live socket (some messages
/// stored, some in flight, some not yet sent); run again, it sends the rest with their
/// original client ids, and every message is stored exactly once, in the order typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = homes(dir.path());
    let (_server, url, mut bob) = with_bob_live(dir.path(), &b).await;

    let texts: Vec<String> = (1..=40).map(|i| format!("burst {i}")).collect();
    type_then_get_killed(&url, &a, &texts, true);

    let mut alice = Client::start(&url, &a, "alice").await;
    for text in &texts {
        bob.wait_text(text).await;
    }
    alice
        .wait_for("the outbox to empty", |a| a.timeline.waiting() == 0)
        .await;
    for text in &texts {
        assert_eq!(count(&bob.app, text), 1, "{text:?} once on bob's screen");
    }
    assert_eq!(stored_counts(&url, &b, &texts).await, vec![1; texts.len()]);
    let order: Vec<_> = bob
        .app
        .timeline
        .messages()
        .iter()
        .filter(|m| m.text.starts_with("burst "))
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(order, texts, "stored in the order typed");
}

/// natter is SIGKILLed the instant the last of a burst is typed, while its outbox keeper is
/// still writing and its network task sending: a message not yet on disk (never shown
/// queued) may be lost, but nothing is stored twice, and what is stored is the burst's
/// beginning, in order, with no hole: the keeper writes in the order typed and nothing is
/// sent before it is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_saving_stores_a_prefix_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = homes(dir.path());
    let (_server, url, _bob) = with_bob_live(dir.path(), &b).await;

    let texts: Vec<String> = (1..=60).map(|i| format!("quick {i}")).collect();
    type_then_get_killed_when(&url, &a, &texts, true, false);

    let mut alice = Client::start(&url, &a, "alice").await;
    alice.wait_live().await;
    alice
        .wait_for("the outbox to empty", |a| a.timeline.waiting() == 0)
        .await;
    let counts = stored_counts(&url, &b, &texts).await;
    assert!(counts.iter().all(|c| *c <= 1), "stored twice: {counts:?}");
    let stored = counts.iter().filter(|c| **c == 1).count();
    assert!(
        counts[..stored].iter().all(|c| *c == 1),
        "a hole in what was stored: {counts:?}"
    );
}
