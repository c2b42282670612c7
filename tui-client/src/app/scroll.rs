//! Scrolling the message list without ever laying out the whole history.
//!
//! The position is either pinned to the bottom (new messages stay in view) or anchored at
//! a line of one item (the top row of the view). Every move walks item by item from the
//! anchor and wraps only the items it passes, so a page step costs one page of wrapping,
//! whether the history holds ten messages or 100,000.

use super::App;

/// Where the message list is scrolled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scroll {
    /// The newest message is at the bottom, and stays there as messages arrive.
    Bottom,
    /// The top row of the view is line `line` of item `item`.
    At {
        /// Index into the timeline.
        item: usize,
        /// Wrapped line within that item.
        line: u16,
    },
}

impl App {
    /// Lines in a page step: the view's height less one line of context.
    pub(crate) fn page(&self) -> u16 {
        self.viewport().1.saturating_sub(1).max(1)
    }

    /// The anchor of the top row as things are drawn now.
    pub(crate) fn top_anchor(&self) -> (usize, u16) {
        match self.scroll {
            Scroll::At { item, line } => (item, line),
            Scroll::Bottom => {
                let (width, height) = self.viewport();
                let mut need = height;
                let mut item = self.timeline.len();
                while item > 0 && need > 0 {
                    item -= 1;
                    let h = self.item_height(item, width);
                    if h >= need {
                        return (item, h - need);
                    }
                    need -= h;
                }
                (0, 0)
            }
        }
    }

    pub(crate) fn scroll_up(&mut self, lines: u16) {
        let width = self.viewport().0;
        let (mut item, mut line) = self.top_anchor();
        let mut left = lines;
        while left > 0 {
            if line >= left {
                line -= left;
                left = 0;
            } else if item == 0 {
                line = 0;
                left = 0;
            } else {
                left -= line + 1;
                item -= 1;
                line = self.item_height(item, width).saturating_sub(1);
            }
        }
        self.scroll = Scroll::At { item, line };
        self.pin_if_at_end();
    }

    pub(crate) fn scroll_down(&mut self, lines: u16) {
        let Scroll::At { mut item, line } = self.scroll else {
            return;
        };
        let width = self.viewport().0;
        let mut line = u32::from(line) + u32::from(lines);
        while item < self.timeline.len() {
            let h = u32::from(self.item_height(item, width));
            if line < h {
                break;
            }
            line -= h;
            item += 1;
        }
        if item >= self.timeline.len() {
            self.scroll_bottom();
            return;
        }
        self.scroll = Scroll::At {
            item,
            line: u16::try_from(line).unwrap_or(0),
        };
        self.pin_if_at_end();
    }

    pub(crate) fn scroll_top(&mut self) {
        self.scroll = Scroll::At { item: 0, line: 0 };
        self.pin_if_at_end();
    }

    pub(crate) fn scroll_bottom(&mut self) {
        self.scroll = Scroll::Bottom;
        self.unseen = 0;
    }

    /// Pins to the bottom when everything from the anchor down fits in the view: there is
    /// nothing further to scroll to, so new messages should push the view along.
    fn pin_if_at_end(&mut self) {
        let Scroll::At { item, line } = self.scroll else {
            return;
        };
        let (width, height) = self.viewport();
        // Lines from the top of `item`; enough once the ones below the anchor overfill the view.
        let enough = u32::from(height) + u32::from(line);
        let mut total: u32 = 0;
        let mut i = item;
        while i < self.timeline.len() && total <= enough {
            total += u32::from(self.item_height(i, width));
            i += 1;
        }
        if total.saturating_sub(u32::from(line)) <= u32::from(height) {
            self.scroll_bottom();
        }
    }

    pub(crate) fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        if let Scroll::At { item, line } = self.scroll {
            let w = self.viewport().0;
            let line = line.min(self.item_height(item, w).saturating_sub(1));
            self.scroll = Scroll::At { item, line };
            self.pin_if_at_end();
        }
    }

    /// Keeps the view steady when a message lands at `index` while scrolled up.
    pub(crate) fn on_inserted(&mut self, index: usize) {
        if let Scroll::At { item, line } = self.scroll {
            if index <= item {
                self.scroll = Scroll::At {
                    item: item + 1,
                    line,
                };
            }
            self.unseen += 1;
        }
        if let Scroll::At { item, .. } = self.scroll
            && item >= self.timeline.len()
        {
            self.scroll_bottom();
        }
    }
}
