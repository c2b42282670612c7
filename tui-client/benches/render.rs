//! The chat screen's frame time with 100,000 messages loaded (issue 4: ≤ 5 ms per frame).
//!
//! One full `ui::render` into ratatui's `TestBackend`, at 80×24 and 200×50, pinned to the
//! bottom and scrolled to the middle of the history, plus the common path while chatting: a
//! message arrives, then a frame is drawn.
//!
//! ```sh
//! cargo bench -p natter --bench render
//! ```
#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use criterion::{Criterion, criterion_group, criterion_main};
use natter::app::Scroll;
use natter::app::{App, AppConfig};
use natter::msg::{Link, Msg, NetEvent};
use natter_shared::{Message, MessageId, Timestamp, Username};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Messages loaded before any frame is measured.
const HISTORY: i64 = 100_000;
/// 2026-11-24T09:42:00Z.
const T0_MS: i64 = 1_795_512_120_000;

const SENDERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi_w",
];

/// Texts of every kind a chat sees: one word, a sentence, a paragraph that wraps several
/// times at 80 columns, CJK, emoji, several lines, a long URL.
const TEXTS: [&str; 12] = [
    "ok",
    "lol",
    "morning all",
    "has anyone seen the build break on main since this morning?",
    "I pushed a fix for the reconnect loop; it was waiting on a timer that never fired when \
     the socket closed during the handshake, so the badge stayed on CONNECTING forever.",
    "日本語のテキストを折り返します、ちゃんと。東京は今日も雨です。",
    "🎉🎉🎉 party 🎂 time 👍🏽 ok",
    "first line\nsecond line\nthird and last line",
    "see https://example.com/a/very/long/path/that/does/not/break/at/any/space/whatsoever/index.html",
    "sure, after lunch",
    "Ünïcödé ñame héré — with dashes – and “quotes” … and then some more words to wrap it",
    "a long one: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
     tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
     nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute \
     irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla.",
];

/// A small deterministic generator (xorshift), so every run loads the same history.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

/// Message `id`: mostly group messages, one in five direct (to or from alice, or between
/// two others), and now and then a very long one.
fn message(id: i64, rng: &mut Rng) -> Message {
    let from = SENDERS[rng.below(SENDERS.len())];
    let to = if rng.below(5) == 0 {
        let to = SENDERS[rng.below(SENDERS.len())];
        Some(if to == from { "alice" } else { to })
    } else {
        None
    };
    let text = if rng.below(500) == 0 {
        TEXTS[11].repeat(1 + rng.below(9))
    } else {
        TEXTS[rng.below(TEXTS.len())].to_owned()
    };
    Message {
        id: MessageId(id),
        sender_username: user(from),
        receiver_username: to.map(user),
        text,
        created_at: Timestamp::from_unix_millis(T0_MS + id * 1000),
        client_id: None,
    }
}

/// alice, logged in and live, with `HISTORY` messages, pinned to the bottom.
fn loaded_app(width: u16, height: u16) -> App {
    let mut app = App::new(AppConfig {
        server: "127.0.0.1:8000".into(),
        name: Some("alice".into()),
        to: None,
        color: true,
        utc_offset: FixedOffset::east_opt(0).unwrap(),
        client_id_prefix: "bench".into(),
        now: Instant::now(),
        wall_clock: Timestamp::from_unix_millis(T0_MS),
        size: (width, height),
    });
    assert!(app.start().is_some());
    let events = [
        NetEvent::LoggedIn {
            username: user("alice"),
            registered: false,
        },
        NetEvent::Link {
            link: Link::Live,
            retry_in: None,
        },
    ];
    for event in events {
        app.update(Msg::Net(event));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // In pages of 1000, as history arrives from the server.
    for start in (1..=HISTORY).step_by(1000) {
        let batch = (start..start + 1000)
            .map(|id| message(id, &mut rng))
            .collect();
        app.update(Msg::Net(NetEvent::Messages(batch)));
    }
    assert_eq!(app.timeline.len(), HISTORY as usize);
    assert_eq!(app.scroll, Scroll::Bottom);
    app
}

/// The same app scrolled with Home and then Page Down to the middle of the history.
fn scrolled_to_middle(mut app: App) -> App {
    app.update(Msg::ScrollTop);
    loop {
        match app.scroll {
            Scroll::At { item, .. } if item < app.timeline.len() / 2 => {
                app.update(Msg::PageDown);
            }
            Scroll::At { .. } => return app,
            Scroll::Bottom => panic!("Page Down reached the bottom"),
        }
    }
}

fn terminal(app: &App) -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap()
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (width, height) in [(80, 24), (200, 50)] {
        let bottom = loaded_app(width, height);
        let middle = scrolled_to_middle(bottom.clone());
        for (place, app) in [("bottom", &bottom), ("middle", &middle)] {
            let mut terminal = terminal(app);
            group.bench_function(format!("{width}x{height}/{place}"), |b| {
                b.iter(|| {
                    terminal.draw(|f| natter::ui::render(app, f)).unwrap();
                })
            });
            black_box(terminal.backend().buffer());
        }
    }
    group.finish();

    // A message arrives while pinned to the bottom, then the frame is drawn. The history
    // grows by one message per iteration (to ~135,000 by the end of the run); the frame's
    // cost does not depend on it.
    let mut app = loaded_app(80, 24);
    let mut terminal = terminal(&app);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut id = HISTORY;
    c.bench_function("arrive_then_frame/80x24/bottom", |b| {
        b.iter(|| {
            id += 1;
            app.update(Msg::Net(NetEvent::Message(message(id, &mut rng))));
            terminal.draw(|f| natter::ui::render(&app, f)).unwrap();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = frames
}
criterion_main!(benches);
