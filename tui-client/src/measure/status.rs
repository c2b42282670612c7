//! The status line's rows: the last error or notice, else a hint, wrapped to the width.

use ratatui::text::Line;

use super::wrap::wrap;
use crate::theme::Theme;

/// How a status line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// Information.
    Info,
    /// Something went wrong.
    Error,
}

/// Most rows the status line may take from the message list.
pub const MAX_STATUS_ROWS: u16 = 3;

/// The status line's rows at `width`: the last error or notice, else a hint. A status wider
/// than the terminal wraps (indented under its start) instead of being cut at the edge,
/// since the end is usually what to do about it; past [`MAX_STATUS_ROWS`] the first row and
/// the last ones are kept, dropping detail from the middle.
pub fn status_lines(
    status: Option<&(StatusKind, String)>,
    color: bool,
    width: u16,
) -> Vec<Line<'static>> {
    let theme = Theme { color };
    let (prefix, text, style) = match status {
        Some((StatusKind::Error, text)) => (" ! ", text.as_str(), theme.error()),
        Some((StatusKind::Info, text)) => (" ", text.as_str(), theme.hint()),
        // The hint is one row even when narrow: its start says where the rest is (F1).
        None => {
            return vec![Line::styled(
                " F1 help · Tab next field · PgUp/PgDn scroll · Ctrl-C quit",
                theme.hint(),
            )];
        }
    };
    let indent = u16::try_from(prefix.len()).unwrap_or(0);
    let mut lines = wrap(&[(prefix, style), (text, style)], width, indent);
    let max = usize::from(MAX_STATUS_ROWS);
    if lines.len() > max {
        let tail = lines.split_off(lines.len() - (max - 1));
        lines.truncate(1);
        lines.extend(tail);
    }
    lines
}
