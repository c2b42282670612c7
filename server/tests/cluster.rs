//! Several real `natter-server` processes on one PostgreSQL database and one Redis bus
//! (`--bus`): every promise of one instance, across instances. Delivery to every connection
//! allowed, once, in id order, whichever instance took the message and by which transport;
//! resuming on any instance with no gap while several write; one client_id stored once
//! across instances; accounts and logout everywhere; presence cluster-wide, including an
//! instance killed without a goodbye; Redis stopped and started mid-conversation; an
//! instance killed between its commit and its publish; rate limits per instance.
//!
//! Each test has a database of its own (see `common::pg`) and a Redis key prefix of its own
//! on the shared Redis, or a throwaway `redis-server` when it stops Redis (`common::redis`).
//! They pick their backend themselves, so they run in the default pass only (see
//! `test_db!`), not again in the `NATTER_TEST_BACKEND=postgres` and `cluster` passes.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::redis::TestBus;
use common::{TestServer, WAIT, Ws, http};
use futures_util::StreamExt;
use natter_shared::{Message, ServerFrame};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Instances on one database and one bus.
struct Cluster {
    nodes: Vec<TestServer>,
    // Dropped after the nodes (fields drop in order): the servers go first.
    bus: TestBus,
    db: TestDb,
}

impl Cluster {
    /// `n` instances, named node0…; `extra[i]` are more flags for instance i (if given).
    fn start(db: TestDb, bus: TestBus, n: usize, extra: &[&[&str]]) -> Cluster {
        let url = db.url();
        let nodes = (0..n)
            .map(|i| {
                let mut args: Vec<String> = vec!["--db".into(), url.clone()];
                args.extend(bus.args());
                args.extend(["--instance-name".into(), format!("node{i}")]);
                if let Some(more) = extra.get(i) {
                    args.extend(more.iter().map(|s| s.to_string()));
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                TestServer::start_plain(&refs)
            })
            .collect();
        Cluster { nodes, bus, db }
    }

    /// Waits until every instance's `/readyz` says the bus is `want` (`redis`, `polling`).
    async fn wait_bus(&self, want: &str) {
        for node in &self.nodes {
            wait_bus(node, want).await;
        }
    }
}

async fn wait_bus(node: &TestServer, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http().get(node.url("/readyz")).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        if body["bus"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said bus {want}: {body}",
            node.addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

macro_rules! cluster {
    ($how:ident, $n:expr) => {
        cluster!($how, $n, &[])
    };
    ($how:ident, $n:expr, $extra:expr) => {{
        let db = test_db!();
        let bus = test_bus!($how);
        let c = Cluster::start(db, bus, $n, $extra);
        c.wait_bus("redis").await;
        c
    }};
}

/// Reads chat messages until `n` have come (presence frames skipped).
async fn read_messages(ws: &mut Ws, n: usize) -> Vec<Message> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(ws.next_message().await);
    }
    got
}

fn ids(ms: &[Message]) -> Vec<i64> {
    ms.iter().map(|m| m.id.0).collect()
}

fn assert_strictly_increasing(ms: &[Message], who: &str) {
    for w in ms.windows(2) {
        assert!(
            w[0].id < w[1].id,
            "{who}: {} then {} (out of order or twice)",
            w[0].id.0,
            w[1].id.0
        );
    }
}

/// The next presence frame within `within`: `(name, online)`; chat messages skipped.
async fn next_presence(ws: &mut Ws, within: Duration) -> Option<(String, bool)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.inner.next())
            .await
            .ok()??;
        if let Ok(WsMessage::Text(t)) = next
            && let Ok(ServerFrame::Presence { username, online }) = ServerFrame::decode(&t)
        {
            return Some((username.key(), online));
        }
    }
}

/// Group messages from three instances and both transports, and direct messages taken by a
/// third instance, reach every connection allowed to see them — wherever it is connected —
/// exactly once and in id order; nobody else sees a direct message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_every_allowed_connection_once_in_id_order() {
    const EACH: usize = 30;
    const DMS: usize = 10;
    let c = cluster!(shared, 3);
    let [a, b, cy, d] = c.nodes[0]
        .register_all(["alice", "bob", "carol", "dave"])
        .await;
    let (mut alice0, _) = c.nodes[0].connect(&a, None).await;
    let (mut alice2, _) = c.nodes[2].connect(&a, None).await;
    let (mut bob1, _) = c.nodes[1].connect(&b, None).await;
    let (mut carol2, _) = c.nodes[2].connect(&cy, None).await;
    let (mut dave0, _) = c.nodes[0].connect(&d, None).await;

    for i in 0..EACH {
        alice0
            .send_json(json!({"message": format!("a{i}"), "client_id": format!("a{i}")}))
            .await;
    }
    let rest = |node: usize, token: String, texts: Vec<Value>| {
        let url = c.nodes[node].url("/api/chat/messages/");
        tokio::spawn(async move {
            let http = http();
            for body in texts {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };
    let bobs = rest(
        1,
        b.clone(),
        (0..EACH)
            .map(|i| json!({"text": format!("b{i}")}))
            .collect(),
    );
    let carols = rest(
        2,
        cy.clone(),
        (0..EACH)
            .map(|i| json!({"text": format!("c{i}")}))
            .collect(),
    );
    let dms = rest(
        2,
        a.clone(),
        (0..DMS)
            .map(|i| json!({"text": format!("dm{i}"), "receiver_username": "bob"}))
            .collect(),
    );
    for t in [bobs, carols, dms] {
        t.await.unwrap();
    }
    let everyone = 3 * EACH;
    let parties = everyone + DMS;
    let seen = [
        (
            "alice on node0",
            read_messages(&mut alice0, parties).await,
            &a,
        ),
        (
            "alice on node2",
            read_messages(&mut alice2, parties).await,
            &a,
        ),
        ("bob on node1", read_messages(&mut bob1, parties).await, &b),
        (
            "carol on node2",
            read_messages(&mut carol2, everyone).await,
            &cy,
        ),
        (
            "dave on node0",
            read_messages(&mut dave0, everyone).await,
            &d,
        ),
    ];
    for (who, got, token) in &seen {
        assert_strictly_increasing(got, who);
        // Exactly what the database says this user may see, from any instance.
        let history = c.nodes[1].history(token).await;
        assert_eq!(ids(got), ids(&history), "{who}");
    }
    for (who, got, _) in &seen[3..] {
        assert!(
            got.iter().all(|m| !m.text.starts_with("dm")),
            "{who} saw a DM"
        );
    }
    // Nothing more was queued for anyone: the next message each sees is this marker.
    c.nodes[1].post(&b, json!({"text": "marker"})).await;
    for ws in [&mut alice0, &mut alice2, &mut bob1, &mut carol2, &mut dave0] {
        assert_eq!(ws.next_message().await.text, "marker");
    }
}

/// Six senders over REST, two per instance, while a reader keeps reconnecting — each time to
/// the next instance, resuming `?after=` the last id it saw. It must end with every id exactly
/// once and in order: ids become visible in id order across instances (with ids from a
/// sequence, an instance's batch could commit before another's smaller ids, and the reader,
/// resuming past them, would never see those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_on_any_instance_while_all_write_has_no_gap() {
    const SENDERS: usize = 6;
    const EACH: usize = 100;
    const TOTAL: usize = SENDERS * EACH;
    let c = cluster!(shared, 3);
    let reader = c.nodes[0].register("reader").await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let token = c.nodes[s % 3].register(&format!("sender{s}")).await;
        let url = c.nodes[s % 3].url("/api/chat/messages/");
        senders.push(tokio::spawn(async move {
            let http = http();
            for i in 0..EACH {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"text": format!("s{s}m{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    let mut seen: Vec<Message> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut node = 0;
    while seen.len() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "reader stuck at {} of {TOTAL}",
            seen.len()
        );
        let after = seen.last().map_or(0, |m| m.id.0);
        let (mut ws, replayed) = c.nodes[node].connect(&reader, Some(after)).await;
        seen.extend(replayed);
        // A few live messages, then on to the next instance.
        for _ in 0..20 {
            match tokio::time::timeout(Duration::from_millis(200), ws.next_message()).await {
                Ok(m) => seen.push(m),
                Err(_) => break,
            }
        }
        drop(ws);
        node = (node + 1) % 3;
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_strictly_increasing(&seen, "reader");
    let all = c.nodes[2].history(&reader).await;
    assert_eq!(all.len(), TOTAL);
    assert_eq!(ids(&seen), ids(&all));
}

/// The same sender and client_id over WebSocket on one instance, REST on a second and
/// WebSocket on a third: one message stored, the first returned each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_id_stores_once_across_instances() {
    let c = cluster!(shared, 3);
    let a = c.nodes[0].register("alice").await;
    let (mut w0, _) = c.nodes[0].connect(&a, None).await;
    w0.send_json(json!({"message": "once", "client_id": "k1"}))
        .await;
    let first = w0.next_message().await;
    let (status, again) = c.nodes[1]
        .post(&a, json!({"text": "changed", "client_id": "k1"}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first.id.0);
    assert_eq!(again["text"], "once");
    let (mut w2, _) = c.nodes[2].connect(&a, None).await;
    w2.send_json(json!({"message": "once", "client_id": "k1"}))
        .await;
    assert_eq!(w2.next_message().await.id, first.id, "the retry's echo");
    assert_eq!(
        c.db.query("SELECT count(*) FROM messages"),
        [[Some("1".to_owned())]]
    );
}

/// Register on one instance, log in on a second, connect on a third; a logout on the first
/// refuses the token on the second at once (it had it cached) and closes the socket on the
/// third at its next ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_work_everywhere_and_logout_revokes_everywhere() {
    // Pings every second, so the socket notices within a few.
    let fast_ping: &[&str] = &["--idle-timeout", "3"];
    let c = cluster!(shared, 3, &[fast_ping, fast_ping, fast_ping]);
    c.nodes[0].register("alice").await;
    let r = http()
        .post(c.nodes[1].url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut ws, _) = c.nodes[2].connect(&token, None).await;
    // Cached on node1 now.
    assert_eq!(c.nodes[1].get(&token, "/api/users/").await.0, 200);
    let r = http()
        .post(c.nodes[0].url("/api/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout: {}", r.status());
    // The revocation crosses Redis in milliseconds; allow a generous moment on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (status, _) = c.nodes[1].get(&token, "/api/users/").await;
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node1 still accepts a token logged out on node0"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ws.next_close().await, CloseCode::Policy);
}

/// A user's first connection anywhere announces them online, their last one anywhere
/// offline, and nothing in between; `GET /api/users/` agrees from every instance; an
/// instance killed without a goodbye has its users shown offline within 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_cluster_wide_and_a_killed_instance_goes_offline() {
    let mut c = cluster!(shared, 3);
    let [w, b, cy] = c.nodes[0].register_all(["watcher", "bob", "carol"]).await;
    let (mut watcher, _) = c.nodes[0].connect(&w, None).await;
    let (bob1, _) = c.nodes[1].connect(&b, None).await;
    assert_eq!(
        next_presence(&mut watcher, WAIT).await,
        Some(("bob".into(), true))
    );
    let online = |users: Value, name: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .map(|u| u["online"] == true)
    };
    for node in &c.nodes {
        let (_, users) = node.get(&w, "/api/users/").await;
        assert_eq!(online(users, "bob"), Some(true), "on {}", node.addr);
    }
    // A second connection elsewhere, then the first one closes: bob stays online.
    let (bob2, _) = c.nodes[2].connect(&b, None).await;
    drop(bob1);
    let (_carol2, _) = c.nodes[2].connect(&cy, None).await;
    assert_eq!(
        next_presence(&mut watcher, WAIT).await,
        Some(("carol".into(), true)),
        "bob's closing one of two connections announced nothing"
    );
    drop(bob2);
    assert_eq!(
        next_presence(&mut watcher, WAIT).await,
        Some(("bob".into(), false))
    );
    // node2 dies with carol on it.
    c.nodes[2].kill9();
    let started = Instant::now();
    assert_eq!(
        next_presence(&mut watcher, Duration::from_secs(30)).await,
        Some(("carol".into(), false)),
        "carol never went offline after her instance was killed"
    );
    eprintln!(
        "a killed instance's user went offline after {:?}",
        started.elapsed()
    );
    // Each instance rereads the others on its own heartbeat: node1 agrees within 30 s too.
    loop {
        let (_, users) = c.nodes[1].get(&w, "/api/users/").await;
        if online(users, "carol") == Some(false) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node1 still lists carol online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post(node: &TestServer, token: &str, text: &str, sent: &mut Vec<String>) {
    let (status, m) = node.post(token, json!({"text": text})).await;
    assert_eq!(status, 201, "{m}");
    sent.push(text.to_owned());
}

/// Redis stopped mid-conversation: messages keep crossing instances (by polling), `/readyz`
/// says `polling`; started again: the bus reconnects by itself. Every message arrives
/// exactly once and in order throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_again_mid_conversation() {
    let mut c = cluster!(own, 2);
    let [a, b] = c.nodes[0].register_all(["alice", "bob"]).await;
    let (mut alice, _) = c.nodes[0].connect(&a, None).await;
    let (mut bob, _) = c.nodes[1].connect(&b, None).await;
    let mut sent = Vec::new();
    post(&c.nodes[0], &a, "before", &mut sent).await;
    assert_eq!(bob.next_message().await.text, "before");

    c.bus.stop();
    c.wait_bus("polling").await;
    for i in 0..5 {
        post(&c.nodes[0], &a, &format!("during{i}"), &mut sent).await;
    }
    post(&c.nodes[1], &b, "reply while down", &mut sent).await;
    let during = read_messages(&mut bob, 6).await;
    let texts: Vec<&str> = during.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "during0",
            "during1",
            "during2",
            "during3",
            "during4",
            "reply while down"
        ]
    );

    c.bus.start_again();
    c.wait_bus("redis").await;
    post(&c.nodes[0], &a, "after", &mut sent).await;
    assert_eq!(bob.next_message().await.text, "after");
    // Alice saw the whole conversation once, in order.
    let all = read_messages(&mut alice, sent.len()).await;
    assert_strictly_increasing(&all, "alice");
    assert_eq!(all.iter().map(|m| m.text.clone()).collect::<Vec<_>>(), sent);
}

/// An instance killed right after its commit (before it delivers, publishes or answers): the
/// message is stored, and the other instances' readers get it once, in order, before what
/// comes next — filled from PostgreSQL, since nothing came through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_between_commit_and_publish_loses_nothing() {
    let dies: &[&str] = &["--test-die-after-commit"];
    let mut c = cluster!(shared, 3, &[&[], &[], dies]);
    let [a, b, cy] = c.nodes[0].register_all(["alice", "bob", "carol"]).await;
    let (mut bob, _) = c.nodes[0].connect(&b, None).await;
    let (mut carol, _) = c.nodes[1].connect(&cy, None).await;
    let r = http()
        .post(c.nodes[2].url("/api/chat/messages/"))
        .bearer_auth(&a)
        .json(&json!({"text": "committed, then killed"}))
        .send()
        .await;
    assert!(r.is_err(), "the instance answered: {r:?}");
    let status = c.nodes[2].child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        c.db.query("SELECT text FROM messages"),
        [[Some("committed, then killed".to_owned())]]
    );
    // Found by the others' idle probe within about a second, or by the gap the next
    // message shows: either way first, and once.
    c.nodes[0].post(&a, json!({"text": "next"})).await;
    for ws in [&mut bob, &mut carol] {
        let got = read_messages(ws, 2).await;
        assert_eq!(
            got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
            ["committed, then killed", "next"]
        );
        assert_strictly_increasing(&got, "reader");
    }
    c.nodes[1].post(&cy, json!({"text": "marker"})).await;
    assert_eq!(bob.next_message().await.text, "marker");
    assert_eq!(carol.next_message().await.text, "marker");
}

/// The send rate is per user per instance (docs/protocol.md): a user out of burst on one
/// instance can still send on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_rate_is_per_instance() {
    let limited: &[&str] = &["--rate-limit", "1", "--rate-burst", "3"];
    let c = cluster!(shared, 2, &[limited, limited]);
    let a = c.nodes[0].register("alice").await;
    for i in 0..3 {
        assert_eq!(
            c.nodes[0]
                .post(&a, json!({"text": format!("m{i}")}))
                .await
                .0,
            201
        );
    }
    assert_eq!(
        c.nodes[0].post(&a, json!({"text": "one too many"})).await.0,
        429
    );
    assert_eq!(
        c.nodes[1].post(&a, json!({"text": "elsewhere"})).await.0,
        201
    );
}

/// A bus with a SQLite file is refused in one line: a file cannot be shared.
#[test]
fn a_bus_with_a_sqlite_file_is_refused() {
    only_on!(Sqlite; "start-up refusals need no backend (runs in the default pass)");
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--bus",
            "redis://127.0.0.1:6379",
            "--db",
        ])
        .arg(dir.path().join("natter.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--bus needs a PostgreSQL --db"), "{stderr}");
    assert!(
        !dir.path().join("natter.db").exists(),
        "nothing was created"
    );
    for bad in ["http://x", "redis://"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_natter-server"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--db",
                "postgres://u@127.0.0.1/x",
                "--bus",
                bad,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.lines().count() == 1,
            "{bad}: {stderr}"
        );
    }
}
