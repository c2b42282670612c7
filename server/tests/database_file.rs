//! The database file at start: a file another server is using is refused in one line
//! before anything listens.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, assert_one_line, expect_refusal};
use serde_json::json;

/// A second server on a database in use exits non-zero with one line naming the first's pid;
/// the first keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_the_same_database_is_refused() {
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
