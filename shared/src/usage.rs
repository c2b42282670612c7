//! Clap's usage errors as the one line both binaries promise (`natter: …`,
//! `natter-server: …`), so the two command lines fail alike. Behind the `cli` feature: the
//! wire types need no clap.

/// Clap's error message in one line, without its `error: ` prefix, colours, usage block and
/// "For more information" line. Its tips and possible values stay on that line (they say
/// what to type instead: "a similar argument exists: '--server'"), and it ends with where
/// help is.
pub fn usage_line(e: &clap::Error) -> String {
    // StyledStr's Display is plain text: no colour codes, whatever the terminal.
    let rendered = e.render().to_string();
    let mut line = String::new();
    for part in rendered.lines().map(str::trim) {
        if part.is_empty() || part.starts_with("Usage:") || part.starts_with("For more information")
        {
            continue;
        }
        let part = part.strip_prefix("error: ").unwrap_or(part);
        let part = part.strip_prefix("tip: ").unwrap_or(part);
        // "the following required arguments were not provided:" is followed by the list;
        // "[possible values: …]" belongs to what it follows.
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') || part.starts_with('[') {
                " "
            } else {
                "; "
            });
        }
        line.push_str(part);
    }
    line.push_str(" (try --help)");
    line
}
