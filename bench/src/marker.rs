//! The stamp every benchmark message carries in its text, and the cheap scan that finds it.
//!
//! `nb:PHASE:SENDER:TO:SEQ:SENT_US;` followed by padding. The receiver does not parse the
//! JSON envelope (natter's `chat_message` or the ceiling's verbatim echo): it looks for the
//! `nb:` prefix, which no username (no `:` allowed), timestamp or client id can contain, and
//! reads five integers. That keeps the load generator's cost per delivery small, since it
//! shares the CPU with the server it measures.

use std::sync::OnceLock;
use std::time::Instant;

/// Starts every stamp.
pub const PREFIX: &str = "nb:";

/// `to` for a message meant for everyone.
pub const TO_EVERYONE: u32 = u32::MAX;

/// What a benchmark message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// The measurement phase it was sent in; deliveries from older phases are ignored.
    pub phase: u32,
    /// Index of the sending connection.
    pub sender: u32,
    /// Index of the connection a direct message is meant for, or [`TO_EVERYONE`].
    pub to: u32,
    /// Per-sender sequence number.
    pub seq: u64,
    /// Send time in microseconds on the process clock ([`now_us`]).
    pub sent_us: u64,
}

impl Marker {
    /// The message text: the stamp, then `x` padding up to `text_bytes` (never truncated).
    pub fn text(&self, text_bytes: usize) -> String {
        let mut s = format!(
            "{PREFIX}{}:{}:{}:{}:{};",
            self.phase, self.sender, self.to, self.seq, self.sent_us
        );
        while s.len() < text_bytes {
            s.push('x');
        }
        s
    }

    /// Finds and parses the stamp anywhere in `frame`; `None` for frames without one
    /// (`ready`, `presence`, errors) or with a damaged one.
    pub fn find(frame: &str) -> Option<Marker> {
        let start = frame.find(PREFIX)? + PREFIX.len();
        let rest = &frame[start..];
        let end = rest.find(';')?;
        let mut fields = rest[..end].split(':');
        let mut next = || fields.next().and_then(|f| f.parse::<u64>().ok());
        let phase = u32::try_from(next()?).ok()?;
        let sender = u32::try_from(next()?).ok()?;
        let to = u32::try_from(next()?).ok()?;
        let seq = next()?;
        let sent_us = next()?;
        Some(Marker {
            phase,
            sender,
            to,
            seq,
            sent_us,
        })
    }
}

/// Microseconds since the first call in this process: the one clock senders stamp with and
/// receivers read, so send→receive latency needs no clock sync (everything is on one host).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Marker {
        Marker {
            phase: 3,
            sender: 17,
            to: TO_EVERYONE,
            seq: 123_456,
            sent_us: 987_654_321,
        }
    }

    /// A stamp survives being embedded in natter's JSON envelope.
    #[test]
    fn found_inside_a_chat_message_frame() {
        let text = sample().text(64);
        assert_eq!(text.len(), 64);
        let frame = format!(
            r#"{{"type":"chat_message","message":{{"id":9,"sender_username":"bu1","receiver_username":null,"text":"{text}","created_at":"2026-11-24T09:42:20.123Z","client_id":"c17-3-123456"}}}}"#
        );
        assert_eq!(Marker::find(&frame), Some(sample()));
    }

    /// A long stamp is never cut to fit the padding target.
    #[test]
    fn padding_never_truncates() {
        let text = sample().text(4);
        assert_eq!(Marker::find(&text), Some(sample()));
    }

    /// Frames without a stamp, or with a damaged one, are not deliveries.
    #[test]
    fn frames_without_a_stamp_are_ignored() {
        assert_eq!(
            Marker::find(r#"{"type":"ready","username":"a","last_id":null}"#),
            None
        );
        assert_eq!(Marker::find("nb:1:2:3;"), None);
        assert_eq!(Marker::find("nb:1:2:3:4:5"), None);
        assert_eq!(Marker::find("nb:1:x:3:4:5;"), None);
    }
}
