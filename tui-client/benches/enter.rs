//! The time from Enter to the next frame of the chat screen, with the outbox on a given
//! directory (issue 10: the Enter key must not wait on an fsync on the UI task).
//!
//! What the screen's loop does between a key and the next draw, for one message: the
//! app's update, the runner handing the send on (to the outbox keeper, which writes and
//! syncs on its own thread), and one frame. It also says how long after the last Enter
//! every send was on disk (the keeper's group commits at work). Run with the outbox on a slow disk to see the cost,
//! e.g. an ext4 image mounted `-o sync` (as root):
//!
//! ```sh
//! truncate -s 64M /tmp/slow.img && mkfs.ext4 -q /tmp/slow.img
//! mkdir -p /mnt/natter-slow && mount -o loop,sync /tmp/slow.img /mnt/natter-slow
//! NATTER_BENCH_OUTBOX_DIR=/mnt/natter-slow cargo bench -p natter --bench enter
//! ```
//!
//! Without `NATTER_BENCH_OUTBOX_DIR` the outbox is in a temporary directory.
#![allow(clippy::unwrap_used)] // a benchmark: a panic is the failure report

use std::time::{Duration, Instant};

use chrono::FixedOffset;
use natter::app::{App, AppConfig};
use natter::msg::{Link, Msg, NetEvent};
use natter_shared::{Timestamp, Username};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Messages sent (one Enter each).
const SENDS: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let base = std::env::var_os("NATTER_BENCH_OUTBOX_DIR");
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let mut app = App::new(AppConfig {
        server: "127.0.0.1:8000".into(),
        name: Some("alice".into()),
        to: None,
        color: true,
        utc_offset: FixedOffset::east_opt(0).unwrap(),
        client_id_prefix: "bench".into(),
        now: Instant::now(),
        wall_clock: Timestamp::now(),
        size: (80, 24),
    });
    let _ = app.start();
    for event in [
        NetEvent::LoggedIn {
            username: Username::parse("alice").unwrap(),
            registered: false,
        },
        NetEvent::Link {
            link: Link::Live,
            retry_in: None,
        },
    ] {
        app.update(Msg::Net(event));
    }
    // What the screen starts: the outbox keeper and the network task, here against an
    // address where nothing listens (nothing is sent; the keeper's writes are measured).
    let paths = natter::paths::Paths::under(dir.path());
    let server = natter::net::ServerUrl::parse("127.0.0.1:9").unwrap();
    let (runner, mut events, parts) = natter::chat::start(natter::net::NetConfig {
        server: server.clone(),
        paths,
        tls: natter::net::tls::Tls::new(&server, None).unwrap(),
    })
    .unwrap();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut took: Vec<Duration> = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        app.input.set(&format!("message number {i}"));
        let started = Instant::now();
        let sends = app.update(Msg::Submit);
        assert!(sends.is_some(), "Enter sends");
        if let Some(cmd) = sends {
            runner.carry_out(cmd);
        }
        terminal.draw(|f| natter::ui::render(&app, f)).unwrap();
        took.push(started.elapsed());
        // What the screen's loop does between keys: apply what has come in.
        while let Ok(event) = events.try_recv() {
            let _ = app.update(Msg::Net(event));
        }
        tokio::task::yield_now().await;
    }
    // Every send reached the disk: wait for the last to be queued, then count.
    let saved = Instant::now();
    while app.timeline.pending().iter().any(|p| !p.saved) {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Some(event)) => {
                let _ = app.update(Msg::Net(event));
            }
            _ => panic!("the outbox keeper fell silent"),
        }
    }
    let saved = saved.elapsed();
    parts.stop(runner, events).await;
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    println!(
        "enter → next frame, {SENDS} sends, outbox in {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; all on disk {:.1} ms after the last",
        base.as_ref().map_or_else(
            || "a temporary directory".into(),
            |b| b.to_string_lossy().into_owned()
        ),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(took[took.len() - 1]),
        ms(saved),
    );
}
