//! The `.ovl` text format: parser and printer (docs/architecture.md, "The
//! case format").
//!
//! A case is line oriented: an optional `profile` line, then `lower`
//! sections (bottom layer first), an optional `upper` section and an `ops`
//! section. `#` starts a comment outside strings. Tokens are bare words,
//! double-quoted strings (`\n \t \\ \" \xNN` escapes; they are bytes) and
//! the punctuation `=> [ ] { } ,`. [`print_case`] emits canonical text that
//! [`parse_case`] reads back to the same [`Case`].
//!
//! "Same" holds for every case the parser could have produced: at least one
//! lower, layers that pass [`LayerSpec::objects`], sizes within [`limits`],
//! no NUL in op xattr names or symlink targets, `Errno::Other(n)` only for
//! unnamed `n > 0`, and a profile whose `upper_size` is at least 4096.
//!
//! [`LayerSpec::objects`]: crate::layer::LayerSpec::objects

mod lex;
mod parse;
mod print;

use crate::case::Case;
use crate::op::Step;

pub use crate::quote::{quote, word};

/// Size limits of the text format. Each limit is checked with an error that
/// names it, so hostile or runaway input fails early instead of exhausting
/// memory.
pub mod limits {
    /// Largest accepted input, in bytes (64 MiB).
    pub const MAX_INPUT_BYTES: usize = 64 << 20;
    /// Most entries in one layer section.
    pub const MAX_LAYER_ENTRIES: usize = 100_000;
    /// Most `lower` sections (the kernel's lower layer limit).
    pub const MAX_LAYERS: usize = 500;
    /// Largest file a case may describe, in bytes (16 MiB): bounds a `file`
    /// entry's data, the end of a `write` and the size of a `truncate`.
    pub const MAX_FILE_DATA: u64 = 16 << 20;
    /// Most distinct fd names in one case (`open P FLAGS as F`): every one
    /// may be open at once in the worker.
    pub const MAX_FDS: usize = 64;
    /// Most ops in the `ops` section.
    pub const MAX_OPS: usize = 100_000;
    /// Most components in one path.
    pub const MAX_PATH_DEPTH: usize = 64;
    /// Longest string literal after unescaping, in bytes (16 MiB).
    pub const MAX_STRING: usize = 16 << 20;
}

/// A parse error with its position (1-based line and column; the column
/// counts characters and points at the offending token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a `.ovl` case; `file` is only used in error positions.
pub fn parse_case(file: &str, text: &str) -> Result<Case, ParseError> {
    parse::parse(file, text)
}

/// Prints a case as canonical `.ovl` text.
pub fn print_case(case: &Case) -> String {
    print::print(case)
}

/// One step as a line of the `ops` section: `[as UID:GID] OP [=> EXPECT]`.
pub fn print_step(step: &Step) -> String {
    print::step(step)
}
