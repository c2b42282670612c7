//! Slash commands typed in the message input, as irssi and weechat users expect:
//! `/to NAME`, `/msg NAME TEXT`, `/all`, `/nick NAME`, `/help`, `/quit`. `//text` sends
//! `/text` literally. Add a command here and a line to [`COMMANDS`], which `ui::help` lists.

use natter_shared::Username;

use super::{App, Focus};
use crate::msg::Cmd;

/// Every command with its one-line description, for the help screen.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/to NAME", "send to NAME from now on"),
    ("/msg NAME TEXT", "send TEXT to NAME only, once"),
    ("/all", "send to everyone from now on"),
    ("/nick NAME", "become NAME"),
    ("/help", "show this help"),
    ("/quit", "leave (also Ctrl-C)"),
    ("//TEXT", "send /TEXT literally"),
];

impl App {
    /// Runs the slash command in `line` (which starts with `/`).
    pub(crate) fn command(&mut self, line: &str) -> Option<Cmd> {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let arg = rest.split_whitespace().next().unwrap_or("");
        match word {
            "/to" | "/query" if arg.is_empty() => {
                let to = if self.to.is_empty() {
                    "everyone".to_owned()
                } else {
                    self.to.text().to_owned()
                };
                self.info(format!(
                    "sending to {to}; /to NAME to change, /all for everyone"
                ));
                None
            }
            "/to" | "/query" => {
                match Username::parse(arg) {
                    Ok(name) => {
                        self.to.set(name.as_str());
                        self.info(format!("sending to {name} only; /all for everyone"));
                    }
                    Err(e) => self.error(format!("/to: {e}")),
                }
                None
            }
            "/all" => {
                self.to.take();
                self.info("sending to everyone");
                None
            }
            "/msg" => {
                let text = rest.strip_prefix(arg).unwrap_or("").trim_start().to_owned();
                if arg.is_empty() || text.is_empty() {
                    self.input.set(line);
                    self.error("usage: /msg NAME TEXT");
                    return None;
                }
                let receiver = Username::parse(arg)
                    .map(Some)
                    .map_err(|e| format!("/msg: {e}"));
                let cmd = self.send(receiver, text);
                if cmd.is_none() {
                    // `send` put only the text back; restore the whole command line.
                    self.input.set(line);
                }
                cmd
            }
            "/nick" | "/name" => {
                if arg.is_empty() {
                    self.focus = Focus::Name;
                    self.error("usage: /nick NAME");
                    return None;
                }
                self.name.set(arg);
                self.commit_name()
            }
            "/help" => {
                self.show_help = true;
                None
            }
            "/quit" | "/exit" => {
                self.should_quit = true;
                Some(Cmd::Quit)
            }
            _ => {
                self.input.set(line);
                self.error(format!(
                    "unknown command {word}; /help lists them, //text sends /text"
                ));
                None
            }
        }
    }
}
