//! Drawing the message list: the items in view (their lines come from `measure::items`,
//! which scrolling counts by too), and the "N new ↓ End" marker while scrolled up.
//!
//! Only the items in view are wrapped each frame (see `app/scroll.rs` for the anchor): the
//! cost of a frame does not grow with the history.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::{App, Scroll};
use crate::theme::Theme;

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
                let l = app.item_lines(index, area.width);
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
                let l = app.item_lines(index, area.width);
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
