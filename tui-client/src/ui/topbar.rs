//! The top bar: who you are, on which server, how many sends wait, and the connection
//! badge (LIVE, CONNECTING, RECONNECTING in Ns, FALLBACK, OFFLINE).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_width::UnicodeWidthStr;

use crate::app::App;
use crate::msg::Link;
use crate::theme::Theme;

/// The badge's text, e.g. `RECONNECTING in 3s`.
pub fn badge_text(app: &App) -> String {
    let secs = app.retry_secs();
    let label = app.link.label();
    match (app.link, secs) {
        (Link::Connecting | Link::Reconnecting | Link::Offline, Some(s)) if s > 0 => {
            format!("{label} in {s}s")
        }
        (Link::Fallback, Some(s)) if s > 0 => format!("{label} · socket in {s}s"),
        (Link::Connecting | Link::Reconnecting, _) => format!("{label}…"),
        _ => label.to_owned(),
    }
}

/// Draws the bar.
pub fn render(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let theme = Theme { color: app.color };
    let who = app
        .identity
        .as_ref()
        .map_or_else(|| "(no name)".to_owned(), ToString::to_string);
    let left = format!(" natter · {who} @ {}", app.server);
    let badge = format!(" {} ", badge_text(app));
    let waiting = app.timeline.queued();
    let queued = if waiting > 0 {
        format!("{waiting} queued ")
    } else {
        String::new()
    };
    let used = left.width() + queued.width() + badge.width();
    let gap = usize::from(area.width).saturating_sub(used);
    let line = Line::from(vec![
        Span::raw(left),
        Span::raw(" ".repeat(gap)),
        Span::styled(queued, theme.bar()),
        Span::styled(badge, theme.badge(app.link)),
    ]);
    frame.render_widget(Paragraph::new(line).style(theme.bar()), area);
}
