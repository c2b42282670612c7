//! The chat screen's event loop: the one place that owns the terminal. It `select!`s over
//! terminal events, network events, a clock tick and SIGTERM/SIGHUP/SIGINT; each becomes a
//! [`Msg`] for [`App::update`]; a resulting [`Cmd`] is carried out here (the outbox write)
//! and passed to the network task. Events are drained in a bounded batch, then the screen
//! is drawn once. On leaving, after the terminal is restored, stderr says how many
//! messages the outbox still holds.

use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::EventStream;
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use natter_shared::{Timestamp, Username};

use crate::app::{App, AppConfig};
use crate::msg::{Cmd, Msg, NetEvent};
use crate::net::tls::Tls;
use crate::net::{self, NetConfig, ServerUrl};
use crate::outbox::Outbox;
use crate::paths::Paths;
use crate::{keymap, terminal, ui};

/// How often the clock ticks (badge countdowns).
const TICK: Duration = Duration::from_millis(250);
/// Most events handled between two draws.
const BATCH: usize = 256;
/// Room for net events between two draws; a full channel makes the net task wait, which is
/// the right back-pressure (the socket's own buffer holds the rest).
const NET_EVENTS: usize = 1024;

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
    let mut term = terminal::init().context("cannot set up the terminal")?;
    let result = event_loop(&mut term, &options, name).await;
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

/// Runs the screen until quit; returns the identity it ended as, if any.
async fn event_loop(
    term: &mut terminal::Term,
    options: &ChatOptions,
    name: Option<String>,
) -> anyhow::Result<Option<Username>> {
    let size = term.size().context("reading the terminal size")?;
    let offset = *chrono::Local::now().offset();
    let mut app = App::new(AppConfig {
        server: server_label(&options.server),
        name,
        to: options.to.clone(),
        color: color_allowed(),
        utc_offset: offset,
        client_id_prefix: crate::credentials::random_string(12),
        now: Instant::now(),
        wall_clock: Timestamp::now(),
        size: (size.width, size.height),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>(256);
    let (net_tx, mut net_rx) = mpsc::channel::<NetEvent>(NET_EVENTS);
    let net_task = tokio::spawn(net::run(
        NetConfig {
            server: options.server.clone(),
            paths: options.paths.clone(),
            tls: options.tls.clone(),
        },
        cmd_rx,
        net_tx,
    ));
    let runner = Runner::new(options.paths.outbox_dir(options.server.http_base()), cmd_tx);
    if let Some(cmd) = app.start() {
        runner.carry_out(&mut app, cmd).await;
    }
    if let Some(warning) = &options.warning {
        app.error(warning.clone());
    }
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    while !app.should_quit {
        term.draw(|frame| ui::render(&app, frame))
            .context("drawing the screen")?;
        let first = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => keymap::map_event(event),
                Some(Err(_)) | None => Some(Msg::Quit),
            },
            event = net_rx.recv() => event.map(Msg::Net),
            _ = tick.tick() => Some(Msg::Tick(Instant::now())),
            _ = sigterm.recv() => Some(Msg::Quit),
            _ = sighup.recv() => Some(Msg::Quit),
            _ = sigint.recv() => Some(Msg::Quit),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while batch.len() < BATCH {
            match net_rx.try_recv() {
                Ok(event) => batch.push(Msg::Net(event)),
                Err(_) => break,
            }
        }
        app.now = Instant::now();
        app.wall_clock = Timestamp::now();
        for msg in batch {
            // Keys that act (never the text typed) go to the debug log, so a report of a
            // key "doing nothing" can be checked against what arrived.
            if !matches!(
                msg,
                Msg::Char(_) | Msg::Paste(_) | Msg::Tick(_) | Msg::Net(_)
            ) {
                tracing::debug!(?msg, focus = ?app.focus, "key");
            }
            if let Some(cmd) = app.update(msg) {
                let started = Instant::now();
                runner.carry_out(&mut app, cmd).await;
                let took = started.elapsed();
                if took > Duration::from_millis(500) {
                    tracing::warn!(?took, "carrying out a command held up the screen");
                }
            }
        }
    }
    // Every send is on disk already; the net task has nothing to finish. Waiting for it to
    // be gone means no outbox write is under way when the caller counts what is left.
    net_task.abort();
    let _ = net_task.await;
    Ok(app.identity.clone())
}

/// Carries out the app's commands: writes sends to the outbox, then hands every command to
/// the network task. Public so that tests drive the app exactly as the screen does.
#[derive(Debug, Clone)]
pub struct Runner {
    outbox_dir: std::path::PathBuf,
    cmds: mpsc::Sender<Cmd>,
}

impl Runner {
    /// A runner writing outboxes under `outbox_dir` and feeding `cmds`.
    pub fn new(outbox_dir: std::path::PathBuf, cmds: mpsc::Sender<Cmd>) -> Self {
        Runner { outbox_dir, cmds }
    }

    /// Carries out one command.
    pub async fn carry_out(&self, app: &mut App, cmd: Cmd) {
        if let Cmd::Send { sender, outgoing } = &cmd {
            // Durable first: once this returns the message survives a crash or a quit.
            if let Err(e) = Outbox::new(&self.outbox_dir, sender).push(outgoing) {
                app.error(format!("could not save to the outbox: {e:#}"));
            }
        }
        if matches!(cmd, Cmd::Quit) {
            let _ = self.cmds.try_send(cmd);
            return;
        }
        let _ = self.cmds.send(cmd).await;
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
