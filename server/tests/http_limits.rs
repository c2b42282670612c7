//! Plain HTTP is bounded like WebSockets are: a request that never finishes is timed out,
//! open HTTP connections are capped with the newest refused, and one account cannot take
//! every WebSocket slot.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::backend::Storage;
use common::{TestServer, WAIT};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` on a new connection and reads until the server closes it (bounded).
async fn exchange(addr: &str, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "no answer within {WAIT:?}; got so far: {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON error code in a raw HTTP response.
fn error_code(response: &str) -> String {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response:?}"));
    v["error"]["code"].as_str().unwrap().to_owned()
}

/// A body that is declared but never arrives gets 408 `request_timeout` once the request
/// timeout passes, instead of holding the connection forever.
#[tokio::test]
async fn unfinished_body_gets_408() {
    let server = TestServer::start_with(&["--request-timeout", "1"]);
    let reply = exchange(
        &server.addr,
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply:?}");
    assert_eq!(error_code(&reply), "request_timeout");
}

/// Past `--max-http-connections` the newest connection is refused with 503 (a health check
/// still gets 200), while an open WebSocket keeps working and, once the idle connections go,
/// requests are served again.
#[tokio::test]
async fn http_connection_cap_refuses_the_newest() {
    const CAP: usize = 8;
    let server = TestServer::start_with(&["--max-http-connections", &CAP.to_string()]);
    let token = server.register("alice").await;
    let (mut ws, _) = server.connect(&token, None).await;
    // Connections that send nothing hold every HTTP slot (one more than the cap, so a slot
    // freed by the registration's keep-alive connection closing is taken too).
    let mut idle = Vec::new();
    for _ in 0..=CAP {
        idle.push(TcpStream::connect(&server.addr).await.unwrap());
    }
    // Give the server a moment to accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // On a busy machine the server may still be accepting the idle ones: ask until the cap
    // is reached (bounded). Only then is the health check below one past the cap (asked
    // earlier, it could take a normal slot, whose keep-alive connection stays open).
    let deadline = tokio::time::Instant::now() + WAIT;
    let login = loop {
        let login = exchange(
            &server.addr,
            "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        )
        .await;
        if login.starts_with("HTTP/1.1 503") || tokio::time::Instant::now() > deadline {
            break login;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(login.starts_with("HTTP/1.1 503"), "{login:?}");
    assert_eq!(error_code(&login), "too_many_connections");
    let health = exchange(&server.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
    ws.send_json(json!({"message": "still here", "client_id": "c1"}))
        .await;
    assert_eq!(ws.next_message().await.text, "still here");
    drop(idle);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = exchange(
            &server.addr,
            "GET /api/users/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if reply.starts_with("HTTP/1.1 401") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One account may hold at most `--max-connections-per-user` WebSockets; further upgrades
/// get 503 `too_many_connections` while other accounts still connect, and closing one frees
/// its place.
#[tokio::test]
async fn per_user_connection_cap() {
    only_on!(Sqlite, Postgres; "caps are per instance, and a cluster spreads sockets over three");
    let server = TestServer::start_with(&["--max-connections-per-user", "2"]);
    let [alice, bob] = server.register_all(["alice", "bob"]).await;
    let (first, _) = server.connect(&alice, None).await;
    let (_second, _) = server.connect(&alice, None).await;
    match server.connect_raw(&alice, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_connections");
        }
        other => panic!("third connection was not refused: {:?}", other.map(|_| ())),
    }
    server.connect(&bob, None).await;
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.connect_raw(&alice, None).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the server binary through `sh` with `ulimit` flags applied first, one process on
/// `storage` (a cluster's first instance, on a cluster); returns the child and its address
/// (stderr piped, at info level).
fn spawn_with_ulimit(
    ulimit: &str,
    dir: &std::path::Path,
    storage: &Storage,
    extra: &[&str],
) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_natter-server"))
        .args(["--bind", "127.0.0.1:0"])
        .args(storage.args(dir, 0))
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    common::spawn_listening(cmd)
}

/// At start the server raises its open-files soft limit to the hard limit and logs it.
#[test]
fn open_files_limit_is_raised_and_logged() {
    use std::io::Read;
    let storage = Storage::current();
    let dir = tempfile::tempdir().unwrap();
    let hard: u64 = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    let (mut child, _) = spawn_with_ulimit("-Sn 256", dir.path(), &storage, &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("open-files limit"))
        .unwrap_or_else(|| panic!("no open-files line in {log}"));
    if hard > 256 && hard != u64::MAX {
        assert!(line.contains(&format!("limit={hard}")), "{line}");
    }
}

/// 600 connections that each declare a body and send one byte, against a server limited to
/// 512 descriptors: the server keeps answering health checks and an open socket, and once
/// the request timeout passes it serves logins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_under_a_descriptor_limit() {
    let storage = Storage::current();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_with_ulimit(
        "-n 512",
        dir.path(),
        &storage,
        &[
            "--max-http-connections",
            "256",
            "--request-timeout",
            "2",
            "--register-burst",
            "0",
        ],
    );
    let http = common::http();
    let r = http
        .post(format!("http://{addr}/api/auth/register"))
        .json(&json!({"username": "alice", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/ws/chat/"),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (inner, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws = common::Ws { inner };
    while !matches!(
        ws.next_frame().await,
        natter_shared::ServerFrame::Ready { .. }
    ) {}

    let mut trickles = Vec::new();
    for _ in 0..600 {
        let Ok(mut tcp) = TcpStream::connect(&addr).await else {
            continue;
        };
        let head = "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{";
        let _ = tcp.write_all(head.as_bytes()).await;
        trickles.push(tcp);
    }
    let health_url = format!("http://{addr}/healthz");
    let mut healthy = false;
    for _ in 0..20 {
        let probe = common::http_builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        if let Ok(r) = probe.get(&health_url).send().await
            && r.status() == 200
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/healthz never answered 200 during the flood");
    ws.send_json(json!({"message": "through the flood", "client_id": "c1"}))
        .await;
    assert_eq!(ws.next_message().await.text, "through the flood");
    // The trickled requests time out and free their descriptors; logins work again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // A new connection each time: the pooled one from the registration would get in.
        let r = common::http()
            .post(format!("http://{addr}/api/auth/login"))
            .json(&json!({"username": "alice", "password": common::PASSWORD}))
            .send()
            .await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "login never recovered: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "login served again after {:?}",
        WAIT - (deadline - tokio::time::Instant::now())
    );
    drop(trickles);
    child.kill().unwrap();
    child.wait().unwrap();
}
