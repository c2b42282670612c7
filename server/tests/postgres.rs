//! The real server binary on PostgreSQL (`--db postgres://…`): accounts, delivery,
//! idempotency, resume, durability across SIGKILL, two servers migrating one empty database
//! at once, ids visible strictly in id order with two writers, readiness while the
//! database cannot be reached, and `natter-server migrate` from a SQLite file.
//!
//! Each test creates a database of its own on the PostgreSQL at 127.0.0.1:5432 (user
//! `postgres`, trust auth; `NATTER_TEST_POSTGRES_URL=postgres://USER@HOST:PORT` names another)
//! and drops it at the end, panics included, touching no other database. Without a
//! PostgreSQL each test says so in one line and passes, unless `NATTER_REQUIRE_POSTGRES` is
//! set (`.ci/run` sets it), where that is a failure. These tests pick their backend
//! themselves, so they run in the default pass only (see `test_db!`), not again in the
//! `NATTER_TEST_BACKEND=postgres` and `cluster` passes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use std::time::{Duration, Instant};

use common::{TestServer, WAIT, http};
use natter_shared::{Message, ServerFrame};
use serde_json::{Value, json};

async fn login(server: &TestServer, name: &str, password: &str) -> (u16, Value) {
    let r = http()
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Register, a name taken ignoring case, login with right and wrong passwords, the user
/// list, and logout revoking exactly that token, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_register_login_and_logout() {
    let db = test_db!();
    let mut server = db.server(&[]);
    let first = server.register("Alice").await;
    server.register("bob").await;
    let r = http()
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "ALICE", "password": "password2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let (status, body) = login(&server, "alice", common::PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "Alice");
    let second = body["token"].as_str().unwrap().to_owned();
    assert_eq!(login(&server, "alice", "wrong-password").await.0, 401);
    let (status, users) = server.get(&second, "/api/users/").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice", "bob"]);

    let r = http()
        .post(server.url("/api/auth/logout/"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(server.get(&first, "/api/users/").await.0, 401);
    assert_eq!(server.get(&second, "/api/users/").await.0, 200);
    server.kill9();
    server.restart();
    assert_eq!(server.get(&first, "/api/users/").await.0, 401);
    assert_eq!(server.get(&second, "/api/users/").await.0, 200);
}

/// A group message over WebSocket reaches everyone; a direct message over REST reaches its
/// two parties and nobody else, live and in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_and_direct_messages_reach_exactly_who_may_see_them() {
    let db = test_db!();
    let server = db.server(&[]);
    let [a, b, c] = server.register_all(["alice", "bob", "carol"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb, _) = server.connect(&b, None).await;
    let (mut wc, _) = server.connect(&c, None).await;

    wa.send_json(json!({"message": "hello all", "client_id": "g1"}))
        .await;
    for ws in [&mut wa, &mut wb, &mut wc] {
        assert_eq!(ws.next_message().await.text, "hello all");
    }
    let (status, dm) = server
        .post(&a, json!({"text": "for bob", "receiver_username": "BOB"}))
        .await;
    assert_eq!(status, 201, "{dm}");
    assert_eq!(dm["receiver_username"], "bob", "the stored spelling");
    wb.send_json(json!({"message": "back to all"})).await;
    for ws in [&mut wa, &mut wb] {
        assert_eq!(ws.next_message().await.text, "for bob");
        assert_eq!(ws.next_message().await.text, "back to all");
    }
    // Carol's next message is the group one: the direct message never reached her.
    assert_eq!(wc.next_message().await.text, "back to all");

    let texts = |h: Vec<Message>| h.into_iter().map(|m| m.text).collect::<Vec<_>>();
    assert_eq!(
        texts(server.history(&b).await),
        ["hello all", "for bob", "back to all"]
    );
    assert_eq!(
        texts(server.history(&c).await),
        ["hello all", "back to all"]
    );
    let (status, _) = server
        .post(&a, json!({"text": "x", "receiver_username": "nobody"}))
        .await;
    assert_eq!(status, 404);
}

/// The same client_id over WebSocket, then REST, then WebSocket again: one message stored,
/// the first one returned each time, seen once by others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_client_id_stores_once_across_transports() {
    let db = test_db!();
    let server = db.server(&[]);
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb, _) = server.connect(&b, None).await;
    wa.send_json(json!({"message": "once", "client_id": "k1"}))
        .await;
    let first = wa.next_message().await;
    let (status, again) = server
        .post(&a, json!({"text": "changed", "client_id": "k1"}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first.id.0);
    assert_eq!(again["text"], "once");
    wa.send_json(json!({"message": "once", "client_id": "k1"}))
        .await;
    assert_eq!(wa.next_message().await.id, first.id, "the retry's echo");
    // Bob's first message is it; the next one he sees is the marker, not a copy.
    assert_eq!(wb.next_message().await.id, first.id);
    server.post(&a, json!({"text": "marker"})).await;
    assert_eq!(wb.next_message().await.text, "marker");
    assert_eq!(server.history(&b).await.len(), 2);
    // REST twice, and the same client_id from another sender is its own message.
    let body = json!({"text": "rest", "client_id": "k2"});
    let (s1, m1) = server.post(&a, body.clone()).await;
    let (s2, m2) = server.post(&a, body.clone()).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(m1, m2);
    assert_eq!(server.post(&b, body).await.0, 201);
    assert_eq!(server.history(&a).await.len(), 4);
}

/// Twenty sends with one client_id written back to back on one WebSocket (pipelined, behind
/// filler, so they share a group commit) and five more over REST at the same time: one
/// message is stored, every send is answered with it, and one row exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_with_one_client_id_store_once() {
    const FILLER: usize = 300;
    let db = test_db!();
    let server = db.server(&[]);
    let a = server.register("alice").await;
    let (mut ws, _) = server.connect(&a, None).await;
    let rest: Vec<_> = (0..5)
        .map(|i| {
            let (url, token) = (server.url("/api/chat/messages/"), a.clone());
            tokio::spawn(async move {
                let r = http()
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"text": format!("rest {i}"), "client_id": "same"}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    // Filler first, so the writer is busy committing when the retries arrive and they
    // queue up into one batch together.
    for i in 0..FILLER {
        ws.send_json(json!({"message": format!("filler {i}")}))
            .await;
    }
    for i in 0..20 {
        ws.send_json(json!({"message": format!("ws {i}"), "client_id": "same"}))
            .await;
    }
    let mut ids = BTreeSet::new();
    // An answer to each frame (and the REST message's broadcast, if it was stored first).
    for _ in 0..FILLER + 20 {
        let m = ws.next_message().await;
        if m.client_id.is_some() {
            ids.insert(m.id.0);
        }
    }
    let mut created = 0;
    for r in rest {
        let (status, body) = r.await.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        created += usize::from(status == 201);
        ids.insert(body["id"].as_i64().unwrap());
    }
    assert!(created <= 1);
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(server.history(&a).await.len(), FILLER + 1);
}

/// `?after=N` replays exactly the visible messages after N, then goes live: no gap, no
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_an_id_has_no_gap_and_no_duplicate() {
    let db = test_db!();
    let server = db.server(&[]);
    let [a, b] = server.register_all(["alice", "bob"]).await;
    for i in 0..30 {
        server.post(&a, json!({"text": format!("m{i}")})).await;
    }
    let history = server.history(&b).await;
    let cursor = history[9].id.0;
    let (mut wb, replayed) = server.connect(&b, Some(cursor)).await;
    let ids: Vec<i64> = replayed.iter().map(|m| m.id.0).collect();
    let expected: Vec<i64> = history[10..].iter().map(|m| m.id.0).collect();
    assert_eq!(ids, expected);
    let (_, live) = server.post(&a, json!({"text": "live"})).await;
    let next = wb.next_message().await;
    assert_eq!(next.id.0, live["id"].as_i64().unwrap());
    assert_eq!(next.id.0, expected.last().unwrap() + 1);
}

/// Every message acknowledged before a SIGKILL is there after a restart on the same
/// database, once, with its text; new ids continue after the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    const SENDERS: usize = 4;
    let db = test_db!();
    let mut server = db.server(&[]);
    let token = server.register("alice").await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(i64, String)>::new()));
    let url = server.url("/api/chat/messages/");
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (url, token, acked) = (url.clone(), token.clone(), Arc::clone(&acked));
            tokio::spawn(async move {
                let http = http();
                // Until the server dies (bounded anyway).
                for i in 0..5_000 {
                    let text = format!("s{s} m{i}");
                    let Ok(r) = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": text}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .push((body["id"].as_i64().unwrap(), text));
                }
            })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200, "only {} acknowledged", acked.len());

    server.restart();
    let stored = all_messages(&server, &token).await;
    let by_id: std::collections::HashMap<i64, &str> =
        stored.iter().map(|m| (m.id.0, m.text.as_str())).collect();
    assert_eq!(by_id.len(), stored.len(), "an id stored twice");
    for (id, text) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(&text.as_str()),
            "acknowledged {id} lost"
        );
    }
    let newest = stored.last().unwrap().id.0;
    let (status, after) = server.post(&token, json!({"text": "after restart"})).await;
    assert_eq!(status, 201);
    assert_eq!(after["id"].as_i64().unwrap(), newest + 1);
}

/// Every message `token`'s user may see, a page of 1,000 at a time.
async fn all_messages(server: &TestServer, token: &str) -> Vec<Message> {
    let mut all: Vec<Message> = Vec::new();
    for _ in 0..1_000 {
        let after = all.last().map_or(0, |m| m.id.0);
        let (status, page) = server
            .get(
                token,
                &format!("/api/chat/messages/?after={after}&limit=1000"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let page: Vec<Message> = serde_json::from_value(page).unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
    panic!("more than a million messages");
}

/// The processes of [`start_together`], killed when this goes, so a failed assertion (or a
/// server that did not start) leaves none behind.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM drains and exits 0 on PostgreSQL too (the writer task finishes what is queued),
/// and a server started after it finds everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_everything() {
    let db = test_db!();
    let mut server = db.server(&[]);
    let token = server.register("alice").await;
    for i in 0..10 {
        assert_eq!(
            server
                .post(&token, json!({"text": format!("m{i}")}))
                .await
                .0,
            201
        );
    }
    assert!(server.terminate().success());
    server.restart();
    assert_eq!(all_messages(&server, &token).await.len(), 10);
}

/// Spawns `n` servers on `url` at the same moment (all started before any is waited for);
/// their addresses once each listens, and the processes.
fn start_together(url: &str, n: usize) -> (Vec<String>, Children) {
    let mut children = Children(
        (0..n)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_natter-server"))
                    .args(["--bind", "127.0.0.1:0", "--db", url])
                    .args(["--rate-limit", "0", "--register-burst", "0"])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let addrs = children
        .0
        .iter_mut()
        .map(|child| {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            line.split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .unwrap_or_else(|| panic!("a server did not start: {line:?}"))
                .to_owned()
        })
        .collect();
    (addrs, children)
}

/// Three servers started at the same moment on one empty database all come up (the
/// migration runs once, under its lock), and share it: an account made on one logs in on
/// another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_on_an_empty_database_all_come_up() {
    let db = test_db!();
    let (addrs, _children) = start_together(&db.url(), 3);
    let r = http()
        .post(format!("http://{}/api/auth/register", addrs[0]))
        .json(&json!({"username": "alice", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for addr in &addrs[1..] {
        let r = http()
            .post(format!("http://{addr}/api/auth/login"))
            .json(&json!({"username": "alice", "password": common::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login on {addr}");
    }
    assert_eq!(
        db.query("SELECT version FROM natter_schema"),
        [[Some("1".to_owned())]]
    );
}

/// With two servers writing one database (8 senders × 200 messages over REST, spread over
/// both) and a reader polling `?after=<last seen>` on both in turn, the reader sees every id
/// exactly once and never an id before a smaller one is visible: ids become visible in id
/// order. (With ids from a sequence, one server's batch can commit before the other's
/// smaller ids, and the reader skips those for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_become_visible_in_id_order_with_two_writers() {
    const SENDERS: usize = 8;
    const EACH: usize = 200;
    const TOTAL: usize = SENDERS * EACH;
    let db = test_db!();
    let (addrs, _children) = start_together(&db.url(), 2);
    let register = |name: String| {
        let url = format!("http://{}/api/auth/register", addrs[0]);
        async move {
            let r = http()
                .post(url)
                .json(&json!({"username": name, "password": common::PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let reader_token = register("reader".into()).await;
    let mut tokens = Vec::new();
    for s in 0..SENDERS {
        tokens.push(register(format!("sender{s}")).await);
    }
    let senders: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(s, token)| {
            let url = format!("http://{}/api/chat/messages/", addrs[s % 2]);
            tokio::spawn(async move {
                let http = http();
                for i in 0..EACH {
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("{s}/{i}"), "client_id": format!("c{i}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();

    let reader = http();
    let mut seen: Vec<i64> = Vec::new();
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for poll in 0..1_000_000usize {
        if seen.len() >= TOTAL || Instant::now() > deadline {
            break;
        }
        let url = format!(
            "http://{}/api/chat/messages/?after={last}&limit=1000",
            addrs[poll % 2]
        );
        let page: Vec<Message> = reader
            .get(url)
            .bearer_auth(&reader_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for m in page {
            assert_eq!(
                m.id.0,
                last + 1,
                "saw id {} right after {last}: ids became visible out of order",
                m.id.0
            );
            last = m.id.0;
            seen.push(last);
        }
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(seen.len(), TOTAL, "the reader did not see them all in time");
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), TOTAL);
}

/// While the database refuses connections (its connections closed, new ones not allowed),
/// `/readyz` says 503 `storage_unavailable` and a send gets 503 with that code rather than
/// hanging or a 500; once it takes connections again both recover, and the message sent
/// during the outage was not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_sends_follow_the_database() {
    let db = test_db!();
    let server = db.server(&[]);
    let token = server.register("alice").await;
    let (mut ws, _) = server.connect(&token, None).await;
    assert_eq!(server.get("", "/readyz").await.0, 200);
    assert_eq!(server.post(&token, json!({"text": "before"})).await.0, 201);
    assert_eq!(ws.next_message().await.text, "before");

    db.set_reachable(false);
    let readyz = wait_for_readyz(&server, 503).await;
    assert_eq!(
        readyz,
        json!({"status": "not_ready", "reason": "storage_unavailable", "bus": "none"})
    );
    let started = Instant::now();
    let (status, body) = server.post(&token, json!({"text": "during"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable");
    assert!(started.elapsed() < WAIT);
    ws.send_json(json!({"message": "during, by ws", "client_id": "w1"}))
        .await;
    loop {
        match ws.next_frame().await {
            ServerFrame::Presence { .. } => continue,
            ServerFrame::Error { error, client_id } => {
                assert_eq!(error.code.as_str(), "storage_unavailable");
                assert_eq!(client_id.as_deref(), Some("w1"));
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }

    db.set_reachable(true);
    wait_for_readyz(&server, 200).await;
    assert_eq!(server.post(&token, json!({"text": "after"})).await.0, 201);
    assert_eq!(ws.next_message().await.text, "after");
    let texts: Vec<String> = server
        .history(&token)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

/// Polls `/readyz` until it answers `status` (bounded); its body.
async fn wait_for_readyz(server: &TestServer, status: u16) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (now, body) = server.get("", "/readyz").await;
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {now} {body}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the binary with `args` and expects it to exit without listening; its stderr.
fn refusal(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr:?}");
    assert!(stderr.starts_with("natter-server: "), "{stderr}");
    stderr
}

/// A URL that does not parse, a PostgreSQL that does not answer, and a SQLite-only flag
/// with a URL are each one line at start, with the password never shown.
#[test]
fn bad_postgres_targets_are_one_line_errors() {
    only_on!(Sqlite; "start-up refusals need no backend (runs in the default pass)");
    let e = refusal(&["--db", "postgres://u:hunter2@127.0.0.1:notaport/db"]);
    assert!(e.contains("invalid PostgreSQL URL"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    // Port 1: nothing listens there.
    let e = refusal(&["--db", "postgresql://u:hunter2@127.0.0.1:1/db"]);
    assert!(
        e.contains("cannot use database postgresql://u:***@127.0.0.1:1/db"),
        "{e}"
    );
    let e = refusal(&[
        "--db",
        "postgres://postgres@127.0.0.1/x",
        "--test-max-page-count",
        "10",
    ]);
    assert!(e.contains("SQLite files only"), "{e}");
}

/// A database holding somebody else's tables is refused, naming them, and left as it was.
#[test]
fn a_database_with_other_tables_is_refused() {
    let db = test_db!();
    db.query("CREATE TABLE notes (body TEXT)");
    let e = refusal(&["--db", &db.url()]);
    assert!(
        e.contains("it is not a natter database (it has tables notes)"),
        "{e}"
    );
    assert_eq!(
        db.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"),
        [[Some("1".to_owned())]]
    );
}

/// Runs `natter-server migrate --from FILE --to URL`; its output.
fn migrate(from: &std::path::Path, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .args(["--to", to])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `migrate` copies a SQLite database into an empty PostgreSQL one (and refuses while a
/// server runs on the file): a server on the copy has the same history for each user (ids,
/// direct messages), the old tokens and passwords work, a client_id retry is still a
/// duplicate, and new ids and accounts follow the copied ones. A second migrate into it is
/// refused in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_sqlite_database_into_an_empty_one() {
    let db = test_db!();
    let mut sqlite = TestServer::start_plain(&[]);
    let [a, b] = sqlite.register_all(["alice", "Bob"]).await;
    sqlite
        .post(&a, json!({"text": "hello", "client_id": "k1"}))
        .await;
    sqlite
        .post(&a, json!({"text": "psst", "receiver_username": "bob"}))
        .await;
    sqlite.post(&b, json!({"text": "hi"})).await;
    let (before_a, before_b) = (sqlite.history(&a).await, sqlite.history(&b).await);
    // Not while a server is using the file: it would go on writing what the copy misses.
    let out = migrate(&sqlite.db_path(), &db.url());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("another natter-server is using it"), "{err}");
    assert!(sqlite.terminate().success());

    let out = migrate(&sqlite.db_path(), &db.url());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "copied 2 users, 2 tokens and 3 messages from {} to {}\n",
            sqlite.db_path().display(),
            db.url()
        )
    );

    let pg = db.server(&[]);
    assert_eq!(pg.history(&a).await, before_a);
    assert_eq!(pg.history(&b).await, before_b);
    assert_eq!(login(&pg, "bob", common::PASSWORD).await.0, 200);
    let (status, again) = pg
        .post(&a, json!({"text": "hello", "client_id": "k1"}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], before_a[0].id.0);
    let (status, new) = pg.post(&b, json!({"text": "new"})).await;
    assert_eq!(status, 201);
    assert_eq!(new["id"], before_b.last().unwrap().id.0 + 1);
    pg.register("carol").await;

    let out = migrate(&sqlite.db_path(), &db.url());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("it is not empty (3 users, 4 messages)"),
        "{err}"
    );
}

/// A batch whose COMMIT reply is lost (here a test hook: the commit goes through, the
/// sender is told 503 and nothing is published) has still stored its message. A live
/// reader must get it all the same, before anything sent after it, exactly once: a socket
/// that skipped it would resume after a later id and never see it. Filled by the next
/// batch (under the counter lock) or, with no next batch, by the idle probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_still_reaches_live_readers() {
    let db = test_db!();
    let mut server = db.server(&["--test-lost-commit-answers", "1"]);
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wb, _) = server.connect(&b, None).await;

    // Lost answer, then another message at once: the next batch publishes both, in order.
    let (status, body) = server
        .post(&a, json!({"text": "lost one", "client_id": "l1"}))
        .await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = server
        .post(&a, json!({"text": "after it", "client_id": "l2"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(wb.next_message().await.text, "lost one");
    assert_eq!(wb.next_message().await.text, "after it");

    // Lost answer and nothing after it: the idle probe publishes it. (A new process, whose
    // hook loses one answer again.)
    server.kill9();
    server.restart();
    let (mut wb, _) = server.connect(&b, Some(2)).await;
    let (status, _) = server
        .post(&a, json!({"text": "lost alone", "client_id": "l3"}))
        .await;
    assert_eq!(status, 503);
    assert_eq!(wb.next_message().await.text, "lost alone");

    // The sender's retry gets the stored message back, and nothing is stored twice.
    let (status, body) = server
        .post(&a, json!({"text": "lost one", "client_id": "l1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let texts: Vec<String> = all_messages(&server, &b)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["lost one", "after it", "lost alone"]);
}
