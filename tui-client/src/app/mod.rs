//! The chat screen's model and its one transition function, [`App::update`].
//!
//! Pure: no IO, no async, no clock reads (time arrives as [`Msg::Tick`], and the wall
//! clock as [`App::wall_clock`], set by the loop before each batch of events). Everything the
//! screen shows is derived from this struct by `ui::render`, so tests drive the app with
//! `Msg`s and assert on state or on a rendered `TestBackend`. Effects leave as a [`Cmd`].
//!
//! Here: the state, `update`'s dispatch, and Enter (sending, committing the name). Beside
//! it: `focus.rs` (fields, Tab, completion, paste, Esc) and `net_events.rs` (what the
//! network task reports), `scroll.rs` (scrolling the message list), `layout.rs` (the
//! app's sizes, measured by `crate::measure`) and `commands.rs` (slash commands).

pub mod commands;
mod focus;
mod layout;
mod net_events;
mod scroll;

pub use scroll::Scroll;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::FixedOffset;
use natter_shared::{Timestamp, Username, validate};

use crate::input::TextInput;
use crate::measure::status::StatusKind;
use crate::msg::{Cmd, Link, Msg};
use crate::outbox::Outgoing;
use crate::timeline::Timeline;

/// Which field has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// "Name".
    Name,
    /// "Send to".
    SendTo,
    /// The message input.
    Message,
}

/// A known user: from the user list, presence or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownUser {
    /// The name as the server spells it.
    pub name: Username,
    /// Whether they have a connection open.
    pub online: bool,
}

/// What the app is started with.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The server, as shown in the top bar.
    pub server: String,
    /// `--name`: prefills the Name field and logs in at once.
    pub name: Option<String>,
    /// `--to`: prefills "Send to".
    pub to: Option<String>,
    /// Whether colours may be used (false under `NO_COLOR`).
    pub color: bool,
    /// The zone message times are shown in.
    pub utc_offset: FixedOffset,
    /// Makes client ids unique across runs; the app appends a counter.
    pub client_id_prefix: String,
    /// The clock at start.
    pub now: Instant,
    /// The wall clock at start.
    pub wall_clock: Timestamp,
    /// The terminal size at start.
    pub size: (u16, u16),
}

/// The chat screen's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The server as shown.
    pub server: String,
    /// The Name field.
    pub name: TextInput,
    /// The Send to field (empty = everyone).
    pub to: TextInput,
    /// The message input.
    pub input: TextInput,
    /// The password prompt's input, when [`App::prompt`] is set.
    pub password: TextInput,
    /// Which field has the keyboard.
    pub focus: Focus,
    /// The identity messages are sent as, once a name was committed.
    pub identity: Option<Username>,
    /// Set when the server asked for this name's password.
    pub prompt: Option<Username>,
    /// The link as last reported.
    pub link: Link,
    /// When the next connection attempt is due.
    pub retry_at: Option<Instant>,
    /// The clock, as of the last event.
    pub now: Instant,
    /// The wall clock, as of the last event: what a message typed now is stamped with.
    pub wall_clock: Timestamp,
    /// Messages and pending sends.
    pub timeline: Timeline,
    /// The message list's scroll position.
    pub scroll: Scroll,
    /// Messages that arrived while scrolled up.
    pub unseen: usize,
    /// Known users by case-folded name.
    pub users: BTreeMap<String, KnownUser>,
    /// The status line.
    pub status: Option<(StatusKind, String)>,
    /// Whether the help is shown.
    pub show_help: bool,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// Whether colours may be used.
    pub color: bool,
    /// The zone message times are shown in.
    pub utc_offset: FixedOffset,
    /// Set once the user asked to leave.
    pub should_quit: bool,
    client_id_prefix: String,
    next_seq: u64,
    /// Tab completion in Send to: the typed prefix and the candidate shown.
    completion: Option<(String, usize)>,
    /// The Name field's value when it was last committed.
    committed_name: String,
    /// Lines sent from the message field, for Up/Down.
    recall: crate::recall::Recall,
}

impl App {
    /// A fresh screen.
    pub fn new(config: AppConfig) -> Self {
        let name = config.name.unwrap_or_default();
        App {
            server: config.server,
            name: TextInput::with_text(&name),
            to: TextInput::with_text(config.to.as_deref().unwrap_or("")),
            input: TextInput::default(),
            password: TextInput::default(),
            focus: if name.is_empty() {
                Focus::Name
            } else {
                Focus::Message
            },
            identity: None,
            prompt: None,
            link: Link::Idle,
            retry_at: None,
            now: config.now,
            wall_clock: config.wall_clock,
            timeline: Timeline::default(),
            scroll: Scroll::Bottom,
            unseen: 0,
            users: BTreeMap::new(),
            status: None,
            show_help: false,
            size: config.size,
            color: config.color,
            utc_offset: config.utc_offset,
            should_quit: false,
            client_id_prefix: config.client_id_prefix,
            next_seq: 0,
            completion: None,
            committed_name: String::new(),
            recall: crate::recall::Recall::default(),
        }
    }

    /// The first command: log in when a name was given on the command line.
    pub fn start(&mut self) -> Option<Cmd> {
        if self.name.is_empty() {
            self.info("type your name and press Enter");
            None
        } else {
            self.commit_name()
        }
    }

    /// Seconds until the next connection attempt, rounded up.
    pub fn retry_secs(&self) -> Option<u64> {
        self.retry_at.map(|at| {
            let d = at.saturating_duration_since(self.now);
            d.as_millis().div_ceil(1000) as u64
        })
    }

    /// Whether the Name field holds a name typed but not applied with Enter yet (the
    /// identity is still the last one committed).
    pub fn name_is_pending(&self) -> bool {
        self.name.text().trim() != self.committed_name
    }

    /// Users online, by name.
    pub fn online_users(&self) -> impl Iterator<Item = &Username> {
        self.users.values().filter(|u| u.online).map(|u| &u.name)
    }

    /// Sets an informational status line.
    pub fn info(&mut self, text: impl Into<String>) {
        self.status = Some((StatusKind::Info, text.into()));
    }

    /// Sets an error status line.
    pub fn error(&mut self, text: impl Into<String>) {
        self.status = Some((StatusKind::Error, text.into()));
    }

    /// Applies one event; returns the effect it calls for, if any.
    pub fn update(&mut self, msg: Msg) -> Option<Cmd> {
        if !matches!(msg, Msg::Tab) {
            self.completion = None;
        }
        match msg {
            Msg::Char(c) => self.field().insert_str(c.encode_utf8(&mut [0; 4])),
            Msg::Paste(text) => self.paste(&text),
            Msg::Backspace => self.field().backspace(),
            Msg::Delete => self.field().delete(),
            Msg::Left => self.field().left(),
            Msg::Right => self.field().right(),
            Msg::LineStart => self.field().home(),
            Msg::LineEnd => self.field().end(),
            Msg::DeleteWord => self.field().delete_word(),
            Msg::DeleteToStart => self.field().delete_to_start(),
            Msg::Submit => return self.submit(),
            Msg::Tab => self.tab(),
            Msg::BackTab => self.move_focus(false),
            Msg::Escape => self.escape(),
            Msg::Older => self.older(),
            Msg::Newer => self.newer(),
            Msg::ScrollUp(n) => self.scroll_up(n),
            Msg::ScrollDown(n) => self.scroll_down(n),
            Msg::PageUp => self.scroll_up(self.page()),
            Msg::PageDown => self.scroll_down(self.page()),
            Msg::ScrollTop => self.scroll_top(),
            Msg::ScrollBottom => self.scroll_bottom(),
            Msg::Resize { width, height } => self.resize(width, height),
            Msg::Tick(now) => self.now = now,
            Msg::ToggleHelp => self.show_help = !self.show_help,
            Msg::Quit => {
                self.should_quit = true;
                return Some(Cmd::Quit);
            }
            Msg::Net(event) => self.net(event),
        }
        None
    }

    fn submit(&mut self) -> Option<Cmd> {
        match self.focus {
            Focus::Name => {
                self.focus = Focus::Message;
                self.commit_name()
            }
            Focus::SendTo => {
                let to = self.to.text().trim().to_owned();
                if !to.is_empty()
                    && let Err(e) = validate::validate_username(&to)
                {
                    self.error(format!("send to: {e}"));
                    return None;
                }
                self.focus = Focus::Message;
                None
            }
            Focus::Message => {
                if let Some(username) = self.prompt.clone() {
                    let password = self.password.take();
                    if let Err(e) = validate::validate_password(&password) {
                        self.error(e.to_string());
                        return None;
                    }
                    self.prompt = None;
                    self.info(format!("logging in as {username}…"));
                    return Some(Cmd::Login {
                        username,
                        password: Some(password),
                    });
                }
                let text = self.input.take();
                self.recall.sent(&text);
                if let Some(rest) = text.strip_prefix("//") {
                    let literal = format!("/{rest}");
                    return self.send(self.receiver(), literal);
                }
                if text.starts_with('/') {
                    return self.command(&text);
                }
                self.send(self.receiver(), text)
            }
        }
    }

    /// The "Send to" field as a receiver: `None` for everyone (or an invalid name, which
    /// `send` reports).
    fn receiver(&self) -> Result<Option<Username>, String> {
        let to = self.to.text().trim();
        if to.is_empty() {
            return Ok(None);
        }
        Username::parse(to)
            .map(Some)
            .map_err(|e| format!("send to: {e}"))
    }

    /// Queues `text` for `receiver`. On a mistake the text goes back into the input, so
    /// nothing typed is lost.
    pub(crate) fn send(
        &mut self,
        receiver: Result<Option<Username>, String>,
        text: String,
    ) -> Option<Cmd> {
        let restore = |app: &mut App, text: &str, why: String| {
            if app.input.is_empty() {
                app.input.set(text);
            }
            app.error(why);
            None
        };
        if text.trim().is_empty() {
            return None;
        }
        let receiver = match receiver {
            Ok(r) => r,
            Err(e) => return restore(self, &text, e),
        };
        if let Err(e) = validate::validate_text(&text, validate::MAX_TEXT_CHARS) {
            return restore(self, &text, e.to_string());
        }
        let Some(sender) = self.identity.clone() else {
            self.focus = Focus::Name;
            return restore(self, &text, "type your name first, then Enter".into());
        };
        self.next_seq += 1;
        let id = format!("{}-{}", self.client_id_prefix, self.next_seq);
        let client_id = match natter_shared::ClientId::parse(&id) {
            Ok(c) => c,
            Err(e) => return restore(self, &text, e.to_string()),
        };
        let outgoing = Outgoing {
            client_id,
            receiver,
            text,
            typed_at: Some(self.wall_clock),
        };
        self.timeline.add_pending(sender.clone(), outgoing.clone());
        self.scroll_bottom();
        Some(Cmd::Send { sender, outgoing })
    }

    /// Up: an earlier sent line into the message field, or scroll up a line elsewhere.
    fn older(&mut self) {
        if self.focus == Focus::Message && self.prompt.is_none() {
            if let Some(line) = self.recall.older(self.input.text()) {
                let line = line.to_owned();
                self.input.set(&line);
            }
        } else {
            self.scroll_up(1);
        }
    }

    /// Down: a later sent line (or the draft) into the message field, or scroll down a line
    /// elsewhere.
    fn newer(&mut self) {
        if self.focus == Focus::Message && self.prompt.is_none() {
            if let Some(line) = self.recall.newer() {
                let line = line.to_owned();
                self.input.set(&line);
            }
        } else {
            self.scroll_down(1);
        }
    }

    /// Takes the Name field as the identity and asks to log in as it.
    pub(crate) fn commit_name(&mut self) -> Option<Cmd> {
        let name = self.name.text().trim().to_owned();
        self.committed_name = name.clone();
        if name.is_empty() {
            return None;
        }
        let username = match Username::parse(&name) {
            Ok(u) => u,
            Err(e) => {
                self.error(format!("name: {e}"));
                self.focus = Focus::Name;
                return None;
            }
        };
        if self.identity.as_ref() == Some(&username) && self.prompt.is_none() {
            return None;
        }
        self.identity = Some(username.clone());
        self.prompt = None;
        self.timeline.clear();
        self.scroll = Scroll::Bottom;
        self.unseen = 0;
        self.link = Link::Connecting;
        self.retry_at = None;
        self.info(format!("connecting as {username}…"));
        Some(Cmd::Login {
            username,
            password: None,
        })
    }
}
