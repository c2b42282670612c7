//! Raw TCP for tests that must send what no HTTP or WebSocket library will: malformed
//! request heads, hand-built WebSocket frames (unmasked, reserved bits, bad opcodes). Kept
//! apart from `common` (the server harness) because only these tests need bytes this low.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a different subset

use std::time::Duration;

use natter_shared::ErrorResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits for the server before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// Writes `request` and reads until the server closes (EOF or reset) or [`WAIT`] passes.
/// A failed write is ignored: a server that answers before reading everything may reset
/// the rest, and the test then asserts on what was read.
pub async fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(request).await;
    read_to_close(&mut tcp).await
}

/// Writes `request` and reads one response (its head, and as many body bytes as its
/// Content-Length says), whether or not the server then closes the connection.
pub async fn request_response(addr: &str, request: &[u8]) -> Response {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_one = async {
        loop {
            if let Some(r) = Response::parse_complete(&received) {
                return r;
            }
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "closed before a full response: {received:?}");
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read_one)
        .await
        .expect("no complete response")
}

/// Reads until EOF, a reset, or [`WAIT`].
pub async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(WAIT, read_all)
        .await
        .expect("server did not close the connection");
    received
}

/// An HTTP/1.1 response split into its parts.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines as (lowercased name, value).
    pub headers: Vec<(String, String)>,
    /// The bytes after the head.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Response {
    /// Parses the first response in `bytes`; panics on anything that is not one.
    pub fn parse(bytes: &[u8]) -> Response {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Response {
            status: status.parse().unwrap(),
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    /// The response in `bytes` if all of it (head and Content-Length body) is there.
    pub fn parse_complete(bytes: &[u8]) -> Option<Response> {
        bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let r = Response::parse(bytes);
        let length = r.header("content-length").map_or(0, |v| v.parse().unwrap());
        (r.body.len() >= length).then_some(r)
    }

    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as natter's error shape; panics (showing the body) if it is not one.
    pub fn error(&self) -> ErrorResponse {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body {:?} is not an error response: {e}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// The upgrade request for `/ws/chat/` with `key` as `Sec-WebSocket-Key` (`None` leaves the
/// header out), authenticated as `token`.
pub fn upgrade_request(addr: &str, token: &str, key: Option<&str>) -> Vec<u8> {
    let key_line = key.map_or(String::new(), |k| format!("Sec-WebSocket-Key: {k}\r\n"));
    format!(
        "GET /ws/chat/ HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         {key_line}Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes()
}

/// Opens a WebSocket by hand and reads the 101 and the server's first frames up to and
/// including `ready`, so what the test sends next is answered on a live session.
pub async fn ws_connect(addr: &str, token: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&upgrade_request(
        addr,
        token,
        Some("dGhlIHNhbXBsZSBub25jZQ=="),
    ))
    .await
    .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let ready = async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed during the handshake: {received:?}");
            received.extend_from_slice(&buf[..n]);
            if received.windows(7).any(|w| w == b"\"ready\"") {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, ready)
        .await
        .expect("no ready frame");
    assert!(received.starts_with(b"HTTP/1.1 101"), "{received:?}");
    tcp
}

/// A WebSocket frame built by hand: `first` is the first header byte (FIN, RSV1-3 and the
/// opcode), the payload is masked when `masked` (as a client must).
pub fn frame(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// The server frames in `bytes` (server frames are never masked), as (first header byte,
/// payload); stops at a truncated frame.
pub fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, start) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < start + len {
            break;
        }
        frames.push((bytes[0], bytes[start..start + len].to_vec()));
        bytes = &bytes[start + len..];
    }
    frames
}

/// The close frame's code and reason among `frames`, if the server sent one.
pub fn close_of(frames: &[(u8, Vec<u8>)]) -> Option<(u16, String)> {
    frames
        .iter()
        .find(|(first, _)| first & 0x0f == 0x8)
        .map(|(_, p)| {
            let code = if p.len() >= 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                1005
            };
            (
                code,
                String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned(),
            )
        })
}
