//! Connections that fall behind catch up from the store instead of being cut; connections
//! that stop reading altogether, or go silent, are closed instead of holding their slot.
#![allow(clippy::unwrap_used)]

mod common;
mod raw;

use std::time::Duration;

use common::TestServer;
use natter_shared::ServerFrame;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// RFC 6455's sample `Sec-WebSocket-Key`.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A reader that stops reading while 20 MB are sent to it overflows its small queue many
/// times over and is not closed: it is sent the rest from the store, and gets every message
/// once, in order, when it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_catches_up_from_the_store_without_a_close() {
    const TOTAL: usize = 5000;
    let server = TestServer::start_with(&["--queue-capacity", "8"]);
    let [a, slow] = server.register_all(["alice", "slow"]).await;
    let (mut reader, _) = server.connect(&slow, None).await;
    // ~4 KB each: 20 MB in all, more than loopback socket buffers hold.
    post_concurrently(&server, &a, TOTAL, 4000).await;
    let ids = read_ids(&mut reader, TOTAL, None).await;
    assert_in_order(&ids, TOTAL);
}

/// Readers that stop reading for 2 s in the middle of a burst (each at its own point) get
/// every message once, in order, and none is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_pausing_mid_burst_get_everything_in_order() {
    const TOTAL: usize = 5000;
    let server = TestServer::start_with(&["--queue-capacity", "8"]);
    let [a, r1, r2, r3] = server
        .register_all(["alice", "pauser1", "pauser2", "steady"])
        .await;
    let mut readers = Vec::new();
    for (token, pause_at) in [(&r1, Some(500)), (&r2, Some(2500)), (&r3, None)] {
        let (mut ws, _) = server.connect(token, None).await;
        readers.push(tokio::spawn(async move {
            read_ids(&mut ws, TOTAL, pause_at).await
        }));
    }
    post_concurrently(&server, &a, TOTAL, 4000).await;
    for r in readers {
        assert_in_order(&r.await.unwrap(), TOTAL);
    }
}

/// A client that never reads is closed once its socket has accepted nothing for the write
/// timeout, and its user goes offline; a healthy reader beside it gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_that_never_reads_is_cut_after_the_write_timeout() {
    use tokio::io::AsyncWriteExt;
    const TOTAL: usize = 5000;
    let server = TestServer::start_with(&["--write-timeout", "2"]);
    let [a, stuck, watcher] = server.register_all(["alice", "stuck", "watcher"]).await;
    let (mut watch, _) = server.connect(&watcher, None).await;
    let ws_addr = server.ws_addr();
    let mut tcp = tokio::net::TcpStream::connect(&ws_addr).await.unwrap();
    let request = raw::upgrade_request(&ws_addr, &stuck, Some(SAMPLE_KEY));
    tcp.write_all(&request).await.unwrap();
    // The watcher sees the stuck user come online.
    loop {
        if let ServerFrame::Presence { username, online } = watch.next_frame().await
            && username.as_str() == "stuck"
            && online
        {
            break;
        }
    }
    let reading = tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut offline_after = None;
        while ids.len() < TOTAL || offline_after.is_none() {
            match watch.next_frame().await {
                ServerFrame::ChatMessage { message } => ids.push(message.id.0),
                ServerFrame::Presence { username, online }
                    if username.as_str() == "stuck" && !online =>
                {
                    offline_after = Some(ids.len());
                }
                ServerFrame::Presence { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        ids
    });
    // ~4 KB each: 12 MB, more than loopback buffers hold for a reader that never reads.
    post_concurrently(&server, &a, TOTAL, 4000).await;
    let ids = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the stuck reader was never cut (or the watcher missed messages)")
        .unwrap();
    assert_in_order(&ids, TOTAL);
    let (_, users) = server.get(&a, "/api/users/").await;
    let stuck_row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "stuck")
        .unwrap();
    assert_eq!(stuck_row["online"], false, "{users}");
    drop(tcp);
}

/// Posts `total` messages of `chars` characters as `token`, from 8 concurrent tasks, so the
/// sender is not a (slow) reader itself.
async fn post_concurrently(server: &TestServer, token: &str, total: usize, chars: usize) {
    let text = "z".repeat(chars);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (url, token, text) = (
                server.url("/api/chat/messages/"),
                token.to_owned(),
                text.clone(),
            );
            tokio::spawn(async move {
                let http = common::http();
                for n in (t..total).step_by(8) {
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
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
}

/// Reads `total` chat messages (skipping presence), pausing 2 s after `pause_at` of them;
/// panics on a close frame.
async fn read_ids(ws: &mut common::Ws, total: usize, pause_at: Option<usize>) -> Vec<i64> {
    let mut ids = Vec::with_capacity(total);
    while ids.len() < total {
        if Some(ids.len()) == pause_at {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        match ws.next_raw().await {
            Some(WsMessage::Text(t)) => match ServerFrame::decode(&t).unwrap() {
                ServerFrame::ChatMessage { message } => ids.push(message.id.0),
                ServerFrame::Presence { .. } => {}
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("after {} messages: {other:?}", ids.len()),
        }
    }
    ids
}

fn assert_in_order(ids: &[i64], total: usize) {
    assert_eq!(ids.len(), total, "nothing lost");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, nothing twice"
    );
}

/// A peer that never answers pings is dropped after the idle timeout with close 1001. The
/// peer here is a raw TCP socket that does the handshake and then only listens, since a
/// WebSocket library would answer the pings.
#[tokio::test]
async fn silent_peer_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_with(&["--idle-timeout", "1"]);
    let a = server.register("alice").await;
    let ws_addr = server.ws_addr();
    let mut tcp = tokio::net::TcpStream::connect(&ws_addr).await.unwrap();
    let request = raw::upgrade_request(&ws_addr, &a, Some(SAMPLE_KEY));
    tcp.write_all(&request).await.unwrap();
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
