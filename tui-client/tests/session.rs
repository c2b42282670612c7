//! A whole chat session, keys in and frames out: the real chat screen (`natter::chat::Screen`:
//! the app, the outbox keeper and the network task, through the same `apply` and `draw` as
//! the event loop) on ratatui's `TestBackend`, against the real server started in-process
//! on port 0. Keys go through the keymap as a terminal's would; each snapshot is the frame
//! as drawn, with only what changes from run to run (the port, the clock) masked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::Duration;

use chrono::FixedOffset;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use natter::app::App;
use natter::chat::{ChatOptions, Screen};
use natter::keymap;
use natter::msg::{Link, Msg};
use natter::net::ServerUrl;
use natter::net::http::Http;
use natter::net::tls::Tls;
use natter::outbox::Outgoing;
use natter::paths::Paths;
use natter_shared::{ClientId, Username};
use natter_testkit::in_process::InProcess;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Generous bound (real time) for what should happen soon; never a measurement.
const PATIENCE: Duration = Duration::from_secs(30);

type TestScreen = Screen<TestBackend>;

/// A key as the terminal reports it, through the keymap, then one frame.
fn key(screen: &mut TestScreen, code: KeyCode, modifiers: KeyModifiers) {
    let msg = keymap::map_event(Event::Key(KeyEvent::new(code, modifiers)));
    screen.apply(msg.into_iter().collect());
    screen.draw().unwrap();
}

fn type_text(screen: &mut TestScreen, text: &str) {
    for c in text.chars() {
        key(screen, KeyCode::Char(c), KeyModifiers::NONE);
    }
}

/// Applies network events, drawing after each, until `done(app)`.
async fn pump(screen: &mut TestScreen, what: &str, done: impl Fn(&App) -> bool) {
    let started = std::time::Instant::now();
    while !done(&screen.app) {
        assert!(started.elapsed() < PATIENCE, "gave up waiting for {what}");
        let event = tokio::time::timeout(PATIENCE, screen.next_net())
            .await
            .unwrap_or_else(|_| panic!("no event while waiting for {what}"))
            .expect("the network task ended");
        let mut batch = vec![Msg::Net(event)];
        screen.drain_net(&mut batch);
        screen.apply(batch);
        screen.draw().unwrap();
    }
}

/// The last frame drawn, with the server's port and every `HH:MM` masked.
fn frame(screen: &TestScreen, port: u16) -> String {
    let text = screen.terminal.backend().to_string();
    let port = port.to_string();
    // `PORT`, padded to the port's width: the top bar's right side stays where it was.
    let text = text.replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{:<width$}", "PORT", width = port.len()),
    );
    mask_times(&text)
}

/// `12:34` → `HH:MM` wherever two digits, a colon and two digits stand alone.
fn mask_times(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let window = chars.get(i..i + 5);
        let is_time = window.is_some_and(|w| {
            w[0].is_ascii_digit()
                && w[1].is_ascii_digit()
                && w[2] == ':'
                && w[3].is_ascii_digit()
                && w[4].is_ascii_digit()
        }) && (i == 0
            || !chars[i - 1].is_ascii_alphanumeric() && chars[i - 1] != ':')
            && chars
                .get(i + 5)
                .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != ':');
        if is_time {
            out.push_str("HH:MM");
            i += 5;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// alice starts natter with no name, types one, is registered and LIVE, sends a message
/// (shown `◌` until it is on disk, then confirmed with the server's time), receives a
/// direct message from bob, and quits with Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_keys_in_frames_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = natter_server::Config::new(dir.path().join("chat.db"));
    config.rate_per_sec = 0;
    let server = InProcess::start(config).await.unwrap();
    let port = server.addr.port();
    let url = ServerUrl::parse(&server.url()).unwrap();
    let tls = Tls::new(&url, None).unwrap();
    let options = ChatOptions {
        server: url.clone(),
        tls: tls.clone(),
        warning: None,
        name: None,
        to: None,
        paths: Paths::under(&dir.path().join("alice")),
    };
    let terminal = Terminal::new(TestBackend::new(64, 12)).unwrap();
    let utc = FixedOffset::east_opt(0).unwrap();
    let mut screen = Screen::start(terminal, &options, None, utc).unwrap();
    screen.draw().unwrap();
    insta::assert_snapshot!("session_1_no_name_yet", frame(&screen, port));

    type_text(&mut screen, "alice");
    key(&mut screen, KeyCode::Enter, KeyModifiers::NONE);
    pump(&mut screen, "LIVE as alice", |a| {
        a.link == Link::Live
            && a.status
                .as_ref()
                .is_some_and(|s| s.1.starts_with("registered alice"))
    })
    .await;
    insta::assert_snapshot!("session_2_registered_and_live", frame(&screen, port));

    type_text(&mut screen, "hello, world");
    key(&mut screen, KeyCode::Enter, KeyModifiers::NONE);
    insta::assert_snapshot!("session_3_typed_not_yet_on_disk", frame(&screen, port));
    pump(&mut screen, "the message confirmed", |a| {
        a.timeline.pending().is_empty() && a.timeline.messages().len() == 1
    })
    .await;

    let http = Http::new(url, &tls);
    let bob = http.register("bob", "bob's password").await.unwrap();
    http.post_message(
        &bob.token,
        &Outgoing {
            client_id: ClientId::parse("b-1").unwrap(),
            receiver: Some(Username::parse("alice").unwrap()),
            text: "psst, alice".into(),
            typed_at: None,
        },
    )
    .await
    .unwrap();
    pump(&mut screen, "bob's direct message", |a| {
        a.timeline.messages().len() == 2
    })
    .await;
    insta::assert_snapshot!("session_4_a_conversation", frame(&screen, port));

    key(&mut screen, KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert!(screen.app.should_quit);
    assert_eq!(
        screen.stop().await.map(|u| u.to_string()),
        Some("alice".to_owned())
    );
    server.stop().await;
}

#[test]
fn times_are_masked_and_nothing_else() {
    assert_eq!(
        mask_times("\"09:26 ⋯ alice: at 10:30, not 1:2 or 123:45 or 12:345\""),
        "\"HH:MM ⋯ alice: at HH:MM, not 1:2 or 123:45 or 12:345\""
    );
}
