//! The message box's text laid out in rows, as the box draws it and as the layout sizes it:
//! wrapped at spaces into as many rows as it needs, up to [`MAX_ROWS`]; a newline (Alt-Enter,
//! a pasted line break) starts a row.

use unicode_width::UnicodeWidthChar;

use crate::input::TextInput;

/// Most text rows the box grows to; longer text scrolls within them.
pub const MAX_ROWS: u16 = 5;

/// The text of a field laid out in rows, and where the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// Each row as drawn (masked, tabs as spaces, newlines gone).
    pub rows: Vec<String>,
    /// The cursor's row.
    pub cursor_row: usize,
    /// The cursor's column (display width of what is before it on its row).
    pub cursor_col: u16,
}

/// Lays out `input` in a box `width` columns wide. The last column is kept for the cursor
/// (as the one-line fields do), so text wraps at `width - 1`; only a space may sit there,
/// which keeps a row from starting with the space that ended the one above. A word longer
/// than a row is broken; wide characters never straddle two rows.
pub fn wrap_input(input: &TextInput, width: u16, mask: bool) -> Wrapped {
    let text_cols = usize::from(width.max(2)) - 1;
    let chars: Vec<char> = input
        .text()
        .chars()
        .map(|c| match c {
            _ if mask => '•',
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect();
    let cursor = input.cursor().min(chars.len());
    let cols = |c: char| c.width().unwrap_or(0);
    let mut rows = vec![String::new()];
    let mut col = 0;
    let mut at = (0, 0);
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\n' => {
                if i == cursor {
                    at = (rows.len() - 1, col);
                }
                rows.push(String::new());
                col = 0;
                i += 1;
            }
            ' ' => {
                if col > text_cols {
                    rows.push(String::new());
                    col = 0;
                }
                if i == cursor {
                    at = (rows.len() - 1, col);
                }
                push(&mut rows, ' ');
                col += 1;
                i += 1;
            }
            _ => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ' ' || c == '\n')
                    .map_or(chars.len(), |p| i + p);
                let word: usize = chars[i..end].iter().map(|&c| cols(c)).sum();
                // A word that fits on a row of its own is not broken.
                if col > 0 && col + word > text_cols && word <= text_cols {
                    rows.push(String::new());
                    col = 0;
                }
                for (k, &c) in chars.iter().enumerate().take(end).skip(i) {
                    if col > 0 && col + cols(c) > text_cols {
                        rows.push(String::new());
                        col = 0;
                    }
                    if k == cursor {
                        at = (rows.len() - 1, col);
                    }
                    push(&mut rows, c);
                    col += cols(c);
                }
                i = end;
            }
        }
    }
    if cursor == chars.len() {
        // Where the next character will go: after a space in the last column, a new row.
        at = if col > text_cols {
            rows.push(String::new());
            (rows.len() - 1, 0)
        } else {
            (rows.len() - 1, col)
        };
    }
    Wrapped {
        rows,
        cursor_row: at.0,
        cursor_col: u16::try_from(at.1).unwrap_or(u16::MAX),
    }
}

fn push(rows: &mut [String], c: char) {
    if let Some(row) = rows.last_mut() {
        row.push(c);
    }
}

/// The rows the box wants for `input` on a terminal `width` columns wide, its borders
/// included.
pub fn box_height(input: &TextInput, width: u16, mask: bool) -> u16 {
    let rows = wrap_input(input, width.saturating_sub(2), mask).rows.len();
    u16::try_from(rows).unwrap_or(MAX_ROWS).clamp(1, MAX_ROWS) + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laid(text: &str, cursor_from_end: usize, width: u16) -> Wrapped {
        let mut input = TextInput::with_text(text);
        for _ in 0..cursor_from_end {
            input.left();
        }
        wrap_input(&input, width, false)
    }

    #[test]
    fn wraps_at_spaces_and_breaks_only_long_words() {
        // 9 text columns, the 10th for the cursor.
        let w = laid("one two three four fivesixseveneight", 0, 10);
        assert_eq!(
            w.rows,
            ["one two ", "three ", "four five", "sixsevene", "ight"]
        );
        assert_eq!((w.cursor_row, w.cursor_col), (4, 4));
    }

    #[test]
    fn a_space_may_take_the_cursor_column_and_newlines_start_rows() {
        let w = laid("123456789 x", 0, 10);
        assert_eq!(w.rows, ["123456789 ", "x"]);
        let w = laid("123456789 ", 0, 10);
        assert_eq!(w.rows, ["123456789 ", ""], "the next character goes below");
        assert_eq!((w.cursor_row, w.cursor_col), (1, 0));
        let w = laid("a\n\nb", 2, 10);
        assert_eq!(w.rows, ["a", "", "b"]);
        assert_eq!((w.cursor_row, w.cursor_col), (1, 0));
    }

    #[test]
    fn the_cursor_counts_display_columns() {
        // Wide characters take two columns and never straddle rows.
        let w = laid("日本語のテキスト", 3, 8);
        assert_eq!(w.rows, ["日本語", "のテキ", "スト"]);
        assert_eq!((w.cursor_row, w.cursor_col), (1, 4));
        let w = laid("", 0, 8);
        assert_eq!((w.rows.len(), w.cursor_row, w.cursor_col), (1, 0, 0));
    }
}
