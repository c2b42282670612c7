//! `natter send` and the outbox, as the real binaries: what `send` accepted is on disk
//! before it is posted, survives a server that is down and a SIGKILL, goes out first with
//! the next `send`, and is stored exactly once, in order. Two `send`s of one account at once
//! neither lose nor repeat a message, and neither do a `send` and a chat screen.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod cli;
    pub mod client;
    pub mod server;
}

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cli::{json_lines, natter, run, send_stdin, stderr};
use common::client::{Client, count, texts};
use common::server::Server;
use natter::outbox::Outbox;
use natter::paths::Paths;
use natter_shared::{Message, Username};

/// Longest any wait in these tests may take before it counts as a failure.
const PATIENCE: Duration = Duration::from_secs(30);

/// The texts waiting in `name`'s outbox under `home` for `server`.
fn outbox_texts(home: &Path, server: &str, name: &str) -> Vec<String> {
    let paths = Paths {
        config_dir: home.join("config/natter"),
        state_dir: home.join("state/natter"),
    };
    Outbox::new(&paths.outbox_dir(server), &Username::parse(name).unwrap())
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect()
}

/// Every stored message's text, oldest first, as `home`'s account reads the history.
fn history(home: &Path, server: &str) -> Vec<String> {
    let o = run(natter(home, server).args(["history", "--json", "--limit", "1000"]));
    assert!(o.status.success(), "{o:?}");
    json_lines(&o).into_iter().map(|m| m.text).collect()
}

fn register(home: &Path, server: &str, name: &str) {
    let o = run(natter(home, server).args(["register", name]));
    assert!(o.status.success(), "{o:?}");
}

/// A server on a fresh database and alice registered, her files under `a`.
struct Setup {
    /// Kept for its lifetime: the temporary directory holds everything.
    dir: tempfile::TempDir,
    server: Server,
    a: std::path::PathBuf,
    url: String,
}

fn alice_registered() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("chat.db"));
    let a = dir.path().join("a");
    let url = server.url();
    register(&a, &url, "alice");
    Setup {
        dir,
        server,
        a,
        url,
    }
}

/// With the server stopped, `send -` keeps every line in the outbox and exits with the
/// network code; the next `send` delivers them first, in order, then its own, each once.
#[test]
fn an_unreachable_server_keeps_the_lines_for_the_next_send() {
    let Setup {
        dir: _dir,
        mut server,
        a,
        url,
    } = alice_registered();
    server.kill();

    let o = send_stdin(
        &mut natter(&a, &url),
        &["--retry-for", "2"],
        "one\ntwo\nthree\n",
    );
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = stderr(&o);
    assert_eq!(
        err.lines().count(),
        2,
        "the waiting line, then the exit line: {err:?}"
    );
    assert!(
        err.lines().all(|l| l.starts_with("natter: "))
            && err
                .lines()
                .last()
                .unwrap()
                .contains("3 messages kept in the outbox"),
        "{err:?}"
    );
    assert_eq!(outbox_texts(&a, &url, "alice"), ["one", "two", "three"]);

    server.restart();
    let o = run(natter(&a, &url).args(["send", "--json", "later"]));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        stderr(&o),
        "natter: delivered 3 earlier unsent messages first\n"
    );
    let printed: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Message>(l).unwrap().text)
        .collect();
    assert_eq!(
        printed,
        ["one", "two", "three", "later"],
        "--json prints all"
    );
    assert_eq!(history(&a, &url), ["one", "two", "three", "later"]);
    assert!(outbox_texts(&a, &url, "alice").is_empty());
}

/// A message kept from an earlier send that the server then refuses for good (an unknown
/// receiver) leaves the outbox with one line on stderr, and does not hold up the new one.
#[test]
fn an_earlier_message_refused_for_good_is_dropped_and_reported() {
    let Setup {
        dir: _dir,
        mut server,
        a,
        url,
    } = alice_registered();
    server.kill();

    let o = run(natter(&a, &url).args(["send", "--retry-for", "1", "--to", "nobody", "psst"]));
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert!(
        stderr(&o).ends_with(
            " 1 message kept in the outbox; it goes out with the next send or chat screen\n"
        ),
        "{o:?}"
    );

    server.restart();
    let o = run(natter(&a, &url).args(["send", "hello"]));
    assert!(o.status.success(), "{o:?}");
    let err = stderr(&o);
    assert!(
        err.starts_with("natter: an earlier unsent message to nobody was refused: ")
            && err.lines().count() == 1,
        "{err:?}"
    );
    assert_eq!(history(&a, &url), ["hello"]);
    assert!(outbox_texts(&a, &url, "alice").is_empty());
}

/// `send -` SIGKILLed while it reads stdin, after some lines are stored: whatever it took
/// from stdin is on disk, and the next `send` stores it; no line is stored twice, none is
/// skipped, and the order is kept.
#[test]
fn a_killed_send_loses_no_line_it_read() {
    let Setup {
        dir: _dir,
        server: _server,
        a,
        url,
    } = alice_registered();

    let mut child = natter(&a, &url)
        .args(["send", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines: Vec<String> = (0..2000).map(|i| format!("line {i}")).collect();
    // Write in small batches, checking the history between them, until a few are stored.
    let deadline = Instant::now() + PATIENCE;
    let mut written = 0;
    let stored_before_kill = loop {
        let batch = &lines[written..(written + 5).min(lines.len())];
        for l in batch {
            if writeln!(stdin, "{l}").is_err() {
                break;
            }
        }
        written += batch.len();
        let stored = history(&a, &url).len();
        if stored >= 3 {
            break stored;
        }
        assert!(
            Instant::now() < deadline && written < lines.len(),
            "send stored {stored} of the {written} lines written"
        );
    };
    // Some lines are still being written to it; it is in the middle of reading.
    for l in &lines[written..(written + 20).min(lines.len())] {
        let _ = writeln!(stdin, "{l}");
    }
    written = (written + 20).min(lines.len());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);
    let waiting = outbox_texts(&a, &url, "alice");

    let o = run(natter(&a, &url).args(["send", "after the kill"]));
    assert!(o.status.success(), "{o:?}");
    let stored = history(&a, &url);
    let (last, before) = stored.split_last().unwrap();
    assert_eq!(last, "after the kill");
    assert!(
        before.len() >= stored_before_kill && before.len() <= written,
        "{} stored, {stored_before_kill} before the kill, {written} written",
        before.len()
    );
    assert_eq!(before, &lines[..before.len()], "each line once, in order");
    for w in &waiting {
        assert!(before.contains(w), "{w:?} was in the outbox but not stored");
    }
    assert!(outbox_texts(&a, &url, "alice").is_empty());
}

/// Two `send -` of one account at the same time: every line of each is stored exactly
/// once, and each one's lines keep their order.
#[test]
fn two_sends_at_once_store_each_line_once() {
    let Setup {
        dir: _dir,
        server: _server,
        a,
        url,
    } = alice_registered();

    let spawn = || {
        natter(&a, &url)
            .args(["send", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut first, mut second) = (spawn(), spawn());
    let texts = |tag: &str| -> Vec<String> { (0..30).map(|i| format!("{tag} {i}")).collect() };
    let (x, y) = (texts("x"), texts("y"));
    let mut x_in = first.stdin.take().unwrap();
    let mut y_in = second.stdin.take().unwrap();
    for (a, b) in x.iter().zip(&y) {
        writeln!(x_in, "{a}").unwrap();
        writeln!(y_in, "{b}").unwrap();
    }
    drop((x_in, y_in));
    for child in [first, second] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let stored = history(&a, &url);
    assert_eq!(stored.len(), x.len() + y.len(), "{stored:?}");
    let only = |tag: &str| -> Vec<String> {
        stored
            .iter()
            .filter(|t| t.starts_with(tag))
            .cloned()
            .collect()
    };
    assert_eq!(only("x "), x);
    assert_eq!(only("y "), y);
}

/// Files under `dir` that a chat screen (`Paths::under(home)`) and the binary (XDG
/// directories whose `natter` entries point there) share: `(home, xdg)`.
fn shared_files(dir: &Path) -> (PathBuf, PathBuf) {
    let home = dir.join("screen");
    let xdg = dir.join("xdg");
    for (link, target) in [("config", "config"), ("state", "state")] {
        std::fs::create_dir_all(home.join(target)).unwrap();
        std::fs::create_dir_all(xdg.join(link)).unwrap();
        std::os::unix::fs::symlink(home.join(target), xdg.join(link).join("natter")).unwrap();
    }
    (home, xdg)
}

/// A chat screen (app, outbox keeper, network task) and `natter send` as the same account at
/// the same time: the screen typed two messages while the server was down; when it is
/// back, `send` and the screen both deliver them. Each is stored once, and `send`'s own
/// message after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_screen_and_a_send_at_once_store_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("chat.db"));
    let url = server.url();
    // The screen's files are `Paths::under(home)`; the binary finds the same ones through
    // XDG directories whose `natter` entries point there.
    let (home, xdg) = shared_files(dir.path());
    let mut alice = Client::start(&url, &home, "alice").await;
    alice.wait_live().await;
    server.kill();
    let queued = ["typed offline 1", "typed offline 2"];
    for text in queued {
        alice.say(text).await;
    }
    // Shown queued means on disk.
    alice.wait_saved().await;
    assert_eq!(outbox_texts(&xdg, &url, "alice"), queued);

    server.restart();
    let send = {
        let (xdg, url) = (xdg.clone(), url.clone());
        tokio::task::spawn_blocking(move || run(natter(&xdg, &url).args(["send", "from send"])))
    };
    alice
        .wait_for("every message stored", |a| {
            a.timeline.waiting() == 0
                && ["typed offline 1", "typed offline 2", "from send"]
                    .iter()
                    .all(|t| count(a, t) == 1)
        })
        .await;
    let o = send.await.unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        history(&xdg, &url),
        ["typed offline 1", "typed offline 2", "from send"]
    );
    assert!(outbox_texts(&xdg, &url, "alice").is_empty());
    alice.quit().await;
}

/// A `send` to a server that does not answer says once, at the first failure, that it is
/// waiting and for how long, then (after `--retry-for`) the exit-4 line with what is kept.
#[test]
fn send_says_once_that_it_is_waiting_for_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    // Nothing listens on a port we just had and closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let started = Instant::now();
    let o = send_stdin(
        natter(&a, &closed).env("NATTER_TOKEN", "t"),
        &["--retry-for", "2"],
        "one\ntwo\n",
    );
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err:?}");
    assert_eq!(
        lines[0],
        format!(
            "natter: server at {closed} not answering; retrying for up to 2 s (messages are kept in the outbox)"
        )
    );
    assert!(
        lines[1].starts_with("natter: cannot reach server")
            && lines[1].contains("2 messages kept in the outbox"),
        "{err:?}"
    );
}

/// A chat screen open as alice, the server down: `natter send` as alice cannot deliver and
/// leaves its line in the shared outbox (exit 4). The open screen notices it, shows it
/// queued after what it queued itself, and when the server is back delivers both, each
/// once and in the outbox's order; another reader sees each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_chat_screen_delivers_what_send_left_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("chat.db"));
    let url = server.url();
    let (home, xdg) = shared_files(dir.path());
    let mut alice = Client::start(&url, &home, "alice").await;
    alice.wait_live().await;
    server.kill();
    alice
        .wait_for("the socket to drop", |a| a.link != natter::msg::Link::Live)
        .await;
    alice.say("queued by the screen").await;

    let send = {
        let (xdg, url) = (xdg.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            run(natter(&xdg, &url).args(["send", "--retry-for", "1", "left by send"]))
        })
    };
    let o = send.await.unwrap();
    assert_eq!(o.status.code(), Some(4), "queued, not sent: {o:?}");
    assert_eq!(
        outbox_texts(&xdg, &url, "alice"),
        ["queued by the screen", "left by send"]
    );
    alice
        .wait_for("send's line shown queued on the screen", |a| {
            a.timeline
                .pending()
                .iter()
                .any(|p| p.outgoing.text == "left by send")
        })
        .await;
    let queued: Vec<_> = alice
        .app
        .timeline
        .pending()
        .iter()
        .map(|p| p.outgoing.text.clone())
        .collect();
    assert_eq!(queued, ["queued by the screen", "left by send"]);

    server.restart();
    alice
        .wait_for("both stored", |a| {
            a.timeline.waiting() == 0
                && count(a, "queued by the screen") == 1
                && count(a, "left by send") == 1
        })
        .await;
    let mut bob = Client::start(&url, &dir.path().join("b"), "bob").await;
    bob.wait_text("left by send").await;
    assert_eq!(texts(&bob.app), ["queued by the screen", "left by send"]);
    assert_eq!(
        history(&xdg, &url),
        ["queued by the screen", "left by send"]
    );
    assert!(outbox_texts(&xdg, &url, "alice").is_empty());
    alice.quit().await;
    bob.quit().await;
}
