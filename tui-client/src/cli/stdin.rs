//! `send -`'s input: stdin one line at a time and never further, so that a `send` killed
//! at any point has taken from the pipe exactly the lines it has seen (and put in the
//! outbox); the rest stay for whoever reads the pipe next.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;

use natter_shared::validate;

use super::exit::{EXIT_FAILURE, EXIT_USAGE, Failure};

/// A stdin line this long (bytes) cannot be a valid message, so reading it stops there.
const MAX_LINE_BYTES: usize = validate::MAX_TEXT_CHARS * 4 + 2;

/// Stdin, one line at a time and never further: read a byte at a time from the file
/// descriptor (std's `Stdin` would buffer ahead), so the process has taken from the pipe
/// exactly the lines it has seen.
pub(super) struct StdinLines {
    file: Option<File>,
    number: usize,
}

impl StdinLines {
    pub(super) fn open() -> Result<Self, Failure> {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("reading stdin: {e}")))?;
        Ok(StdinLines {
            file: Some(File::from(fd)),
            number: 0,
        })
    }

    /// The next line that is not blank, with its 1-based number; `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<(usize, String)>, Failure> {
        loop {
            let Some(mut file) = self.file.take() else {
                return Ok(None);
            };
            // The read blocks; keep it off the runtime's workers.
            let (file, line) = tokio::task::spawn_blocking(move || {
                let line = read_line(&mut file);
                (file, line)
            })
            .await
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("reading stdin: {e}")))?;
            let failed = |e: String| Failure::new(EXIT_FAILURE, format!("reading stdin: {e}"));
            let Some(bytes) = line.map_err(|e| failed(e.to_string()))? else {
                return Ok(None);
            };
            self.file = Some(file);
            self.number += 1;
            let number = self.number;
            if bytes.len() > MAX_LINE_BYTES {
                return Err(Failure::new(
                    EXIT_USAGE,
                    format!(
                        "line {number}: text is longer than {} characters; the lines after it were not read",
                        validate::MAX_TEXT_CHARS
                    ),
                ));
            }
            let mut text = String::from_utf8(bytes)
                .map_err(|_| failed(format!("line {number} is not UTF-8")))?;
            if text.ends_with('\r') {
                text.pop();
            }
            if !text.trim().is_empty() {
                return Ok(Some((number, text)));
            }
        }
    }
}

/// One line without its `\n` (`None` at the end of input), stopping early once it is longer
/// than [`MAX_LINE_BYTES`].
fn read_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match file.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => return Ok(Some(line)),
            Ok(_) if byte[0] == b'\n' => return Ok(Some(line)),
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_LINE_BYTES {
                    return Ok(Some(line));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
