//! The PostgreSQL writer's batching and failure paths, on a database of the test's own
//! (`natter_testkit::pg`, dropped at the end). Without a PostgreSQL they skip in one line,
//! unless `NATTER_REQUIRE_POSTGRES` is set (`.ci/run` sets it).
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, MessageId, Username};
use natter_testkit::pg::{TestDatabase, root_from_env};
use tokio::sync::oneshot;

use super::*;
use crate::store::{TestHooks, User};

/// What the sink was handed: each `committed` call's messages, each `found` call's, and the
/// newest id it has delivered (as the bus's feed keeps it).
#[derive(Default)]
struct Seen {
    committed: Vec<Vec<Message>>,
    found: Vec<Vec<Message>>,
    delivered: i64,
}

struct Sink(Arc<Mutex<Seen>>);

impl crate::store::CommitSink for Sink {
    fn stored_up_to(&self, id: natter_shared::MessageId) {
        self.0.lock().unwrap().delivered = id.0;
    }
    fn delivered(&self) -> MessageId {
        MessageId(self.0.lock().unwrap().delivered)
    }
    fn found(&self, ms: &[Message]) {
        let mut seen = self.0.lock().unwrap();
        seen.found.push(ms.to_vec());
        seen.delivered = ms.last().map_or(seen.delivered, |m| m.id.0);
    }
    fn committed(&self, ms: &[Message]) {
        let mut seen = self.0.lock().unwrap();
        seen.committed.push(ms.to_vec());
        seen.delivered = ms.last().map_or(seen.delivered, |m| m.id.0);
    }
}

/// A migrated database of this test's own, or `None` (skipped) without PostgreSQL.
async fn database() -> Option<(TestDatabase, tokio_postgres::Config)> {
    let root = root_from_env("NATTER_TEST_POSTGRES_URL");
    let db = match TestDatabase::create(&root, "natter_writer") {
        Ok(db) => db,
        Err(e) => {
            assert!(
                std::env::var_os("NATTER_REQUIRE_POSTGRES").is_none(),
                "NATTER_REQUIRE_POSTGRES is set but {e}"
            );
            eprintln!("skipped: {e}");
            return None;
        }
    };
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    let mut client = super::super::connect(&config).await.unwrap();
    super::super::schema::migrate(&mut client)
        .await
        .unwrap_or_else(|_| panic!("migrating {}", db.name()));
    Some((db, config))
}

/// A writer on `config` handing its commits to a fresh [`Seen`], with `hooks`; and alice,
/// registered through it.
async fn writer(
    config: &tokio_postgres::Config,
    hooks: TestHooks,
) -> (Writer, Arc<Mutex<Seen>>, User) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut w = Writer::new(
        config.clone(),
        Arc::new(Health::default()),
        Arc::new(Sink(Arc::clone(&seen))),
        hooks,
    );
    let (reply, rx) = oneshot::channel();
    let mut batch = vec![Write::Register {
        username: Username::parse("alice").unwrap(),
        password_hash: "hash".into(),
        token_hash: [7; 32],
        reply,
    }];
    w.commit(&mut batch).await;
    let Ok(RegisterOutcome::Created(alice)) = rx.await.unwrap() else {
        panic!("alice was not registered");
    };
    (w, seen, alice)
}

type Answer = oneshot::Receiver<Result<SendOutcome, StoreError>>;

fn send(user: &User, to: Option<&str>, text: &str, client_id: Option<&str>) -> (Write, Answer) {
    let (reply, rx) = oneshot::channel();
    let message = SendMessage {
        sender_username: None,
        receiver_username: to.map(|t| Username::parse(t).unwrap()),
        text: text.into(),
        client_id: client_id.map(|c| ClientId::parse(c).unwrap()),
    };
    let w = Write::Message {
        sender: user.clone(),
        message,
        reply,
    };
    (w, rx)
}

fn texts(ms: &[Message]) -> Vec<&str> {
    ms.iter().map(|m| m.text.as_str()).collect()
}

/// A batch of writes commits in one transaction: handed to the sink once, its ids
/// contiguous and in the order queued, each caller answered with its own message.
#[tokio::test]
async fn a_batch_commits_once_with_contiguous_ids_in_order() {
    let Some((_db, config)) = database().await else {
        return;
    };
    let (mut w, seen, alice) = writer(&config, TestHooks::default()).await;
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    let sent: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    for text in &sent {
        let (write, answer) = send(&alice, None, text, None);
        batch.push(write);
        answers.push(answer);
    }
    w.commit(&mut batch).await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.committed.len(), 1, "one commit for the batch");
    assert_eq!(texts(&seen.committed[0]), sent);
    let ids: Vec<i64> = seen.committed[0].iter().map(|m| m.id.0).collect();
    assert!(ids.windows(2).all(|p| p[1] == p[0] + 1), "{ids:?}");
    for (mut answer, id) in answers.into_iter().zip(ids) {
        match answer.try_recv().unwrap() {
            Ok(SendOutcome::Stored(m)) => assert_eq!(m.id.0, id),
            other => panic!("{other:?}"),
        }
    }
}

/// Within one batch, a direct message to nobody and a client_id used before are answered
/// so, and their neighbours commit: nothing a client sends can fail the transaction.
#[tokio::test]
async fn a_refused_write_does_not_sink_its_neighbours() {
    let Some((_db, config)) = database().await else {
        return;
    };
    let (mut w, seen, alice) = writer(&config, TestHooks::default()).await;
    let (first, first_answer) = send(&alice, None, "first", Some("c1"));
    w.commit(&mut vec![first]).await;
    let Ok(SendOutcome::Stored(earlier)) = first_answer.await.unwrap() else {
        panic!("the first send was not stored");
    };

    let (a, mut a_answer) = send(&alice, None, "before", None);
    let (nobody, mut nobody_answer) = send(&alice, Some("nobody"), "lost letter", None);
    let (again, mut again_answer) = send(&alice, None, "first, again", Some("c1"));
    let (b, mut b_answer) = send(&alice, None, "after", None);
    w.commit(&mut vec![a, nobody, again, b]).await;

    assert!(matches!(
        a_answer.try_recv().unwrap(),
        Ok(SendOutcome::Stored(_))
    ));
    assert!(matches!(
        nobody_answer.try_recv().unwrap(),
        Ok(SendOutcome::UnknownReceiver(name)) if name == "nobody"
    ));
    match again_answer.try_recv().unwrap() {
        Ok(SendOutcome::Duplicate(m)) => assert_eq!(m.id, earlier.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b_answer.try_recv().unwrap(),
        Ok(SendOutcome::Stored(_))
    ));
    let seen = seen.lock().unwrap();
    assert_eq!(texts(&seen.committed[1]), ["before", "after"]);
    assert!(seen.found.is_empty());
}

/// A batch whose COMMIT answer is lost (here the test hook; in life a cut connection or a
/// timeout) may have committed: its callers are told `Unavailable` and the sink is not
/// handed it then. The next batch finds it in the database and hands it over first, in id
/// order, before its own messages: nothing committed goes unpublished.
#[tokio::test]
async fn a_batch_whose_commit_answer_is_lost_is_published_by_the_next() {
    let Some((_db, config)) = database().await else {
        return;
    };
    let hooks = TestHooks {
        lost_commit_answers: 1,
        ..TestHooks::default()
    };
    let (mut w, seen, alice) = writer(&config, hooks).await;
    let (one, one_answer) = send(&alice, None, "lost 1", Some("l1"));
    let (two, two_answer) = send(&alice, None, "lost 2", Some("l2"));
    w.commit(&mut vec![one, two]).await;
    for answer in [one_answer, two_answer] {
        let got = answer.await.unwrap();
        assert!(matches!(got, Err(StoreError::Unavailable)), "{got:?}");
    }
    assert!(seen.lock().unwrap().committed.is_empty());

    let (three, three_answer) = send(&alice, None, "next", None);
    w.commit(&mut vec![three]).await;
    assert!(matches!(
        three_answer.await.unwrap(),
        Ok(SendOutcome::Stored(_))
    ));
    // The retry of a lost one gets the stored message back.
    let (retry, retry_answer) = send(&alice, None, "lost 1", Some("l1"));
    w.commit(&mut vec![retry]).await;
    assert!(matches!(
        retry_answer.await.unwrap(),
        Ok(SendOutcome::Duplicate(m)) if m.text == "lost 1"
    ));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.found.len(), 1, "{:?}", seen.found);
    assert_eq!(texts(&seen.found[0]), ["lost 1", "lost 2"]);
    assert_eq!(texts(&seen.committed[0]), ["next"]);
    assert!(seen.found[0][1].id < seen.committed[0][0].id);
}

/// A PostgreSQL that cannot be reached fails the batch as `Unavailable`, and the store's
/// flag says so.
#[tokio::test]
async fn an_unreachable_database_fails_the_batch() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config: tokio_postgres::Config = format!("postgres://postgres@127.0.0.1:{port}/nothing")
        .parse()
        .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let health = Arc::new(Health::default());
    let mut w = Writer::new(
        config,
        Arc::clone(&health),
        Arc::new(Sink(Arc::clone(&seen))),
        TestHooks::default(),
    );
    let user = User {
        id: crate::store::UserId(1),
        username: Username::parse("alice").unwrap(),
    };
    let (write, answer) = send(&user, None, "into the void", None);
    w.commit(&mut vec![write]).await;
    let got = answer.await.unwrap();
    assert!(matches!(got, Err(StoreError::Unavailable)), "{got:?}");
    assert_ne!(health.get(), Condition::Writable);
    assert!(seen.lock().unwrap().committed.is_empty());
}
