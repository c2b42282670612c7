//! The subcommands, run as the real `natter` binary against the real server: output
//! formats, stdin sends, tail, and the exit codes scripts rely on.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic is the failure report

mod common {
    pub mod cli;
    pub mod server;
}

use std::io::{BufRead, BufReader};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{json_lines, natter, run, send_stdin, stdout};
use common::server::Server;
use natter_shared::Message;

/// register, send (words, --to, stdin), history (--json, --with), users: one object per
/// line, stable plain lines, every stdin line once and in order.
#[test]
fn scripts_send_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("chat.db"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let url = server.url();

    let o = run(natter(&a, &url).args(["register", "alice"]));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "registered alice\n");
    assert!(
        run(natter(&b, &url).args(["register", "bob"]))
            .status
            .success()
    );

    assert!(
        run(natter(&a, &url).args(["send", "hello", "world"]))
            .status
            .success()
    );
    assert!(
        run(natter(&a, &url).args(["send", "--to", "bob", "psst"]))
            .status
            .success()
    );
    let o = send_stdin(
        &mut natter(&b, &url),
        &["--json"],
        "line one\n\nline two\nline three\n",
    );
    assert!(o.status.success(), "{o:?}");
    let sent: Vec<_> = json_lines(&o).into_iter().map(|m| m.text).collect();
    assert_eq!(sent, ["line one", "line two", "line three"]);

    let o = run(natter(&b, &url).args(["history", "--json"]));
    let texts: Vec<_> = json_lines(&o).into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        ["hello world", "psst", "line one", "line two", "line three"]
    );

    let o = run(natter(&b, &url).args(["history", "--with", "alice"]));
    let lines: Vec<_> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("2 ") && lines[0].ends_with(" alice -> bob: psst"),
        "{lines:?}"
    );

    let o = run(natter(&a, &url).args(["history", "--limit", "1"]));
    assert!(stdout(&o).ends_with(" bob: line three\n"), "{o:?}");

    let o = run(natter(&a, &url).args(["users"]));
    assert_eq!(stdout(&o), "alice offline\nbob offline\n");
    let o = run(natter(&a, &url).args(["users", "--json"]));
    assert_eq!(stdout(&o).lines().count(), 2);
}

/// tail prints what arrives (resuming after --after), and ends cleanly on SIGINT.
#[test]
fn tail_follows_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("chat.db"));
    let a = dir.path().join("a");
    let url = server.url();
    assert!(
        run(natter(&a, &url).args(["register", "alice"]))
            .status
            .success()
    );
    assert!(
        run(natter(&a, &url).args(["send", "first"]))
            .status
            .success()
    );

    let mut tail = natter(&a, &url)
        .args(["tail", "--after", "0", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let first: Message = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first.text, "first");
    assert!(
        run(natter(&a, &url).args(["send", "second\nline"]))
            .status
            .success()
    );
    let second: Message = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second.text, "second\nline");

    let killed = Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = tail.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tail did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// tail started while the server is down waits for it, retrying as it would a reconnect,
/// instead of exiting; once the server is up (same address), it prints what is sent.
#[test]
fn tail_waits_for_a_server_that_is_not_up_yet() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("chat.db"));
    let a = dir.path().join("a");
    let url = server.url();
    assert!(
        run(natter(&a, &url).args(["register", "alice"]))
            .status
            .success()
    );
    server.kill();

    let mut tail = natter(&a, &url)
        .arg("tail")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Long enough for the first attempts to fail.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        tail.try_wait().unwrap().is_none(),
        "tail exited while the server was down"
    );

    server.restart();
    assert!(
        run(natter(&a, &url).args(["send", "the server is up"]))
            .status
            .success()
    );
    let line = lines
        .recv_timeout(Duration::from_secs(45))
        .expect("tail printed the message")
        .unwrap();
    assert!(line.ends_with(" alice: the server is up"), "{line:?}");

    let killed = Command::new("kill")
        .args(["-TERM", &tail.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = tail.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tail did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

/// Distinct exit codes: usage 2, auth 3, network 4, refused 5.
#[test]
fn exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("chat.db"));
    let a = dir.path().join("a");
    let url = server.url();
    let code = |cmd: &mut Command| run(cmd).status.code();

    assert_eq!(code(natter(&a, &url).args(["send"])), Some(2));
    assert_eq!(
        code(natter(&a, &url).args(["register", "not a name"])),
        Some(2)
    );
    assert_eq!(
        code(natter(&a, &url).args(["send", "hi"])),
        Some(3),
        "no credentials"
    );
    assert_eq!(
        code(
            natter(&a, &url)
                .args(["send", "hi"])
                .env("NATTER_TOKEN", "bogus")
        ),
        Some(3)
    );
    assert_eq!(
        code(natter(&a, &url).arg("tail").env("NATTER_TOKEN", "bogus")),
        Some(3),
        "tail does not wait on a refused token"
    );
    assert_eq!(code(natter(&a, &url).args(["register", "alice"])), Some(0));
    assert_eq!(
        code(natter(&dir.path().join("x"), &url).args(["register", "ALICE"])),
        Some(3),
        "taken"
    );
    assert_eq!(
        code(natter(&a, &url).args(["send", "--to", "nobody", "hi"])),
        Some(5)
    );
    let o = run(natter(&a, &url).args(["send", "--to", "nobody", "hi"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("natter: ") && err.lines().count() == 1,
        "{err:?}"
    );

    // Nothing listens on a port we just had and closed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    assert_eq!(
        code(natter(&a, &closed).args(["users"]).env("NATTER_TOKEN", "t")),
        Some(4)
    );

    let help = stdout(&run(natter(&a, &url).arg("--help")));
    assert!(
        help.contains("Exit codes:") && help.contains("4  network"),
        "{help}"
    );
}

/// A corrupt credentials.toml: every subcommand that needs it fails with one line naming
/// the file and the place, and nothing rewrites it (register fails before asking the
/// server, so no account is created whose password could not be stored).
#[test]
fn a_corrupt_credentials_file_is_one_line_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("chat.db"));
    let a = dir.path().join("a");
    let url = server.url();
    let file = a.join("config/natter/credentials.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let corrupt = format!("[[account]]\nserver = \"{url}\"\nuser name = \"alice\"\n");
    std::fs::write(&file, &corrupt).unwrap();

    for args in [
        &["send", "hi"][..],
        &["users"],
        &["history"],
        &["register", "bob"],
    ] {
        let o = run(natter(&a, &url).args(args));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        let expected = format!(
            "natter: cannot read {}: invalid TOML at line 3, column 6: ",
            file.display()
        );
        assert!(err.starts_with(&expected), "{args:?}: {err:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), corrupt);
    }
    let o = run(natter(&dir.path().join("b"), &url).args(["register", "bob"]));
    assert!(o.status.success(), "bob was not registered before: {o:?}");
}

/// A chat screen that could never work is refused before the screen opens: a `--server`
/// that is no server address, a `--name` or `--to` that is no valid name. One `natter: `
/// line saying what is wrong and what is expected, and the usage exit code, at once.
#[test]
fn the_chat_screen_refuses_input_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let ok = "http://127.0.0.1:8000";
    let server_expected = "expected http://HOST:PORT or HOST:PORT";
    let name_expected = "may only contain A-Z a-z 0-9 _ . -";
    for (server, args, says, expected) in [
        (
            "not-a-url",
            &["--name", "alice"][..],
            "--server",
            server_expected,
        ),
        (
            "ftp://127.0.0.1:8000",
            &["--name", "alice"],
            "--server",
            server_expected,
        ),
        ("http://", &[], "--server", server_expected),
        (
            ok,
            &["--name", "bad name!"],
            "--name \"bad name!\"",
            name_expected,
        ),
        (
            ok,
            &["--name", "alice", "--to", "no one"],
            "--to",
            name_expected,
        ),
    ] {
        let mut child = natter(&a, server)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                child.kill().unwrap();
                panic!("{server} {args:?}: still running after 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{server} {args:?}: {err}");
        assert!(
            err.starts_with("natter: ")
                && err.contains(says)
                && err.contains(expected)
                && err.lines().count() == 1,
            "{server} {args:?}: {err:?}"
        );
    }
}
