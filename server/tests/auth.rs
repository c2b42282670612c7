//! Accounts and identity: nobody posts as somebody else, nothing without a token.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, http};
use serde_json::{Value, json};

/// Posting with someone else's name is refused with 403 over REST and `forbidden` over
/// WebSocket, and nothing is stored.
#[tokio::test]
async fn impersonation_is_refused() {
    let server = TestServer::start();
    let [a, _b] = server.register_all(["alice", "bob"]).await;
    let (status, body) = server
        .post(&a, json!({"sender_username": "bob", "text": "I am bob"}))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");

    let (mut wa, _) = server.connect(&a, None).await;
    wa.send_json(json!({"sender_username": "bob", "message": "I am bob", "client_id": "x1"}))
        .await;
    assert_eq!(
        wa.next_error().await,
        ("forbidden".into(), Some("x1".into()))
    );

    // Claiming your own name (in any case) is fine.
    let (status, _) = server
        .post(
            &a,
            json!({"sender_username": "ALICE", "text": "I am alice"}),
        )
        .await;
    assert_eq!(status, 201);
    let texts: Vec<_> = server
        .history(&a)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["I am alice"]);
}

/// Without a token, or with a wrong one, every API endpoint and the WebSocket answer 401.
#[tokio::test]
async fn no_token_is_401() {
    let server = TestServer::start();
    for path in ["/api/chat/messages/", "/api/users/"] {
        let (status, body) = server.get("", path).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &json!("unauthorized")),
            "{path}"
        );
        let (status, _) = server.get("nope", path).await;
        assert_eq!(status, 401, "{path} with a bad token");
    }
    let r = http()
        .post(server.url("/api/chat/messages/"))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    match server.connect_raw("", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!(
            "expected a 401 handshake refusal, got {:?}",
            other.map(|_| ())
        ),
    }
    match server.connect_raw("bad-token", None).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!(
            "expected a 401 handshake refusal, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// The WebSocket accepts `?token=` for clients that cannot set headers.
#[tokio::test]
async fn websocket_accepts_query_token() {
    let server = TestServer::start();
    let a = server.register("alice").await;
    let url = format!("ws://{}/ws/chat/?token={a}", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(
        first.to_text().unwrap().contains("\"type\":\"presence\"")
            || first.to_text().unwrap().contains("ready")
    );
}

/// Names are unique ignoring case: 409 for "ALICE" after "alice"; login works in any case
/// and fails with 401 on a wrong password.
#[tokio::test]
async fn names_are_unique_ignoring_case() {
    let server = TestServer::start();
    server.register("alice").await;
    let r = http()
        .post(server.url("/api/auth/register"))
        .json(&json!({"username": "ALICE", "password": "password2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "username_taken"
    );

    let login = |name: &'static str, pw: &'static str| {
        let url = server.url("/api/auth/login");
        async move {
            http()
                .post(url)
                .json(&json!({"username": name, "password": pw}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = login("Alice", "password1").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["username"], "alice");
    let (status, _) = server
        .post(
            body["token"].as_str().unwrap(),
            json!({"text": "logged in"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(login("alice", "wrong-password").await.status(), 401);
    assert_eq!(login("nobody", "password1").await.status(), 401);
}

/// Registration validates names and passwords with clear errors.
#[tokio::test]
async fn registration_rules() {
    let server = TestServer::start();
    for (body, code) in [
        (
            json!({"username": "has space", "password": "password1"}),
            "invalid_field",
        ),
        (
            json!({"username": "", "password": "password1"}),
            "invalid_field",
        ),
        (
            json!({"username": "x".repeat(33), "password": "password1"}),
            "invalid_field",
        ),
        (
            json!({"username": "short", "password": "1234567"}),
            "invalid_field",
        ),
        (json!({"username": "nopass"}), "invalid_field"),
    ] {
        let r = http()
            .post(server.url("/api/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            code,
            "{body}"
        );
    }
}
