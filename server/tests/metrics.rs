//! `GET /metrics` on `--metrics-bind`: Prometheus text whose counters move with what the
//! server does, and never on the chat port.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::TestServer;
use common::backend::Storage;
use serde_json::json;

/// The value of the sample named `series` exactly (name and labels) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Counters and gauges move with registrations, sends over both transports, deliveries,
/// auth failures and closes; the histograms have samples; the chat port has no /metrics.
#[tokio::test]
async fn metrics_move_with_the_server() {
    only_on!(Sqlite, Postgres; "counts one process's events; a cluster spreads them over three");
    let storage = Storage::current();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args(["--bind", "127.0.0.1:0", "--metrics-bind", "127.0.0.1:0"])
        .args(storage.args(dir.path(), 0))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let addr = first
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap()
        .to_owned();
    let metrics_url = second
        .trim()
        .strip_prefix("natter-server metrics on ")
        .unwrap_or_else(|| panic!("no metrics line: {second:?}"))
        .to_owned();
    let server = TestServer::adopt(child, addr, dir, storage);
    let scrape = || async {
        let r = common::http().get(&metrics_url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/plain"), "{kind}");
        r.text().await.unwrap()
    };

    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut ws_a, _) = server.connect(&a, None).await;
    let (mut ws_b, _) = server.connect(&b, None).await;
    ws_a.send_json(json!({"message": "over the socket", "client_id": "c1"}))
        .await;
    assert_eq!(ws_a.next_message().await.text, "over the socket");
    assert_eq!(ws_b.next_message().await.text, "over the socket");
    assert_eq!(server.post(&b, json!({"text": "over REST"})).await.0, 201);
    assert_eq!(ws_a.next_message().await.text, "over REST");
    assert_eq!(ws_b.next_message().await.text, "over REST");
    assert_eq!(server.get("wrong-token", "/api/users/").await.0, 401);

    let text = scrape().await;
    let v =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(v(r#"natter_messages_stored_total{transport="ws"}"#), 1.0);
    assert_eq!(v(r#"natter_messages_stored_total{transport="rest"}"#), 1.0);
    assert_eq!(
        v("natter_deliveries_total"),
        4.0,
        "two messages to two sockets"
    );
    assert!(v("natter_websocket_sent_bytes_total") > 0.0);
    assert_eq!(v("natter_connections_open"), 2.0);
    assert_eq!(v("natter_users_online"), 2.0);
    assert_eq!(
        v(r#"natter_http_requests_total{route="/api/auth/register",status="201"}"#),
        2.0
    );
    assert_eq!(v("natter_auth_failures_total"), 1.0);
    assert!(v(r#"natter_send_ack_seconds_count{transport="ws"}"#) >= 1.0);
    assert!(v("natter_commit_batch_size_count") >= 1.0);
    assert!(v("natter_commit_duration_seconds_count") >= 1.0);
    assert!(
        text.contains("# TYPE natter_commit_duration_seconds histogram"),
        "{text}"
    );

    drop(ws_b);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let text = scrape().await;
        if sample(&text, "natter_connections_open") == Some(1.0)
            && sample(&text, r#"natter_connections_closed_total{reason="lost"}"#).is_some()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "close not counted:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = server.get(&a, "/metrics").await;
    assert_eq!(status, 404, "metrics are not on the chat port");
}
