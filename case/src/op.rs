//! Operations on the merged tree. The enum is ordered simple-to-complex:
//! proptest shrinks toward earlier variants, so a minimized case lands on the
//! simplest operations that still show a divergence.

use crate::outcome::Outcome;
use crate::path::{OpPath, RelPath};
use serde::{Deserialize, Serialize};

/// Flags of `open(2)` for [`Op::Open`]: access mode and `O_TRUNC`. Opening
/// for write or with `O_TRUNC` triggers copy-up even without a write
/// (copy_up.c: ovl_open_flags_need_copy_up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct OpenFlags {
    /// `O_RDWR` instead of `O_RDONLY`.
    pub write: bool,
    pub trunc: bool,
}

/// Flags of `renameat2(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
    pub whiteout: bool,
}

/// One filesystem operation. Paths are relative to the overlay root; paths
/// that end in `/` keep it. Unless said otherwise an op follows a final
/// symlink as its syscall does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `lstat(2)`: does not follow a final symlink.
    Lstat { path: OpPath },
    /// `stat(2)`
    Stat { path: OpPath },
    /// open O_RDONLY, read the whole file, close.
    Read { path: OpPath },
    /// `readlink(2)`
    Readlink { path: OpPath },
    /// open O_DIRECTORY, getdents to the end; names sorted, without `.`/`..`.
    Readdir { path: OpPath },
    /// `getxattr(2)`
    Getxattr { path: OpPath, name: String },
    /// `listxattr(2)`: names sorted; only `user.*` names are compared.
    Listxattr { path: OpPath },
    /// open with these flags, close: copy-up without writing.
    Open { path: OpPath, flags: OpenFlags },
    /// `open(O_CREAT|O_WRONLY [|O_EXCL] [|O_TRUNC], mode)`, close.
    Create {
        path: OpPath,
        mode: u32,
        excl: bool,
        trunc: bool,
    },
    /// open O_WRONLY, `pwrite` at `offset`, close.
    Write {
        path: OpPath,
        offset: u64,
        data: Vec<u8>,
    },
    /// `truncate(2)`
    Truncate { path: OpPath, size: u64 },
    /// `mkdir(2)`
    Mkdir { path: OpPath, mode: u32 },
    /// `mknod(2)` of a fifo.
    Mkfifo { path: OpPath, mode: u32 },
    /// `symlink(target, path)`
    Symlink { target: Vec<u8>, path: OpPath },
    /// `unlink(2)`
    Unlink { path: OpPath },
    /// `rmdir(2)`
    Rmdir { path: OpPath },
    /// `link(old, new)` (does not follow a final symlink at `old`).
    Link { old: OpPath, new: OpPath },
    /// `renameat2(old, new, flags)`
    Rename {
        old: OpPath,
        new: OpPath,
        flags: RenameFlags,
    },
    /// `chmod(2)`
    Chmod { path: OpPath, mode: u32 },
    /// `chown(2)`
    Chown { path: OpPath, uid: u32, gid: u32 },
    /// `utimensat(2)`: atime and mtime set to `mtime` seconds.
    Utimes { path: OpPath, mtime: i64 },
    /// `setxattr(2)` with flags 0.
    Setxattr {
        path: OpPath,
        name: String,
        value: Vec<u8>,
    },
    /// `removexattr(2)`
    Removexattr { path: OpPath, name: String },
    /// Unmount and mount the same layers again.
    Remount,
    /// Unmount; the upper becomes the top lower layer; mount with a fresh
    /// upper (what `docker commit` then `docker run` does).
    Commit,
}

impl Op {
    /// Every op keyword, in the order of the variants (simple to complex).
    pub const KEYWORDS: &'static [&'static str] = &[
        "lstat",
        "stat",
        "read",
        "readlink",
        "readdir",
        "getxattr",
        "listxattr",
        "open",
        "create",
        "write",
        "truncate",
        "mkdir",
        "mkfifo",
        "symlink",
        "unlink",
        "rmdir",
        "link",
        "rename",
        "chmod",
        "chown",
        "utimes",
        "setxattr",
        "removexattr",
        "remount",
        "commit",
    ];

    /// The syscall-ish keyword of this op in the text format.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Lstat { .. } => "lstat",
            Op::Stat { .. } => "stat",
            Op::Read { .. } => "read",
            Op::Readlink { .. } => "readlink",
            Op::Readdir { .. } => "readdir",
            Op::Getxattr { .. } => "getxattr",
            Op::Listxattr { .. } => "listxattr",
            Op::Open { .. } => "open",
            Op::Create { .. } => "create",
            Op::Write { .. } => "write",
            Op::Truncate { .. } => "truncate",
            Op::Mkdir { .. } => "mkdir",
            Op::Mkfifo { .. } => "mkfifo",
            Op::Symlink { .. } => "symlink",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::Link { .. } => "link",
            Op::Rename { .. } => "rename",
            Op::Chmod { .. } => "chmod",
            Op::Chown { .. } => "chown",
            Op::Utimes { .. } => "utimes",
            Op::Setxattr { .. } => "setxattr",
            Op::Removexattr { .. } => "removexattr",
            Op::Remount => "remount",
            Op::Commit => "commit",
        }
    }

    /// The paths this op names (for generators, shrinkers and reports).
    pub fn paths(&self) -> Vec<&RelPath> {
        match self {
            Op::Link { old, new } | Op::Rename { old, new, .. } => vec![&old.path, &new.path],
            Op::Remount | Op::Commit => vec![],
            Op::Lstat { path }
            | Op::Stat { path }
            | Op::Read { path }
            | Op::Readlink { path }
            | Op::Readdir { path }
            | Op::Getxattr { path, .. }
            | Op::Listxattr { path }
            | Op::Open { path, .. }
            | Op::Create { path, .. }
            | Op::Write { path, .. }
            | Op::Truncate { path, .. }
            | Op::Mkdir { path, .. }
            | Op::Mkfifo { path, .. }
            | Op::Symlink { path, .. }
            | Op::Unlink { path }
            | Op::Rmdir { path }
            | Op::Chmod { path, .. }
            | Op::Chown { path, .. }
            | Op::Utimes { path, .. }
            | Op::Setxattr { path, .. }
            | Op::Removexattr { path, .. } => vec![&path.path],
        }
    }

    /// True for `remount` and `commit`.
    pub fn is_lifecycle(&self) -> bool {
        matches!(self, Op::Remount | Op::Commit)
    }
}

/// The credentials an op runs with: `as UID:GID` in the text format. The
/// default is root (0:0) with all capabilities; another uid runs without
/// capabilities, so permission checks apply (EACCES/EPERM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
}

impl Cred {
    pub const ROOT: Cred = Cred { uid: 0, gid: 0 };

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// One step of a case: an op, who runs it, and optionally the pinned outcome
/// it must have (`=> ...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub op: Op,
    pub cred: Option<Cred>,
    pub expect: Option<Outcome>,
}

impl Step {
    pub fn new(op: Op) -> Step {
        Step {
            op,
            cred: None,
            expect: None,
        }
    }

    /// The credentials this step runs with (root when unset).
    pub fn cred(&self) -> Cred {
        self.cred.unwrap_or(Cred::ROOT)
    }

    /// The same step without its pinned outcome: the op and credentials
    /// alone, as reports show a step and as a case is run afresh.
    pub fn unpinned(&self) -> Step {
        Step {
            op: self.op.clone(),
            cred: self.cred,
            expect: None,
        }
    }
}
