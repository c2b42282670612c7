//! Clap's usage errors as the one line both binaries promise (`natter: …`,
//! `natter-server: …`), so the two command lines fail alike, and their manual pages made
//! the same way. Behind the `cli` feature: the wire types need no clap.

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

/// The manual page of `cmd` (PROGRAM(1)), or of its `subcommand` (PROGRAM-SUBCOMMAND(1)), as
/// roff; `source` is the footer naming the program and its version on every page (a
/// subcommand has no version of its own). `Err` is the usage error line for an unknown
/// subcommand.
pub fn man_page(
    cmd: clap::Command,
    subcommand: Option<&str>,
    source: String,
) -> Result<Vec<u8>, String> {
    // Built as clap_mangen's own generate_to does: no `help` subcommand in the list, and
    // each subcommand named `PROGRAM-NAME`, as the list refers to it.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub.clone(),
            None => {
                let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                return Err(format!(
                    "no subcommand '{name}'; the pages are: {}",
                    names.join(", ")
                ));
            }
        },
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .source(source)
        .render(&mut roff)
        .map_err(|e| format!("cannot render the manual page: {e}"))?;
    Ok(roff)
}
