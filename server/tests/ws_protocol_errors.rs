//! A client that breaks the WebSocket protocol gets a close frame saying why (1002, 1009)
//! that it can actually read, rather than a bare EOF or a reset. The frames are written by
//! hand over raw TCP, since a WebSocket library will not send them.
#![allow(clippy::unwrap_used)]

mod common;
mod raw;

use common::TestServer;
use tokio::io::AsyncWriteExt;

/// What the client saw after sending its bytes.
struct Ending {
    /// The server's close frame (code, reason), if it sent one.
    close: Option<(u16, String)>,
    /// Whether all the bytes were written (no reset while sending).
    wrote_all: bool,
    /// Whether the socket ended in an orderly EOF rather than a reset.
    clean_eof: bool,
}

/// Opens a session as `token`, writes `bytes`, then reads to the end of the connection.
async fn send_and_read(server: &TestServer, token: &str, bytes: &[u8]) -> Ending {
    use tokio::io::AsyncReadExt;
    let mut tcp = raw::ws_connect(&server.ws_addr(), token).await;
    let ending = async {
        // Written first, read after, as a simple client does: the server's answer must
        // survive that order.
        let wrote_all = tcp.write_all(bytes).await.is_ok();
        let mut received = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let clean_eof = loop {
            match tcp.read(&mut buf).await {
                Ok(0) => break true,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        Ending {
            close: raw::close_of(&raw::server_frames(&received)),
            wrote_all,
            clean_eof,
        }
    };
    tokio::time::timeout(common::WAIT, ending)
        .await
        .expect("server did not close the connection")
}

/// Each kind of protocol violation is answered with close 1002 and a reason starting
/// "protocol error", then an orderly close of the socket.
#[tokio::test]
async fn protocol_violations_get_close_1002() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    let text = br#"{"message":"hi"}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked text frame", raw::frame(0x81, false, text)),
        ("RSV1 set", raw::frame(0xc1, true, text)),
        ("reserved data opcode 0x3", raw::frame(0x83, true, b"x")),
        ("reserved control opcode 0xB", raw::frame(0x8b, true, b"")),
        (
            "ping with a 200-byte payload",
            raw::frame(0x89, true, &[7u8; 200]),
        ),
        ("fragmented ping", raw::frame(0x09, true, b"")),
        ("continuation frame first", raw::frame(0x80, true, b"x")),
        (
            "new message inside a fragmented one",
            [raw::frame(0x01, true, b"{"), raw::frame(0x81, true, text)].concat(),
        ),
        (
            "close frame with a 1-byte payload",
            raw::frame(0x88, true, &[3]),
        ),
    ];
    for (what, bytes) in cases {
        let end = send_and_read(&server, &token, &bytes).await;
        let (code, reason) = end
            .close
            .unwrap_or_else(|| panic!("{what}: no close frame"));
        assert_eq!(code, 1002, "{what}: {reason}");
        assert!(reason.starts_with("protocol error"), "{what}: {reason}");
        assert!(end.clean_eof, "{what}: reset after the close frame");
    }
    let (status, _) = server
        .post(&token, serde_json::json!({"text": "still serving"}))
        .await;
    assert_eq!(status, 201);
}

/// A 2 MiB frame (over the 1 MiB limit) gets close 1009 that the client reads, followed by
/// an orderly EOF: the server reads and discards the rest of the frame instead of closing
/// with it unread, which resets the connection under the client.
#[tokio::test]
async fn oversized_frame_gets_a_readable_close_1009() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    let frame = raw::frame(0x81, true, &vec![b'x'; 2 * 1024 * 1024]);
    let end = send_and_read(&server, &token, &frame).await;
    let (code, reason) = end.close.expect("no close frame before the socket closed");
    assert_eq!(code, 1009, "{reason}");
    assert!(end.wrote_all, "the frame was written without a reset");
    assert!(
        end.clean_eof,
        "an orderly EOF after the close frame, not a reset"
    );
}
