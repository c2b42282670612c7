//! Measuring the chat screen, for the model and the view alike: where each part of the
//! screen goes at a size ([`layout`]), how many rows an item of the message list takes at
//! a width ([`items`]), the message box's rows ([`input`]) and the status line's
//! ([`status`]). A leaf: it knows model types (the timeline, a text field) and ratatui's
//! geometry and text, never `App` or the widgets, so imports run one way (ui → app →
//! measure) and scrolling and drawing count the same lines.
//!
//! - [`wrap`]: word wrapping by display width, used by all of the above.

pub mod input;
pub mod items;
pub mod status;
pub mod wrap;

use ratatui::layout::Rect;

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

/// Splits `area` into the screen's parts, given the rows the message box wants (its
/// borders included, see [`input::box_height`]) and the status line's rows (see
/// [`status::status_lines`]).
pub fn layout(area: Rect, input_rows: u16, status_lines: usize) -> Areas {
    let row = |y: u16, h: u16| Rect::new(area.x, area.y + y, area.width, h);
    let h = area.height;
    // A long message (first: it is what is being written) and then a long status take rows
    // from the message list (never below MIN_LIST_ROWS), never from the fields.
    let spare = h.saturating_sub(1 + 1 + 1 + 3 + MIN_LIST_ROWS);
    let input_h = input_rows.min(3 + spare).min(h);
    let spare = spare.saturating_sub(input_h.saturating_sub(3));
    let status_rows = u16::try_from(status_lines)
        .unwrap_or(1)
        .clamp(1, status::MAX_STATUS_ROWS)
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
