//! The message list's items as lines: `HH:MM sender: text`, `HH:MM sender → receiver:
//! text` for direct messages, pending sends dimmed with the time they were typed and `⋯`
//! (`HH:MM ⋯ sender: text`; `◌` in its place until the send is on disk; delivered, they
//! show the server's time like any message),
//! refused ones marked `✗`, each wrapped to the width. Where the local date changes between
//! two items (a pending send is dated by when it was typed), a `── Tuesday 24 November 2026
//! ──` line heads the later one, so times from another day are not taken for today's. It
//! belongs to that item's lines, so scrolling (which counts an item's lines) needs to know
//! nothing of it.
//!
//! One function makes the lines that are drawn and the count that scrolling walks by, so
//! the two cannot disagree.

use chrono::FixedOffset;
use natter_shared::Username;
use ratatui::style::Style;
use ratatui::text::Line;

use super::wrap::wrap;
use crate::theme::Theme;
use crate::timeline::{Item, Timeline};

/// What an item's lines depend on besides the item: the rest of the timeline (the day line
/// looks at the item before), who "me" is, colour and the local time zone.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    /// The items.
    pub timeline: &'a Timeline,
    /// The identity, whose messages are styled as one's own.
    pub me: Option<&'a Username>,
    /// Whether colours may be used.
    pub color: bool,
    /// The local time zone.
    pub utc_offset: FixedOffset,
}

/// Width of the `HH:MM ` column, which continuation lines are indented by.
const TIME_COLUMNS: u16 = 6;

/// The wrapped lines of item `index` at `width`.
pub fn item_lines(view: &ItemView<'_>, index: usize, width: u16) -> Vec<Line<'static>> {
    let theme = Theme { color: view.color };
    let Some(item) = view.timeline.get(index) else {
        return Vec::new();
    };
    let me = view.me.map(Username::key);
    match item {
        Item::Message(m) => {
            let local = m.created_at.as_datetime().with_timezone(&view.utc_offset);
            let time = local.format("%H:%M ").to_string();
            let is_mine = me.as_deref() == Some(m.sender_username.key().as_str());
            let sender_style = if is_mine { theme.own() } else { theme.sender() };
            let text_style = if m.is_direct() {
                theme.direct()
            } else {
                Style::new()
            };
            let receiver = m
                .receiver_username
                .as_ref()
                .map(|r| format!(" → {r}"))
                .unwrap_or_default();
            let lines = wrap(
                &[
                    (&time, theme.time()),
                    (m.sender_username.as_str(), sender_style),
                    (&receiver, theme.direct()),
                    (": ", Style::new()),
                    (&m.text, text_style),
                ],
                width,
                TIME_COLUMNS,
            );
            with_day_line(view, index, local.date_naive(), lines, width)
        }
        Item::Pending(p) => {
            let receiver = p
                .outgoing
                .receiver
                .as_ref()
                .map(|r| format!(" → {r}"))
                .unwrap_or_default();
            // In the time column, when it was typed (dimmed like the rest, and followed by
            // the mark, so it is not taken for a delivery time); a record from before natter
            // kept that has only the mark.
            let typed = p
                .outgoing
                .typed_at
                .map(|t| t.as_datetime().with_timezone(&view.utc_offset));
            let column = typed.map_or_else(|| "  ".to_owned(), |t| t.format("%H:%M ").to_string());
            // `⋯` once it is on disk in the outbox, `◌` for the moment before.
            let waits = if p.saved { "⋯" } else { "◌" };
            let (mark, style) = match &p.failed {
                None if typed.is_some() => (format!("{waits} "), theme.pending()),
                None => (format!("{waits}   "), theme.pending()),
                Some(reason) if typed.is_some() => {
                    (format!("✗ [not sent: {reason}] "), theme.failed())
                }
                Some(reason) => (format!("✗   [not sent: {reason}] "), theme.failed()),
            };
            let header = format!("{}{receiver}: ", p.sender);
            let lines = wrap(
                &[
                    (&column, style),
                    (&mark, style),
                    (&header, style),
                    (&p.outgoing.text, style),
                ],
                width,
                TIME_COLUMNS,
            );
            match typed {
                Some(t) => with_day_line(view, index, t.date_naive(), lines, width),
                None => lines,
            }
        }
    }
}

/// The local day item `index` is dated by: a message's, or when a pending send was typed.
fn item_day(view: &ItemView<'_>, index: usize) -> Option<chrono::NaiveDate> {
    let at = match view.timeline.get(index)? {
        Item::Message(m) => m.created_at,
        Item::Pending(p) => p.outgoing.typed_at?,
    };
    Some(
        at.as_datetime()
            .with_timezone(&view.utc_offset)
            .date_naive(),
    )
}

/// `lines` of item `index`, headed by a day line when its day is not the previous item's.
/// A send queued yesterday and listed after today's messages gets one too, so its time is
/// not read as today's.
fn with_day_line(
    view: &ItemView<'_>,
    index: usize,
    day: chrono::NaiveDate,
    mut lines: Vec<Line<'static>>,
    width: u16,
) -> Vec<Line<'static>> {
    let previous = index.checked_sub(1).and_then(|i| item_day(view, i));
    if previous.is_some_and(|d| d != day) {
        lines.insert(0, day_line(day, width, Theme { color: view.color }));
    }
    lines
}

/// `── Tuesday 24 November 2026 ───…` across `width` columns.
fn day_line(day: chrono::NaiveDate, width: u16, theme: Theme) -> Line<'static> {
    let mut text = format!("── {} ", day.format("%A %-d %B %Y"));
    let width = usize::from(width);
    // ASCII and box-drawing characters only: one column each.
    let used = text.chars().count();
    if used < width {
        text.extend(std::iter::repeat_n('─', width - used));
    } else {
        text = text.chars().take(width).collect();
    }
    Line::styled(text, theme.time())
}

/// How many rows item `index` takes at `width`.
pub fn item_height(view: &ItemView<'_>, index: usize, width: u16) -> u16 {
    u16::try_from(item_lines(view, index, width).len()).unwrap_or(u16::MAX)
}
