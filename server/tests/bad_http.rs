//! Requests broken at the HTTP level (before any route runs) get natter's JSON error shape
//! like every other refusal, over raw TCP since no HTTP client sends them.
#![allow(clippy::unwrap_used)]

mod common;
mod raw;

use common::TestServer;
use natter_shared::ErrorCode;
use raw::Response;

/// Asserts `bytes` is one `status` reply whose body is `{"error":{"code":code,...}}`, with a
/// Content-Length that matches and the connection closed.
fn assert_json_error(bytes: &[u8], status: u16, code: ErrorCode) {
    let r = Response::parse(bytes);
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    let length: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, r.body.len(), "content-length matches the body");
    let e = r.error();
    assert_eq!(e.error.code, code);
    assert!(!e.error.message.is_empty());
}

/// A request line that is not HTTP gets 400 `bad_request` with a JSON body.
#[tokio::test]
async fn garbage_request_line_is_400_json() {
    let server = TestServer::start();
    let reply = raw::exchange(&server.addr, b"GARBAGE\r\n\r\n").await;
    assert_json_error(&reply, 400, ErrorCode::BadRequest);
}

/// A header whose name has a space in it gets 400 `bad_request` with a JSON body.
#[tokio::test]
async fn bad_header_name_is_400_json() {
    let server = TestServer::start();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n";
    let reply = raw::exchange(&server.addr, request).await;
    assert_json_error(&reply, 400, ErrorCode::BadRequest);
}

/// ~100 KiB of headers (200 of them, over hyper's limit of 100) get 431
/// `headers_too_large` with a JSON body.
#[tokio::test]
async fn too_many_headers_is_431_json() {
    let server = TestServer::start();
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        request.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(500)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let reply = raw::exchange(&server.addr, &request).await;
    assert_json_error(&reply, 431, ErrorCode::HeadersTooLarge);
}

/// One header larger than hyper's read buffer (~408 KiB) is also 431 with a JSON body.
#[tokio::test]
async fn one_huge_header_is_431_json() {
    let server = TestServer::start();
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 500 * 1024));
    request.extend_from_slice(b"\r\n\r\n");
    let reply = raw::exchange(&server.addr, &request).await;
    assert_json_error(&reply, 431, ErrorCode::HeadersTooLarge);
}

/// The wrapper leaves good requests alone: two requests on one keep-alive connection both
/// get their ordinary replies.
#[tokio::test]
async fn good_requests_pass_through_unchanged() {
    let server = TestServer::start();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let reply = raw::exchange(&server.addr, request).await;
    let text = String::from_utf8(reply).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert_eq!(text.matches(r#"{"status":"ok"}"#).count(), 2, "{text}");
}

/// A WebSocket upgrade whose `Sec-WebSocket-Key` is missing, empty, not base64, or not 16
/// bytes long is refused with 400 `bad_request` naming the header, not upgraded.
#[tokio::test]
async fn invalid_websocket_keys_are_400() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    let cases = [
        Some(""),
        Some("not base64 at all, sorry!"),
        Some("!!!!!!!!!!!!!!!!!!!!!!=="),
        Some("dGhlIHNhbXBsZSBub25jZQ"),
        Some("dGhlIHNhbXBsZSBub25jZSE="),
        Some("dGhlIHNhbXBsZSBub25jZSEhIQ=="),
        None,
    ];
    for key in cases {
        let request = raw::upgrade_request(&server.addr, &token, key);
        let r = raw::request_response(&server.addr, &request).await;
        assert_eq!(r.status, 400, "key {key:?}: {r:?}");
        let e = r.error();
        assert_eq!(e.error.code, ErrorCode::BadRequest, "key {key:?}");
        assert!(
            e.error.message.contains("Sec-WebSocket-Key"),
            "key {key:?}: {e:?}"
        );
    }
}

/// A valid key still upgrades, with the accept value RFC 6455 gives for its sample key.
#[tokio::test]
async fn valid_websocket_key_upgrades() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    let request = raw::upgrade_request(&server.addr, &token, Some("dGhlIHNhbXBsZSBub25jZQ=="));
    let r = raw::request_response(&server.addr, &request).await;
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

/// A WebSocket version other than 13 gets 426 with `Sec-WebSocket-Version: 13`, the version
/// RFC 6455 (4.4) says the server must name.
#[tokio::test]
async fn unsupported_websocket_version_names_13() {
    let server = TestServer::start();
    let token = server.register("alice").await;
    let request = String::from_utf8(raw::upgrade_request(
        &server.addr,
        &token,
        Some("dGhlIHNhbXBsZSBub25jZQ=="),
    ))
    .unwrap()
    .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let r = raw::request_response(&server.addr, request.as_bytes()).await;
    assert_eq!(r.status, 426, "{r:?}");
    assert_eq!(r.header("sec-websocket-version"), Some("13"), "{r:?}");
    assert_eq!(r.error().error.code, ErrorCode::UpgradeRequired);
}
