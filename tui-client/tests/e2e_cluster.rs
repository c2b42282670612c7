//! Cluster mode as docs/deploy.md deploys it: three `natter-server` instances on one
//! PostgreSQL database and one Redis, behind real nginx running `deploy/nginx.conf` itself
//! (its upstream line once per instance). Two chat screens and `natter tail` know only
//! nginx's address. Under load one instance — one that holds some of their sockets — is
//! SIGKILLed: every message any instance acknowledged is stored exactly once, the clients
//! of the dead instance come back through nginx to the others, and the screens and `tail`
//! show every stored message exactly once, `tail` in id order.
//!
//! Needs PostgreSQL (a database of the test's own, made and dropped with `psql`), a
//! `redis-server` (a throwaway one on a free port) — both natter-testkit's, the one copy
//! the server's tests and the bench use too — and nginx; without them it says what to
//! install and passes, unless `.ci/run`'s `NATTER_REQUIRE_*` variables (or `CI=true`) are
//! set.
#![allow(clippy::unwrap_used)] // a panic is the failure report

mod common {
    pub mod cli;
    pub mod client;
    pub mod nginx;
    pub mod server;
}

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cli::{natter, run};
use common::client::{Client, count};
use common::nginx::{Nginx, free_port, nginx_binary, site_config};
use common::server::Server;
use natter_shared::Message;
use natter_testkit::pg::TestDatabase;
use natter_testkit::redis::ThrowawayRedis;
use serde_json::{Value, json};

/// Skips the test with one line, except in CI (`CI=true`, or `require` set), where a
/// missing service is a failure.
fn skip(require: &str, why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        std::env::var_os(require).is_none() && !ci,
        "{require} or CI=true is set but {why}"
    );
    eprintln!("skipped: {why}");
}

/// A PostgreSQL database of this test's own (on `NATTER_TEST_POSTGRES_URL`, else
/// 127.0.0.1:5432), dropped when this goes.
struct Pg {
    db: TestDatabase,
}

impl Pg {
    fn create() -> Option<Pg> {
        let root = natter_testkit::pg::root_from_env("NATTER_TEST_POSTGRES_URL");
        match TestDatabase::create(&root, "natter_e2e") {
            Ok(db) => Some(Pg { db }),
            Err(e) => {
                skip(
                    "NATTER_REQUIRE_POSTGRES",
                    &format!("no PostgreSQL at {root} ({e}); install postgresql"),
                );
                None
            }
        }
    }

    fn url(&self) -> String {
        self.db.url()
    }

    fn query(&self, sql: &str) -> Vec<String> {
        self.db
            .psql(sql)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A throwaway `redis-server` on a free port, or `None` after one line when it is not
/// installed (and not required).
fn redis() -> Option<ThrowawayRedis> {
    match ThrowawayRedis::start() {
        Ok(redis) => Some(redis),
        Err(e) if e.is_missing() => {
            skip("NATTER_REQUIRE_REDIS", &e.to_string());
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// An instance and where its metrics are.
struct Node {
    server: Server,
    metrics: String,
}

fn http() -> reqwest::Client {
    // Workspace builds give reqwest `rustls-no-provider`; nothing here uses TLS, but
    // building a client needs a provider all the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `natter_connections_open` of an instance.
async fn sockets_open(http: &reqwest::Client, node: &Node) -> f64 {
    let text = http
        .get(&node.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("natter_connections_open "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_loses_nothing_and_its_clients_carry_on() {
    let Some(nginx) = nginx_binary() else {
        return;
    };
    let Some(pg) = Pg::create() else {
        return;
    };
    let Some(redis) = redis() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = pg.url();
    let bus = redis.url();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| {
            let name = format!("node{i}");
            let mut server = Server::start_with(
                Path::new(&db),
                &[
                    "--bus",
                    &bus,
                    "--instance-name",
                    &name,
                    "--trusted-proxy",
                    "127.0.0.1",
                    "--metrics-bind",
                    "127.0.0.1:0",
                ],
            );
            let line = server.next_line();
            let metrics = line
                .split("metrics on ")
                .nth(1)
                .unwrap_or_else(|| panic!("no metrics address in {line:?}"))
                .trim()
                .to_owned();
            Node { server, metrics }
        })
        .collect();
    let http = http();
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = http
                .get(format!("{}/readyz", node.server.url()))
                .send()
                .await
                .unwrap();
            if r.json::<Value>().await.unwrap()["bus"] == "redis" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never joined the bus",
                node.server.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let certs = natter_testkit::certs::generate(&dir.path().join("pki"), "cluster");
    let port = free_port();
    let upstreams: Vec<&str> = nodes.iter().map(|n| n.server.addr.as_str()).collect();
    let site = site_config(&upstreams, port, &certs.cert, &certs.key);
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let _nginx = Nginx::start(&nginx, &nginx_dir, &site, port);
    let url = format!("https://127.0.0.1:{port}");
    let ca = Some(certs.ca.as_path());
    let ca_arg = certs.ca.to_str().unwrap();

    // Two screens and a tail, through nginx only.
    let mut alice = Client::start_with_ca(&url, &dir.path().join("a"), "alice", ca).await;
    let mut bob = Client::start_with_ca(&url, &dir.path().join("b"), "bob", ca).await;
    alice.wait_live().await;
    bob.wait_live().await;
    let c = dir.path().join("c");
    let o = run(natter(&c, &url).args(["--ca-file", ca_arg, "register", "carol"]));
    assert!(o.status.success(), "{o:?}");
    let mut tail = natter(&c, &url)
        .args(["--ca-file", ca_arg, "tail", "--after", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, mut tail_lines) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let tail_out = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(tail_out).lines() {
            let Ok(line) = line else { break };
            if let Ok(m) = serde_json::from_str(&line) {
                let _ = lines_tx.send(m);
            }
        }
    });

    // The load: a sender posting straight to the instances in turn, each message with a
    // client_id, retried on the next instance when one fails (as a client would).
    let r = http
        .post(format!("{}/api/auth/register", nodes[0].server.url()))
        .json(&json!({"username": "dave", "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}/api/chat/messages/", n.server.url()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = Arc::clone(&stop);
        let http = http.clone();
        tokio::spawn(async move {
            let mut acked: BTreeMap<String, i64> = BTreeMap::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 2000 {
                let text = format!("load{i}");
                for attempt in 0..6 {
                    let target = &targets[(i + attempt) % targets.len()];
                    let sent = http
                        .post(target)
                        .bearer_auth(&token)
                        .json(&json!({"text": text, "client_id": text}))
                        .send()
                        .await;
                    if let Ok(r) = sent
                        && r.status().is_success()
                    {
                        let m: Value = r.json().await.unwrap();
                        acked.insert(text.clone(), m["id"].as_i64().unwrap());
                        break;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };

    // Under load, the instance holding the most of our sockets dies.
    for _ in 0..5 {
        alice.pump_for(Duration::from_millis(100)).await;
        bob.pump_for(Duration::from_millis(100)).await;
    }
    let mut open = Vec::new();
    for node in &nodes {
        open.push(sockets_open(&http, node).await);
    }
    let victim = (0..3).max_by(|&a, &b| open[a].total_cmp(&open[b])).unwrap();
    assert!(open[victim] >= 1.0, "no sockets on any instance: {open:?}");
    eprintln!("sockets per instance {open:?}; killing node{victim}");
    nodes[victim].server.kill();

    alice.say("after the kill").await;
    for _ in 0..10 {
        alice.pump_for(Duration::from_millis(100)).await;
        bob.pump_for(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let acked = load.await.unwrap();
    assert!(acked.len() > 50, "the load barely ran: {}", acked.len());
    let survivor = (victim + 1) % 3;
    let r = http
        .post(format!(
            "{}/api/chat/messages/",
            nodes[survivor].server.url()
        ))
        .bearer_auth(&token_of(&http, &nodes[survivor], "dave").await)
        .json(&json!({"text": "end"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    alice.wait_text("end").await;
    bob.wait_text("end").await;
    bob.wait_text("after the kill").await;

    // Stored exactly once: every acknowledged message, with the id it was acknowledged with.
    let stored: Vec<(i64, String)> = pg
        .query("SELECT id, text FROM messages ORDER BY id")
        .iter()
        .map(|row| {
            let (id, text) = row.split_once('|').unwrap();
            (id.parse().unwrap(), text.to_owned())
        })
        .collect();
    let mut by_text: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (id, text) in &stored {
        by_text.entry(text).or_default().push(*id);
    }
    for (text, ids) in &by_text {
        assert_eq!(ids.len(), 1, "{text:?} stored {} times", ids.len());
    }
    for (text, id) in &acked {
        assert_eq!(
            by_text.get(text.as_str()),
            Some(&vec![*id]),
            "acknowledged {text:?}"
        );
    }
    // Every screen shows every stored message once.
    for (who, client) in [("alice", &alice), ("bob", &bob)] {
        for (_, text) in &stored {
            assert_eq!(count(&client.app, text), 1, "{who} shows {text:?}");
        }
    }
    // tail printed them all, once each, in id order.
    let want: BTreeSet<i64> = stored.iter().map(|(id, _)| *id).collect();
    let mut printed: Vec<i64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while printed.len() < want.len() {
        match tokio::time::timeout_at(deadline, tail_lines.recv()).await {
            Ok(Some(m)) => printed.push(m.id.0),
            _ => panic!("tail printed {} of {} messages", printed.len(), want.len()),
        }
    }
    assert!(
        printed.windows(2).all(|w| w[0] < w[1]),
        "tail out of order or twice"
    );
    assert_eq!(printed.into_iter().collect::<BTreeSet<_>>(), want);
    let _ = tail.kill();
    let _ = tail.wait();
    alice.quit().await;
    bob.quit().await;
}

/// A fresh token for `name` (password1) from `node`: the load's token still works, but
/// logging in on a survivor shows accounts work there too.
async fn token_of(http: &reqwest::Client, node: &Node, name: &str) -> String {
    let r = http
        .post(format!("{}/api/auth/login", node.server.url()))
        .json(&json!({"username": name, "password": "password1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}
