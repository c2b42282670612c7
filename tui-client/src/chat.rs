//! The chat screen's event loop: the one place that owns the terminal. It `select!`s over
//! terminal events, network events, a clock tick and SIGTERM/SIGHUP/SIGINT; each becomes a
//! [`Msg`] for [`App::update`]; a resulting [`Cmd`] is handed on by the [`Runner`] (a send
//! to the outbox keeper, the rest to the network task), which never waits. Events are
//! drained in a bounded batch, then the screen is drawn once. On leaving, once the keeper
//! has written what was typed and the terminal is restored, stderr says how many messages
//! the outbox still holds.
//!
//! [`Screen`] is the chat screen without its event sources (app, terminal of any ratatui
//! backend, what runs behind them), so that a test can drive a whole session on
//! `TestBackend`; [`start`] wires what runs behind it (keeper thread, network task, their
//! channels), which the end-to-end tests use on their own too.

use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::EventStream;
use futures_util::StreamExt;
use natter_shared::{Timestamp, Username};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::app::{App, AppConfig};
use crate::msg::{Cmd, Msg, NetEvent};
use crate::net::tls::Tls;
use crate::net::{self, NetConfig, ServerUrl};
use crate::outbox::{Keeper, KeeperThread, Outbox};
use crate::paths::Paths;
use crate::{keymap, terminal, ui};

/// How often the clock ticks (badge countdowns).
const TICK: Duration = Duration::from_millis(250);
/// Most events handled between two draws.
const BATCH: usize = 256;
/// Room for net events between two draws; a full channel makes the net task wait, which is
/// the right back-pressure (the socket's own buffer holds the rest).
const NET_EVENTS: usize = 1024;
/// How long quitting waits for the outbox keeper to write what was typed just before.
const KEEPER_PATIENCE: Duration = Duration::from_secs(10);

/// What the chat screen starts with.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// The server.
    pub server: ServerUrl,
    /// What to trust over TLS.
    pub tls: Tls,
    /// Shown on the status line at start (plain http:// off this machine).
    pub warning: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--to`.
    pub to: Option<String>,
    /// Where files live.
    pub paths: Paths,
}

/// Whether colour is allowed: `NO_COLOR` set to anything non-empty forbids it.
pub fn color_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Runs the chat screen until the user quits or a signal asks it to.
pub async fn run(options: ChatOptions) -> anyhow::Result<()> {
    terminal::init_logging(&options.paths);
    let name = options.name.clone().or_else(|| {
        // One account stored for this server: that is who the user is.
        let accounts =
            crate::credentials::accounts(&options.paths.credentials(), options.server.http_base())
                .ok()?;
        match accounts.as_slice() {
            [only] => Some(only.username.clone()),
            _ => None,
        }
    });
    let term = terminal::init().context("cannot set up the terminal")?;
    let result = event_loop(term, &options, name).await;
    terminal::restore();
    // Now that the terminal is back, say what the outbox still holds: quitting offline is
    // fine, but silence would leave the user wondering whether the messages were lost.
    if let Some(identity) = result? {
        let outbox = Outbox::new(
            &options.paths.outbox_dir(options.server.http_base()),
            &identity,
        );
        if let Some(line) = kept_notice(outbox.entries().map_or(0, |e| e.len()), &identity) {
            eprintln!("natter: {line}");
        }
    }
    Ok(())
}

/// The server as the top bar names it: `host:port`, and `(unencrypted)` after it when the
/// link is plain http:// off this machine, said where it is always in sight.
pub fn server_label(server: &ServerUrl) -> String {
    match crate::net::tls::cleartext_warning(server) {
        Some(_) => format!("{} (unencrypted)", server.host()),
        None => server.host().to_owned(),
    }
}

/// What to say on leaving with `count` messages still in `identity`'s outbox.
pub fn kept_notice(count: usize, identity: &Username) -> Option<String> {
    let (messages, go) = match count {
        0 => return None,
        1 => ("1 message".to_owned(), "it goes"),
        n => (format!("{n} messages"), "they go"),
    };
    Some(format!(
        "{messages} kept in the outbox; {go} out the next time natter runs as {identity}"
    ))
}

/// Runs the screen until quit; returns the identity it ended as, if any. The terminal, the
/// clock and the signals are read here; everything they lead to goes through [`Screen`].
async fn event_loop(
    term: terminal::Term,
    options: &ChatOptions,
    name: Option<String>,
) -> anyhow::Result<Option<Username>> {
    let mut screen = Screen::start(term, options, name, *chrono::Local::now().offset())?;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    while !screen.app.should_quit {
        screen.draw()?;
        let first = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => keymap::map_event(event),
                Some(Err(_)) | None => Some(Msg::Quit),
            },
            event = screen.net.recv() => event.map(Msg::Net),
            _ = tick.tick() => Some(Msg::Tick(Instant::now())),
            _ = sigterm.recv() => Some(Msg::Quit),
            _ = sighup.recv() => Some(Msg::Quit),
            _ = sigint.recv() => Some(Msg::Quit),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        screen.drain_net(&mut batch);
        screen.apply(batch);
    }
    Ok(screen.stop().await)
}

/// The chat screen without its event sources: the app, a ratatui terminal of any backend,
/// and what runs behind them ([`start`]). The event loop above feeds it terminal events,
/// ticks and signals; a test feeds it keys and reads its frames, through the same
/// [`Screen::apply`] and [`Screen::draw`], so a whole session (keys in, frames out) can be
/// snapshot-tested on ratatui's `TestBackend`.
pub struct Screen<B: Backend> {
    /// The terminal it draws on.
    pub terminal: Terminal<B>,
    /// The model.
    pub app: App,
    runner: Runner,
    net: mpsc::Receiver<NetEvent>,
    parts: Parts,
}

impl<B: Backend> Screen<B> {
    /// Sets up the app for `options` (as `name`, if known) on `terminal`, and starts what
    /// runs behind it. Times are shown at `utc_offset`.
    pub fn start(
        terminal: Terminal<B>,
        options: &ChatOptions,
        name: Option<String>,
        utc_offset: chrono::FixedOffset,
    ) -> anyhow::Result<Screen<B>> {
        let size = terminal
            .size()
            .map_err(|e| anyhow::anyhow!("reading the terminal size: {e}"))?;
        let mut app = App::new(AppConfig {
            server: server_label(&options.server),
            name,
            to: options.to.clone(),
            color: color_allowed(),
            utc_offset,
            client_id_prefix: crate::credentials::random_string(12),
            now: Instant::now(),
            wall_clock: Timestamp::now(),
            size: (size.width, size.height),
        });
        let (runner, net, parts) = start(NetConfig {
            server: options.server.clone(),
            paths: options.paths.clone(),
            tls: options.tls.clone(),
        })?;
        if let Some(cmd) = app.start() {
            runner.carry_out(cmd);
        }
        if let Some(warning) = &options.warning {
            app.error(warning.clone());
        }
        Ok(Screen {
            terminal,
            app,
            runner,
            net,
            parts,
        })
    }

    /// Draws the app once.
    pub fn draw(&mut self) -> anyhow::Result<()> {
        let app = &self.app;
        self.terminal
            .draw(|frame| ui::render(app, frame))
            .map_err(|e| anyhow::anyhow!("drawing the screen: {e}"))?;
        Ok(())
    }

    /// Adds to `batch` the network events already waiting, up to [`BATCH`] in all.
    pub fn drain_net(&mut self, batch: &mut Vec<Msg>) {
        while batch.len() < BATCH {
            match self.net.try_recv() {
                Ok(event) => batch.push(Msg::Net(event)),
                Err(_) => break,
            }
        }
    }

    /// The next network event, waiting for it.
    pub async fn next_net(&mut self) -> Option<NetEvent> {
        self.net.recv().await
    }

    /// Applies `batch` to the app, in order, and hands on the commands it gives.
    pub fn apply(&mut self, batch: Vec<Msg>) {
        self.app.now = Instant::now();
        self.app.wall_clock = Timestamp::now();
        for msg in batch {
            // Keys that act (never the text typed) go to the debug log, so a report of a
            // key "doing nothing" can be checked against what arrived.
            if !matches!(
                msg,
                Msg::Char(_) | Msg::Paste(_) | Msg::Tick(_) | Msg::Net(_)
            ) {
                tracing::debug!(?msg, focus = ?self.app.focus, "key");
            }
            if let Some(cmd) = self.app.update(msg) {
                self.runner.carry_out(cmd);
            }
        }
    }

    /// Stops what runs behind the screen, once the keeper has written what was typed;
    /// returns the identity the screen ended as.
    pub async fn stop(self) -> Option<Username> {
        self.parts.stop(self.runner, self.net).await;
        self.app.identity
    }
}

/// Starts what runs behind the chat screen: the outbox keeper (a thread) and the network
/// task. Returns the runner to hand the app's commands to, the events for the app, and
/// the parts to [`Parts::stop`] at the end.
pub fn start(config: NetConfig) -> anyhow::Result<(Runner, mpsc::Receiver<NetEvent>, Parts)> {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Cmd>();
    let (net_tx, net_rx) = mpsc::channel::<NetEvent>(NET_EVENTS);
    let dir = config.paths.outbox_dir(config.server.http_base());
    let (keeper, keeper_thread) =
        Keeper::spawn(dir, net_tx.clone(), cmd_tx.clone()).context("starting the outbox keeper")?;
    let net_task = tokio::spawn(net::run(config, cmd_rx, keeper.clone(), net_tx));
    Ok((
        Runner {
            outbox: keeper,
            cmds: cmd_tx,
        },
        net_rx,
        Parts {
            net_task,
            keeper: keeper_thread,
        },
    ))
}

/// The keeper's thread and the network task, while the screen runs.
#[derive(Debug)]
pub struct Parts {
    net_task: tokio::task::JoinHandle<()>,
    keeper: KeeperThread,
}

impl Parts {
    /// Stops the network task, then waits (bounded) for the keeper to write every send the
    /// runner handed it: after this, what the outbox holds is all there is to count.
    pub async fn stop(self, runner: Runner, events: mpsc::Receiver<NetEvent>) {
        self.net_task.abort();
        let _ = self.net_task.await;
        // The keeper ends once no handle is left (the runner's, the net task's), and
        // must not wait on a full event channel nobody reads any more.
        drop(runner);
        drop(events);
        if !self.keeper.join(KEEPER_PATIENCE).await {
            tracing::error!(
                "the outbox keeper did not finish within {KEEPER_PATIENCE:?}; a message typed last may not be saved"
            );
        }
    }
}

/// Carries out the app's commands without waiting: a send goes to the outbox keeper (which
/// hands it to the network task once it is on disk), the rest straight to the network
/// task. Public so that tests and benchmarks drive the app exactly as the screen does.
#[derive(Debug, Clone)]
pub struct Runner {
    outbox: Keeper,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Runner {
    /// Carries out one command.
    pub fn carry_out(&self, cmd: Cmd) {
        match cmd {
            Cmd::Send { sender, outgoing } => self.outbox.add(sender, outgoing),
            // Gone only once the network task has ended, when nothing is left to do.
            other => {
                let _ = self.cmds.send(other);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_bar_says_when_the_link_is_in_clear() {
        let label = |s: &str| server_label(&ServerUrl::parse(s).unwrap());
        assert_eq!(label("http://10.0.0.5:8000"), "10.0.0.5:8000 (unencrypted)");
        assert_eq!(label("https://chat.example:8443"), "chat.example:8443");
        assert_eq!(label("127.0.0.1:8000"), "127.0.0.1:8000");
    }
}
