//! Connection tasks that all stall at once (a scheduling hiccup on a busy machine) while
//! messages keep coming cut nobody: every queue overflows, every connection catches up from
//! the store, and each gets every message once, in order. The server runs in-process through
//! its library `Server::serve`, so a test hook can stall its connection tasks: on the
//! backend `NATTER_TEST_BACKEND` names, and on a cluster as three servers on one database
//! and one bus, the connections spread over them (every instance's tasks stall at once).
#![allow(clippy::unwrap_used)]

mod common;

use common::Ws;
use common::backend::Storage;
use natter_server::bus::BusTarget;
use natter_server::store::DbTarget;
use natter_shared::ServerFrame;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// 100 connections whose tasks stall while 300 messages are committed (each queue holds 16)
/// and a user comes and goes all receive all 300, in order, and that user's going offline,
/// and none is closed; they catch up from the hub's recent frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connection_tasks_cut_nobody() {
    stall_while_sending(16 * 1024 * 1024, 300).await;
}

/// The same with 1,200 messages (more than a store page) and the hub keeping only 4 KiB of
/// recent frames (about 40 messages), so the connections catch up from the store first, then
/// from the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connection_tasks_catch_up_from_the_store() {
    stall_while_sending(4096, 1200).await;
}

async fn stall_while_sending(recent_bytes: usize, total: usize) {
    const CONNS: usize = 100;
    const USERS: usize = 10;
    let storage = Storage::current();
    let dir = tempfile::tempdir().unwrap();
    let (pause, paused) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut addrs = Vec::new();
    let mut serving = Vec::new();
    for i in 0..storage.instances() {
        let db = match &storage.db {
            Some(db) => DbTarget::parse(&db.url()).unwrap(),
            None => DbTarget::from(dir.path().join("natter.db")),
        };
        let mut config = natter_server::Config::new(db);
        config.queue_capacity = 16;
        config.recent_bytes = recent_bytes;
        config.rate_per_sec = 0;
        config.register_burst = 0;
        config.pause_writes = Some(paused.clone());
        if let Some(bus) = &storage.bus {
            config.bus = Some(BusTarget::parse(&bus.url, &bus.prefix).unwrap());
            config.instance_name = Some(format!("node{i}"));
        }
        let server = natter_server::Server::open(config).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let mut stopped = stopped.clone();
        serving.push(tokio::spawn(server.serve(listener, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    // REST on the first instance; the sockets go to each in turn.
    let addr = addrs[0];
    let http = common::http();
    if storage.bus.is_some() {
        for a in &addrs {
            wait_for_redis(&http, *a).await;
        }
    }

    let mut tokens = Vec::new();
    for u in 0..=USERS {
        // The last one, "newcomer", comes and goes during the stall.
        let name = if u == USERS {
            "newcomer".to_owned()
        } else {
            format!("user{u}")
        };
        let r = http
            .post(format!("http://{addr}/api/auth/register"))
            .json(&json!({"username": name, "password": common::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let connect = |token: String, addr: std::net::SocketAddr| async move {
        let mut req = format!("ws://{addr}/ws/chat/")
            .into_client_request()
            .unwrap();
        let bearer = format!("Bearer {token}");
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(&bearer).unwrap());
        let (inner, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut ws = Ws { inner };
        while !matches!(ws.next_frame().await, ServerFrame::Ready { .. }) {}
        ws
    };
    let mut sockets = Vec::new();
    for c in 0..CONNS {
        sockets.push(connect(tokens[c % USERS].clone(), addrs[c % addrs.len()]).await);
    }

    pause.send(true).unwrap();
    for n in 0..total {
        let r = http
            .post(format!("http://{addr}/api/chat/messages/"))
            .bearer_auth(&tokens[n % USERS])
            .json(&json!({"text": format!("m{n}"), "client_id": format!("c{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Every post was committed and offered to every queue before it was answered. Now a
    // presence change while every connection lags: it must not be lost.
    let mut newcomer = connect(tokens[USERS].clone(), addrs[CONNS % addrs.len()]).await;
    newcomer.inner.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let users: Value = http
            .get(format!("http://{addr}/api/users/"))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let row = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "newcomer");
        if row.is_some_and(|u| u["online"] == false) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "newcomer never went offline"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pause.send(false).unwrap();

    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                // The newcomer's last presence this connection saw: it must end offline.
                let mut newcomer_online = None;
                while ids.len() < total || newcomer_online != Some(false) {
                    match ws.next_raw().await {
                        Some(WsMessage::Text(t)) => match ServerFrame::decode(&t).unwrap() {
                            ServerFrame::ChatMessage { message } => ids.push(message.id.0),
                            ServerFrame::Presence { username, online }
                                if username.as_str() == "newcomer" =>
                            {
                                newcomer_online = Some(online);
                            }
                            _ => {}
                        },
                        other => panic!("after {} messages: {other:?}", ids.len()),
                    }
                }
                ids
            })
        })
        .collect();
    for r in readers {
        let ids = r.await.unwrap();
        assert_eq!(ids.len(), total);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    }
    stop.send(true).unwrap();
    for s in serving {
        s.await.unwrap();
    }
}

/// Waits (bounded) until the server at `addr` says its bus is `redis`.
async fn wait_for_redis(http: &reqwest::Client, addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let body: Value = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["bus"] == "redis" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} never said bus redis: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
