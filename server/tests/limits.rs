//! Server-wide limits and the database file's version.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use serde_json::Value;

/// Past `--max-connections`, an upgrade is refused with 503 `too_many_connections`; closing
/// a connection frees its place.
#[tokio::test]
async fn connection_limit() {
    only_on!(Sqlite, Postgres; "caps are per instance, and a cluster spreads sockets over three");
    let server = TestServer::start_with(&["--max-connections", "2"]);
    let a = server.register("alice").await;
    let (first, _) = server.connect(&a, None).await;
    let (_second, _) = server.connect(&a, None).await;
    match server.connect_raw(&a, None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_connections");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    drop(first);
    // The server notices the close asynchronously; retry for a bounded time.
    let mut admitted = false;
    for _ in 0..50 {
        if server.connect_raw(&a, None).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted, "a freed place is reusable");
}

/// A database from a newer server (a higher schema version) is refused, not altered; one
/// from this version reopens with its data.
#[tokio::test]
async fn schema_versions() {
    only_on!(Sqlite; "sets the SQLite file's user_version");
    let mut server = TestServer::start();
    let a = server.register("alice").await;
    server.post(&a, serde_json::json!({"text": "kept"})).await;
    server.terminate();
    server.restart();
    assert_eq!(server.history(&a).await.len(), 1, "reopened with its data");
    server.terminate();

    let conn = rusqlite::Connection::open(server.db_path()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_natter-server"))
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(server.db_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this server"), "stderr: {err}");
}
