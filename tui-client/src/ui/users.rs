//! The column of users online, beside the messages on wide terminals (from `presence`
//! frames and the user list).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::app::App;
use crate::theme::Theme;

/// Draws the column.
pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    let online: Vec<Line<'_>> = app
        .online_users()
        .map(|u| {
            Line::from(vec![
                Span::styled("● ", theme.online()),
                Span::raw(u.as_str()),
            ])
        })
        .collect();
    let title = format!(" online ({}) ", online.len());
    let block = Block::new()
        .borders(Borders::LEFT)
        .title(title)
        .border_style(theme.hint());
    frame.render_widget(Paragraph::new(online).block(block), area);
}
