//! The writer thread's batching and failure paths, on a real SQLite file.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use natter_shared::Username;
use natter_shared::protocol::SendMessage;
use tokio::sync::oneshot;

use super::apply::insert_user;
use super::*;
use crate::store::User;
use crate::store::sqlite::{OpenFlags, configure, connect, schema};

/// A writer on a fresh database in `dir`, with one user; `on_commit` records texts.
fn writer(dir: &std::path::Path, committed: Arc<Mutex<Vec<String>>>) -> (Writer, User) {
    writer_counting(dir, committed, Arc::new(Mutex::new(0)))
}

/// [`writer`], also counting the commits handed to `on_commit`.
fn writer_counting(
    dir: &std::path::Path,
    committed: Arc<Mutex<Vec<String>>>,
    commits: Arc<Mutex<usize>>,
) -> (Writer, User) {
    let path = dir.join("t.db");
    let lock = DbLock::acquire(&path).unwrap();
    let mut conn = connect(&path, OpenFlags::SQLITE_OPEN_CREATE).unwrap();
    configure(&conn, &path).unwrap();
    schema::migrate(&mut conn, &path).unwrap();
    let name = Username::parse("alice").unwrap();
    let Ok(RegisterOutcome::Created(user)) = insert_user(&conn, name, "hash", &[0; 32]) else {
        panic!("no user");
    };
    let writer = Writer {
        conn,
        lock,
        file: Arc::new(DbFile::record(&path).unwrap()),
        health: Arc::new(Health::default()),
        on_commit: Arc::new(Texts(committed, commits)),
    };
    (writer, user)
}

/// How many messages the database holds.
fn stored(w: &Writer) -> i64 {
    w.conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

/// A sink that records the texts committed, and how many times it was handed some.
struct Texts(Arc<Mutex<Vec<String>>>, Arc<Mutex<usize>>);

impl crate::store::CommitSink for Texts {
    fn stored_up_to(&self, _: natter_shared::MessageId) {}
    fn delivered(&self) -> natter_shared::MessageId {
        natter_shared::MessageId(0)
    }
    fn found(&self, _: &[Message]) {}
    fn committed(&self, ms: &[Message]) {
        *self.1.lock().unwrap() += 1;
        self.0
            .lock()
            .unwrap()
            .extend(ms.iter().map(|m| m.text.clone()));
    }
}

fn send(user: &User, text: &str) -> (Write, oneshot::Receiver<Result<SendOutcome, StoreError>>) {
    let (reply, rx) = oneshot::channel();
    let message = SendMessage {
        sender_username: None,
        receiver_username: None,
        text: text.into(),
        client_id: None,
    };
    let w = Write::Message {
        sender: user.clone(),
        message,
        reply,
    };
    (w, rx)
}

/// A write that makes SQLite roll back the whole transaction mid-batch (here a trigger's
/// RAISE(ROLLBACK), as SQLite may do itself on a full disk or an I/O error) fails the
/// whole batch: no write is acknowledged, none is stored, none is fanned out, and the
/// writes after it do not commit one by one.
#[test]
fn batch_fails_whole_when_sqlite_rolls_the_transaction_back() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let (mut w, user) = writer(dir.path(), Arc::clone(&committed));
    w.conn
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.text = 'boom' \
             BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;",
        )
        .unwrap();
    let replies = commit_messages(&mut w, &user, &["before", "boom", "after"]);

    for mut rx in replies {
        let answer = rx.try_recv().unwrap();
        assert!(answer.is_err(), "acknowledged: {answer:?}");
    }
    let stored = stored(&w);
    assert_eq!(stored, 0);
    assert!(committed.lock().unwrap().is_empty());
    assert!(w.conn.is_autocommit());
}

/// Sends `texts` as `user` in one batch and commits it; the callers' reply channels.
fn commit_messages(
    w: &mut Writer,
    user: &User,
    texts: &[&str],
) -> Vec<oneshot::Receiver<Result<SendOutcome, StoreError>>> {
    let mut batch = Vec::new();
    let mut replies = Vec::new();
    for text in texts {
        let (write, rx) = send(user, text);
        batch.push(write);
        replies.push(rx);
    }
    commit_batch(w, &mut batch, &mut UserCache::new());
    replies
}

/// A write that does not fit (SQLITE_FULL from the page limit) makes SQLite roll back
/// the whole transaction: every write in the batch is answered `Full`, none is stored or
/// fanned out, and the store's flag says full.
#[test]
fn full_database_mid_batch_fails_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let (mut w, user) = writer(dir.path(), Arc::clone(&committed));
    let pages: i64 = w
        .conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    w.conn
        .pragma_update(None, "max_page_count", pages + 4)
        .unwrap();

    let big = "x".repeat(200_000);
    let replies = commit_messages(&mut w, &user, &["small 1", big.as_str(), "small 2"]);

    for mut rx in replies {
        let answer = rx.try_recv().unwrap();
        assert!(matches!(answer, Err(StoreError::Full)), "{answer:?}");
    }
    let stored = stored(&w);
    assert_eq!(stored, 0);
    assert!(committed.lock().unwrap().is_empty());
    assert_eq!(w.health.get(), Condition::Full);
}

fn direct(
    user: &User,
    to: &str,
    text: &str,
    client_id: Option<&str>,
) -> (Write, oneshot::Receiver<Result<SendOutcome, StoreError>>) {
    let (reply, rx) = oneshot::channel();
    let message = SendMessage {
        sender_username: None,
        receiver_username: Some(Username::parse(to).unwrap()),
        text: text.into(),
        client_id: client_id.map(|c| natter_shared::ClientId::parse(c).unwrap()),
    };
    (
        Write::Message {
            sender: user.clone(),
            message,
            reply,
        },
        rx,
    )
}

/// Writes queued while the writer is busy go out together: the thread takes all that
/// are waiting, commits them in one transaction, hands them to `on_commit` once, in id
/// order, and only then answers each caller. Run here through the thread's own loop,
/// with the writes queued before it starts.
#[test]
fn writes_waiting_together_commit_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let commits = Arc::new(Mutex::new(0));
    let (w, user) = writer_counting(dir.path(), Arc::clone(&committed), Arc::clone(&commits));
    let (tx, rx) = mpsc::channel(MAX_BATCH);
    let texts: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let mut replies = Vec::new();
    for text in &texts {
        let (write, reply) = send(&user, text);
        tx.try_send(write).unwrap();
        replies.push(reply);
    }
    drop(tx);
    run(w, rx); // returns once the channel is empty and closed

    assert_eq!(*commits.lock().unwrap(), 1, "one commit for the batch");
    assert_eq!(*committed.lock().unwrap(), texts);
    let ids: Vec<i64> = replies
        .into_iter()
        .map(|mut r| match r.try_recv().unwrap() {
            Ok(SendOutcome::Stored(m)) => m.id.0,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
}

/// Within one batch, a write the store refuses (a direct message to nobody) or
/// recognizes (a client_id used before) is answered so, and its neighbours commit as if
/// it were not there: one bad write never sinks the batch.
#[test]
fn a_refused_write_does_not_sink_its_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let (mut w, user) = writer(dir.path(), Arc::clone(&committed));
    // A first send with client_id "c1", committed earlier.
    let (first, mut first_reply) = direct(&user, "alice", "to myself", Some("c1"));
    commit_batch(&mut w, &mut vec![first], &mut UserCache::new());
    let Ok(SendOutcome::Stored(earlier)) = first_reply.try_recv().unwrap() else {
        panic!("the first send was not stored");
    };

    let mut batch = Vec::new();
    let (a, mut a_reply) = send(&user, "before");
    let (nobody, mut nobody_reply) = direct(&user, "nobody", "lost letter", None);
    let (again, mut again_reply) = direct(&user, "alice", "to myself", Some("c1"));
    let (b, mut b_reply) = send(&user, "after");
    batch.extend([a, nobody, again, b]);
    commit_batch(&mut w, &mut batch, &mut UserCache::new());

    assert!(matches!(
        a_reply.try_recv().unwrap(),
        Ok(SendOutcome::Stored(_))
    ));
    assert!(matches!(
        nobody_reply.try_recv().unwrap(),
        Ok(SendOutcome::UnknownReceiver(name)) if name == "nobody"
    ));
    match again_reply.try_recv().unwrap() {
        Ok(SendOutcome::Duplicate(m)) => assert_eq!(m.id, earlier.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b_reply.try_recv().unwrap(),
        Ok(SendOutcome::Stored(_))
    ));
    assert_eq!(
        *committed.lock().unwrap(),
        ["to myself", "before", "after"],
        "each stored message handed on once"
    );
    let stored = stored(&w);
    assert_eq!(stored, 3);
    assert_eq!(w.health.get(), Condition::Writable);
}

/// The database file is no longer at its path when the batch is about to commit (moved
/// or deleted under the server): nothing is acknowledged, since a commit into a file
/// nobody will open again would lose it, and the store says it is unavailable.
#[test]
fn a_database_file_gone_from_its_path_fails_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Arc::new(Mutex::new(Vec::new()));
    let (mut w, user) = writer(dir.path(), Arc::clone(&committed));
    std::fs::rename(dir.path().join("t.db"), dir.path().join("moved.db")).unwrap();
    let replies = commit_messages(&mut w, &user, &["one", "two"]);
    for mut rx in replies {
        let answer = rx.try_recv().unwrap();
        assert!(matches!(answer, Err(StoreError::Unavailable)), "{answer:?}");
    }
    assert!(committed.lock().unwrap().is_empty());
    assert_eq!(w.health.get(), Condition::Gone);
}
