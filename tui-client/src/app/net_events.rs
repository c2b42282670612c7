//! What the network task reports ([`NetEvent`]), applied to the app: the link behind the
//! badge, login and the password prompt, the outbox's pending sends, stored messages (by
//! id, deduplicated), presence and the user list, refusals and notices.

use natter_shared::Username;

use super::{App, Focus, KnownUser};
use crate::msg::NetEvent;
use crate::timeline::Inserted;

impl App {
    pub(super) fn net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Link { link, retry_in } => {
                self.link = link;
                self.retry_at = retry_in.map(|d| self.now + d);
            }
            NetEvent::LoggedIn {
                username,
                registered,
            } => {
                if self.identity.as_ref().map(Username::key) == Some(username.key()) {
                    self.name.set(username.as_str());
                    self.committed_name = username.to_string();
                    self.identity = Some(username.clone());
                }
                self.info(if registered {
                    format!("registered {username}; its password is saved in credentials.toml")
                } else {
                    format!("logged in as {username}")
                });
            }
            NetEvent::PasswordNeeded { username, reason } => {
                self.error(format!(
                    "{reason}: type the password for {username}, or Esc to pick another name"
                ));
                self.prompt = Some(username);
                self.password.take();
                self.focus = Focus::Message;
            }
            NetEvent::Queued {
                sender,
                outgoing,
                after,
            } => {
                // Another identity's (typed before a change of name) stays in its outbox.
                if self.identity.as_ref().map(Username::key) == Some(sender.key()) {
                    self.timeline.queue(sender, outgoing, after.as_ref());
                }
            }
            NetEvent::Message(m) => self.receive(m),
            NetEvent::Messages(batch) => {
                for m in batch {
                    self.receive(m);
                }
            }
            NetEvent::Presence { username, online } => self.learn_user(username, Some(online)),
            NetEvent::Users(list) => {
                for u in list {
                    self.learn_user(u.username, Some(u.online));
                }
            }
            NetEvent::Rejected { client_id, reason } => {
                self.timeline.reject(&client_id, &reason);
                self.error(format!("not sent: {reason}"));
            }
            NetEvent::Error(text) => self.error(text),
            NetEvent::Notice(text) => self.info(text),
        }
    }

    fn learn_user(&mut self, name: Username, online: Option<bool>) {
        let entry = self.users.entry(name.key()).or_insert(KnownUser {
            name: name.clone(),
            online: false,
        });
        entry.name = name;
        if let Some(online) = online {
            entry.online = online;
        }
    }

    fn receive(&mut self, m: natter_shared::Message) {
        self.learn_user(m.sender_username.clone(), None);
        if let Some(r) = &m.receiver_username {
            self.learn_user(r.clone(), None);
        }
        if let Inserted::At(index) = self.timeline.insert(m) {
            self.on_inserted(index);
        }
    }
}
