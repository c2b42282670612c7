//! Whether an outbox file changed since it was read, without reading it: the keeper asks
//! every second while the socket is live.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Where an outbox file stood when last read: the file itself, held open, and its length.
/// The log only grows, except when a compaction replaces it with a new file, so a different
/// file at the path or a different length means someone wrote. Holding the old file open
/// keeps its inode from being reused by the new one, which would hide a compaction.
#[derive(Debug, Default)]
pub struct Watch {
    pub(super) file: Option<File>,
    pub(super) len: u64,
}

impl Watch {
    /// Whether the file at `path` is not the one last read, or has grown since.
    pub fn changed(&self, path: &Path) -> bool {
        let now = std::fs::metadata(path).ok();
        match (&self.file, now) {
            (None, None) => false,
            (Some(held), Some(now)) => {
                held.metadata()
                    .is_ok_and(|h| h.dev() != now.dev() || h.ino() != now.ino())
                    || now.len() != self.len
            }
            _ => true,
        }
    }

    /// The file was at `len_before` and we appended up to `len_after` on `file`: if that was
    /// the file last read and nobody had written since, we know it still.
    pub(super) fn appended(&mut self, file: &File, len_before: u64, len_after: u64) {
        let same = match &self.file {
            Some(held) => match (held.metadata(), file.metadata()) {
                (Ok(h), Ok(f)) => h.dev() == f.dev() && h.ino() == f.ino(),
                _ => false,
            },
            None => self.len == 0 && len_before == 0,
        };
        if same && self.len == len_before {
            if self.file.is_none() {
                self.file = file.try_clone().ok();
            }
            self.len = len_after;
        }
    }
}
