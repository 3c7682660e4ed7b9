//! What an operation returns. Only deterministic fields are recorded: no
//! timestamps chosen by the clock, no raw inode numbers.

use crate::errno::Errno;
use serde::{Deserialize, Serialize};

/// The file type as `stat(2)` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    /// A character device (whiteouts are never visible in a merged tree).
    Char,
    Other,
}

impl FileKind {
    pub fn keyword(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Char => "char",
            FileKind::Other => "other",
        }
    }

    pub fn from_keyword(s: &str) -> Option<FileKind> {
        Some(match s {
            "file" => FileKind::File,
            "dir" => FileKind::Dir,
            "symlink" => FileKind::Symlink,
            "fifo" => FileKind::Fifo,
            "char" => FileKind::Char,
            "other" => FileKind::Other,
            _ => return None,
        })
    }
}

/// The deterministic part of `struct stat`. `size` is 0 for directories
/// (directory sizes are a property of the underlying filesystem). `nlink` is
/// as overlay reports it (a merged directory reports 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatInfo {
    pub kind: FileKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
}

/// The filesystem id `statfs(2)` reports for a path in the overlay, as a
/// class: raw fsids differ between filesystem instances, so a case records
/// whose id it is (overlayfs.rst: "UUID and fsid").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fsid {
    /// The overlay's own: non-zero and no layer filesystem's (made from the
    /// overlay's uuid).
    Own,
    /// The upper layer's filesystem's.
    Upper,
    /// The top lower layer's filesystem's.
    Lower,
    /// Zero.
    Zero,
}

impl Fsid {
    pub const ALL: [Fsid; 4] = [Fsid::Own, Fsid::Upper, Fsid::Lower, Fsid::Zero];

    pub fn keyword(self) -> &'static str {
        match self {
            Fsid::Own => "own",
            Fsid::Upper => "upper",
            Fsid::Lower => "lower",
            Fsid::Zero => "zero",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Fsid> {
        Fsid::ALL.into_iter().find(|f| f.keyword() == s)
    }
}

/// The value of a successful op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Ops that return nothing but success. Printed `ok`.
    Unit,
    /// `read`, `readlink`, `getxattr`. Printed as a quoted string.
    Bytes(Vec<u8>),
    /// `readdir` and `listxattr`, sorted. Printed `["a", "b"]`.
    Names(Vec<String>),
    /// `stat` and `lstat`. Printed `{file 0644 0:0 size=3 nlink=1}`.
    Stat(StatInfo),
    /// `statfs`. Printed `{fsid=own}`.
    Fsid(Fsid),
}

/// The result of one op: a value or an errno.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Ok(Value),
    Err(Errno),
}

impl Outcome {
    pub const OK: Outcome = Outcome::Ok(Value::Unit);

    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }
}

impl std::fmt::Display for StatInfo {
    /// `{file 0644 0:0 size=3 nlink=1}`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{{} {:04o} {}:{} size={} nlink={}}}",
            self.kind.keyword(),
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.nlink
        )
    }
}

impl std::fmt::Display for Value {
    /// The `=> EXPECT` syntax: `ok`, `"bytes"`, `["a", "b"]`, a stat or
    /// an fsid.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Unit => f.write_str("ok"),
            Value::Bytes(b) => f.write_str(&crate::quote::quote(b)),
            Value::Names(names) => {
                f.write_str("[")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&crate::quote::quote(n.as_bytes()))?;
                }
                f.write_str("]")
            }
            Value::Stat(s) => write!(f, "{s}"),
            Value::Fsid(id) => write!(f, "{{fsid={}}}", id.keyword()),
        }
    }
}

impl std::fmt::Display for Outcome {
    /// A value, or an errno name (`ENOENT`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok(v) => write!(f, "{v}"),
            Outcome::Err(e) => write!(f, "{e}"),
        }
    }
}
