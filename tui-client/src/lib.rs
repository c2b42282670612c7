//! natter, the terminal chat client: a ratatui chat screen that stays truthful through every
//! disconnect, plus subcommands for scripts. `main.rs` only calls [`cli::main`].
//!
//! Layout:
//! - [`cli`]: command line (clap), the subcommands for scripts, exit codes (`cli/`: `exit`,
//!   `account`, `send`, `stdin`, `tail`, `output`, `usage`).
//! - [`chat`]: the chat screen's event loop: terminal events, net events and ticks → `App`;
//!   `Cmd`s → the runner → the outbox keeper (sends) or the network task; `Screen`, the
//!   same without its event sources, generic over the ratatui backend (tests drive it).
//! - [`app`]: the model and `App::update(Msg) -> Option<Cmd>`; pure, no IO (`app/`: `focus`,
//!   `net_events`, `scroll` (the message list's position, without laying out the whole
//!   history), `layout` (the app's sizes), `commands` (slash commands)).
//! - [`msg`]: `Msg`, `Cmd`, `NetEvent`, `Link`: the vocabulary between the parts.
//! - [`timeline`]: stored messages (by id, deduplicated) and pending sends.
//! - [`input`]: an editable text field and its cursor (drawn by `ui::fields`, and by
//!   `ui::input_box`, which wraps the message being typed).
//! - [`recall`]: Up/Down through the lines sent before.
//! - [`keymap`]: terminal events → `Msg`.
//! - [`measure`]: sizes both sides use: the screen's layout, an item's lines at a width,
//!   the message box's and the status line's rows (`measure/`: `items`, `input`, `status`,
//!   `wrap`); a leaf, so imports run ui → app → measure.
//! - [`theme`]: every style, with and without colour.
//! - [`ui`]: `render(&App, &mut Frame)` and its widgets.
//! - [`net`]: the network task (socket, reconnect, HTTP fallback, outbox flushing; in
//!   `net/session/`), and the WebSocket and HTTP clients the subcommands reuse.
//! - [`outbox`]: unconfirmed sends on disk, an append-only log per identity (`outbox/`:
//!   `log` (the records, replay, torn last lines), `watch` (has the file changed since it
//!   was read), `keeper` (the chat screen's one writer, a thread)).
//! - [`credentials`]: stored accounts (`credentials.toml`).
//! - [`paths`]: where files live; locking and atomic writes.
//! - [`terminal`]: raw mode in and out, panic hook, log file.
//! - [`error`]: `ApiError`, what a request to the server can end in, and its one
//!   `Disposition` (retry, renew the token, refused for good).
#![forbid(unsafe_code)]

pub mod app;
pub mod chat;
pub mod cli;
pub mod credentials;
pub mod error;
pub mod input;
pub mod keymap;
pub mod measure;
pub mod msg;
pub mod net;
pub mod outbox;
pub mod paths;
pub mod recall;
pub mod terminal;
pub mod theme;
pub mod timeline;
pub mod ui;
