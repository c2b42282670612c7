//! The outbox file's format: an append-only log, one JSON record per line.
//!
//! - `{"op":"add","client_id":…,"receiver":…,"text":…,"typed_at":…}`: a message queued.
//! - `{"op":"done","client_id":…}`: the server answered for it (stored, or refused for
//!   good); it is no longer waiting.
//!
//! Replaying the records in order gives the waiting messages, in the order first queued: an
//! `add` of a client_id already waiting changes nothing, a `done` removes it, an `add` after
//! its `done` queues it again (a `natter send` that lost sight of its own message asks
//! again, see `cli/send.rs`).
//!
//! A record counts only once its line is whole, ending in `\n`: what follows the last `\n`
//! is a record torn by a crash in the middle of an append. It is ignored, never misread,
//! even when it happens to be valid JSON: its writer never said it was written. A line that
//! is whole but not a record (a hand edit, a damaged disk) is kept, never sent.
//!
//! A line without `"op"` is a record of the format before the log (one JSON object per
//! waiting message, the file rewritten at every change): it reads as an `add`, so an old
//! outbox is a log already; the first compaction rewrites it (see [`super::Outbox`]).

use natter_shared::ClientId;
use serde::{Deserialize, Serialize};

use super::Outgoing;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Record {
    /// A message queued.
    Add(Outgoing),
    /// The server answered for this send.
    Done {
        /// Which send.
        client_id: ClientId,
    },
}

impl Record {
    /// The record as one line, `\n` included.
    pub fn line(&self) -> String {
        // Serializing these plain types cannot fail (no maps with non-string keys, no
        // floats); a failure would be a bug, and an empty line is skipped by replay.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// What replaying a log gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The waiting messages, in the order first queued.
    pub live: Vec<Outgoing>,
    /// Whole lines that are not records, in file order: kept, never sent.
    pub unreadable: Vec<String>,
    /// Lines that no longer say anything (`done` records, the `add`s they answered,
    /// repeated `add`s): what a compaction would drop.
    pub dead: usize,
    /// Lines in the format before the log.
    pub legacy: usize,
    /// Bytes of whole lines: where a torn last record (if any) begins.
    pub whole: usize,
}

impl Replay {
    /// Whether rewriting the file would be worth it: more dead lines than live ones (and
    /// enough of them to matter), or lines in the old format.
    pub fn compaction_due(&self, min_dead: usize) -> bool {
        self.legacy > 0 || (self.dead >= min_dead && self.dead > self.live.len())
    }
}

/// Replays `bytes`, a whole outbox file.
pub fn replay(bytes: &[u8]) -> Replay {
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Replay {
        whole,
        ..Replay::default()
    };
    for raw in bytes[..whole].split(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(raw) else {
            out.unreadable
                .push(String::from_utf8_lossy(raw).into_owned());
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse(line) {
            Some((Record::Add(o), legacy)) => {
                out.legacy += usize::from(legacy);
                if out.live.iter().any(|l| l.client_id == o.client_id) {
                    out.dead += 1;
                } else {
                    out.live.push(o);
                }
            }
            Some((Record::Done { client_id }, _)) => {
                let before = out.live.len();
                out.live.retain(|l| l.client_id != client_id);
                out.dead += 1 + (before - out.live.len());
            }
            None => out.unreadable.push(line.to_owned()),
        }
    }
    out
}

/// One whole line as a record, and whether it is in the old format.
fn parse(line: &str) -> Option<(Record, bool)> {
    if let Ok(record) = serde_json::from_str::<Record>(line) {
        return Some((record, false));
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("op").is_some() {
        return None; // a record of a kind this version does not know: kept, not guessed at
    }
    serde_json::from_value::<Outgoing>(value)
        .ok()
        .map(|o| (Record::Add(o), true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_shared::{Timestamp, Username};

    fn add(id: &str, text: &str) -> Record {
        Record::Add(Outgoing {
            client_id: ClientId::parse(id).unwrap(),
            receiver: id
                .len()
                .is_multiple_of(2)
                .then(|| Username::parse("bob").unwrap()),
            text: text.to_owned(),
            typed_at: Some(Timestamp::from_unix_millis(1_795_512_120_000)),
        })
    }

    fn done(id: &str) -> Record {
        Record::Done {
            client_id: ClientId::parse(id).unwrap(),
        }
    }

    fn ids(r: &Replay) -> Vec<&str> {
        r.live.iter().map(|o| o.client_id.as_str()).collect()
    }

    /// The waiting messages after the first `n` records, by the rules written out plainly.
    fn expected(records: &[Record], n: usize) -> Vec<String> {
        let mut live: Vec<String> = Vec::new();
        for r in &records[..n] {
            match r {
                Record::Add(o) if !live.contains(&o.client_id.to_string()) => {
                    live.push(o.client_id.to_string());
                }
                Record::Add(_) => {}
                Record::Done { client_id } => live.retain(|l| l != client_id.as_str()),
            }
        }
        live
    }

    /// A crash can stop an append after any byte. Cut the log at every byte: the replay is
    /// exactly that of the records whose line is whole, the cut one is ignored (even where
    /// what is left of it is valid JSON), and nothing is counted unreadable.
    #[test]
    fn a_log_cut_anywhere_replays_its_whole_records_only() {
        let records = vec![
            add("a", "one"),
            add("bb", "two, with \"quotes\" and ünïcode ✓"),
            done("a"),
            add("c", "three\nlines\n"),
            add("bb", "two again"),
            done("bb"),
            add("a", "one, asked again"),
            done("zz"),
        ];
        let lines: Vec<String> = records.iter().map(Record::line).collect();
        let log = lines.concat();
        let mut ends = Vec::new();
        let mut at = 0;
        for l in &lines {
            at += l.len();
            ends.push(at);
        }
        for cut in 0..=log.len() {
            let r = replay(&log.as_bytes()[..cut]);
            let whole_records = ends.iter().filter(|e| **e <= cut).count();
            assert_eq!(
                ids(&r),
                expected(&records, whole_records),
                "cut at byte {cut}"
            );
            assert!(
                r.unreadable.is_empty(),
                "cut at byte {cut}: {:?}",
                r.unreadable
            );
            assert_eq!(
                r.whole,
                if whole_records == 0 {
                    0
                } else {
                    ends[whole_records - 1]
                }
            );
        }
        let full = replay(log.as_bytes());
        assert_eq!(ids(&full), ["c", "a"]);
        assert_eq!(full.live[1].text, "one, asked again");
        assert_eq!(full.live[0].text, "three\nlines\n");
        // done a + its add, repeated add bb, done bb + its add, done zz.
        assert_eq!(full.dead, 6);
    }

    /// A torn record that is valid JSON on its own (only the `\n` is missing) still does
    /// not count.
    #[test]
    fn a_complete_record_without_its_newline_is_torn() {
        let mut log = add("a", "one").line();
        log.push_str(done("a").line().trim_end());
        assert_eq!(ids(&replay(log.as_bytes())), ["a"]);
    }

    #[test]
    fn old_records_read_as_adds_and_ask_for_a_rewrite() {
        let log = "{\"client_id\":\"old\",\"receiver\":null,\"text\":\"from before\"}\n";
        let r = replay(log.as_bytes());
        assert_eq!(ids(&r), ["old"]);
        assert_eq!((r.legacy, r.live[0].typed_at), (1, None));
        assert!(r.compaction_due(100));
    }

    #[test]
    fn lines_that_are_not_records_are_kept_apart() {
        let log = format!(
            "{}{}\n{}\n{}",
            add("a", "one").line(),
            "{\"client_id\":\"x\",\"text\": oops",
            "{\"op\":\"pin\",\"client_id\":\"a\"}",
            done("a").line()
        );
        let r = replay(log.as_bytes());
        assert!(r.live.is_empty());
        assert_eq!(r.unreadable.len(), 2);
    }

    #[test]
    fn compaction_is_due_when_dead_lines_outnumber_live_ones() {
        let mut log = String::new();
        for i in 0..10 {
            log.push_str(&add(&format!("m{i}"), "x").line());
            log.push_str(&done(&format!("m{i}")).line());
        }
        log.push_str(&add("last", "x").line());
        let r = replay(log.as_bytes());
        assert_eq!((r.live.len(), r.dead), (1, 20));
        assert!(r.compaction_due(16));
        assert!(!r.compaction_due(32), "too few to be worth a rewrite");
    }
}
