//! Up/Down in the message field: what was sent before, newest first, as irssi and weechat
//! do. Only what left the message field is kept (messages and slash commands, never a
//! password), for this run only, the last 100 of them.
//!
//! Browsing starts from the line being typed (the draft) and Down past the newest entry
//! brings the draft back, so looking up an old line never loses a new one.

/// Lines kept.
const KEEP: usize = 100;

/// Sent lines and where browsing is.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    sent: Vec<String>,
    /// The entry shown, while browsing.
    at: Option<usize>,
    /// What the field held when browsing started.
    draft: String,
}

impl Recall {
    /// Remembers a line that was sent, and ends browsing. A repeat of the newest is kept once.
    pub fn sent(&mut self, line: &str) {
        self.at = None;
        self.draft.clear();
        if line.trim().is_empty() || self.sent.last().is_some_and(|l| l == line) {
            return;
        }
        if self.sent.len() == KEEP {
            self.sent.remove(0);
        }
        self.sent.push(line.to_owned());
    }

    /// The entry before the one shown (Up), given what the field holds now; `None` when
    /// there is nothing older.
    pub fn older(&mut self, field: &str) -> Option<&str> {
        let index = match self.at {
            None => {
                self.draft = field.to_owned();
                self.sent.len().checked_sub(1)?
            }
            Some(i) => i.checked_sub(1)?,
        };
        self.at = Some(index);
        self.sent.get(index).map(String::as_str)
    }

    /// The entry after the one shown (Down), or the draft past the newest; `None` when not
    /// browsing.
    pub fn newer(&mut self) -> Option<&str> {
        let i = self.at?;
        if i + 1 < self.sent.len() {
            self.at = Some(i + 1);
            self.sent.get(i + 1).map(String::as_str)
        } else {
            self.at = None;
            Some(&self.draft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_and_down_walk_the_sent_lines_and_return_to_the_draft() {
        let mut r = Recall::default();
        assert_eq!(r.older("typing"), None, "nothing sent yet");
        for line in ["one", "two", "two", "three"] {
            r.sent(line);
        }
        assert_eq!(
            r.older("draft").map(str::to_owned).as_deref(),
            Some("three")
        );
        assert_eq!(r.older("three").map(str::to_owned).as_deref(), Some("two"));
        assert_eq!(r.older("two").map(str::to_owned).as_deref(), Some("one"));
        assert_eq!(r.older("one"), None, "no further back");
        assert_eq!(r.newer().map(str::to_owned).as_deref(), Some("two"));
        assert_eq!(r.newer().map(str::to_owned).as_deref(), Some("three"));
        assert_eq!(r.newer().map(str::to_owned).as_deref(), Some("draft"));
        assert_eq!(r.newer(), None, "not browsing any more");
    }

    #[test]
    fn keeps_the_last_hundred() {
        let mut r = Recall::default();
        for i in 0..150 {
            r.sent(&format!("line {i}"));
        }
        let mut oldest = String::new();
        while let Some(l) = r.older("") {
            oldest = l.to_owned();
        }
        assert_eq!(oldest, "line 50");
    }
}
