//! A `client_id` makes a send idempotent, across both transports.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use serde_json::json;

/// The same client_id twice over REST: 201 then 200 with the same message; one stored.
#[tokio::test]
async fn rest_retry_returns_the_first_message() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let body = json!({"text": "once", "client_id": "k1"});
    let (s1, m1) = server.post(&a, body.clone()).await;
    let (s2, m2) = server.post(&a, body).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(m1, m2);
    // Even with different text: the key decides, and the first message wins.
    let (s3, m3) = server
        .post(&a, json!({"text": "changed", "client_id": "k1"}))
        .await;
    assert_eq!((s3, m3), (200, m1));
    assert_eq!(server.history(&a).await.len(), 1);
}

/// Sent over WebSocket, retried over REST and WebSocket: one message stored, and other
/// users see it once.
#[tokio::test]
async fn retry_across_transports_stores_once() {
    let server = TestServer::start();
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb, _) = server.connect(&b, None).await;
    wa.send_json(json!({"message": "hello", "client_id": "k2"}))
        .await;
    let first = wa.next_message().await;
    let (status, again) = server
        .post(&a, json!({"text": "hello", "client_id": "k2"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"].as_i64().unwrap(), first.id.0);
    // The WebSocket retry gets the original back as its acknowledgement.
    wa.send_json(json!({"message": "hello", "client_id": "k2"}))
        .await;
    assert_eq!(wa.next_message().await, first);
    // Bob got it once: his next message is the marker.
    assert_eq!(wb.next_message().await, first);
    server.post(&b, json!({"text": "marker"})).await;
    assert_eq!(wb.next_message().await.text, "marker");
    assert_eq!(server.history(&a).await.len(), 2);
}

/// Client ids are per sender: two users may use the same one.
#[tokio::test]
async fn client_ids_are_per_sender() {
    let server = TestServer::start();
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (s1, _) = server
        .post(&a, json!({"text": "a", "client_id": "same"}))
        .await;
    let (s2, _) = server
        .post(&b, json!({"text": "b", "client_id": "same"}))
        .await;
    assert_eq!((s1, s2), (201, 201));
}

/// Many concurrent retries of one send over REST store it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_store_once() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let url = server.url("/api/chat/messages/");
            let a = a.clone();
            tokio::spawn(async move {
                common::http()
                    .post(url)
                    .bearer_auth(a)
                    .json(&json!({"text": "race", "client_id": "r1"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 19);
    assert_eq!(server.history(&a).await.len(), 1);
}
