//! The database failing while the server runs: its file deleted, or full. Writes are
//! refused with 503 and a storage code (never acknowledged and then lost), `/readyz` says
//! so, and the server recovers when the file is back. Plus `/livez` and `/readyz` when all
//! is well. The faults are a SQLite file's; postgres.rs has PostgreSQL's.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::TestServer;
use common::backend::Backend;
use serde_json::{Value, json};

/// `/readyz`: status and body.
async fn readyz(server: &TestServer) -> (u16, Value) {
    server.get("", "/readyz").await
}

/// Healthy: `/livez` 200, `/readyz` 200 `{"status":"ready","bus":"none"}` (`"redis"` on
/// a cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_readyz_are_200_when_healthy() {
    let server = TestServer::start();
    assert_eq!(server.get("", "/livez").await.0, 200);
    assert_eq!(
        readyz(&server).await,
        (
            200,
            json!({"status": "ready", "bus": Backend::current().bus()})
        )
    );
}

/// Deleting the database while the server runs: sends over REST get 503
/// `storage_unavailable`, and over WebSocket an error frame with that code, instead of
/// being acknowledged into a file the next start will not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_database_refuses_writes() {
    only_on!(Sqlite; "deletes the SQLite file (postgres.rs has the database going away)");
    let server = TestServer::start();
    let token = server.register("alice").await;
    let (mut ws, _) = server.connect(&token, None).await;
    assert_eq!(server.post(&token, json!({"text": "before"})).await.0, 201);
    std::fs::remove_file(server.db_path()).unwrap();

    let (status, body) = server.post(&token, json!({"text": "after"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable");
    ws.send_json(json!({"message": "after, by ws", "client_id": "w1"}))
        .await;
    loop {
        // Skip the echo of "before", which may still be queued.
        match ws.next_frame().await {
            natter_shared::ServerFrame::ChatMessage { .. }
            | natter_shared::ServerFrame::Presence { .. } => continue,
            natter_shared::ServerFrame::Error { error, client_id } => {
                assert_eq!(error.code.as_str(), "storage_unavailable");
                assert_eq!(client_id.as_deref(), Some("w1"));
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Once a write found the database gone, `/readyz` is 503 with the reason; `/livez` stays
/// 200 (the process is fine, restarting it would not bring the data back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_the_database_is_gone() {
    only_on!(Sqlite; "deletes the SQLite file (postgres.rs has the database going away)");
    let server = TestServer::start();
    let token = server.register("alice").await;
    std::fs::remove_file(server.db_path()).unwrap();
    assert_eq!(server.post(&token, json!({"text": "lost?"})).await.0, 503);
    assert_eq!(
        readyz(&server).await,
        (
            503,
            json!({"status": "not_ready", "reason": "storage_unavailable", "bus": "none"})
        )
    );
    assert_eq!(server.get("", "/livez").await.0, 200);
}

/// A database moved away is refused; moved back (the same file), it is written again and
/// `/readyz` is 200 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_moved_back_is_written_again() {
    only_on!(Sqlite; "moves the SQLite file");
    let server = TestServer::start();
    let token = server.register("alice").await;
    let away = server.dir.path().join("moved.db");
    std::fs::rename(server.db_path(), &away).unwrap();
    assert_eq!(server.post(&token, json!({"text": "refused"})).await.0, 503);
    std::fs::rename(&away, server.db_path()).unwrap();
    assert_eq!(server.post(&token, json!({"text": "stored"})).await.0, 201);
    assert_eq!(readyz(&server).await.0, 200);
    let texts: Vec<String> = server
        .history(&token)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["stored"]);
}

/// A full database (forced with SQLite's page limit): posts get 503 `storage_full`,
/// `/readyz` says so, and after SIGKILL and a restart every post that got 201 is there and
/// none that got 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_database_answers_storage_full_and_loses_nothing() {
    only_on!(Sqlite; "SQLite's page limit (--test-max-page-count is SQLite only)");
    /// Posts tried at most: far more than 40 pages hold.
    const MAX_POSTS: usize = 400;
    /// Posts tried after the first refusal.
    const AFTER_FULL: usize = 5;
    let mut server = TestServer::start_with(&["--test-max-page-count", "40"]);
    let token = server.register("alice").await;
    let text = "x".repeat(3000);
    let mut stored = HashSet::new();
    let mut refused = HashSet::new();
    for n in 0..MAX_POSTS {
        let cid = format!("m{n}");
        let (status, body) = server
            .post(&token, json!({"text": text, "client_id": cid}))
            .await;
        match status {
            201 => {
                stored.insert(cid);
            }
            503 => {
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused.insert(cid);
            }
            _ => panic!("post {n}: {status} {body}"),
        }
        if refused.len() == AFTER_FULL {
            break;
        }
    }
    assert_eq!(
        refused.len(),
        AFTER_FULL,
        "never full after {MAX_POSTS} posts"
    );
    assert!(!stored.is_empty());
    assert_eq!(
        readyz(&server).await,
        (
            503,
            json!({"status": "not_ready", "reason": "storage_full", "bus": "none"})
        )
    );

    server.kill9();
    server.restart();
    let kept: HashSet<String> = server
        .history(&token)
        .await
        .into_iter()
        .map(|m| m.client_id.unwrap().as_str().to_owned())
        .collect();
    assert_eq!(kept, stored);
}
