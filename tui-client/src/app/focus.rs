//! Moving between the fields and what keys edit: Tab / Shift-Tab, Tab completion of
//! usernames in "Send to", where a paste goes, and Esc. Leaving "Name" never applies it: only
//! Enter does, since a new name may register an account.

use natter_shared::Username;

use super::{App, Focus};
use crate::input::TextInput;

impl App {
    /// The field keys edit: the password prompt replaces the message input while shown.
    pub(super) fn field(&mut self) -> &mut TextInput {
        match self.focus {
            Focus::Name => &mut self.name,
            Focus::SendTo => &mut self.to,
            Focus::Message if self.prompt.is_some() => &mut self.password,
            Focus::Message => &mut self.input,
        }
    }

    pub(super) fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        match self.focus {
            Focus::Message if self.prompt.is_none() => self.input.insert_str(&text),
            // Names and passwords are one line: drop what a terminal paste adds around them.
            _ => self.field().insert_str(text.trim()),
        }
    }

    pub(super) fn escape(&mut self) {
        if self.show_help {
            self.show_help = false;
        } else if self.prompt.take().is_some() {
            self.password.take();
            self.focus = Focus::Name;
            self.info("password prompt cancelled: pick another name");
        } else {
            self.status = None;
        }
    }

    pub(super) fn move_focus(&mut self, forward: bool) {
        let leaving = self.focus;
        self.focus = match (self.focus, forward) {
            (Focus::Name, true) | (Focus::Message, false) => Focus::SendTo,
            (Focus::SendTo, true) | (Focus::Name, false) => Focus::Message,
            (Focus::Message, true) | (Focus::SendTo, false) => Focus::Name,
        };
        // A name typed but not applied stays in the field (so nothing typed is lost) and the
        // identity stays what it was; the status line says how to apply it.
        if leaving == Focus::Name && self.name_is_pending() {
            let typed = self.name.text().trim().to_owned();
            if typed.is_empty() {
                self.info("name not changed: type a name in Name and press Enter");
            } else {
                self.info(format!(
                    "name not changed: press Enter in Name to become {typed}"
                ));
            }
        }
    }

    pub(super) fn tab(&mut self) {
        if self.focus == Focus::SendTo && self.complete() {
            return;
        }
        self.move_focus(true);
    }

    /// Completes the Send to field from the known users; repeated Tabs cycle. Returns false
    /// when there is nothing to complete (so Tab moves on).
    fn complete(&mut self) -> bool {
        let prefix = match &self.completion {
            Some((prefix, _)) => prefix.clone(),
            None => self.to.text().to_ascii_lowercase(),
        };
        if prefix.is_empty() {
            return false;
        }
        let candidates: Vec<&Username> = self
            .users
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, u)| &u.name)
            .collect();
        let index = match &self.completion {
            Some((_, i)) => (i + 1) % candidates.len().max(1),
            None => 0,
        };
        match candidates.get(index) {
            Some(name) if candidates.len() > 1 || name.as_str() != self.to.text() => {
                let name = name.to_string();
                self.to.set(&name);
                self.completion = Some((prefix, index));
                true
            }
            _ => false,
        }
    }
}
