//! The parser.

use super::lex::{lex_line, Tok, Token};
use super::limits::{
    MAX_FDS, MAX_FILE_DATA, MAX_INPUT_BYTES, MAX_LAYERS, MAX_LAYER_ENTRIES, MAX_OPS, MAX_PATH_DEPTH,
};
use super::ParseError;
use crate::case::Case;
use crate::errno::Errno;
use crate::iflags::InodeFlags;
use crate::layer::{
    check_acl_value, check_capability_value, check_layer_xattr_name, Entry, LayerFormat, LayerSpec,
    CAPABILITY_XATTR,
};
use crate::op::{check_fd_name, Access, Cred, Op, OpenFlags, RenameFlags, Step, Whence};
use crate::outcome::{FileKind, Fsid, Outcome, StatInfo, Value};
use crate::path::{OpPath, RelPath};
use crate::profile::Profile;
use std::str::FromStr;

const ENTRY_WORDS: &str = "dir, file, symlink, hardlink, fifo, whiteout, opaque, xwhiteouts, \
                           xwhiteout, redirect, xattr, owner, mtime or attr";
const OP_WORDS: &str = "lstat, stat, read, readlink, readdir, getxattr, listxattr, open, create, \
                        write, truncate, mkdir, mkfifo, symlink, unlink, rmdir, link, rename, \
                        chmod, chown, utimes, setxattr, removexattr, chattr, fstat, fread, \
                        freaddir, lseek, fsync, fwrite, close, remount or commit";
const OUTCOME_WORDS: &str =
    "an outcome (ok, an errno like ENOENT, \"data\", [\"names\"], {KIND MODE UID:GID size=N nlink=N} or {fsid=CLASS})";

/// At most `n` chars of `s`, with `...` if cut (never splits a char).
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((b, _)) => format!("{}...", &s[..b]),
        None => s.to_string(),
    }
}

/// The tokens of one line and a read position.
struct Cursor<'t, 'a> {
    file: &'a str,
    line: usize,
    toks: &'t [Token<'a>],
    i: usize,
    /// Column just past the end of the line.
    eol: usize,
}

impl<'t, 'a> Cursor<'t, 'a> {
    fn err(&self, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.toks.get(self.i)
    }

    /// Column of the current token (or the end of the line).
    fn col(&self) -> usize {
        self.peek().map_or(self.eol, |t| t.col)
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("`{}`", clip(t.src, 40)),
            None => "end of line".to_string(),
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        self.err(
            self.col(),
            format!("expected {what}, found {}", self.found()),
        )
    }

    fn word(&mut self, what: &str) -> Result<(&'t str, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                col,
                ..
            }) => {
                self.i += 1;
                Ok((w.as_str(), *col))
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A bare word or a quoted string that must be UTF-8.
    fn text(&mut self, what: &str) -> Result<(String, usize), ParseError> {
        let col = self.col();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) => {
                self.i += 1;
                Ok((w.clone(), col))
            }
            Some(Tok::Str(b)) => {
                self.i += 1;
                match std::str::from_utf8(b) {
                    Ok(s) => Ok((s.to_string(), col)),
                    Err(_) => Err(self.err(col, format!("{what} is not valid UTF-8"))),
                }
            }
            _ => Err(self.expected(what)),
        }
    }

    fn check_depth(&self, depth: usize, col: usize) -> Result<(), ParseError> {
        if depth > MAX_PATH_DEPTH {
            return Err(self.err(
                col,
                format!(
                    "path has {depth} components, over the limit of {MAX_PATH_DEPTH} \
                     (limits::MAX_PATH_DEPTH)"
                ),
            ));
        }
        Ok(())
    }

    /// A layer path (no trailing `/`).
    fn rel_path(&mut self) -> Result<(RelPath, usize), ParseError> {
        let (s, col) = self.text("a path")?;
        let p = RelPath::parse(&s)
            .map_err(|e| self.err(col, format!("invalid path `{}`: {e}", clip(&s, 60))))?;
        self.check_depth(p.names().len(), col)?;
        Ok((p, col))
    }

    /// An op path (may end in one `/`).
    fn op_path(&mut self) -> Result<OpPath, ParseError> {
        let (s, col) = self.text("a path")?;
        let p = OpPath::parse(&s)
            .map_err(|e| self.err(col, format!("invalid path `{}`: {e}", clip(&s, 60))))?;
        self.check_depth(p.path.names().len(), col)?;
        Ok(p)
    }

    /// An xattr name (bare or quoted, UTF-8, no NUL).
    fn xattr_name(&mut self) -> Result<(String, usize), ParseError> {
        let (s, col) = self.text("an xattr name (e.g. user.k)")?;
        if s.contains('\0') {
            return Err(self.err(col, "xattr name contains a NUL byte"));
        }
        Ok((s, col))
    }

    fn string(&mut self, what: &str) -> Result<(Vec<u8>, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(b),
                col,
                ..
            }) => {
                self.i += 1;
                Ok((b.clone(), *col))
            }
            _ => Err(self.expected(&format!("{what} as a quoted string (\"...\")"))),
        }
    }

    /// Inode flags: `-` or letters among `iadA` ([`InodeFlags::parse`]).
    fn inode_flags(&mut self) -> Result<(InodeFlags, usize), ParseError> {
        let (w, col) = self.word("inode flags (letters among iadA, or `-`)")?;
        InodeFlags::parse(w)
            .map(|f| (f, col))
            .map_err(|m| self.err(col, m))
    }

    fn mode(&mut self) -> Result<u32, ParseError> {
        let what = "a mode (octal, e.g. 0644)";
        let col = self.col();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) if w.bytes().all(|b| (b'0'..=b'7').contains(&b)) => {
                self.i += 1;
                let digits = w.trim_start_matches('0');
                match u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 8) {
                    Ok(m) if digits.len() <= 4 && m <= 0o7777 => Ok(m),
                    _ => Err(self.err(
                        col,
                        format!("mode `{}` is out of range (at most 07777)", clip(w, 20)),
                    )),
                }
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A regular file's data: a string within [`MAX_FILE_DATA`].
    fn file_data(&mut self) -> Result<Vec<u8>, ParseError> {
        let (data, col) = self.string("the file's data")?;
        if data.len() as u64 > MAX_FILE_DATA {
            return Err(self.err(
                col,
                format!(
                    "file data is {} bytes, over the limit of {MAX_FILE_DATA} (limits::MAX_FILE_DATA)",
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    fn unsigned<T: FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let col = self.col();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) if w.bytes().all(|b| b.is_ascii_digit()) => {
                self.i += 1;
                w.parse::<T>()
                    .map_err(|_| self.err(col, format!("{what} `{}` is out of range", clip(w, 30))))
            }
            _ => Err(self.expected(what)),
        }
    }

    fn signed(&mut self, what: &str) -> Result<i64, ParseError> {
        let col = self.col();
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w))
                if !w.is_empty()
                    && w.strip_prefix('-')
                        .unwrap_or(w)
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                    && w != "-" =>
            {
                self.i += 1;
                w.parse::<i64>()
                    .map_err(|_| self.err(col, format!("{what} `{}` is out of range", clip(w, 30))))
            }
            _ => Err(self.expected(what)),
        }
    }

    /// `UID:GID`
    fn ids(&mut self) -> Result<(u32, u32), ParseError> {
        let what = "UID:GID (e.g. 1000:1000)";
        let col = self.col();
        let parsed = match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) => w.split_once(':').and_then(|(u, g)| {
                let num = |s: &str| {
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                        s.parse::<u32>().ok()
                    } else {
                        None
                    }
                };
                Some((num(u)?, num(g)?))
            }),
            _ => None,
        };
        match parsed {
            Some(ids) => {
                self.i += 1;
                Ok(ids)
            }
            None => Err(self.err(col, format!("expected {what}, found {}", self.found()))),
        }
    }

    /// The name of an open fd (`f`, `fd1`).
    fn fd_name(&mut self) -> Result<String, ParseError> {
        let (w, col) = self.word("an fd name (e.g. f1)")?;
        check_fd_name(w).map_err(|m| self.err(col, m))?;
        Ok(w.to_string())
    }

    /// `O_RDONLY|O_CREAT|...`: at most one access mode (none is
    /// `O_RDONLY`), each flag once.
    fn open_flags(&mut self) -> Result<OpenFlags, ParseError> {
        let (w, col) = self.word("open flags (e.g. O_RDWR|O_CREAT)")?;
        let mut f = OpenFlags::default();
        let mut access = None;
        let mut seen = Vec::new();
        let mut at = col;
        for part in w.split('|') {
            if seen.contains(&part) {
                return Err(self.err(at, format!("flag `{part}` given twice")));
            }
            let acc = match part {
                "O_RDONLY" => Some(Access::Rdonly),
                "O_WRONLY" => Some(Access::Wronly),
                "O_RDWR" => Some(Access::Rdwr),
                _ => None,
            };
            if let Some(a) = acc {
                if access.is_some() {
                    return Err(self.err(
                        at,
                        format!("`{part}`: only one of O_RDONLY, O_WRONLY, O_RDWR"),
                    ));
                }
                access = Some(a);
            } else {
                let slot = match part {
                    "O_CREAT" => &mut f.creat,
                    "O_EXCL" => &mut f.excl,
                    "O_TRUNC" => &mut f.trunc,
                    "O_APPEND" => &mut f.append,
                    "O_DIRECTORY" => &mut f.directory,
                    "O_NOFOLLOW" => &mut f.nofollow,
                    "O_PATH" => &mut f.path,
                    _ => {
                        return Err(self.err(
                            at,
                            format!(
                                "unknown open flag `{}`: use {}",
                                clip(part, 30),
                                OpenFlags::NAMES.join(", ")
                            ),
                        ))
                    }
                };
                *slot = true;
            }
            seen.push(part);
            at += part.chars().count() + 1;
        }
        // O_RDONLY is 0, so flags without an access mode read.
        f.access = access.unwrap_or(Access::Rdonly);
        Ok(f)
    }

    /// Optional flag words, each at most once, in any order.
    fn flags<const N: usize>(&mut self, names: [&str; N]) -> Result<[bool; N], ParseError> {
        self.flags_before(names, "=>")
    }

    /// [`Cursor::flags`] that also stops at the word `stop`.
    fn flags_before<const N: usize>(
        &mut self,
        names: [&str; N],
        stop: &str,
    ) -> Result<[bool; N], ParseError> {
        let at_stop = |t: &Token<'_>| t.tok == Tok::Arrow || t.tok == Tok::Word(stop.to_string());
        let mut set = [false; N];
        while let Some(t) = self.peek().filter(|t| !at_stop(t)) {
            let Tok::Word(w) = &t.tok else {
                break;
            };
            let Some(k) = names.iter().position(|n| n == w) else {
                break;
            };
            if set[k] {
                return Err(self.err(t.col, format!("flag `{w}` given twice")));
            }
            set[k] = true;
            self.i += 1;
        }
        if self.peek().is_some_and(|t| !at_stop(t)) {
            let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            return Err(self.expected(&format!("one of the flags {}", list.join(", "))));
        }
        Ok(set)
    }

    /// The end of the line (or `=>` when `arrow_ok`).
    fn end(&self, after: impl FnOnce() -> String, arrow_ok: bool) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(t) if arrow_ok && t.tok == Tok::Arrow => Ok(()),
            Some(t) => Err(self.err(
                t.col,
                format!("unexpected {} after {}", self.found_tok(t), after()),
            )),
        }
    }

    fn found_tok(&self, t: &Token<'_>) -> String {
        format!("`{}`", clip(t.src, 40))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Start,
    Data,
    Lower,
    Upper,
    Ops,
}

/// Which list a layer being read goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LayerRole {
    Data,
    Lower,
    Upper,
}

/// A layer being read, with the (line, column) of each entry's path.
struct OpenLayer {
    spec: LayerSpec,
    pos: Vec<(usize, usize)>,
    role: LayerRole,
}

struct Parser<'a> {
    file: &'a str,
    case: Case,
    section: Section,
    profile_line: Option<usize>,
    layer: Option<OpenLayer>,
    /// The fd names opened so far (`open P FLAGS as F`).
    fd_names: std::collections::BTreeSet<String>,
}

impl<'a> Parser<'a> {
    fn err(&self, line: usize, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Validates and stores the layer being read, if any.
    fn close_layer(&mut self) -> Result<(), ParseError> {
        let Some(l) = self.layer.take() else {
            return Ok(());
        };
        if let Err(e) = l.spec.objects() {
            let (line, col) = l.pos.get(e.entry).copied().unwrap_or((1, 1));
            return Err(self.err(line, col, e.message));
        }
        match l.role {
            LayerRole::Data => self.case.data.push(l.spec),
            LayerRole::Lower => self.case.lowers.push(l.spec),
            LayerRole::Upper => self.case.upper = Some(l.spec),
        }
        Ok(())
    }

    fn header(&mut self, c: &mut Cursor, name: &str) -> Result<(), ParseError> {
        let col = c.toks[0].col;
        c.i = 1;
        let mut format = LayerFormat::Overlay;
        let layered = matches!(name, "lower" | "upper");
        match c.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) if layered && w == "oci" => {
                c.i += 1;
                format = LayerFormat::Oci;
            }
            Some(Tok::Word(w)) if name == "lower" && w == "escaped" => {
                c.i += 1;
                format = LayerFormat::Escaped;
            }
            _ => {}
        }
        c.end(
            || match name {
                "ops" | "data" => format!("section header `{name}`"),
                "lower" => format!(
                    "section header `{name}` (a lower header may only add `oci` or `escaped`)"
                ),
                _ => format!("section header `{name}` (a layer header may only add `oci`)"),
            },
            false,
        )?;
        let layer = |role| OpenLayer {
            spec: LayerSpec {
                entries: Vec::new(),
                format,
            },
            pos: Vec::new(),
            role,
        };
        let need_lower = "a case needs at least one `lower` section first";
        // Data-only layers count against overlay's stack of lowers too.
        let layers = self.case.data.len() + self.case.lowers.len();
        if matches!(name, "lower" | "data")
            && layers + usize::from(self.layer.is_some()) >= MAX_LAYERS
        {
            return Err(c.err(
                col,
                format!("more than {MAX_LAYERS} lower and data layers (limits::MAX_LAYERS)"),
            ));
        }
        match (name, self.section) {
            ("data", Section::Start | Section::Data) => {
                self.close_layer()?;
                self.layer = Some(layer(LayerRole::Data));
                self.section = Section::Data;
            }
            ("data", Section::Lower | Section::Upper) => {
                return Err(c.err(
                    col,
                    "`data` sections must come before `lower` (data-only layers are the bottom of the stack)",
                ))
            }
            ("lower", Section::Start | Section::Data | Section::Lower) => {
                self.close_layer()?;
                self.layer = Some(layer(LayerRole::Lower));
                self.section = Section::Lower;
            }
            ("lower", Section::Upper) => {
                return Err(c.err(col, "`lower` sections must come before `upper`"))
            }
            ("upper", Section::Lower) => {
                self.close_layer()?;
                self.layer = Some(layer(LayerRole::Upper));
                self.section = Section::Upper;
            }
            ("upper", Section::Upper) => {
                return Err(c.err(col, "a case has at most one `upper` section"))
            }
            ("ops", Section::Lower | Section::Upper) => {
                self.close_layer()?;
                self.section = Section::Ops;
            }
            ("upper" | "ops", Section::Start | Section::Data) => {
                return Err(c.err(col, format!("`{name}` before any `lower`: {need_lower}")))
            }
            ("ops", Section::Ops) => return Err(c.err(col, "a case has only one `ops` section")),
            (_, _) => {
                return Err(c.err(
                    col,
                    format!("`{name}` after `ops`: the `ops` section must come last"),
                ))
            }
        }
        Ok(())
    }

    /// `known BACKEND "SIGNATURE"`: a divergence the case shows on BACKEND.
    fn known(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let col = c.toks[0].col;
        if self.section != Section::Start {
            return Err(c.err(col, "`known` must come before the first section"));
        }
        c.i = 1;
        let (backend, _) = c.word("a backend name (e.g. fuse-overlayfs)")?;
        let backend = backend.to_string();
        let (text, scol) = c.string("the quoted signature of the divergence")?;
        c.end(|| "the signature".into(), false)?;
        let text = String::from_utf8(text).map_err(|_| c.err(scol, "a signature is UTF-8 text"))?;
        let signature = text
            .parse()
            .map_err(|e| c.err(scol, format!("bad signature: {e}")))?;
        self.case.known.push(crate::Known { backend, signature });
        Ok(())
    }

    fn profile(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let col = c.toks[0].col;
        if let Some(first) = self.profile_line {
            return Err(c.err(
                col,
                format!("`profile` given twice (first on line {first})"),
            ));
        }
        if self.section != Section::Start {
            return Err(c.err(col, "`profile` must come before the first section"));
        }
        c.i = 1;
        let n_words = c.toks.len() - 1;
        if n_words == 0 {
            return Err(c.expected("a preset name or profile options (e.g. redirect_dir=on)"));
        }
        let mut p = Profile::default();
        while c.peek().is_some() {
            let (w, wcol) = c.word("a preset name or a profile option")?;
            if n_words == 1 {
                if let Some(preset) = Profile::preset(w) {
                    p = preset;
                    continue;
                }
            }
            p.set_option(w).map_err(|m| {
                if Profile::preset(w).is_some() {
                    c.err(
                        wcol,
                        format!("preset `{w}` cannot be combined with other options"),
                    )
                } else {
                    c.err(wcol, m)
                }
            })?;
        }
        p.validate()
            .map_err(|m| c.err(col, format!("invalid profile: {m}")))?;
        self.case.profile = p;
        self.profile_line = Some(c.line);
        Ok(())
    }

    fn entry(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let kw_col = c.col();
        let (kw, _) = c
            .word("")
            .map_err(|_| c.expected(&format!("a layer entry ({ENTRY_WORDS})")))?;
        let path_of = |c: &mut Cursor| c.rel_path();
        let (entry, pcol) = match kw {
            "dir" => {
                let (path, col) = path_of(c)?;
                (
                    Entry::Dir {
                        path,
                        mode: c.mode()?,
                    },
                    col,
                )
            }
            "file" => {
                let (path, col) = path_of(c)?;
                let mode = c.mode()?;
                let data = c.file_data()?;
                (Entry::File { path, mode, data }, col)
            }
            "symlink" => {
                let (path, col) = path_of(c)?;
                let (target, _) = c.string("the symlink target")?;
                (Entry::Symlink { path, target }, col)
            }
            "hardlink" => {
                let (path, col) = path_of(c)?;
                let (existing, _) = c.rel_path()?;
                (Entry::Hardlink { path, existing }, col)
            }
            "fifo" => {
                let (path, col) = path_of(c)?;
                (
                    Entry::Fifo {
                        path,
                        mode: c.mode()?,
                    },
                    col,
                )
            }
            "whiteout" | "opaque" | "xwhiteouts" | "xwhiteout" | "metacopy" => {
                let (path, col) = path_of(c)?;
                let e = match kw {
                    "whiteout" => Entry::Whiteout { path },
                    "opaque" => Entry::Opaque { path },
                    "xwhiteouts" => Entry::XwhiteoutDir { path },
                    "metacopy" => Entry::Metacopy { path },
                    _ => Entry::Xwhiteout { path },
                };
                (e, col)
            }
            "redirect" => {
                let (path, col) = path_of(c)?;
                let (t, tcol) = c.string("the redirect target")?;
                let target = String::from_utf8(t)
                    .map_err(|_| c.err(tcol, "redirect target is not valid UTF-8"))?;
                (Entry::Redirect { path, target }, col)
            }
            "xattr" => {
                let (path, col) = path_of(c)?;
                let (name, ncol) = c.xattr_name()?;
                check_layer_xattr_name(&name).map_err(|m| c.err(ncol, m))?;
                let (value, vcol) = c.string("the xattr value")?;
                if name == CAPABILITY_XATTR {
                    check_capability_value(&value).map_err(|m| c.err(vcol, m))?;
                }
                if crate::acl::is_acl_name(&name) {
                    check_acl_value(&value, true).map_err(|m| c.err(vcol, m))?;
                }
                (Entry::Xattr { path, name, value }, col)
            }
            "owner" => {
                let (path, col) = path_of(c)?;
                let uid = c.unsigned("a uid")?;
                let gid = c.unsigned("a gid")?;
                (Entry::Owner { path, uid, gid }, col)
            }
            "mtime" => {
                let (path, col) = path_of(c)?;
                (
                    Entry::Mtime {
                        path,
                        secs: c.signed("seconds since the epoch")?,
                    },
                    col,
                )
            }
            "attr" => {
                let (path, col) = path_of(c)?;
                let (flags, fcol) = c.inode_flags()?;
                let upper = self
                    .layer
                    .as_ref()
                    .is_some_and(|l| l.role == LayerRole::Upper);
                if upper && flags.intersects(InodeFlags::PROTECTED) {
                    return Err(c.err(
                        fcol,
                        "an upper layer cannot hold immutable or append-only inodes: \
                         overlayfs keeps those flags of upper files in `overlay.protattr` \
                         (give them to a lower layer's entry, or set them with `chattr`)",
                    ));
                }
                (Entry::Attr { path, flags }, col)
            }
            _ => {
                return Err(c.err(
                    kw_col,
                    format!(
                        "expected a layer entry ({ENTRY_WORDS}), found `{}`",
                        clip(kw, 40)
                    ),
                ))
            }
        };
        c.end(|| format!("`{kw}` entry"), false)?;
        let line = c.line;
        let Some(layer) = self.layer.as_mut() else {
            return Err(c.err(kw_col, "layer entry outside a layer section"));
        };
        if layer.spec.entries.len() >= MAX_LAYER_ENTRIES {
            return Err(c.err(
                kw_col,
                format!(
                    "more than {MAX_LAYER_ENTRIES} entries in one layer (limits::MAX_LAYER_ENTRIES)"
                ),
            ));
        }
        layer.spec.entries.push(entry);
        layer.pos.push((line, pcol));
        Ok(())
    }

    fn step(&mut self, c: &mut Cursor) -> Result<(), ParseError> {
        let first_col = c.col();
        if self.case.steps.len() >= MAX_OPS {
            return Err(c.err(
                first_col,
                format!("more than {MAX_OPS} ops (limits::MAX_OPS)"),
            ));
        }
        let mut cred = None;
        if matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(w)) if w == "as") {
            c.i += 1;
            let (uid, gid) = c.ids()?;
            cred = Some(Cred { uid, gid });
        }
        let op_col = c.col();
        let op = op(c)?;
        if let Op::Offline { layer, .. } = &op {
            // The ops follow the layer sections.
            let lowers = self.case.lowers.len();
            if *layer >= lowers {
                return Err(c.err(
                    op_col,
                    format!(
                        "`offline {layer}`: the case has {lowers} lower layers (0 to {})",
                        lowers.saturating_sub(1)
                    ),
                ));
            }
        }
        if let Op::Open { fd: Some(name), .. } = &op {
            if !self.fd_names.contains(name) {
                if self.fd_names.len() >= MAX_FDS {
                    return Err(c.err(
                        op_col,
                        format!("more than {MAX_FDS} fd names in one case (limits::MAX_FDS)"),
                    ));
                }
                self.fd_names.insert(name.clone());
            }
        }
        let mut expect = None;
        if c.peek().is_some_and(|t| t.tok == Tok::Arrow) {
            c.i += 1;
            expect = Some(outcome(c)?);
            c.end(|| "the expected outcome".to_string(), false)?;
        }
        self.case.steps.push(Step { op, cred, expect });
        Ok(())
    }
}

fn op(c: &mut Cursor) -> Result<Op, ParseError> {
    let kw_col = c.col();
    let (kw, _) = c
        .word("")
        .map_err(|_| c.expected(&format!("an op ({OP_WORDS})")))?;
    let op = match kw {
        "lstat" => Op::Lstat { path: c.op_path()? },
        "stat" => Op::Stat { path: c.op_path()? },
        "read" => Op::Read { path: c.op_path()? },
        "readlink" => Op::Readlink { path: c.op_path()? },
        "readdir" => Op::Readdir { path: c.op_path()? },
        "listxattr" => Op::Listxattr { path: c.op_path()? },
        "statfs" => Op::Statfs { path: c.op_path()? },
        "unlink" => Op::Unlink { path: c.op_path()? },
        "rmdir" => Op::Rmdir { path: c.op_path()? },
        "getxattr" => Op::Getxattr {
            path: c.op_path()?,
            name: c.xattr_name()?.0,
        },
        "removexattr" => Op::Removexattr {
            path: c.op_path()?,
            name: c.xattr_name()?.0,
        },
        "open" => {
            let path = c.op_path()?;
            let syscall_form =
                matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(w)) if w.starts_with("O_"));
            let (flags, mode) = if syscall_form {
                let flags = c.open_flags()?;
                let mode = if flags.creat { c.mode()? } else { 0 };
                (flags, mode)
            } else {
                let [write, trunc] = c.flags_before(["rdwr", "trunc"], "as")?;
                (OpenFlags::plain(write, trunc), 0)
            };
            let mut fd = None;
            if matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(w)) if w == "as") {
                c.i += 1;
                fd = Some(c.fd_name()?);
            }
            Op::Open {
                path,
                flags,
                mode,
                fd,
            }
        }
        "create" => {
            let path = c.op_path()?;
            let mode = c.mode()?;
            let [excl, trunc] = c.flags(["excl", "trunc"])?;
            Op::Create {
                path,
                mode,
                excl,
                trunc,
            }
        }
        "write" => {
            let path = c.op_path()?;
            let ocol = c.col();
            let offset: u64 = c.unsigned("an offset")?;
            let (data, _) = c.string("the data")?;
            if offset.saturating_add(data.len() as u64) > MAX_FILE_DATA {
                return Err(c.err(
                    ocol,
                    format!("write would end past {MAX_FILE_DATA} bytes (limits::MAX_FILE_DATA)"),
                ));
            }
            Op::Write { path, offset, data }
        }
        "truncate" => {
            let path = c.op_path()?;
            let scol = c.col();
            let size: u64 = c.unsigned("a size")?;
            if size > MAX_FILE_DATA {
                return Err(c.err(
                    scol,
                    format!("size {size} is over {MAX_FILE_DATA} bytes (limits::MAX_FILE_DATA)"),
                ));
            }
            Op::Truncate { path, size }
        }
        "mkdir" => Op::Mkdir {
            path: c.op_path()?,
            mode: c.mode()?,
        },
        "mkfifo" => Op::Mkfifo {
            path: c.op_path()?,
            mode: c.mode()?,
        },
        "chmod" => Op::Chmod {
            path: c.op_path()?,
            mode: c.mode()?,
        },
        "chattr" => Op::Chattr {
            path: c.op_path()?,
            flags: c.inode_flags()?.0,
        },
        "symlink" => {
            let (target, tcol) = c.string("the symlink target")?;
            if target.contains(&0) {
                return Err(c.err(tcol, "a symlink target cannot contain a NUL byte"));
            }
            Op::Symlink {
                target,
                path: c.op_path()?,
            }
        }
        "link" => Op::Link {
            old: c.op_path()?,
            new: c.op_path()?,
        },
        "rename" => {
            let old = c.op_path()?;
            let new = c.op_path()?;
            let [noreplace, exchange, whiteout] = c.flags(["noreplace", "exchange", "whiteout"])?;
            Op::Rename {
                old,
                new,
                flags: RenameFlags {
                    noreplace,
                    exchange,
                    whiteout,
                },
            }
        }
        "chown" => Op::Chown {
            path: c.op_path()?,
            uid: c.unsigned("a uid")?,
            gid: c.unsigned("a gid")?,
        },
        "utimes" => {
            let path = c.op_path()?;
            let mtime = if matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(w)) if w == "now") {
                c.i += 1;
                None
            } else {
                Some(c.signed("seconds since the epoch or `now`")?)
            };
            Op::Utimes { path, mtime }
        }
        "fstat" => Op::Fstat { fd: c.fd_name()? },
        "fsync" => Op::Fsync { fd: c.fd_name()? },
        "close" => Op::Close { fd: c.fd_name()? },
        "freaddir" => Op::Freaddir { fd: c.fd_name()? },
        "fread" => {
            let fd = c.fd_name()?;
            let len = if matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(_))) {
                let lcol = c.col();
                let len: u64 = c.unsigned("a byte count")?;
                if len > MAX_FILE_DATA {
                    return Err(c.err(
                        lcol,
                        format!(
                            "count {len} is over {MAX_FILE_DATA} bytes (limits::MAX_FILE_DATA)"
                        ),
                    ));
                }
                Some(len)
            } else {
                None
            };
            Op::Fread { fd, len }
        }
        "fwrite" => {
            let fd = c.fd_name()?;
            let ocol = c.col();
            let offset = if matches!(c.peek().map(|t| &t.tok), Some(Tok::Word(_))) {
                Some(c.unsigned::<u64>("an offset")?)
            } else {
                None
            };
            let (data, _) = c.string("the data")?;
            if offset.unwrap_or(0).saturating_add(data.len() as u64) > MAX_FILE_DATA {
                return Err(c.err(
                    ocol,
                    format!("write would end past {MAX_FILE_DATA} bytes (limits::MAX_FILE_DATA)"),
                ));
            }
            Op::Fwrite { fd, offset, data }
        }
        "lseek" => {
            let fd = c.fd_name()?;
            let ocol = c.col();
            let offset = c.signed("an offset")?;
            if offset.unsigned_abs() > MAX_FILE_DATA {
                return Err(c.err(
                    ocol,
                    format!(
                        "offset {offset} is beyond {MAX_FILE_DATA} bytes (limits::MAX_FILE_DATA)"
                    ),
                ));
            }
            let wcol = c.col();
            let (w, _) = c.word("SEEK_SET, SEEK_CUR or SEEK_END")?;
            let whence = Whence::from_keyword(w).ok_or_else(|| {
                c.err(
                    wcol,
                    format!(
                        "expected SEEK_SET, SEEK_CUR or SEEK_END, found `{}`",
                        clip(w, 30)
                    ),
                )
            })?;
            Op::Lseek { fd, offset, whence }
        }
        "setxattr" => {
            let path = c.op_path()?;
            let (name, ncol) = c.xattr_name()?;
            if name == CAPABILITY_XATTR {
                // Not modelled: the value checks and conversions of
                // commoncap.c (cap_convert_nscap) and CAP_SETFCAP.
                return Err(c.err(
                    ncol,
                    format!(
                        "`{CAPABILITY_XATTR}` cannot be set by an op: setting file capabilities \
                         through the overlay is not modelled (give the file one in its layer)"
                    ),
                ));
            }
            let (value, vcol) = c.string("the xattr value")?;
            if crate::acl::is_acl_name(&name) {
                check_acl_value(&value, false).map_err(|m| c.err(vcol, m))?;
            }
            Op::Setxattr { path, name, value }
        }
        "remount" => Op::Remount,
        "commit" => Op::Commit,
        "offline" => {
            let layer = c.unsigned::<usize>("a lower layer number")?;
            let wcol = c.col();
            let (what, _) = c.word("`remove` or `file`")?;
            let change = match what {
                "remove" => crate::OfflineChange::Remove(c.rel_path()?.0),
                "file" => {
                    let (path, _) = c.rel_path()?;
                    let mode = c.mode()?;
                    let data = c.file_data()?;
                    crate::OfflineChange::File { path, mode, data }
                }
                other => {
                    return Err(c.err(
                        wcol,
                        format!("expected `remove` or `file`, found `{}`", clip(other, 30)),
                    ))
                }
            };
            Op::Offline { layer, change }
        }
        _ => {
            return Err(c.err(
                kw_col,
                format!("expected an op ({OP_WORDS}), found `{}`", clip(kw, 40)),
            ))
        }
    };
    c.end(|| format!("`{kw}` op"), true)?;
    Ok(op)
}

fn outcome(c: &mut Cursor) -> Result<Outcome, ParseError> {
    let col = c.col();
    let Some(t) = c.peek() else {
        return Err(c.expected(&format!("{OUTCOME_WORDS} after `=>`")));
    };
    match &t.tok {
        Tok::Word(w) if w == "ok" => {
            c.i += 1;
            Ok(Outcome::OK)
        }
        Tok::Word(w) => match Errno::from_name(w) {
            Some(e) => {
                c.i += 1;
                Ok(Outcome::Err(e))
            }
            None => Err(c.expected(OUTCOME_WORDS)),
        },
        Tok::Str(b) => {
            c.i += 1;
            Ok(Outcome::Ok(Value::Bytes(b.clone())))
        }
        Tok::LBracket => {
            c.i += 1;
            let mut names = Vec::new();
            loop {
                if c.peek().is_some_and(|t| t.tok == Tok::RBracket) {
                    c.i += 1;
                    break;
                }
                let (name, _) = c.text("a name (\"...\") or `]`")?;
                names.push(name);
                match c.peek().map(|t| &t.tok) {
                    Some(Tok::Comma) => c.i += 1,
                    Some(Tok::RBracket) => {}
                    _ => return Err(c.expected("`,` or `]`")),
                }
            }
            Ok(Outcome::Ok(Value::Names(names)))
        }
        Tok::LBrace => {
            c.i += 1;
            let kcol = c.col();
            let (k, _) = c.word("a file kind (file, dir, symlink, fifo, char, other) or fsid=")?;
            if let Some(class) = k.strip_prefix("fsid=") {
                let id = Fsid::from_keyword(class).ok_or_else(|| {
                    c.err(
                        kcol,
                        format!(
                            "expected fsid=own, upper, lower or zero, found `{}`",
                            clip(k, 40)
                        ),
                    )
                })?;
                if !c.peek().is_some_and(|t| t.tok == Tok::RBrace) {
                    return Err(c.expected("`}`"));
                }
                c.i += 1;
                return Ok(Outcome::Ok(Value::Fsid(id)));
            }
            let kind = FileKind::from_keyword(k).ok_or_else(|| {
                c.err(
                    kcol,
                    format!(
                        "expected a file kind (file, dir, symlink, fifo, char, other), found `{}`",
                        clip(k, 40)
                    ),
                )
            })?;
            let mode = c.mode()?;
            let (uid, gid) = c.ids()?;
            let size = keyed(c, "size")?;
            let nlink = keyed(c, "nlink")?;
            if !c.peek().is_some_and(|t| t.tok == Tok::RBrace) {
                return Err(c.expected("`}`"));
            }
            c.i += 1;
            Ok(Outcome::Ok(Value::Stat(StatInfo {
                kind,
                mode,
                uid,
                gid,
                size,
                nlink,
            })))
        }
        _ => Err(c.err(
            col,
            format!("expected {OUTCOME_WORDS}, found {}", c.found()),
        )),
    }
}

/// `KEY=N`
fn keyed<T: FromStr>(c: &mut Cursor, key: &str) -> Result<T, ParseError> {
    let col = c.col();
    let value = match c.peek().map(|t| &t.tok) {
        Some(Tok::Word(w)) => w
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<T>().ok()),
        _ => None,
    };
    match value {
        Some(v) => {
            c.i += 1;
            Ok(v)
        }
        None => Err(c.err(col, format!("expected `{key}=N`, found {}", c.found()))),
    }
}

pub(crate) fn parse(file: &str, text: &str) -> Result<Case, ParseError> {
    let mut p = Parser {
        file,
        case: Case::default(),
        section: Section::Start,
        profile_line: None,
        layer: None,
        fd_names: Default::default(),
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(p.err(
            1,
            1,
            format!(
                "input is {} bytes, over the limit of {MAX_INPUT_BYTES} (limits::MAX_INPUT_BYTES)",
                text.len()
            ),
        ));
    }
    let mut eof = (1, 1);
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        eof = (line_no, line.chars().count() + 1);
        let toks = lex_line(line).map_err(|(col, m)| p.err(line_no, col, m))?;
        if toks.is_empty() {
            continue;
        }
        let mut c = Cursor {
            file,
            line: line_no,
            toks: &toks,
            i: 0,
            eol: eof.1,
        };
        let head = match &toks[0].tok {
            Tok::Word(w) => w.as_str(),
            _ => "",
        };
        match head {
            "data" | "lower" | "upper" | "ops" => p.header(&mut c, head)?,
            "profile" => p.profile(&mut c)?,
            "known" => p.known(&mut c)?,
            _ => {
                match p.section {
                    Section::Start => return Err(c.expected(
                        "`profile`, `known` or a section header (`data`, `lower`, `upper`, `ops`)",
                    )),
                    Section::Data | Section::Lower | Section::Upper => p.entry(&mut c)?,
                    Section::Ops => p.step(&mut c)?,
                }
            }
        }
    }
    p.close_layer()?;
    if p.case.lowers.is_empty() {
        return Err(p.err(eof.0, eof.1, "a case needs at least one `lower` section"));
    }
    Ok(p.case)
}
