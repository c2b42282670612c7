//! Above the message box (`input_box`): the status line (one row, more for a long error)
//! and the one-line Name and Send to fields. The focused field gets the terminal cursor.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthChar;

use crate::app::{App, Focus};
use crate::input::TextInput;
use crate::theme::Theme;

/// Width of the Name and Send to boxes.
const FIELD_WIDTH: u16 = 18;

/// The part of `input` that fits in `width` columns with the cursor in view, and the
/// cursor's column. Newlines show as `↵`; `mask` shows every character as `•`.
pub fn visible(input: &TextInput, width: u16, mask: bool) -> (String, u16) {
    let width = usize::from(width.max(1));
    let cells: Vec<(char, usize)> = input
        .text()
        .chars()
        .map(|c| {
            let c = match c {
                _ if mask => '•',
                '\n' => '↵',
                '\t' => ' ',
                c if c.is_control() => '?',
                c => c,
            };
            (c, c.width().unwrap_or(0))
        })
        .collect();
    let cursor = input.cursor().min(cells.len());
    // Scroll so the cursor (and the cell it sits on) stays visible.
    let mut start = 0;
    let upto = |s: usize| cells[s..cursor].iter().map(|(_, w)| w).sum::<usize>();
    while start < cursor && upto(start) + 1 > width {
        start += 1;
    }
    let mut shown = String::new();
    let mut used = 0;
    for (c, w) in &cells[start..] {
        if used + w > width {
            break;
        }
        shown.push(*c);
        used += w;
    }
    (shown, u16::try_from(upto(start)).unwrap_or(0))
}

/// Draws the status line (see [`crate::measure::status`]) into `area`.
pub fn render_status(app: &App, frame: &mut Frame<'_>, area: Rect) {
    frame.render_widget(Paragraph::new(app.status_lines(area.width)), area);
}

fn field_style(theme: Theme, focused: bool) -> Style {
    if focused {
        Style::new().add_modifier(Modifier::UNDERLINED)
    } else {
        theme.hint().add_modifier(Modifier::UNDERLINED)
    }
}

/// The `Name: [...]  Send to: [...]` line.
pub fn render_fields(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    let label = |text: &'static str, focused: bool| {
        if focused {
            Span::styled(text, theme.focused())
        } else {
            Span::raw(text)
        }
    };
    let name_focus = app.focus == Focus::Name;
    let to_focus = app.focus == Focus::SendTo;
    let (name, name_cursor) = visible(&app.name, FIELD_WIDTH, false);
    let (to, to_cursor) = visible(&app.to, FIELD_WIDTH, false);
    let pad = |s: &str| {
        let w = unicode_width::UnicodeWidthStr::width(s);
        format!(
            "{s}{}",
            " ".repeat(usize::from(FIELD_WIDTH).saturating_sub(w))
        )
    };
    let to_shown = if to.is_empty() && !to_focus {
        Span::styled(
            pad("everyone"),
            field_style(theme, false).add_modifier(Modifier::ITALIC),
        )
    } else {
        Span::styled(pad(&to), field_style(theme, to_focus))
    };
    let line = Line::from(vec![
        label(" Name: ", name_focus),
        // A name typed but not applied (Enter applies it) is set apart from the one in use.
        Span::styled(
            pad(&name),
            if app.name_is_pending() && !name_focus {
                field_style(theme, false).add_modifier(Modifier::ITALIC)
            } else {
                field_style(theme, name_focus)
            },
        ),
        label("  Send to: ", to_focus),
        to_shown,
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let name_x = area.x + 7;
    let to_x = name_x + FIELD_WIDTH + 11;
    let cursor = match app.focus {
        Focus::Name => Some(name_x + name_cursor),
        Focus::SendTo => Some(to_x + to_cursor),
        Focus::Message => None,
    };
    if let Some(x) = cursor
        && x < area.x + area.width
        && !app.show_help
    {
        frame.set_cursor_position(Position::new(x, area.y));
    }
}
