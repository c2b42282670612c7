//! The app's sizes, measured by `crate::measure` from the app's own state: the screen's
//! layout at the terminal's size, the message list's viewport, an item's lines. Scrolling
//! (`scroll.rs`) walks by these, and `ui` draws with the same numbers.

use ratatui::layout::Rect;
use ratatui::text::Line;

use super::App;
use crate::input::TextInput;
use crate::measure::{self, Areas, input, items, status};

impl App {
    /// The field the message box shows, and whether it is masked: the password while one
    /// is asked for, else the message being typed.
    pub fn boxed_field(&self) -> (&TextInput, bool) {
        match self.prompt {
            Some(_) => (&self.password, true),
            None => (&self.input, false),
        }
    }

    /// Where each part of the screen goes in `area`.
    pub fn layout(&self, area: Rect) -> Areas {
        let (field, mask) = self.boxed_field();
        measure::layout(
            area,
            input::box_height(field, area.width, mask),
            self.status_lines(area.width).len(),
        )
    }

    /// The status line's rows at `width`.
    pub fn status_lines(&self, width: u16) -> Vec<Line<'static>> {
        status::status_lines(self.status.as_ref(), self.color, width)
    }

    /// The message list's size (columns, rows).
    pub fn viewport(&self) -> (u16, u16) {
        let area = self.layout(Rect::new(0, 0, self.size.0, self.size.1));
        (area.timeline.width, area.timeline.height)
    }

    /// What the message list's lines depend on.
    pub fn item_view(&self) -> items::ItemView<'_> {
        items::ItemView {
            timeline: &self.timeline,
            me: self.identity.as_ref(),
            color: self.color,
            utc_offset: self.utc_offset,
        }
    }

    /// The lines of item `index` at `width`, as drawn.
    pub fn item_lines(&self, index: usize, width: u16) -> Vec<Line<'static>> {
        items::item_lines(&self.item_view(), index, width)
    }

    /// How many rows item `index` takes at `width`.
    pub fn item_height(&self, index: usize, width: u16) -> u16 {
        items::item_height(&self.item_view(), index, width)
    }
}
