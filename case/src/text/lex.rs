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

fn is_punct(c: char) -> bool {
    matches!(c, '"' | '#' | '[' | ']' | '{' | '}' | ',')
}

/// True if `c` ends a bare word.
fn ends_word(c: char, next: Option<char>) -> bool {
    c == ' ' || c == '\t' || is_punct(c) || (c == '=' && next == Some('>'))
}

/// Tokenizes one line (without its newline).
pub(crate) fn lex_line(line: &str) -> Result<Vec<Token<'_>>, LexError> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(line.len(), |&(b, _)| b);
    let char_at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = char_at(i) {
        let col = i + 1;
        let start = byte_at(i);
        let simple = match c {
            ' ' | '\t' => {
                i += 1;
                continue;
            }
            '#' => break,
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            ',' => Some(Tok::Comma),
            '=' if char_at(i + 1) == Some('>') => {
                i += 1;
                Some(Tok::Arrow)
            }
            _ => None,
        };
        if let Some(tok) = simple {
            i += 1;
            toks.push(Token {
                tok,
                col,
                src: &line[start..byte_at(i)],
            });
            continue;
        }
        if c == '"' {
            let (bytes, end) = lex_string(&chars, i)?;
            i = end;
            toks.push(Token {
                tok: Tok::Str(bytes),
                col,
                src: &line[start..byte_at(i)],
            });
            continue;
        }
        // A bare word.
        let mut j = i;
        while let Some(c) = char_at(j) {
            if ends_word(c, char_at(j + 1)) {
                break;
            }
            if c.is_control() {
                return Err((
                    j + 1,
                    format!(
                        "unexpected control character U+{:04X}; write it in a quoted string as \\xNN",
                        c as u32
                    ),
                ));
            }
            j += 1;
        }
        let src = &line[start..byte_at(j)];
        toks.push(Token {
            tok: Tok::Word(src.to_string()),
            col,
            src,
        });
        i = j;
    }
    Ok(toks)
}

/// Lexes the string starting at the `"` at char index `i`; returns its bytes
/// and the char index after the closing quote.
fn lex_string(chars: &[(usize, char)], i: usize) -> Result<(Vec<u8>, usize), LexError> {
    let col = i + 1;
    let mut out = Vec::new();
    let mut j = i + 1;
    loop {
        if out.len() > MAX_STRING {
            return Err((
                col,
                format!(
                    "string is longer than the limit of {MAX_STRING} bytes (limits::MAX_STRING)"
                ),
            ));
        }
        let Some(&(_, c)) = chars.get(j) else {
            return Err((col, "unterminated string: missing closing `\"`".to_string()));
        };
        match c {
            '"' => return Ok((out, j + 1)),
            '\\' => {
                let esc = chars.get(j + 1).map(|&(_, c)| c);
                match esc {
                    Some('n') => out.push(b'\n'),
                    Some('t') => out.push(b'\t'),
                    Some('\\') => out.push(b'\\'),
                    Some('"') => out.push(b'"'),
                    Some('x') => {
                        let hex = |k: usize| chars.get(k).and_then(|&(_, c)| c.to_digit(16));
                        match (hex(j + 2), hex(j + 3)) {
                            (Some(h), Some(l)) => {
                                out.push((h * 16 + l) as u8);
                                j += 2;
                            }
                            _ => {
                                return Err((
                                    j + 1,
                                    "expected two hex digits after `\\x` (e.g. \\x0a)".to_string(),
                                ))
                            }
                        }
                    }
                    Some(other) => {
                        return Err((
                            j + 1,
                            format!("unknown escape `\\{other}` (use \\n \\t \\\\ \\\" or \\xNN)"),
                        ))
                    }
                    None => {
                        return Err((col, "unterminated string: missing closing `\"`".to_string()))
                    }
                }
                j += 2;
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
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
