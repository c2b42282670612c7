//! The message list: `HH:MM sender: text`, `HH:MM sender → receiver: text` for direct
//! messages, pending sends dimmed with the time they were typed and `⋯` (`HH:MM ⋯ sender:
//! text`; delivered, they show the server's time like any message), refused ones marked
//! `✗`, each wrapped to the width. Where the local date changes between two items (a
//! pending send is dated by when it was typed), a `── Tuesday 24 November 2026 ──` line
//! heads the later one, so times from another day are not taken for today's. It belongs to
//! that item's lines, so scrolling (which counts an item's lines) needs to know nothing of it.
//!
//! Only the items in view are wrapped each frame (see `scroll.rs` for the anchor): the cost
//! of a frame does not grow with the history.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::App;
use crate::scroll::Scroll;
use crate::timeline::Item;
use crate::ui::theme::Theme;
use crate::ui::wrap::wrap;

/// Width of the `HH:MM ` column, which continuation lines are indented by.
const TIME_COLUMNS: u16 = 6;

/// The wrapped lines of item `index` at `width`.
pub fn item_lines(app: &App, index: usize, width: u16) -> Vec<Line<'static>> {
    let theme = Theme { color: app.color };
    let Some(item) = app.timeline.get(index) else {
        return Vec::new();
    };
    let me = app.identity.as_ref().map(|u| u.key());
    match item {
        Item::Message(m) => {
            let local = m.created_at.as_datetime().with_timezone(&app.utc_offset);
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
            with_day_line(app, index, local.date_naive(), lines, width)
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
                .map(|t| t.as_datetime().with_timezone(&app.utc_offset));
            let column = typed.map_or_else(|| "  ".to_owned(), |t| t.format("%H:%M ").to_string());
            let (mark, style) = match &p.failed {
                None if typed.is_some() => ("⋯ ".to_owned(), theme.pending()),
                None => ("⋯   ".to_owned(), theme.pending()),
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
                Some(t) => with_day_line(app, index, t.date_naive(), lines, width),
                None => lines,
            }
        }
    }
}

/// The local day item `index` is dated by: a message's, or when a pending send was typed.
fn item_day(app: &App, index: usize) -> Option<chrono::NaiveDate> {
    let at = match app.timeline.get(index)? {
        Item::Message(m) => m.created_at,
        Item::Pending(p) => p.outgoing.typed_at?,
    };
    Some(at.as_datetime().with_timezone(&app.utc_offset).date_naive())
}

/// `lines` of item `index`, headed by a day line when its day is not the previous item's.
/// A send queued yesterday and listed after today's messages gets one too, so its time is
/// not read as today's.
fn with_day_line(
    app: &App,
    index: usize,
    day: chrono::NaiveDate,
    mut lines: Vec<Line<'static>>,
    width: u16,
) -> Vec<Line<'static>> {
    let previous = index.checked_sub(1).and_then(|i| item_day(app, i));
    if previous.is_some_and(|d| d != day) {
        lines.insert(0, day_line(day, width, Theme { color: app.color }));
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
pub fn item_height(app: &App, index: usize, width: u16) -> u16 {
    u16::try_from(item_lines(app, index, width).len()).unwrap_or(u16::MAX)
}

/// Draws the visible part of the message list into `area`.
pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    // Scrolled up, the bottom row is the "N new ↓ End" marker's own, so it never hides the
    // end of a message line; the line it would have covered is one Down away.
    let marked = app.scroll != Scroll::Bottom && area.height > 1;
    let height = usize::from(area.height - u16::from(marked));
    let mut lines: Vec<Line<'static>> = Vec::with_capacity(height + 8);
    match app.scroll {
        Scroll::Bottom => {
            // Walk up from the newest item until the view is full.
            let mut index = app.timeline.len();
            let mut chunks: Vec<Vec<Line<'static>>> = Vec::new();
            let mut total = 0;
            while index > 0 && total < height {
                index -= 1;
                let l = item_lines(app, index, area.width);
                total += l.len();
                chunks.push(l);
            }
            for chunk in chunks.into_iter().rev() {
                lines.extend(chunk);
            }
            let skip = lines.len().saturating_sub(height);
            lines.drain(..skip);
        }
        Scroll::At { item, line } => {
            let mut index = item;
            let mut skip = usize::from(line);
            while index < app.timeline.len() && lines.len() < height {
                let l = item_lines(app, index, area.width);
                lines.extend(l.into_iter().skip(skip));
                skip = 0;
                index += 1;
            }
            lines.truncate(height);
        }
    }
    if app.timeline.is_empty() {
        lines.push(Line::styled(
            "no messages yet: type one below and press Enter",
            theme.hint(),
        ));
    }
    frame.render_widget(Paragraph::new(lines), area);

    if app.scroll != Scroll::Bottom && area.height > 0 {
        // Right-aligned on the bottom row (reserved above unless the list is one row high).
        let label = if app.unseen > 0 {
            format!(" {} new ↓ End ", app.unseen)
        } else {
            " ↓ End ".to_owned()
        };
        let w = u16::try_from(unicode_width::UnicodeWidthStr::width(label.as_str()))
            .unwrap_or(0)
            .min(area.width);
        let marker = Rect::new(area.x + area.width - w, area.y + area.height - 1, w, 1);
        frame.render_widget(Paragraph::new(Span::styled(label, theme.marker())), marker);
    }
}
