//! Word wrapping of styled text by display width (wide characters and emoji take two
//! columns, combining marks none), with a hanging indent for continuation lines.
//!
//! Pure and independent of ratatui's own wrapping so that the scroll code can ask "how many
//! lines is this item" and get exactly what will be drawn.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Lays out `segments` in lines of at most `width` columns. Continuation lines start with
/// `indent` spaces. Newlines in the text start a new line; tabs become spaces; other
/// control characters are dropped (the server refuses them anyway).
pub fn wrap(segments: &[(&str, Style)], width: u16, indent: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    let indent = if usize::from(indent) * 2 < width {
        usize::from(indent)
    } else {
        0
    };
    let mut lines: Vec<Vec<(char, Style)>> = Vec::new();
    let mut cur: Vec<(char, Style)> = Vec::new();
    let mut cur_width = 0usize;
    // Index in `cur` just after the last space, where a word-wrap may break.
    let mut break_at: Option<usize> = None;
    let start_line = |lines: &mut Vec<Vec<(char, Style)>>, cur: &mut Vec<(char, Style)>| {
        lines.push(std::mem::take(cur));
        cur.extend(std::iter::repeat_n((' ', Style::new()), indent));
    };

    for (text, style) in segments {
        for c in text.chars() {
            let c = if c == '\t' { ' ' } else { c };
            if c == '\n' {
                start_line(&mut lines, &mut cur);
                cur_width = indent;
                break_at = None;
                continue;
            }
            if c.is_control() {
                continue;
            }
            let w = c.width().unwrap_or(0);
            if cur_width + w > width && cur_width > indent {
                if c == ' ' {
                    // A space at the edge is the break itself.
                    start_line(&mut lines, &mut cur);
                    cur_width = indent;
                    break_at = None;
                    continue;
                }
                match break_at {
                    // Carry a word to the next line, unless it is so long (a URL, a run of
                    // CJK text without spaces) that breaking it here wastes less room.
                    Some(at)
                        if at > indent
                            && at < cur.len()
                            && width_of(&cur[at..]) <= (width - indent) / 2 =>
                    {
                        let tail: Vec<_> = cur.split_off(at);
                        // Drop the trailing space of the broken line.
                        if cur.last().is_some_and(|(c, _)| *c == ' ') {
                            cur.pop();
                        }
                        start_line(&mut lines, &mut cur);
                        cur_width = indent
                            + tail
                                .iter()
                                .map(|(c, _)| c.width().unwrap_or(0))
                                .sum::<usize>();
                        cur.extend(tail);
                    }
                    _ => {
                        start_line(&mut lines, &mut cur);
                        cur_width = indent;
                    }
                }
                break_at = None;
            }
            cur.push((c, *style));
            cur_width += w;
            if c == ' ' {
                break_at = Some(cur.len());
            }
        }
    }
    lines.push(cur);
    lines.into_iter().map(to_line).collect()
}

fn width_of(cells: &[(char, Style)]) -> usize {
    cells.iter().map(|(c, _)| c.width().unwrap_or(0)).sum()
}

/// Merges runs of equal style into spans.
fn to_line(cells: Vec<(char, Style)>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style: Option<Style> = None;
    for (c, s) in cells {
        if style != Some(s) {
            if let Some(prev) = style {
                spans.push(Span::styled(std::mem::take(&mut text), prev));
            }
            style = Some(s);
        }
        text.push(c);
    }
    if let Some(prev) = style {
        spans.push(Span::styled(text, prev));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn wraps_at_spaces_with_indent() {
        let s = Style::new();
        let out = wrap(&[("12:00 a: ", s), ("one two three four", s)], 16, 2);
        assert_eq!(plain(&out), ["12:00 a: one two", "  three four"]);
    }

    #[test]
    fn breaks_long_words_and_counts_wide_chars() {
        let s = Style::new();
        assert_eq!(plain(&wrap(&[("abcdefgh", s)], 3, 0)), ["abc", "def", "gh"]);
        assert_eq!(
            plain(&wrap(&[("日本語です", s)], 5, 0)),
            ["日本", "語で", "す"]
        );
        assert_eq!(plain(&wrap(&[("a\nb", s)], 5, 1)), ["a", " b"]);
    }
}
