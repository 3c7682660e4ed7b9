//! The parser never panics: any input gives a case or an error positioned
//! inside the input.

use ovlcheck_case::{arb, parse_case, print_case, Op, ParseError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// The error's line and column lie inside `text` (the column may be one
/// past the end of its line).
fn check(text: &str) -> Result<(), TestCaseError> {
    match parse_case("fuzz.ovl", text) {
        Ok(case) => {
            // Whatever parsed must print and parse back to itself.
            let again = parse_case("again.ovl", &print_case(&case));
            prop_assert_eq!(again.as_ref(), Ok(&case));
        }
        Err(ParseError {
            line,
            column,
            message,
            ..
        }) => {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(
                line >= 1 && line <= lines.len(),
                "line {line} of {}",
                lines.len()
            );
            let l = lines[line - 1];
            let l = l.strip_suffix('\r').unwrap_or(l);
            prop_assert!(
                column >= 1 && column <= l.chars().count() + 1,
                "column {column} of {l:?}: {message}"
            );
            prop_assert!(!message.is_empty());
        }
    }
    Ok(())
}

/// Tokens of the format (and near misses) that soups are made of; every op
/// keyword comes from [`Op::KEYWORDS`] (see [`soup`]).
const SOUP: &[&str] = &[
    "O_RDWR|O_CREAT",
    "O_RDONLY|O_DIRECTORY",
    "O_PATH",
    "SEEK_SET",
    "now",
    "f1",
    "lower",
    "upper",
    "ops",
    "profile",
    "redirect",
    "redirect_dir=on",
    "userxattr",
    "index=off",
    "dir",
    "file",
    "symlink",
    "hardlink",
    "fifo",
    "whiteout",
    "opaque",
    "xwhiteouts",
    "xwhiteout",
    "redirect",
    "xattr",
    "owner",
    "mtime",
    "attr",
    "chattr",
    "ia",
    "dA",
    "-",
    "as",
    "0:0",
    "1000:1000",
    "rdwr",
    "trunc",
    "excl",
    "noreplace",
    "exchange",
    "a",
    "b",
    "a/b",
    "a/",
    "/a",
    "..",
    ".",
    "a//b",
    "0644",
    "0755",
    "7777",
    "10000",
    "9",
    "-1",
    "0",
    "18446744073709551616",
    "=>",
    "ok",
    "ENOENT",
    "E123",
    "E0",
    "[",
    "]",
    "{",
    "}",
    ",",
    "size=1",
    "nlink=2",
    "\"x\"",
    "\"\\x00\"",
    "\"\\xff\"",
    "\"\\q\"",
    "\"unterminated",
    "\"\\x4\"",
    "user.k",
    "trusted.overlay.opaque",
    "\"é\"",
    "é",
    "#",
    "# c",
    "\t",
    "\r",
    "\n",
    "\n",
    "\n",
    "\u{1}",
    "\\",
    "=",
    "=>>",
];

/// [`SOUP`] and every op keyword.
fn soup() -> Vec<&'static str> {
    SOUP.iter().chain(Op::KEYWORDS).copied().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_text(text in "(\\PC|[\n\t\"\\\\#=>])*") {
        check(&text)?;
    }

    #[test]
    fn token_soup(toks in vec((select(soup()), select(vec![" ", " ", "\n", "\t", ""])), 0..60)) {
        let mut text = String::new();
        for (t, sep) in toks {
            text.push_str(t);
            text.push_str(sep);
        }
        check(&text)?;
    }

    #[test]
    fn mutated_valid_case(
        case in arb::case(),
        edits in vec((any::<prop::sample::Index>(), select(soup()), any::<bool>()), 1..4),
    ) {
        let mut text = print_case(&case);
        for (at, tok, delete) in edits {
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(text.len()))
                .collect();
            let i = bounds[at.index(bounds.len())];
            if delete {
                let end = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                text.replace_range(i..end, "");
            } else {
                text.insert_str(i, tok);
            }
        }
        check(&text)?;
    }
}
