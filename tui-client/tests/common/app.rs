//! Builders for app-level tests: an `App` with a fixed clock, zone and size, and messages
//! with fixed timestamps, so rendering is the same on every machine.

#![allow(clippy::unwrap_used, dead_code)] // test helpers: a panic is the failure report

use std::time::Instant;

use chrono::FixedOffset;
use natter::app::{App, AppConfig};
use natter::msg::{Link, Msg, NetEvent};
use natter_shared::{ClientId, Message, MessageId, Timestamp, Username};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// 2026-11-24T09:22:00Z.
pub const T0_MS: i64 = 1_795_512_120_000;

/// The wall clock of every test app: 09:32 on 2026-11-24, after [`message`]s 1 to 9.
pub const TYPED_MS: i64 = T0_MS + 10 * 60_000;

pub fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

/// A stored message `id` from `from` (to `to` when direct), one minute apart per id.
pub fn message(id: i64, from: &str, to: Option<&str>, text: &str) -> Message {
    Message {
        id: MessageId(id),
        sender_username: user(from),
        receiver_username: to.map(user),
        text: text.to_owned(),
        created_at: Timestamp::from_unix_millis(T0_MS + id * 60_000),
        client_id: None,
    }
}

pub fn app_sized(width: u16, height: u16) -> App {
    App::new(AppConfig {
        server: "127.0.0.1:8000".into(),
        name: None,
        to: None,
        color: true,
        utc_offset: FixedOffset::east_opt(0).unwrap(),
        client_id_prefix: "t".into(),
        now: Instant::now(),
        wall_clock: Timestamp::from_unix_millis(TYPED_MS),
        size: (width, height),
    })
}

/// An app logged in as alice, LIVE, 80×24.
pub fn alice() -> App {
    alice_sized(80, 24)
}

pub fn alice_sized(width: u16, height: u16) -> App {
    let mut app = app_sized(width, height);
    app.name.set("alice");
    let cmd = app.update(Msg::Submit);
    assert!(cmd.is_some());
    net(
        &mut app,
        NetEvent::LoggedIn {
            username: user("alice"),
            registered: false,
        },
    );
    net(
        &mut app,
        NetEvent::Link {
            link: Link::Live,
            retry_in: None,
        },
    );
    app.status = None;
    app
}

pub fn net(app: &mut App, event: NetEvent) {
    assert_eq!(app.update(Msg::Net(event)), None);
}

pub fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Msg::Char(c));
    }
}

pub fn client_id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

/// The screen as text.
pub fn render(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal.draw(|f| natter::ui::render(app, f)).unwrap();
    terminal.backend().to_string()
}

/// The terminal after drawing, for style checks.
pub fn draw(app: &App) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal.draw(|f| natter::ui::render(app, f)).unwrap();
    terminal
}
