//! What the subcommands print: the stable plain line of a message, JSON lines, and writing
//! to a stdout whose reader may have gone away.

use std::io::Write;

use natter_shared::Message;

/// One line of a message, as `tail` and `history` print it:
/// `ID CREATED_AT SENDER: TEXT` or `ID CREATED_AT SENDER -> RECEIVER: TEXT`, newlines in
/// the text written as `\n` so that one message is one line.
pub fn plain_line(m: &Message) -> String {
    let text = m.text.replace('\\', "\\\\").replace('\n', "\\n");
    match &m.receiver_username {
        Some(r) => format!(
            "{} {} {} -> {r}: {text}",
            m.id, m.created_at, m.sender_username
        ),
        None => format!("{} {} {}: {text}", m.id, m.created_at, m.sender_username),
    }
}

/// Writes one line to stdout and flushes; `Err` when stdout is closed (a pipe's reader
/// went away), which callers treat as a clean end.
pub(super) fn out(line: &str) -> Result<(), ()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|_| ())
}

pub(super) fn json_line<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether stdout is a pipe whose reader has gone (so `tail` can stop even when no message
/// arrives to fail a write).
pub(super) fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
}
