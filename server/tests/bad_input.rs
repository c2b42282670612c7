//! Bad input gets a clear error, the server keeps serving, and nothing is stored.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, http};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Each bad REST body gets its status and code; afterwards nothing is stored and a good
/// request still works.
#[tokio::test]
async fn bad_rest_bodies() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let big = "x".repeat(70 * 1024);
    let long_text = json!({"text": "é".repeat(4001)}).to_string();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (b"".to_vec(), 400, "invalid_json"),
        (b"[1,2,3]".to_vec(), 400, "invalid_json"),
        (b"\"text\"".to_vec(), 400, "invalid_json"),
        (b"{\"text\": \"\xff\xfe\"}".to_vec(), 400, "invalid_json"),
        (br#"{"text": 42}"#.to_vec(), 400, "invalid_field"),
        (br#"{"text": null}"#.to_vec(), 400, "invalid_field"),
        (br#"{}"#.to_vec(), 400, "invalid_field"),
        (br#"{"text": ""}"#.to_vec(), 400, "invalid_field"),
        (br#"{"text": "  \n\t "}"#.to_vec(), 400, "invalid_field"),
        (
            br#"{"text": "hi", "receiver_username": 7}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            br#"{"text": "hi", "receiver_username": "no such"}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            br#"{"text": "hi", "receiver_username": "nobody"}"#.to_vec(),
            404,
            "unknown_receiver",
        ),
        (
            br#"{"text": "hi", "client_id": ""}"#.to_vec(),
            400,
            "invalid_field",
        ),
        (
            format!(r#"{{"text": "hi", "client_id": "{}"}}"#, "c".repeat(65)).into_bytes(),
            400,
            "invalid_field",
        ),
        (long_text.into_bytes(), 413, "too_large"),
        (
            format!(r#"{{"text": "{big}"}}"#).into_bytes(),
            413,
            "too_large",
        ),
    ];
    for (body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let r = http()
            .post(server.url("/api/chat/messages/"))
            .bearer_auth(&a)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "status for {shown}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "code for {shown}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(server.history(&a).await.is_empty(), "nothing stored");
    let (status, _) = server.post(&a, json!({"text": "still serving"})).await;
    assert_eq!(status, 201);
}

/// Unknown routes are 404, wrong methods 405 with Allow, bad query parameters 400; all in
/// the one error shape.
#[tokio::test]
async fn bad_routes_methods_and_queries() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let (status, body) = server.get("", "/api/nope/").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let r = http()
        .delete(server.url("/api/chat/messages/"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    for q in [
        "after=abc",
        "before=-1",
        "limit=0",
        "limit=1001",
        "limit=ten",
    ] {
        let (status, body) = server.get(&a, &format!("/api/chat/messages/?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(body["error"]["code"], "invalid_field", "{q}");
    }
    let r = http()
        .get(server.url("/ws/chat/"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    let r = http().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Each bad WebSocket frame gets an error frame with its code (and the client_id when the
/// frame had one), the connection stays open, and nothing is stored.
#[tokio::test]
async fn bad_websocket_frames_keep_the_connection() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let (mut ws, _) = server.connect(&a, None).await;
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(WsMessage, &str, Option<&str>)> = vec![
        (WsMessage::text("{nope"), "invalid_json", None),
        (WsMessage::text("[]"), "invalid_json", None),
        (
            WsMessage::text(r#"{"message": 5, "client_id": "c1"}"#),
            "invalid_field",
            None,
        ),
        (
            WsMessage::text(r#"{"message": " ", "client_id": "c2"}"#),
            "invalid_field",
            Some("c2"),
        ),
        (
            WsMessage::text(r#"{"client_id": "c3"}"#),
            "invalid_field",
            Some("c3"),
        ),
        (
            WsMessage::text(r#"{"type": "shout", "message": "x", "client_id": "c4"}"#),
            "unknown_type",
            Some("c4"),
        ),
        (
            WsMessage::text(r#"{"message": "x", "receiver_username": "ghost", "client_id": "c5"}"#),
            "unknown_receiver",
            Some("c5"),
        ),
        (
            WsMessage::text(json!({"message": "y".repeat(4001), "client_id": "c6"}).to_string()),
            "too_large",
            Some("c6"),
        ),
        (
            WsMessage::text(format!(r#"{{"message": "{big}"}}"#)),
            "too_large",
            None,
        ),
        (WsMessage::binary(vec![1u8, 2, 3]), "binary_frame", None),
    ];
    for (frame, code, cid) in cases {
        ws.send_raw(frame).await;
        let (got_code, got_cid) = ws.next_error().await;
        assert_eq!((got_code.as_str(), got_cid.as_deref()), (code, cid));
    }
    assert!(server.history(&a).await.is_empty(), "nothing stored");
    ws.send_json(json!({"message": "still open"})).await;
    assert_eq!(ws.next_message().await.text, "still open");
}

/// Invalid UTF-8 in a text frame cannot be answered in-band (RFC 6455 requires closing):
/// the server closes with 1007 and keeps serving everyone else.
#[tokio::test]
async fn invalid_utf8_frame_is_closed_with_1007() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
    let server = TestServer::start();
    let a = server.register("alice").await;
    let (mut ws, _) = server.connect(&a, None).await;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    ws.inner
        .send(WsMessage::Frame(Frame::from_payload(
            header,
            vec![0xff, 0xfe, 0xfd].into(),
        )))
        .await
        .unwrap();
    assert_eq!(ws.next_close().await, CloseCode::Invalid);
    let (status, _) = server.post(&a, json!({"text": "still serving"})).await;
    assert_eq!(status, 201);
}

/// Over the per-user rate, sends are refused with `rate_limited` (429 on REST) and not
/// stored; the limit is shared by both transports.
#[tokio::test]
async fn rate_limit_refuses_and_stores_nothing_extra() {
    use natter_shared::ServerFrame;
    let server = TestServer::start_with(&["--rate-limit", "1", "--rate-burst", "3"]);
    let a = server.register("alice").await;
    let mut admitted = 0;
    let mut refused = 0;
    for i in 0..8 {
        match server.post(&a, json!({"text": format!("m{i}")})).await {
            (201, _) => admitted += 1,
            (429, body) => {
                assert_eq!(body["error"]["code"], "rate_limited");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(admitted >= 3 && refused >= 1, "burst of 3 then refusals");
    // On a cluster this socket is on another instance than REST, with a bucket of its own
    // (limits are per instance): five sends at once still overrun its burst of three.
    let (mut ws, _) = server.connect(&a, None).await;
    for i in 0..5 {
        ws.send_json(json!({"message": format!("w{i}"), "client_id": format!("w{i}")}))
            .await;
    }
    let mut ws_refused = 0;
    let mut answers = 0;
    while answers < 5 {
        answers += 1;
        match ws.next_frame().await {
            ServerFrame::Presence { .. } => answers -= 1,
            ServerFrame::ChatMessage { .. } => admitted += 1,
            ServerFrame::Error { error, client_id } => {
                assert_eq!(error.code.as_str(), "rate_limited");
                assert!(client_id.is_some());
                ws_refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ws_refused >= 1, "the WebSocket shares the same bucket");
    assert_eq!(
        server.history(&a).await.len(),
        admitted,
        "refused sends are not stored"
    );
}

/// A database file that is not SQLite, or one that cannot be created, is refused at startup
/// with one clear line, before anything listens (so a script waiting for "listening on"
/// never takes a failing server for a ready one), and the file is left as it was.
#[test]
fn unusable_database_files_are_clear_startup_errors() {
    only_on!(Sqlite; "about SQLite files (postgres.rs has the PostgreSQL start-up errors)");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    let garbage = b"this is not a database, just text that fills the header....";
    std::fs::write(&db, garbage).unwrap();
    let missing_dir = dir.path().join("no such dir").join("natter.db");
    for (path, why) in [
        (&db, "not a database"),
        (&missing_dir, "cannot open or create the file"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_natter-server"))
            .args(["--bind", "127.0.0.1:0", "--db"])
            .arg(path)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("listening"), "stdout: {stdout}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

/// A JSON array is not an object: register, login, a REST post and a WebSocket frame each
/// refuse one with `invalid_json` (400, or an error frame on an open connection), even when
/// its elements would fill the fields in order; no account or message is created.
#[tokio::test]
async fn array_bodies_are_refused_everywhere() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let post = |path: &str, token: Option<&str>, body: &'static str| {
        let mut req = http()
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let cases = [
        ("/api/auth/register", None, r#"["mallory","correct horse"]"#),
        ("/api/auth/login", None, r#"["alice","password1"]"#),
        ("/api/chat/messages/", Some(a.as_str()), r#"["hi"]"#),
        (
            "/api/chat/messages/",
            Some(a.as_str()),
            r#"["chat_message",null,null,"hi",null,null]"#,
        ),
    ];
    for (path, token, body) in cases {
        let r = post(path, token, body).await.unwrap();
        assert_eq!(r.status(), 400, "status for {body} on {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["error"]["code"], "invalid_json",
            "code for {body} on {path}"
        );
    }
    let r = http()
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "mallory", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no account was created");

    let (mut ws, _) = server.connect(&a, None).await;
    for frame in [r#"["hi"]"#, r#"["chat_message",null,null,"hi",null,null]"#] {
        ws.send_raw(WsMessage::text(frame)).await;
        let (code, _) = ws.next_error().await;
        assert_eq!(code, "invalid_json", "code for {frame}");
    }
    assert!(server.history(&a).await.is_empty(), "nothing stored");
    ws.send_json(json!({"message": "still open"})).await;
    assert_eq!(ws.next_message().await.text, "still open");
}
