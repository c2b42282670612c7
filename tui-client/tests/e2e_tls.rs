//! TLS end to end: the real `natter-server` serving a certificate made at test time by a
//! test CA, and the client trusting it through `--ca-file` (or `NATTER_CA_FILE`): the chat
//! screen's network task, `send` and `tail` work over https:// and wss://, and without the
//! CA each refuses with one line that says the certificate is not trusted and what to do,
//! losing nothing. Also the warning for plain http:// off this machine.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod cli;
    pub mod client;
    pub mod server;
}

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{json_lines, natter, run, stderr, stdout};
use common::client::{Client, count};
use common::server::Server;
use natter::msg::Link;
use natter_shared::Message;

/// The exit code for "cannot reach the server (or trust it)".
const EXIT_NETWORK: i32 = 4;

/// The one line a refused certificate gives: what is wrong and the flag that fixes it.
fn assert_untrusted(o: &Output) {
    assert_eq!(o.status.code(), Some(EXIT_NETWORK), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("natter: ") && err.contains("not trusted") && err.contains("--ca-file"),
        "{err:?}"
    );
}

fn tls_server(dir: &Path) -> (Server, natter_testkit::certs::CertFiles) {
    let certs = natter_testkit::certs::generate(&dir.join("pki"), "one");
    let server = Server::start_tls(&dir.join("chat.db"), &certs.cert, &certs.key);
    (server, certs)
}

/// register, send and tail (REST and wss://) with --ca-file; each refuses without it, and
/// a send refused that way keeps its message for the next send that can deliver it.
#[test]
fn subcommands_work_over_tls_with_the_ca_file_and_refuse_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certs) = tls_server(dir.path());
    let url = server.url();
    assert!(url.starts_with("https://"), "{url}");
    let a = dir.path().join("a");
    let ca = certs.ca.to_str().unwrap();

    assert_untrusted(&run(natter(&a, &url).args(["register", "alice"])));
    let o = run(natter(&a, &url).args(["--ca-file", ca, "register", "alice"]));
    assert!(o.status.success(), "{o:?}");

    // A send that cannot trust the server says so at once (no minute of retries) and
    // keeps the message.
    let started = Instant::now();
    let o = run(natter(&a, &url).args(["send", "kept for later"]));
    assert_untrusted(&o);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up only after {:?}",
        started.elapsed()
    );

    // tail over wss://, trusting the CA through the environment this time.
    let mut tail = natter(&a, &url)
        .env("NATTER_CA_FILE", ca)
        .args(["tail", "--after", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();

    let o = run(natter(&a, &url).args(["--ca-file", ca, "send", "--json", "over", "tls"]));
    assert!(o.status.success(), "{o:?}");
    assert!(
        stderr(&o).contains("1 earlier unsent message"),
        "the kept message went first: {o:?}"
    );
    let sent: Vec<String> = json_lines(&o).into_iter().map(|m| m.text).collect();
    assert_eq!(sent, ["kept for later", "over tls"]);

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = lines.next().expect("tail ended early").unwrap();
        let m: Message = serde_json::from_str(&line).unwrap();
        seen.push(m.text);
    }
    assert_eq!(seen, ["kept for later", "over tls"]);
    let _ = tail.kill();
    let _ = tail.wait();

    // tail with --after goes straight to the socket: the wss:// handshake refuses too,
    // and it stops instead of reconnecting forever.
    let o = run(natter(&a, &url).args(["tail", "--after", "0"]));
    assert_untrusted(&o);
    let o = run(natter(&a, &url).args(["--ca-file", ca, "history"]));
    assert_eq!(stdout(&o).lines().count(), 2, "{o:?}");
}

/// The chat screen's network task over https:// and wss://: two people trusting the CA
/// chat LIVE; a third who does not is never LIVE and is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_screen_works_over_wss_and_says_why_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certs) = tls_server(dir.path());
    let url = server.url();
    let ca = Some(certs.ca.as_path());
    let mut alice = Client::start_with_ca(&url, &dir.path().join("a"), "alice", ca).await;
    let mut bob = Client::start_with_ca(&url, &dir.path().join("b"), "bob", ca).await;
    alice.wait_live().await;
    bob.wait_live().await;
    alice.say("hello over wss").await;
    bob.wait_text("hello over wss").await;
    alice.wait_text("hello over wss").await;
    assert_eq!(count(&bob.app, "hello over wss"), 1);

    let mut carol = Client::start_with_ca(&url, &dir.path().join("m"), "carol", None).await;
    carol
        .wait_for("the untrusted-certificate status", |a| {
            a.status
                .as_ref()
                .is_some_and(|(_, s)| s.contains("not trusted") && s.contains("--ca-file"))
        })
        .await;
    assert!(!carol.links.contains(&Link::Live), "{:?}", carol.links);
}

/// Plain http:// to another machine warns, in one line before anything else, that the
/// token travels in clear; loopback does not. (No credentials are stored, so nothing is
/// sent anywhere: the address is a documentation one.)
#[test]
fn plain_http_off_this_machine_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let o = run(natter(&a, "http://192.0.2.7:8000").args(["users"]));
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("natter: warning: ") && first.contains("in clear"),
        "{err:?}"
    );
    let o = run(natter(&a, "http://127.0.0.1:9").args(["users"]));
    assert!(!stderr(&o).contains("warning"), "{o:?}");
}

/// A self-signed certificate marked as a CA (what `openssl req -x509` makes unless told
/// `CA:FALSE`) cannot be a server's own even when trusted; the line says that, not
/// "unknown issuer", so the operator knows what to regenerate.
#[test]
fn a_ca_certificate_serving_as_the_server_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let certs = natter_testkit::certs::generate_self_signed_ca(&dir.path().join("pki"));
    let server = Server::start_tls(&dir.path().join("chat.db"), &certs.cert, &certs.key);
    let a = dir.path().join("a");
    let ca = certs.ca.to_str().unwrap();
    let o = run(natter(&a, &server.url()).args(["--ca-file", ca, "register", "alice"]));
    assert_eq!(o.status.code(), Some(EXIT_NETWORK), "{o:?}");
    let err = stderr(&o);
    assert!(
        err.contains("CA:FALSE") && err.contains("docs/deploy.md"),
        "{err:?}"
    );
}
