//! The database file at start: a file another server is using, a read-only file or
//! directory, and a SQLite file that is not natter's are refused in one line before anything
//! listens; a natter database from before `application_id` is adopted.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{TestServer, assert_one_line, expect_refusal};
use serde_json::json;

/// Natter's `PRAGMA application_id` ("natt").
const APPLICATION_ID: i64 = 0x6E61_7474;

/// A second server on a database in use exits non-zero with one line naming the first's pid;
/// the first keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_the_same_database_is_refused() {
    only_on!(Sqlite; "about the SQLite file");
    let server = TestServer::start();
    let token = server.register("alice").await;
    let refusal = expect_refusal(&[], &server.db_path());
    assert_one_line(
        &refusal,
        &format!(
            "another natter-server is using it (pid {})",
            server.child.id()
        ),
    );
    let (status, _) = server.post(&token, json!({"text": "still here"})).await;
    assert_eq!(status, 201);
}

/// A SQLite file with other tables is refused in one line, and its bytes are unchanged
/// (no WAL switch, no migration, no files left beside it).
#[test]
fn foreign_sqlite_file_is_refused_and_left_unchanged() {
    only_on!(Sqlite; "about the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let refusal = expect_refusal(&[], &db);
    assert_one_line(&refusal, "is not a natter database");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.db"]);
}

/// A file stamped with another application's id is refused even if it is empty of tables.
#[test]
fn other_application_id_is_refused() {
    only_on!(Sqlite; "about the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1234;")
        .unwrap();
    assert_one_line(&expect_refusal(&[], &db), "is not a natter database");
}

/// A natter database made before natter stamped its files (application_id 0, schema 1,
/// with an account in it) is accepted, its account still logs in, and it is stamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natter_database_from_before_application_id_is_adopted() {
    only_on!(Sqlite; "about the SQLite file");
    let mut server = TestServer::start();
    server.register("alice").await;
    assert!(server.terminate().success());
    {
        let c = rusqlite::Connection::open(server.db_path()).unwrap();
        c.execute_batch("PRAGMA application_id = 0;").unwrap();
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
    }
    server.restart();
    let r = common::http()
        .post(server.url("/api/auth/login"))
        .json(&json!({"username": "alice", "password": common::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.kill9();
    let c = rusqlite::Connection::open(server.db_path()).unwrap();
    let id: i64 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, APPLICATION_ID);
}

/// A database built by hand from the 0001 migration (what natter made before this change)
/// with application_id 0 is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_1_database_with_application_id_0_is_accepted() {
    only_on!(Sqlite; "about the SQLite file");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("natter.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(include_str!("../src/store/migrations/0001_init.sql"))
            .unwrap();
        c.execute_batch("PRAGMA user_version = 1;").unwrap();
    }
    let server = TestServer::start_on(dir, &[]);
    let token = server.register("alice").await;
    assert_eq!(server.post(&token, json!({"text": "hi"})).await.0, 201);
}

/// What makes file permissions bind the server: nothing for an ordinary user; as root (who
/// may write anything), `setpriv` dropping the capabilities that override permissions. None,
/// with the reason printed, when neither is possible.
fn without_override() -> Option<Vec<&'static str>> {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some(Vec::new());
    }
    let wrapper = vec![
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--",
    ];
    let works = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if works {
        Some(wrapper)
    } else {
        println!("skipped: running as root and setpriv cannot drop CAP_DAC_OVERRIDE here");
        None
    }
}

/// A natter database with a registered user, the server stopped cleanly.
async fn stopped_database() -> TestServer {
    let mut server = TestServer::start();
    server.register("alice").await;
    assert!(server.terminate().success());
    server
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A read-only database file is refused in one line instead of listening and failing every
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_file_is_refused() {
    only_on!(Sqlite; "about the SQLite file");
    let Some(wrapper) = without_override() else {
        return;
    };
    let server = stopped_database().await;
    set_mode(&server.db_path(), 0o444);
    let refusal = expect_refusal(&wrapper, &server.db_path());
    set_mode(&server.db_path(), 0o644);
    assert_one_line(&refusal, "read-only");
}

/// A database in a read-only directory (where the WAL cannot be created) is refused in one
/// line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_directory_is_refused() {
    only_on!(Sqlite; "about the SQLite file");
    let Some(wrapper) = without_override() else {
        return;
    };
    let server = stopped_database().await;
    // A clean stop may or may not leave the WAL behind (whichever SQLite connection closes
    // last removes it); with one there, the server would need no new file and would rightly
    // serve. Fold it into the database so the server must create it.
    let c = rusqlite::Connection::open(server.db_path()).unwrap();
    c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(c);
    assert!(!server.dir.path().join("natter.db-wal").exists());
    set_mode(server.dir.path(), 0o555);
    let refusal = expect_refusal(&wrapper, &server.db_path());
    set_mode(server.dir.path(), 0o755);
    assert_one_line(&refusal, "read-only");
}
