//! Terminal input → [`Msg`]: the one place key bindings live (they are listed for people in
//! `ui::help::KEYS`). Keys that mean nothing return `None`.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};

use crate::msg::Msg;

/// Lines moved by one notch of the mouse wheel.
const WHEEL_LINES: u16 = 3;

/// Maps one terminal event.
pub fn map_event(event: Event) -> Option<Msg> {
    match event {
        Event::Key(key) => map_key(key),
        Event::Paste(text) => Some(Msg::Paste(text)),
        Event::Resize(width, height) => Some(Msg::Resize { width, height }),
        Event::Mouse(mouse) => map_mouse(mouse),
        Event::FocusGained | Event::FocusLost => None,
    }
}

fn map_mouse(mouse: MouseEvent) -> Option<Msg> {
    match mouse.kind {
        MouseEventKind::ScrollUp => Some(Msg::ScrollUp(WHEEL_LINES)),
        MouseEventKind::ScrollDown => Some(Msg::ScrollDown(WHEEL_LINES)),
        _ => None,
    }
}

/// Maps one key press.
pub fn map_key(key: KeyEvent) -> Option<Msg> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char('c' | 'd') if ctrl => Msg::Quit,
        KeyCode::Char('a') if ctrl => Msg::LineStart,
        KeyCode::Char('e') if ctrl => Msg::LineEnd,
        KeyCode::Char('w') if ctrl => Msg::DeleteWord,
        KeyCode::Char('u') if ctrl => Msg::DeleteToStart,
        KeyCode::Char('h') if ctrl => Msg::Backspace,
        KeyCode::Char('l') if ctrl => Msg::ScrollBottom,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Msg::Char(c),
        KeyCode::Enter if alt => Msg::Paste("\n".into()),
        KeyCode::Enter => Msg::Submit,
        KeyCode::Tab => Msg::Tab,
        KeyCode::BackTab => Msg::BackTab,
        KeyCode::Backspace if alt => Msg::DeleteWord,
        KeyCode::Backspace => Msg::Backspace,
        KeyCode::Delete => Msg::Delete,
        KeyCode::Left => Msg::Left,
        KeyCode::Right => Msg::Right,
        KeyCode::Up => Msg::Older,
        KeyCode::Down => Msg::Newer,
        KeyCode::PageUp => Msg::PageUp,
        KeyCode::PageDown => Msg::PageDown,
        KeyCode::Home => Msg::ScrollTop,
        KeyCode::End => Msg::ScrollBottom,
        KeyCode::Esc => Msg::Escape,
        KeyCode::F(1) => Msg::ToggleHelp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_quits_and_plain_keys_type() {
        let k = |code, m| map_key(KeyEvent::new(code, m));
        assert_eq!(
            k(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Msg::Quit)
        );
        assert_eq!(
            k(KeyCode::Char('c'), KeyModifiers::NONE),
            Some(Msg::Char('c'))
        );
        assert_eq!(
            k(KeyCode::Char('C'), KeyModifiers::SHIFT),
            Some(Msg::Char('C'))
        );
        assert_eq!(k(KeyCode::End, KeyModifiers::NONE), Some(Msg::ScrollBottom));
    }
}
