//! Text made safe for a terminal or a log. File names, tensor names,
//! metadata and config values come from files and users: written raw, a
//! name holding `ESC [2J` clears the screen, `ESC ] 0;… BEL` retitles the
//! window, U+202E turns the rest of the line around and U+0085 breaks it.
//! Every such character is shown as an escape instead:
//!
//! - C0 controls and DEL: `\n`, `\r`, `\t`, the others `\x1b`;
//! - C1 controls, Unicode format characters (bidi marks, embeddings,
//!   overrides and isolates; zero-width and invisible characters; tags) and
//!   the line and paragraph separators: `\u{202e}`;
//! - bytes that are not UTF-8 (a Linux file name is bytes): `\xff`;
//! - in a name, the backslash itself: `\\`, so that every escape is read
//!   one way: `\xNN` is one byte of the name, `\u{N}` one character.
//!
//! [`shown`], [`shown_os`] and [`shown_path`] are for a name or a value,
//! where it is put into a line (tables measure the escaped text, so they
//! stay aligned). [`shown_line`] and [`shown_lines`] guard the output
//! sinks: every message and every table passes through one of them, so
//! nothing raw reaches the terminal even from a line that forgot to escape
//! a name. They leave backslashes alone (the names in the text are escaped
//! already; a second pass would double every escape).
//!
//! Sizes in messages are [`human_bytes`].
//!
//! JSON documents keep the exact names: [`json_safe`] writes the same
//! characters as JSON's own `\uXXXX` escapes, which every reader decodes.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A name or a value (a tensor name, a metadata or config string) as it
/// is shown: controls, format characters and backslashes escaped.
pub fn shown(text: &str) -> Cow<'_, str> {
    escaped(text, Context::Name)
}

/// A file name as it is shown: as [`shown`], with each byte that is not
/// UTF-8 as `\xNN`.
pub fn shown_os(name: &OsStr) -> Cow<'_, str> {
    let bytes = name.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => shown(text),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                escape_into(&mut out, chunk.valid(), Context::Name);
                for byte in chunk.invalid() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            Cow::Owned(out)
        }
    }
}

/// A path as it is shown: as [`shown_os`].
pub fn shown_path(path: &Path) -> Cow<'_, str> {
    shown_os(path.as_os_str())
}

/// A one-line message as it is written: every control escaped, the
/// newline too, backslashes left as they are.
pub fn shown_line(text: &str) -> Cow<'_, str> {
    escaped(text, Context::Line)
}

/// Lines of text (a table) as they are written: as [`shown_line`], but the
/// newlines that end lines are kept.
pub fn shown_lines(text: &str) -> Cow<'_, str> {
    escaped(text, Context::Lines)
}

/// JSON text with every character that [`shown`] escapes written as a
/// JSON escape (`\u202e`): the same document to a JSON reader, no control
/// on a terminal. Outside strings JSON holds no such character, so `text`
/// may be a whole document or a piece of a string.
pub fn json_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` is never written raw: a control (C0, DEL, C1), a Unicode
/// format character (category Cf), or a line or paragraph separator.
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode's format characters (general category Cf, Unicode 16): bidi
/// controls, zero-width and invisible characters, tags.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061c}'
        | '\u{06dd}'
        | '\u{070f}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A name: the backslash is escaped too.
    Name,
    /// A whole message on one line.
    Line,
    /// Whole lines: the newline is kept.
    Lines,
}

impl Context {
    fn escapes(self, c: char) -> bool {
        match (self, c) {
            (Context::Name, '\\') => true,
            (Context::Lines, '\n') => false,
            _ => needs_escape(c),
        }
    }
}

fn escaped(text: &str, context: Context) -> Cow<'_, str> {
    if !text.chars().any(|c| context.escapes(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    escape_into(&mut out, text, context);
    Cow::Owned(out)
}

fn escape_into(out: &mut String, text: &str, context: Context) {
    for c in text.chars() {
        if !context.escapes(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\\' => out.write_str("\\\\"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            '\0'..='\x7f' => write!(out, "\\x{:02x}", c as u32),
            _ => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
}

/// Bytes in binary units, e.g. `1.50 GiB`, `15 B` (as the progress bars
/// show them: indicatif's `BinaryBytes`).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}B", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_as_the_progress_bars_do() {
        let sizes = [
            0,
            15,
            1023,
            1024,
            1_500,
            1_048_575,
            1_500_000,
            1_500_000_000,
        ];
        let more = [1 << 40, 1_500_000_000_000_000, u64::MAX];
        for n in sizes.into_iter().chain(more) {
            assert_eq!(human_bytes(n), indicatif::BinaryBytes(n).to_string(), "{n}");
        }
    }
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn escapes_c0_del_c1_and_bidi_controls_in_a_name() {
        assert_eq!(shown("plain name.bin"), "plain name.bin");
        assert!(matches!(shown("rank0.safetensors"), Cow::Borrowed(_)));
        assert_eq!(
            shown("a\x1b[2J\x1b]0;t\x07\n\r\t\x7f"),
            r"a\x1b[2J\x1b]0;t\x07\n\r\t\x7f"
        );
        assert_eq!(shown("\u{85}\u{9b}"), r"\u{85}\u{9b}");
        assert_eq!(
            shown("\u{202a}\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}"),
            r"\u{202a}\u{202e}\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}"
        );
        assert_eq!(shown("\u{2028}\u{e0041}"), r"\u{2028}\u{e0041}");
        // Printable text other than ASCII is shown as it is.
        assert_eq!(shown("poids_é_中文_😀 "), "poids_é_中文_😀 ");
    }

    #[test]
    fn a_backslash_in_a_name_is_escaped_so_escapes_are_unambiguous() {
        assert_eq!(shown(r"a\x1b"), r"a\\x1b");
        assert_ne!(shown(r"a\x1b"), shown("a\x1b"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        let name = OsStr::from_bytes(b"bad\xff\xc3(\\\x1b\xe2\x80\xae");
        assert_eq!(shown_os(name), r"bad\xff\xc3(\\\x1b\u{202e}");
        assert_eq!(shown_path(Path::new("/tmp/ok")), "/tmp/ok");
    }

    #[test]
    fn sinks_keep_backslashes_and_only_the_newlines_of_lines() {
        let text = "name `a\\x1b`: \x1b[2J\u{202e}\nnext\n";
        assert_eq!(
            shown_lines(text),
            "name `a\\x1b`: \\x1b[2J\\u{202e}\nnext\n"
        );
        assert_eq!(
            shown_line(text),
            "name `a\\x1b`: \\x1b[2J\\u{202e}\\nnext\\n"
        );
    }

    #[test]
    fn json_safe_text_decodes_to_the_same_strings() {
        let value = "e\u{1b}\u{7f}\u{85}\u{202e}\u{e0041}é";
        let json = serde_json::to_string(value).unwrap();
        let safe = json_safe(&json);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        assert_eq!(safe, r#""e\u001b\u007f\u0085\u202e\udb40\udc41é""#);
        assert_eq!(serde_json::from_str::<String>(&safe).unwrap(), value);
    }
}
