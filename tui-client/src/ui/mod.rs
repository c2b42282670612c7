//! Drawing the chat screen from an [`App`]: `render(&App, &mut Frame)`, nothing else.
//!
//! Layout, top to bottom: the top bar with the connection badge (`topbar`), the message
//! list (`timeline`) with the online users beside it when the terminal is wide (`users`),
//! the status line (more than one row for a long error) and the Name / Send to fields
//! (`fields`), the message box, which grows with what is typed (`input_box`), and the help
//! over everything when asked (`help`). Styles come from `crate::theme`
//! only; sizes (the layout, an item's lines, the message box's rows) from `crate::measure`,
//! which the model's scrolling uses too.

pub mod fields;
pub mod help;
pub mod input_box;
pub mod timeline;
pub mod topbar;
pub mod users;

use ratatui::Frame;

use crate::app::App;

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let areas = app.layout(frame.area());
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
