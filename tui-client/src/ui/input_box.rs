//! The message input box (and the password prompt, which takes its place): the text being
//! typed, wrapped at spaces into as many rows as it needs, up to [`MAX_ROWS`](crate::measure::input::MAX_ROWS), so what is
//! sent is what is seen; the layout takes those rows from the message list. Past
//! [`MAX_ROWS`](crate::measure::input::MAX_ROWS) the box shows the rows around the cursor and says on its bottom edge how
//! many are hidden above and below. A newline (Alt-Enter, a pasted line break) starts a
//! row.
//!
//! Measuring (`measure::input`) is apart from drawing so that the layout (and through it
//! the scroll code) and the screen agree on the box's size.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::app::{App, Focus};
use crate::measure::input::wrap_input;
use crate::theme::Theme;

/// Draws the box into `area` (as tall as the layout could make it), scrolled so that the
/// cursor's row is in view: the first rows while it is among them, else with the cursor
/// on the bottom row.
pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    let focused = app.focus == Focus::Message;
    let (input, mask) = app.boxed_field();
    let title = match &app.prompt {
        Some(user) => format!(" Password for {user} (Enter logs in, Esc cancels) "),
        None => {
            let to = app.to.text().trim();
            let to = if to.is_empty() { "everyone" } else { to };
            format!(" Message to {to} ")
        }
    };
    let mut block = Block::new()
        .borders(Borders::ALL)
        .title(title)
        .border_style(if focused {
            theme.focused()
        } else {
            theme.hint()
        });
    let inner = block.inner(area);
    let wrapped = wrap_input(input, inner.width, mask);
    let shown = usize::from(inner.height.max(1));
    let top = (wrapped.cursor_row + 1).saturating_sub(shown);
    let above = top;
    let below = wrapped.rows.len().saturating_sub(top + shown);
    let hidden = match (above, below) {
        (0, 0) => None,
        (a, 0) => Some(format!(" {a} more ↑ ")),
        (0, b) => Some(format!(" {b} more ↓ ")),
        (a, b) => Some(format!(" {a} more ↑ · {b} more ↓ ")),
    };
    if let Some(hidden) = hidden {
        block = block.title_bottom(Line::from(hidden).right_aligned());
    }
    let lines: Vec<Line<'_>> = wrapped
        .rows
        .iter()
        .skip(top)
        .take(shown)
        .map(|r| Line::raw(r.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
    if focused && !app.show_help && inner.height > 0 {
        let row = u16::try_from(wrapped.cursor_row - top).unwrap_or(0);
        frame.set_cursor_position(Position::new(
            inner.x + wrapped.cursor_col.min(inner.width.saturating_sub(1)),
            inner.y + row,
        ));
    }
}
