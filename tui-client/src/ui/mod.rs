//! Drawing the chat screen from an [`App`]: `render(&App, &mut Frame)`, nothing else.
//!
//! Layout, top to bottom: the top bar with the connection badge (`topbar`), the message
//! list (`timeline`) with the online users beside it when the terminal is wide (`users`),
//! the status line (more than one row for a long error) and the Name / Send to fields
//! (`fields`), the message box, which grows with what is typed (`input_box`), and the help
//! over everything when asked (`help`). Styles come from `theme` only.

pub mod fields;
pub mod help;
pub mod input_box;
pub mod theme;
pub mod timeline;
pub mod topbar;
pub mod users;
pub mod wrap;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::app::App;

/// Terminals at least this wide show the users beside the messages.
pub const USERS_MIN_WIDTH: u16 = 90;
/// Rows the message list keeps when a long status line or a long message wants more.
const MIN_LIST_ROWS: u16 = 3;
/// Width of the users column, its border included.
pub const USERS_WIDTH: u16 = 20;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Server, user, badge.
    pub top: Rect,
    /// The message list.
    pub timeline: Rect,
    /// The online users, when wide enough.
    pub users: Option<Rect>,
    /// Errors and hints.
    pub status: Rect,
    /// Name and Send to.
    pub fields: Rect,
    /// The message input, with its border.
    pub input: Rect,
}

/// Splits `area` into the screen's parts.
pub fn layout(app: &App, area: Rect) -> Areas {
    let row = |y: u16, h: u16| Rect::new(area.x, area.y + y, area.width, h);
    let h = area.height;
    // A long message (first: it is what is being written) and then a long status take rows
    // from the message list (never below MIN_LIST_ROWS), never from the fields.
    let spare = h.saturating_sub(1 + 1 + 1 + 3 + MIN_LIST_ROWS);
    let input_h = input_box::height(app, area.width).min(3 + spare).min(h);
    let spare = spare.saturating_sub(input_h.saturating_sub(3));
    let status_rows = u16::try_from(fields::status_lines(app, area.width).len())
        .unwrap_or(1)
        .clamp(1, fields::MAX_STATUS_ROWS)
        .min(1 + spare);
    let fixed = 1 + status_rows + 1 + input_h;
    let main_h = h.saturating_sub(fixed);
    let top = row(0, 1.min(h));
    let main = row(1.min(h), main_h);
    let status_y = (1 + main_h).min(h);
    let status = row(status_y, status_rows.min(h - status_y));
    let fields_y = (status_y + status_rows).min(h);
    let fields = row(fields_y, 1.min(h - fields_y));
    let input_y = (fields_y + 1).min(h);
    let input = row(input_y, input_h.min(h - input_y));
    let (timeline, users) = if area.width >= USERS_MIN_WIDTH {
        let tw = area.width - USERS_WIDTH;
        (
            Rect::new(main.x, main.y, tw, main.height),
            Some(Rect::new(main.x + tw, main.y, USERS_WIDTH, main.height)),
        )
    } else {
        (main, None)
    };
    Areas {
        top,
        timeline,
        users,
        status,
        fields,
        input,
    }
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let areas = layout(app, frame.area());
    topbar::render(app, frame, areas.top);
    timeline::render(app, frame, areas.timeline);
    if let Some(area) = areas.users {
        users::render(app, frame, area);
    }
    fields::render_status(app, frame, areas.status);
    fields::render_fields(app, frame, areas.fields);
    input_box::render(app, frame, areas.input);
    if app.show_help {
        help::render(app, frame, frame.area());
    }
}
