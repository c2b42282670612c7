//! Message text never reaches the server's log, whatever `RUST_LOG` asks for.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use serde_json::json;

/// Starts the server logging everything, the WebSocket library by name too (a directive
/// more specific than any ceiling appended to it), with each instance's stderr going to
/// `stderr{i}.log` in `logs` (a file, so a full pipe cannot stall the server). On a cluster
/// every instance logs, the ones that only pass messages on from Redis included.
fn start_tracing(logs: &Path) -> TestServer {
    let logs = logs.to_owned();
    TestServer::start_configured(&[], move |i, cmd: &mut Command| {
        cmd.env(
            "RUST_LOG",
            "trace,tungstenite::protocol=trace,tokio_tungstenite=trace",
        )
        .stderr(std::fs::File::create(logs.join(format!("stderr{i}.log"))).unwrap());
    })
}

/// With every level on, group and direct messages sent over WebSocket and over REST leave
/// no trace of their text in the log, neither as text nor as the hex of a frame payload,
/// while the log does hold debug output, the WebSocket library's included (so the check
/// can fail: before the fix tungstenite's trace events held every marker, in both forms).
#[tokio::test]
async fn message_text_is_never_logged() {
    let log_dir = tempfile::tempdir().unwrap();
    let mut server = start_tracing(log_dir.path());
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let markers = [
        "quokka7ws7group",
        "quokka7ws7direct",
        "quokka7rest7group",
        "quokka7rest7direct",
    ];
    wa.send_json(json!({"message": markers[0]})).await;
    wa.send_json(json!({"message": markers[1], "receiver_username": "bob"}))
        .await;
    let (status, _) = server.post(&a, json!({"text": markers[2]})).await;
    assert_eq!(status, 201);
    let (status, _) = server
        .post(
            &b,
            json!({"text": markers[3], "receiver_username": "alice"}),
        )
        .await;
    assert_eq!(status, 201);
    // All four delivered, so each went through every layer that might log it.
    let mut seen = Vec::new();
    for _ in markers {
        seen.push(wa.next_message().await.text);
    }
    seen.sort();
    let mut want = markers.map(String::from).to_vec();
    want.sort();
    assert_eq!(seen, want);
    wa.inner.close(None).await.unwrap();
    assert!(server.terminate().success());

    let stderr: String = (0..server.instances())
        .map(|i| std::fs::read_to_string(log_dir.path().join(format!("stderr{i}.log"))).unwrap())
        .collect();
    // Not vacuous: verbose levels are on, and the WebSocket library's events reach the log
    // (its close-frame lines are at debug; its trace events are the ones that print
    // payloads, and they are what the server filters out).
    let has = |level: &str, target: &str| {
        stderr
            .lines()
            .any(|l| l.contains(level) && l.contains(target))
    };
    assert!(has(" DEBUG ", "natter_server::"), "RUST_LOG took effect");
    assert!(
        has(" DEBUG ", "tungstenite::"),
        "tungstenite's events are logged"
    );
    for marker in markers {
        let hex: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
        for (form, needle) in [("text", marker), ("hex", hex.as_str())] {
            let line = stderr.lines().find(|l| l.contains(needle));
            assert!(line.is_none(), "{marker} logged as {form}: {line:?}");
        }
    }
}
