//! Every style the screen uses, in one place, so `NO_COLOR` is honoured everywhere: without
//! colour, distinctions fall back to bold, italic, dim and reverse video.

use ratatui::style::{Color, Modifier, Style};

use crate::msg::Link;

/// The palette, with or without colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Whether colours may be used.
    pub color: bool,
}

impl Theme {
    fn pick(self, colored: Style, plain: Style) -> Style {
        if self.color { colored } else { plain }
    }

    /// The top bar.
    pub fn bar(self) -> Style {
        self.pick(
            Style::new().bg(Color::DarkGray).fg(Color::White),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }

    /// The connection badge.
    pub fn badge(self, link: Link) -> Style {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        if !self.color {
            return match link {
                Link::Live => bold,
                _ => bold.add_modifier(Modifier::REVERSED),
            };
        }
        let bg = match link {
            Link::Live => Color::Green,
            Link::Connecting | Link::Reconnecting => Color::Yellow,
            Link::Fallback => Color::Cyan,
            Link::Offline => Color::Red,
            Link::Idle => Color::Gray,
        };
        bold.bg(bg).fg(Color::Black)
    }

    /// A message's time.
    pub fn time(self) -> Style {
        self.pick(Style::new().fg(Color::DarkGray), Style::new())
    }

    /// The sender of somebody else's message.
    pub fn sender(self) -> Style {
        self.pick(
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// Your own name on your messages.
    pub fn own(self) -> Style {
        self.pick(
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
        )
    }

    /// The `→ receiver` part and text of a direct message.
    pub fn direct(self) -> Style {
        self.pick(
            Style::new().fg(Color::Magenta),
            Style::new().add_modifier(Modifier::ITALIC),
        )
    }

    /// Text of a message not yet confirmed.
    pub fn pending(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// A send the server refused.
    pub fn failed(self) -> Style {
        self.pick(
            Style::new().fg(Color::Red),
            Style::new().add_modifier(Modifier::CROSSED_OUT),
        )
    }

    /// The status line when it reports a problem.
    pub fn error(self) -> Style {
        self.pick(
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// Hints and other quiet text.
    pub fn hint(self) -> Style {
        self.pick(
            Style::new().fg(Color::DarkGray),
            Style::new().add_modifier(Modifier::DIM),
        )
    }

    /// The border or label of the focused field.
    pub fn focused(self) -> Style {
        self.pick(
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            Style::new().add_modifier(Modifier::BOLD),
        )
    }

    /// An online user in the side list.
    pub fn online(self) -> Style {
        self.pick(Style::new().fg(Color::Green), Style::new())
    }

    /// The "N new ↓" marker.
    pub fn marker(self) -> Style {
        self.pick(
            Style::new().bg(Color::Yellow).fg(Color::Black),
            Style::new().add_modifier(Modifier::REVERSED),
        )
    }
}
