//! A chat-screen client without a terminal: the real `App`, and behind it what the screen
//! starts (`natter::chat::start`: the runner, the outbox keeper and the network task), with
//! the events fed to the app as the screen's loop does.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers: a panic is the failure report

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use natter::app::{App, AppConfig};
use natter::chat::{Parts, Runner};
use natter::msg::{Link, Msg, NetEvent};
use natter::net::tls::Tls;
use natter::net::{NetConfig, ServerUrl};
use natter::paths::Paths;
use tokio::sync::mpsc;

/// Generous bound for anything that should happen "soon": tests never assert on timing,
/// they only give up after this.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Client {
    pub app: App,
    pub runner: Runner,
    pub events: mpsc::Receiver<NetEvent>,
    /// Every link state reported, in order.
    pub links: Vec<Link>,
    parts: Parts,
}

impl Client {
    /// Starts a client for `name` against `server`, keeping its files under `home`.
    pub async fn start(server: &str, home: &Path, name: &str) -> Client {
        Client::start_with_ca(server, home, name, None).await
    }

    /// [`Client::start`], also trusting the certificates in `ca_file` (`--ca-file`).
    pub async fn start_with_ca(
        server: &str,
        home: &Path,
        name: &str,
        ca_file: Option<&Path>,
    ) -> Client {
        let paths = Paths::under(home);
        let server = ServerUrl::parse(server).unwrap();
        let (runner, events, parts) = natter::chat::start(NetConfig {
            server: server.clone(),
            paths: paths.clone(),
            tls: Tls::new(&server, ca_file).unwrap(),
        })
        .unwrap();
        let mut app = App::new(AppConfig {
            server: server.host().to_owned(),
            name: Some(name.to_owned()),
            to: None,
            color: false,
            utc_offset: FixedOffset::east_opt(0).unwrap(),
            client_id_prefix: natter::credentials::random_string(8),
            now: Instant::now(),
            wall_clock: natter_shared::Timestamp::now(),
            size: (80, 24),
        });
        if let Some(cmd) = app.start() {
            runner.carry_out(cmd);
        }
        Client {
            app,
            runner,
            events,
            links: Vec::new(),
            parts,
        }
    }

    /// Feeds a message to the app and carries out what it asks.
    pub async fn update(&mut self, msg: Msg) {
        self.app.wall_clock = natter_shared::Timestamp::now();
        if let Some(cmd) = self.app.update(msg) {
            self.runner.carry_out(cmd);
        }
    }

    /// Types `text` into the message field and presses Enter.
    pub async fn say(&mut self, text: &str) {
        self.app.input.set(text);
        self.app.focus = natter::app::Focus::Message;
        self.update(Msg::Submit).await;
    }

    /// Applies network events until `done(app)` holds; panics after [`PATIENCE`].
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        self.wait_within(PATIENCE, what, done).await;
    }

    /// Like [`Client::wait_for`], but gives up after `patience`: for what the docs promise
    /// to happen within a time (a generous bound, never a measurement).
    pub async fn wait_within(
        &mut self,
        patience: Duration,
        what: &str,
        done: impl Fn(&App) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + patience;
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let NetEvent::Link { link, .. } = &event
                        && self.links.last() != Some(link)
                    {
                        self.links.push(*link);
                    }
                    self.update(Msg::Net(event)).await;
                }
                Ok(None) => panic!("network task ended while waiting for {what}"),
                Err(_) => panic!(
                    "gave up after {patience:?} waiting for {what}; link {:?}, status {:?}, links {:?}",
                    self.app.link, self.app.status, self.links
                ),
            }
        }
    }

    /// Applies network events for `how_long`, whatever they are.
    pub async fn pump_for(&mut self, how_long: Duration) {
        let until = tokio::time::Instant::now() + how_long;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await {
            if let NetEvent::Link { link, .. } = &event
                && self.links.last() != Some(link)
            {
                self.links.push(*link);
            }
            self.update(Msg::Net(event)).await;
        }
    }

    pub async fn wait_live(&mut self) {
        self.wait_for("LIVE", |a| {
            a.link == Link::Live
                && a.status
                    .as_ref()
                    .is_none_or(|s| !s.1.starts_with("connecting"))
        })
        .await;
    }

    /// Waits until a stored message with exactly `text` is shown.
    pub async fn wait_text(&mut self, text: &str) {
        self.wait_for(&format!("message {text:?}"), |a| {
            texts(a).iter().any(|t| t == text)
        })
        .await;
    }

    /// Waits until every send typed is on disk, shown queued (or already confirmed).
    pub async fn wait_saved(&mut self) {
        self.wait_for("every send on disk", |a| {
            a.timeline.pending().iter().all(|p| p.saved)
        })
        .await;
    }

    /// Quits as the screen would: the net task is stopped, the outbox keeper finishes what
    /// it was given, files stay.
    pub async fn quit(mut self) {
        self.update(Msg::Quit).await;
        self.parts.stop(self.runner, self.events).await;
    }
}

/// The texts of the stored (confirmed) messages shown.
pub fn texts(app: &App) -> Vec<String> {
    app.timeline
        .messages()
        .iter()
        .map(|m| m.text.clone())
        .collect()
}

/// How often a confirmed message with `text` is shown.
pub fn count(app: &App, text: &str) -> usize {
    app.timeline
        .messages()
        .iter()
        .filter(|m| m.text == text)
        .count()
}
