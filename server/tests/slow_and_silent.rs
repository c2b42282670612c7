//! Connections that cannot keep up, or go silent, are closed instead of costing the server
//! unbounded memory, and lose nothing: they resume with `?after=`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use natter_shared::ServerFrame;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A reader that stops reading overflows its small queue and is closed with 1013; resuming
/// after the last id it received yields every remaining message, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_with_1013_and_resumes_without_gap() {
    const TOTAL: usize = 5000;
    let server = TestServer::start_with(&["--queue-capacity", "8"]);
    let [a, slow] = server.register_all(["alice", "slow"]).await;
    let (mut reader, _) = server.connect(&slow, None).await;
    // ~4 KB each: 20 MB in all, more than loopback socket buffers hold. Sent over REST by
    // a few concurrent tasks, so the sender is not a (slow) reader itself.
    let text = "z".repeat(4000);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (url, a, text) = (server.url("/api/chat/messages/"), a.clone(), text.clone());
            tokio::spawn(async move {
                let http = common::http();
                for n in (t..TOTAL).step_by(8) {
                    let r = http
                        .post(&url)
                        .bearer_auth(&a)
                        .json(&json!({"text": text, "client_id": format!("s{n}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Now read what the slow reader was sent before it was cut off.
    let mut ids = Vec::new();
    let close = loop {
        match reader.next_raw().await {
            Some(WsMessage::Text(t)) => {
                if let ServerFrame::ChatMessage { message } = ServerFrame::decode(&t).unwrap() {
                    ids.push(message.id.0);
                }
            }
            Some(WsMessage::Close(frame)) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.unwrap().code, CloseCode::Again);
    assert!(ids.len() < TOTAL, "the reader was cut off early");
    let last = ids.last().copied().unwrap_or(0);
    let (_, replayed) = server.connect(&slow, Some(last)).await;
    ids.extend(replayed.iter().map(|m| m.id.0));
    assert_eq!(ids.len(), TOTAL, "nothing lost");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "nothing twice");
}

/// A peer that never answers pings is dropped after the idle timeout with close 1001. The
/// peer here is a raw TCP socket that does the handshake and then only listens, since a
/// WebSocket library would answer the pings.
#[tokio::test]
async fn silent_peer_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(&["--idle-timeout", "1"]);
    let a = server.register("alice").await;
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let request = format!(
        "GET /ws/chat/ HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {a}\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("server never closed the silent connection");
    assert!(received.starts_with(b"HTTP/1.1 101"));
    // An unmasked close frame whose payload starts with 1001 (0x03e9), "going away".
    let close = received
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xe9]);
    assert!(close, "close frame with 1001 before the socket closed");
}
