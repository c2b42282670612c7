//! The vocabulary between the parts of the chat screen: [`Msg`] (everything that can happen
//! to the app), [`Cmd`] (every effect the app asks for) and [`NetEvent`] (what the network
//! task reports).
//!
//! The app never performs IO: it turns a `Msg` into state changes and at most one `Cmd`.
//! Add a key binding as a `Msg` variant here, map it in `keymap.rs`, handle it in `App::update`.

use std::time::{Duration, Instant};

use natter_shared::protocol::UserStatus;
use natter_shared::{ClientId, Message, Username};

use crate::outbox::Outgoing;

/// Something that happened: a key, a paste, a tick of the clock, a network event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A printable character typed into the focused field.
    Char(char),
    /// Delete the character before the cursor.
    Backspace,
    /// Delete the character under the cursor.
    Delete,
    /// Move the cursor one character left.
    Left,
    /// Move the cursor one character right.
    Right,
    /// Move the cursor to the start of the field (Ctrl-A).
    LineStart,
    /// Move the cursor to the end of the field (Ctrl-E).
    LineEnd,
    /// Delete the word before the cursor (Ctrl-W).
    DeleteWord,
    /// Delete everything before the cursor (Ctrl-U).
    DeleteToStart,
    /// Enter: send, commit the name, or answer the password prompt.
    Submit,
    /// Tab: complete a username in "Send to", else focus the next field.
    Tab,
    /// Shift-Tab: focus the previous field.
    BackTab,
    /// Escape: close help, cancel the password prompt, clear the status line.
    Escape,
    /// Up: in the message field, the line sent before the one shown; elsewhere, scroll up
    /// a line.
    Older,
    /// Down: in the message field, the next line sent (or back to the draft); elsewhere,
    /// scroll down a line.
    Newer,
    /// Scroll the message list up by this many lines (mouse wheel).
    ScrollUp(u16),
    /// Scroll the message list down by this many lines (mouse wheel).
    ScrollDown(u16),
    /// Page Up.
    PageUp,
    /// Page Down.
    PageDown,
    /// Home: the oldest message.
    ScrollTop,
    /// End: the newest message, and stay there.
    ScrollBottom,
    /// Text pasted in one piece (bracketed paste), newlines included.
    Paste(String),
    /// The terminal's new size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The clock moved on (drives countdowns).
    Tick(Instant),
    /// F1: show or hide the help.
    ToggleHelp,
    /// Ctrl-C, `/quit`, SIGTERM, SIGHUP.
    Quit,
    /// Something the network task reported.
    Net(NetEvent),
}

/// An effect the app asks the runner to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Become `username`: use stored credentials, register if the name is free, or log in
    /// with `password` when the user typed one.
    Login {
        /// Who to become.
        username: Username,
        /// A password typed at the prompt, if any.
        password: Option<String>,
    },
    /// Deliver a message. The runner hands it to the outbox keeper, which writes it to disk
    /// and only then hands it on to the network task.
    Send {
        /// The identity it is sent as (the outbox it belongs to).
        sender: Username,
        /// The message and its idempotency key.
        outgoing: Outgoing,
    },
    /// Leave.
    Quit,
}

/// The state of the link to the server, as the badge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No name yet: nothing to connect as.
    Idle,
    /// The first connection attempt is under way.
    Connecting,
    /// The WebSocket is up.
    Live,
    /// The socket dropped; trying again.
    Reconnecting,
    /// The socket is down but HTTP works: sends go by POST, messages arrive by polling.
    Fallback,
    /// Neither the socket nor HTTP works; sends wait in the outbox.
    Offline,
}

impl Link {
    /// The badge's word.
    pub fn label(self) -> &'static str {
        match self {
            Link::Idle => "NO NAME",
            Link::Connecting => "CONNECTING",
            Link::Live => "LIVE",
            Link::Reconnecting => "RECONNECTING",
            Link::Fallback => "FALLBACK",
            Link::Offline => "OFFLINE",
        }
    }
}

/// What the network task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The link changed; `retry_in` is the wait before the next socket attempt, if one is
    /// scheduled.
    Link {
        /// The new state.
        link: Link,
        /// Time to the next attempt.
        retry_in: Option<Duration>,
    },
    /// The server accepted us as `username` (after login or registration).
    LoggedIn {
        /// Who we are, as the server spells it.
        username: Username,
        /// Whether the account was just registered.
        registered: bool,
    },
    /// The name is taken and no working password is stored: ask the user.
    PasswordNeeded {
        /// The name in question.
        username: Username,
        /// Why ("name is taken", "wrong password").
        reason: String,
    },
    /// A send is on disk in `sender`'s outbox, waiting for the server: one typed here once
    /// the outbox keeper has synced it (shown queued only from now on), or one the network
    /// task found in the outbox (left by an earlier run or a `natter send`), which goes
    /// just after the waiting send `after` (first when `None`), the outbox's order.
    Queued {
        /// Whose outbox.
        sender: Username,
        /// The send.
        outgoing: Outgoing,
        /// The waiting send it follows in the outbox, for one not shown yet.
        after: Option<ClientId>,
    },
    /// A stored message: from history, the socket, a poll, or a POST reply.
    Message(Message),
    /// A batch of stored messages (history, replay by poll); cheaper than one event each.
    Messages(Vec<Message>),
    /// A user came online or went offline.
    Presence {
        /// Whose presence changed.
        username: Username,
        /// Whether they are online now.
        online: bool,
    },
    /// The full user list.
    Users(Vec<UserStatus>),
    /// The server refused a message for good; it has left the outbox.
    Rejected {
        /// Which send.
        client_id: ClientId,
        /// Why, for people.
        reason: String,
    },
    /// Something for the status line.
    Error(String),
    /// Something for the status line that is not a problem.
    Notice(String),
}
