//! Resume with `?after=`: every visible message after the id, then live, with no gap and no
//! duplicate, even while others keep sending during the replay.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use natter_shared::ServerFrame;
use serde_json::json;

/// A client resumes while two others are sending; it sees each message exactly once, in id
/// order, and ends with everything the others sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_while_others_send_has_no_gap_and_no_duplicate() {
    const PER_SENDER: usize = 300;
    let server = TestServer::start();
    let [a, b, c] = server.register_all(["alice", "bob", "carol"]).await;
    // History before carol's cursor, and after it.
    for i in 0..50 {
        server
            .post(&a, json!({"text": format!("before {i}")}))
            .await;
    }
    let cursor = server.history(&c).await.last().unwrap().id.0;
    for i in 0..50 {
        server
            .post(&b, json!({"text": format!("missed {i}")}))
            .await;
    }

    // Two senders keep going while carol resumes.
    let senders: Vec<_> = [("a", a.clone()), ("b", b.clone())]
        .into_iter()
        .map(|(tag, token)| {
            let url = server.url("/api/chat/messages/");
            tokio::spawn(async move {
                let http = common::http();
                for i in 0..PER_SENDER {
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("live {tag} {i}"), "client_id": format!("{tag}-{i}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();

    let mut ws = server.connect_raw(&c, Some(cursor)).await.unwrap();
    let mut ids = Vec::new();
    let mut saw_ready = false;
    let total_after_cursor = 50 + 2 * PER_SENDER;
    while ids.len() < total_after_cursor {
        match ws.next_frame().await {
            ServerFrame::ChatMessage { message } => ids.push(message.id.0),
            ServerFrame::Ready { last_id, .. } => {
                assert!(!saw_ready, "ready sent twice");
                saw_ready = true;
                assert_eq!(
                    last_id.map(|l| l.0),
                    ids.last().copied(),
                    "ready names the last replayed id"
                );
            }
            ServerFrame::Presence { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    for s in senders {
        s.await.unwrap();
    }
    assert!(saw_ready);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing: no duplicate, in order"
    );
    let expected: BTreeSet<i64> = server
        .history(&c)
        .await
        .into_iter()
        .map(|m| m.id.0)
        .filter(|id| *id > cursor)
        .collect();
    assert_eq!(expected.len(), total_after_cursor);
    assert_eq!(
        ids.iter().copied().collect::<BTreeSet<_>>(),
        expected,
        "no gap"
    );
}

/// Resume replays only what the user may see: another pair's direct messages are skipped.
#[tokio::test]
async fn resume_replays_only_visible_messages() {
    let server = TestServer::start();
    let [a, b, c] = server.register_all(["alice", "bob", "carol"]).await;
    server.post(&a, json!({"text": "to all"})).await;
    server
        .post(&a, json!({"text": "to bob", "receiver_username": "bob"}))
        .await;
    server
        .post(
            &c,
            json!({"text": "carol to alice", "receiver_username": "alice"}),
        )
        .await;
    let (_, replayed) = server.connect(&b, Some(0)).await;
    let texts: Vec<_> = replayed.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["to all", "to bob"]);
    let (_, replayed) = server.connect(&c, Some(2)).await;
    let texts: Vec<_> = replayed.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["carol to alice"]);
}
