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
    let url = format!("ws://{}/ws/chat/?token={a}", server.ws_addr());
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

/// Passwords cannot be guessed quickly: after `--login-burst` failures for one name (known
/// or not), attempts get 429 `rate_limited`, even with the right password, until the bucket
/// refills; other names are unaffected, and a success does not count against the owner.
#[tokio::test]
async fn failed_logins_are_throttled_per_name() {
    let server = TestServer::start_with(&["--login-burst", "3"]);
    server.register_all(["alice", "bob"]).await;
    let login = |name, password| login_via(&server, name, password, None);
    let ok = common::PASSWORD;
    // Successes give their attempt back: more of them than the burst are all fine.
    for _ in 0..5 {
        assert_eq!(login("alice", ok).await.0, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            login("alice", "wrong password").await,
            (401, Some("invalid_credentials".into()))
        );
    }
    assert_eq!(
        login("ALICE", "wrong password").await,
        (429, Some("rate_limited".into())),
        "the name is case-folded"
    );
    assert_eq!(login("alice", ok).await, (429, Some("rate_limited".into())));
    assert_eq!(login("bob", ok).await.0, 200, "other names are unaffected");
    // Unknown names are throttled the same way, so a 429 says nothing about existence.
    for _ in 0..3 {
        assert_eq!(login("nobody", "wrong password").await.0, 401);
    }
    assert_eq!(login("nobody", "wrong password").await.0, 429);
    // One attempt comes back every 3 s.
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    assert_eq!(login("alice", ok).await.0, 200);
}

/// `POST /api/auth/logout` revokes the token it carries: that token gets 401 from then on,
/// the user's other tokens keep working, and a socket opened with it is closed (1008).
#[tokio::test]
async fn logout_revokes_only_that_token() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    // Pings (and so the revocation check) every second.
    let server = TestServer::start_with(&["--idle-timeout", "3"]);
    let first = server.register("alice").await;
    let r = http()
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    let second = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut ws_first, _) = server.connect(&first, None).await;
    let (mut ws_second, _) = server.connect(&second, None).await;
    assert_eq!(server.get(&first, "/api/users/").await.0, 200, "cached now");

    let logout = |token: String| {
        let url = server.url("/api/auth/logout/");
        async move {
            let r = http().post(url).bearer_auth(token).send().await.unwrap();
            r.status().as_u16()
        }
    };
    assert_eq!(logout(first.clone()).await, 204);
    assert_eq!(server.get(&first, "/api/users/").await.0, 401);
    assert_eq!(logout(first.clone()).await, 401, "already revoked");
    assert_eq!(ws_first.next_close().await, CloseCode::Policy);
    assert!(
        server.connect_raw(&first, None).await.is_err(),
        "a revoked token cannot open a socket"
    );

    assert_eq!(server.get(&second, "/api/users/").await.0, 200);
    let (status, _) = server.post(&second, json!({"text": "still here"})).await;
    assert_eq!(status, 201);
    assert_eq!(ws_second.next_message().await.text, "still here");
    // Revocation survives a restart (it is in the database, not only in memory).
    let mut server = server;
    server.kill9();
    server.restart();
    assert_eq!(server.get(&first, "/api/users/").await.0, 401);
    assert_eq!(server.get(&second, "/api/users/").await.0, 200);
}

/// Logs in as `name` with `password` (as the client `forwarded_for` names, through a trusted
/// proxy's `X-Forwarded-For`, if given); status and error code.
async fn login_via(
    server: &TestServer,
    name: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>) {
    let mut req = http().post(server.url("/api/auth/login/"));
    if let Some(from) = forwarded_for {
        req = req.header("x-forwarded-for", from);
    }
    let r = req
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap();
    status_and_code(r).await
}

/// A stranger's wrong passwords lock out only the stranger: after they are throttled, the
/// owner, from another address, logs in every time.
#[tokio::test]
async fn a_stranger_cannot_lock_out_the_owner() {
    // A burst of 3 (refilled one per 3 s): the stranger's guesses are done well within it,
    // however busy the machine.
    let server = TestServer::start_with(&["--login-burst", "3", "--trusted-proxy", "127.0.0.1"]);
    server.register("alice").await;
    for _ in 0..3 {
        let r = login_via(&server, "alice", "guess", Some("203.0.113.9")).await;
        assert_eq!(r, (401, Some("invalid_credentials".into())));
    }
    for _ in 0..2 {
        let r = login_via(&server, "alice", "guess", Some("203.0.113.9")).await;
        assert_eq!(r, (429, Some("rate_limited".into())));
    }
    for _ in 0..12 {
        let r = login_via(&server, "alice", common::PASSWORD, Some("198.51.100.4")).await;
        assert_eq!(r.0, 200, "the owner was locked out: {r:?}");
    }
}

/// `X-Forwarded-For` from a peer that is not a trusted proxy is ignored: a guesser cannot
/// dodge the throttle by making up addresses.
#[tokio::test]
async fn forwarded_for_from_anyone_else_is_ignored() {
    let server = TestServer::start_with(&["--login-burst", "3"]);
    server.register("alice").await;
    for i in 0..3 {
        let r = login_via(&server, "alice", "guess", Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(r.0, 401);
    }
    let r = login_via(&server, "alice", "guess", Some("203.0.113.99")).await;
    assert_eq!(r, (429, Some("rate_limited".into())));
}

/// Registrations are limited per client address (`--register-burst`, then one per 6 s):
/// past the burst they get 429 `rate_limited`; another address still registers.
#[tokio::test]
async fn registrations_are_limited_per_address() {
    let server = TestServer::start_with(&["--register-burst", "3", "--trusted-proxy", "127.0.0.1"]);
    let register = |name: String, from: &'static str| {
        let url = server.url("/api/auth/register");
        async move {
            let r = http()
                .post(url)
                .header("x-forwarded-for", from)
                .json(&json!({"username": name, "password": common::PASSWORD}))
                .send()
                .await
                .unwrap();
            status_and_code(r).await
        }
    };
    for i in 0..3 {
        assert_eq!(register(format!("u{i}"), "203.0.113.5").await.0, 201);
    }
    assert_eq!(
        register("u3".into(), "203.0.113.5").await,
        (429, Some("rate_limited".into()))
    );
    assert_eq!(register("u4".into(), "198.51.100.4").await.0, 201);
}

/// A flood of registrations does not queue without bound behind the two hashing threads:
/// past the hashing queue they get 503 `busy` at once, everything else is 201, nothing is a
/// 500, and another user's reads keep being answered during the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_flood_gets_busy_and_reads_go_on() {
    const FLOOD: usize = 400;
    let server = TestServer::start();
    let reader = server.register("reader").await;
    let client = http();
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (client, url) = (client.clone(), server.url("/api/auth/register"));
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"username": format!("f{i}"), "password": common::PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                status_and_code(r).await
            })
        })
        .collect();
    let mut reads = 0;
    let mut worst = std::time::Duration::ZERO;
    while !flood.iter().all(|t| t.is_finished()) && reads < 10_000 {
        let started = std::time::Instant::now();
        let (status, _) = server.get(&reader, "/api/chat/messages/?limit=10").await;
        assert_eq!(status, 200);
        worst = worst.max(started.elapsed());
        reads += 1;
    }
    let mut busy = 0;
    for t in flood {
        match t.await.unwrap() {
            (201, None) => {}
            (503, Some(code)) if code == "busy" => busy += 1,
            other => panic!("registration answered {other:?}"),
        }
    }
    assert!(
        busy > 0,
        "{FLOOD} registrations at once never filled the hashing queue"
    );
    eprintln!("{reads} reads during the flood, slowest {worst:?}; {busy} of {FLOOD} busy");
}

/// A reply's status and its error code, if any.
async fn status_and_code(r: reqwest::Response) -> (u16, Option<String>) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

/// One address trying a fresh name each time (each a slow hash) is throttled too, with a
/// looser cap per address; another address is not; and names that break the rules are
/// answered at once without using up anything.
#[tokio::test]
async fn one_address_cannot_try_names_without_end() {
    let server = TestServer::start_with(&["--login-burst", "2", "--trusted-proxy", "127.0.0.1"]);
    for _ in 0..30 {
        let r = login_via(&server, "bad name!", "guess", Some("203.0.113.7")).await;
        assert_eq!(r, (401, Some("invalid_credentials".into())));
    }
    // The per-address bucket holds 20 here and refills 3.3 a second. Attempts go eight at a
    // time so the hashing thread, not the round trips, sets the pace: even on a busy machine
    // that outruns the refill, and the bucket runs dry within a few dozen fresh names.
    let (mut refused, mut answered) = (0, 0);
    for wave in 0..20 {
        let server = &server;
        let attempts = (0..8).map(|i| {
            let name = format!("n{wave}x{i}");
            async move { login_via(server, &name, "guess", Some("203.0.113.7")).await }
        });
        for r in futures_util::future::join_all(attempts).await {
            match r {
                (401, _) => answered += 1,
                (429, Some(code)) if code == "rate_limited" => refused += 1,
                other => panic!("{other:?}"),
            }
        }
        if refused > 0 {
            break;
        }
    }
    assert!(
        refused > 0,
        "{answered} fresh names from one address were never throttled"
    );
    assert!(answered >= 20, "throttled after only {answered} attempts");
    let r = login_via(&server, "fresh", "guess", Some("198.51.100.4")).await;
    assert_eq!(r.0, 401, "another address is not throttled");
}
