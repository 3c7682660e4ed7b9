//! Splits one line into tokens.

use super::limits::MAX_STRING;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word (never empty).
    Word(String),
    /// A double-quoted string, unescaped.
    Str(Vec<u8>),
    /// `=>`
    Arrow,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
}

/// A token with its 1-based column and its source text.
#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    pub tok: Tok,
    pub col: usize,
    pub src: &'a str,
}

/// A lexing error: column and message.
pub(crate) type LexError = (usize, String);

/// The 1-based column (in chars) of byte offset `pos` of `line`.
fn col_of(line: &[u8], pos: usize) -> usize {
    line[..pos.min(line.len())]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count()
        + 1
}

/// Columns of increasing byte offsets, counted incrementally.
struct Cols {
    byte: usize,
    col: usize,
}

impl Cols {
    fn at(&mut self, line: &[u8], pos: usize) -> usize {
        self.col += col_of(&line[self.byte..], pos - self.byte) - 1;
        self.byte = pos;
        self.col
    }
}

fn is_punct(b: u8) -> bool {
    matches!(b, b'"' | b'#' | b'[' | b']' | b'{' | b'}' | b',')
}

/// Tokenizes one line (without its newline). Every syntax character is
/// ASCII, so scanning bytes never splits a UTF-8 sequence.
pub(crate) fn lex_line(line: &str) -> Result<Vec<Token<'_>>, LexError> {
    let b = line.as_bytes();
    let mut cols = Cols { byte: 0, col: 1 };
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let simple = match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'#' => break,
            b'[' => Some((Tok::LBracket, 1)),
            b']' => Some((Tok::RBracket, 1)),
            b'{' => Some((Tok::LBrace, 1)),
            b'}' => Some((Tok::RBrace, 1)),
            b',' => Some((Tok::Comma, 1)),
            b'=' if b.get(i + 1) == Some(&b'>') => Some((Tok::Arrow, 2)),
            _ => None,
        };
        let col = cols.at(b, i);
        if let Some((tok, len)) = simple {
            toks.push(Token {
                tok,
                col,
                src: &line[i..i + len],
            });
            i += len;
            continue;
        }
        if c == b'"' {
            let (bytes, end) = lex_string(line, i)?;
            toks.push(Token {
                tok: Tok::Str(bytes),
                col,
                src: &line[i..end],
            });
            i = end;
            continue;
        }
        // A bare word.
        let mut j = i;
        while let Some(&c) = b.get(j) {
            if c == b' ' || c == b'\t' || is_punct(c) || (c == b'=' && b.get(j + 1) == Some(&b'>'))
            {
                break;
            }
            j += 1;
        }
        let src = &line[i..j];
        if let Some((k, c)) = src.char_indices().find(|(_, c)| c.is_control()) {
            return Err((
                col_of(b, i + k),
                format!(
                    "unexpected control character U+{:04X}; write it in a quoted string as \\xNN",
                    c as u32
                ),
            ));
        }
        toks.push(Token {
            tok: Tok::Word(src.to_string()),
            col,
            src,
        });
        i = j;
    }
    Ok(toks)
}

/// Lexes the string starting at the `"` at byte `i`; returns its bytes and
/// the byte offset after the closing quote.
fn lex_string(line: &str, i: usize) -> Result<(Vec<u8>, usize), LexError> {
    let b = line.as_bytes();
    let unterminated = || {
        (
            col_of(b, i),
            "unterminated string: missing closing `\"`".to_string(),
        )
    };
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        if out.len() > MAX_STRING {
            return Err((
                col_of(b, i),
                format!(
                    "string is longer than the limit of {MAX_STRING} bytes (limits::MAX_STRING)"
                ),
            ));
        }
        let Some(&c) = b.get(j) else {
            return Err(unterminated());
        };
        match c {
            b'"' => return Ok((out, j + 1)),
            b'\\' => {
                match b.get(j + 1) {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'"') => out.push(b'"'),
                    Some(b'x') => {
                        let hex = |k: usize| b.get(k).and_then(|&c| (c as char).to_digit(16));
                        match (hex(j + 2), hex(j + 3)) {
                            (Some(h), Some(l)) => {
                                out.push((h * 16 + l) as u8);
                                j += 2;
                            }
                            _ => {
                                return Err((
                                    col_of(b, j),
                                    "expected two hex digits after `\\x` (e.g. \\x0a)".to_string(),
                                ))
                            }
                        }
                    }
                    Some(_) => {
                        // `\\` is ASCII, so `j + 1` is a char boundary.
                        let other = line.get(j + 1..).and_then(|r| r.chars().next());
                        let other = other.unwrap_or('?');
                        return Err((
                            col_of(b, j),
                            format!("unknown escape `\\{other}` (use \\n \\t \\\\ \\\" or \\xNN)"),
                        ));
                    }
                    None => return Err(unterminated()),
                }
                j += 2;
            }
            c => {
                out.push(c);
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex_line(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_strings_punct() {
        assert_eq!(
            toks("  rmdir d=>ENOTEMPTY # c"),
            vec![
                Tok::Word("rmdir".into()),
                Tok::Word("d".into()),
                Tok::Arrow,
                Tok::Word("ENOTEMPTY".into())
            ]
        );
        assert_eq!(
            toks(r#"x "a\n\x00\"" [ "é" ,]{}"#),
            vec![
                Tok::Word("x".into()),
                Tok::Str(b"a\n\0\"".to_vec()),
                Tok::LBracket,
                Tok::Str("é".as_bytes().to_vec()),
                Tok::Comma,
                Tok::RBracket,
                Tok::LBrace,
                Tok::RBrace
            ]
        );
    }

    #[test]
    fn columns_count_chars() {
        let t = lex_line("éé x").unwrap();
        assert_eq!(t[1].col, 4);
        assert_eq!(lex_line("ab \"x\\q\"").unwrap_err().0, 6);
    }
}
