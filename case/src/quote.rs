//! How bytes and words are written as tokens of the `.ovl` text format. The
//! printer uses them for cases, and the `Display` of outcomes and views
//! uses them too, so a value reads the same in a case, a report and a view.

use std::fmt::Write;

/// `bytes` as a double-quoted string: printable ASCII as is, `\n \t \\ \"`
/// escaped, anything else as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// `s` as one token: bare if it reads back as the same word, else quoted.
pub fn word(s: &str) -> String {
    let bare = !s.is_empty()
        && !s.contains("=>")
        && s.bytes().all(|b| {
            (0x21..=0x7e).contains(&b)
                && !matches!(b, b'"' | b'#' | b'[' | b']' | b'{' | b'}' | b',' | b'\\')
        });
    if bare {
        s.to_string()
    } else {
        quote(s.as_bytes())
    }
}
