//! Who receives what: group messages reach everyone, direct messages only their two
//! parties, whichever transport they were sent by.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use futures_util::StreamExt;
use natter_shared::ServerFrame;
use serde_json::json;

/// A group message sent over WebSocket reaches every connected user, the sender included
/// (its echo), after it is stored.
#[tokio::test]
async fn group_message_reaches_everyone() {
    let server = TestServer::start();
    let [a, b, c] = server.register_all(["alice", "bob", "carol"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb, _) = server.connect(&b, None).await;
    let (mut wc, _) = server.connect(&c, None).await;
    wa.send_json(json!({"type": "chat_message", "message": "hello all", "client_id": "g1"}))
        .await;
    for ws in [&mut wa, &mut wb, &mut wc] {
        let m = ws.next_message().await;
        assert_eq!(m.text, "hello all");
        assert_eq!(m.sender_username.as_str(), "alice");
        assert_eq!(m.receiver_username, None);
        assert_eq!(m.client_id.as_ref().map(|c| c.as_str()), Some("g1"));
    }
    assert_eq!(server.history(&c).await.len(), 1, "stored once");
}

/// A direct message reaches every connection of its two parties; a third user connected at
/// the same time receives nothing, and the third user's GET does not list it.
#[tokio::test]
async fn direct_message_reaches_only_its_two_parties() {
    let server = TestServer::start();
    let [a, b, c] = server.register_all(["alice", "bob", "carol"]).await;
    let (mut wa, _) = server.connect(&a, None).await;
    let (mut wb1, _) = server.connect(&b, None).await;
    let (mut wb2, _) = server.connect(&b, None).await;
    let (mut wc, _) = server.connect(&c, None).await;

    // One DM by WebSocket, one by REST, then a group message as a marker: frames arrive in
    // id order, so if carol's first chat message is the marker she got neither DM.
    wa.send_json(json!({"message": "psst ws", "receiver_username": "bob"}))
        .await;
    // Its echo first, so it is stored before the REST one (a frame still in flight could
    // otherwise be committed after it).
    let echo = wa.next_message().await;
    assert_eq!(echo.text, "psst ws");
    let (status, _) = server
        .post(&a, json!({"text": "psst rest", "receiver_username": "BOB"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = server.post(&c, json!({"text": "marker"})).await;
    assert_eq!(status, 201);

    let rest_of_alice = [wa.next_message().await, wa.next_message().await].map(|m| m.text);
    assert_eq!(rest_of_alice, ["psst rest", "marker"]);
    for ws in [&mut wb1, &mut wb2] {
        let texts = [
            ws.next_message().await,
            ws.next_message().await,
            ws.next_message().await,
        ]
        .map(|m| m.text);
        assert_eq!(texts, ["psst ws", "psst rest", "marker"]);
    }
    let first_for_carol = wc.next_message().await;
    assert_eq!(first_for_carol.text, "marker");

    let carol_sees: Vec<_> = server
        .history(&c)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(carol_sees, ["marker"]);
    let bob_sees = server.history(&b).await;
    assert_eq!(bob_sees.len(), 3);
    assert_eq!(
        bob_sees[0].receiver_username.as_ref().unwrap().as_str(),
        "bob"
    );
}

/// A message POSTed over REST reaches open sockets (the seed app's REST sends never did).
#[tokio::test]
async fn rest_post_reaches_open_sockets() {
    let server = TestServer::start();
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let (mut wb, _) = server.connect(&b, None).await;
    let (status, body) = server.post(&a, json!({"text": "via rest"})).await;
    assert_eq!(status, 201);
    let m = wb.next_message().await;
    assert_eq!(m.text, "via rest");
    assert_eq!(m.id.0, body["id"].as_i64().unwrap());
}

/// `ready` names the connection's user; who is online is `GET /api/users/`; presence frames
/// then announce the first connection of a user and the close of their last one, and
/// nothing else (not the connection's own user, not a second connection of a user).
#[tokio::test]
async fn ready_and_presence() {
    let server = TestServer::start();
    let [a, b] = server.register_all(["alice", "bob"]).await;
    let mut wa = server.connect_raw(&a, None).await.unwrap();
    assert_eq!(
        wa.next_frame().await,
        ServerFrame::Ready {
            username: "alice".parse_name(),
            last_id: None
        }
    );
    let (wb, _) = server.connect(&b, None).await;
    assert_eq!(
        wa.next_frame().await,
        ServerFrame::Presence {
            username: "bob".parse_name(),
            online: true
        }
    );
    let users: serde_json::Value = common::http()
        .get(server.url("/api/users/"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        users,
        json!([{"username": "alice", "online": true}, {"username": "bob", "online": true}])
    );
    // A second socket of bob's, and its close, announce nothing: the next frame alice gets
    // is the message posted after them.
    let (mut wb2, _) = server.connect(&b, None).await;
    // Close it and wait for the server's answer: it has unregistered the socket by then.
    wb2.inner.close(None).await.unwrap();
    while let Some(Ok(_)) = wb2.inner.next().await {}
    let (status, _) = server.post(&a, json!({"text": "marker"})).await;
    assert_eq!(status, 201);
    match wa.next_frame().await {
        ServerFrame::ChatMessage { message } => assert_eq!(message.text, "marker"),
        other => panic!("expected the marker, got {other:?}"),
    }
    drop(wb);
    assert_eq!(
        wa.next_frame().await,
        ServerFrame::Presence {
            username: "bob".parse_name(),
            online: false
        }
    );
}

trait ParseName {
    fn parse_name(&self) -> natter_shared::Username;
}

impl ParseName for &str {
    fn parse_name(&self) -> natter_shared::Username {
        natter_shared::Username::parse(self).unwrap()
    }
}

/// Under concurrency: six users with two sockets each all send at once, group and direct
/// messages, half over WebSocket and half over REST. Every socket then holds exactly what its
/// user may see, each message once, in id order: every group message and the direct messages
/// its user sent or received, nothing else. A last group message from the test marks the end
/// (delivery is in id order, so once it arrives, everything before it has too).
#[tokio::test]
async fn concurrent_senders_each_socket_gets_exactly_its_messages() {
    use std::collections::BTreeSet;

    const USERS: usize = 6;
    const EACH: usize = 24;
    let server = TestServer::start();
    let names: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    let mut tokens = Vec::new();
    for n in &names {
        tokens.push(server.register(n).await);
    }
    let mut watchers = Vec::new();
    let mut senders = Vec::new();
    for t in &tokens {
        watchers.push(server.connect(t, None).await.0);
        senders.push(server.connect(t, None).await.0);
    }

    // Message j of user i: to everyone when j % 3 == 0, else to another user; over the
    // sender socket when j is even, else by POST.
    let receiver =
        |i: usize, j: usize| (!j.is_multiple_of(3)).then(|| (i + 1 + j % (USERS - 1)) % USERS);
    let mut tasks = Vec::new();
    for (i, mut ws) in senders.into_iter().enumerate() {
        let token = tokens[i].clone();
        let names = names.clone();
        let url = server.url("/api/chat/messages/");
        tasks.push(tokio::spawn(async move {
            for j in 0..EACH {
                let to = receiver(i, j).map(|r| names[r].clone());
                let text = format!("u{i}#{j}");
                if j % 2 == 0 {
                    ws.send_json(json!({"type": "chat_message", "receiver_username": to,
                        "message": text, "client_id": format!("c{j}")}))
                        .await;
                } else {
                    let r = common::http()
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"receiver_username": to, "text": text,
                            "client_id": format!("c{j}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            }
            ws
        }));
    }
    let mut senders = Vec::new();
    for t in tasks {
        senders.push(t.await.unwrap());
    }
    let (status, end) = server.post(&tokens[0], json!({"text": "the end"})).await;
    assert_eq!(status, 201);
    let end_id = end["id"].as_i64().unwrap();

    for (i, name) in names.iter().enumerate() {
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for s in 0..USERS {
            for j in 0..EACH {
                match receiver(s, j) {
                    None => expected.insert(format!("u{s}#{j}")),
                    Some(r) if s == i || r == i => expected.insert(format!("u{s}#{j}")),
                    Some(_) => false,
                };
            }
        }
        expected.insert("the end".into());
        for ws in [&mut watchers[i], &mut senders[i]] {
            let mut got = Vec::new();
            let mut last_id = 0;
            loop {
                let m = ws.next_message().await;
                assert!(m.id.0 > last_id, "{name}: ids in order, none twice");
                last_id = m.id.0;
                if let Some(to) = &m.receiver_username {
                    assert!(
                        m.sender_username.as_str() == name || to.as_str() == name,
                        "{name} was sent a direct message between others: {m:?}"
                    );
                }
                got.push(m.text);
                if last_id == end_id {
                    break;
                }
            }
            let got_set: BTreeSet<String> = got.iter().cloned().collect();
            assert_eq!(got.len(), got_set.len(), "{name}: a message arrived twice");
            assert_eq!(got_set, expected, "{name}'s socket");
        }
        // The REST view agrees.
        let history: BTreeSet<String> = server
            .history(&tokens[i])
            .await
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(history, expected, "{name}'s GET");
    }
}
