//! The help screen (F1 or `/help`): key bindings and slash commands.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::app::App;
use crate::app::commands::COMMANDS;
use crate::theme::Theme;

/// Key bindings, for the help screen and the docs.
pub const KEYS: &[(&str, &str)] = &[
    ("Enter", "send / commit the field"),
    ("Tab, Shift-Tab", "next / previous field"),
    ("Tab in Send to", "complete a username"),
    ("Up Down", "earlier / later sent lines"),
    ("PgUp PgDn Home End", "scroll the messages (or the wheel)"),
    ("Ctrl-A Ctrl-E", "start / end of the field"),
    ("Ctrl-W Ctrl-U", "delete word / to start"),
    ("Alt-Enter", "new line in the message"),
    ("F1", "this help"),
    ("Esc", "close help, clear status"),
    ("Ctrl-C", "quit"),
];

/// Draws the help centred over `area`.
pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::styled("Keys", bold)];
    for (k, what) in KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!(" {k:<19}"), theme.focused()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::styled("Commands", bold));
    for (c, what) in COMMANDS {
        lines.push(Line::from(vec![
            Span::styled(format!(" {c:<19}"), theme.focused()),
            Span::raw(*what),
        ]));
    }
    let width = 58.min(area.width);
    let height = (u16::try_from(lines.len()).unwrap_or(u16::MAX) + 2).min(area.height);
    let popup = Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    );
    let block = Block::new()
        .borders(Borders::ALL)
        .title(" natter help · Esc closes ");
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
