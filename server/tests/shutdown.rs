//! SIGTERM: stop accepting, close every socket with 1001, exit 0 promptly.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Connected clients receive close 1001 and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1001_and_exits_0() {
    let mut server = TestServer::start();
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb, _) = server.connect(&b, None).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (server, status)
    });
    for ws in [&mut wa, &mut wb] {
        assert_eq!(ws.next_close().await, CloseCode::Away);
    }
    let (_server, status) = status.await.unwrap();
    assert!(status.success(), "exit status {status}");
}
