//! Nothing acknowledged is ever lost: messages acknowledged over REST (201) and WebSocket
//! (the echo) survive SIGKILL, and a restart on the same database has each exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use common::TestServer;
use serde_json::json;

/// Concurrent senders on both transports, SIGKILL, restart: every acknowledged message is
/// present, none twice, and the database opens without a migration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    const REST_SENDERS: usize = 4;
    const PER_REST_SENDER: usize = 50;
    const WS_MESSAGES: usize = 200;
    let mut server = TestServer::start();
    let mut tokens = Vec::new();
    for i in 0..REST_SENDERS {
        tokens.push(server.register(&format!("rest{i}")).await);
    }
    let ws_token = server.register("wsuser").await;

    let rest_tasks: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let url = server.url("/api/chat/messages/");
            let token = token.clone();
            tokio::spawn(async move {
                let http = common::http();
                let mut acked = Vec::new();
                for n in 0..PER_REST_SENDER {
                    let cid = format!("rest{i}-{n}");
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": format!("message {cid}"), "client_id": cid}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    acked.push(cid);
                }
                acked
            })
        })
        .collect();

    // WebSocket: pipeline every send, count echoes of our own client_ids as acknowledgements.
    let (mut ws, _) = server.connect(&ws_token, None).await;
    for n in 0..WS_MESSAGES {
        ws.send_json(json!({"message": format!("ws {n}"), "client_id": format!("ws-{n}")}))
            .await;
    }
    let mut ws_acked = Vec::new();
    while ws_acked.len() < WS_MESSAGES {
        let m = ws.next_message().await;
        if m.sender_username.as_str() == "wsuser" {
            ws_acked.push(m.client_id.unwrap().as_str().to_owned());
        }
    }
    let mut acked: Vec<String> = ws_acked;
    for t in rest_tasks {
        acked.extend(t.await.unwrap());
    }

    server.kill9();
    server.restart();

    let stored = server.history(&tokens[0]).await;
    let mut count: HashMap<String, usize> = HashMap::new();
    for m in &stored {
        *count
            .entry(m.client_id.clone().unwrap().as_str().to_owned())
            .or_default() += 1;
    }
    assert_eq!(acked.len(), REST_SENDERS * PER_REST_SENDER + WS_MESSAGES);
    for cid in &acked {
        assert_eq!(
            count.get(cid),
            Some(&1),
            "acknowledged message {cid} present exactly once"
        );
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "nothing unacknowledged appeared either"
    );
    let ids: Vec<_> = stored.iter().map(|m| m.id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // And the restarted server keeps serving and numbering after the old ids.
    let (status, body) = server
        .post(&tokens[1], json!({"text": "after restart"}))
        .await;
    assert_eq!(status, 201);
    assert!(body["id"].as_i64().unwrap() > *ids.last().unwrap());
}

/// Kill while sends are in flight: whatever was acknowledged before the kill is there after
/// it, and retrying every send with its client_id afterwards stores each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_mid_stream_then_retry_by_client_id() {
    const TOTAL: usize = 400;
    let mut server = TestServer::start();
    let token = server.register("alice").await;
    let (mut ws, _) = server.connect(&token, None).await;
    for n in 0..TOTAL {
        ws.send_json(json!({"message": format!("m{n}"), "client_id": format!("c{n}")}))
            .await;
    }
    // Take some acknowledgements, then kill without waiting for the rest.
    let mut acked = Vec::new();
    for _ in 0..TOTAL / 4 {
        acked.push(
            ws.next_message()
                .await
                .client_id
                .unwrap()
                .as_str()
                .to_owned(),
        );
    }
    server.kill9();
    server.restart();
    let before: Vec<String> = server
        .history(&token)
        .await
        .into_iter()
        .map(|m| m.client_id.unwrap().as_str().to_owned())
        .collect();
    for cid in &acked {
        assert!(before.contains(cid), "acknowledged {cid} lost");
    }
    // The client retries everything; the server stores what it lacks, once.
    for n in 0..TOTAL {
        let (status, _) = server
            .post(
                &token,
                json!({"text": format!("m{n}"), "client_id": format!("c{n}")}),
            )
            .await;
        assert!(status == 200 || status == 201);
    }
    let after = server.history(&token).await;
    assert_eq!(after.len(), TOTAL);
}
