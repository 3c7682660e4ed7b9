//! Operations on the merged tree. The enum is ordered simple-to-complex:
//! proptest shrinks toward earlier variants, so a minimized case lands on the
//! simplest operations that still show a divergence.

use crate::outcome::Outcome;
use crate::path::{OpPath, RelPath};
use serde::{Deserialize, Serialize};

/// The access mode of `open(2)`: the low two bits of its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Access {
    #[default]
    Rdonly,
    Wronly,
    Rdwr,
}

impl Access {
    /// Whether the fd may be read (`FMODE_READ`).
    pub fn reads(self) -> bool {
        self != Access::Wronly
    }

    /// Whether the fd may be written (`FMODE_WRITE`).
    pub fn writes(self) -> bool {
        self != Access::Rdonly
    }
}

/// Flags of `open(2)` for [`Op::Open`], as the syscall has them. Opening
/// for write or with `O_TRUNC` triggers copy-up even without a write
/// (copy_up.c: ovl_open_flags_need_copy_up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct OpenFlags {
    pub access: Access,
    pub creat: bool,
    /// `O_EXCL`: with `O_CREAT` the name must not exist; without it the
    /// flag has no effect on anything but block devices.
    pub excl: bool,
    pub trunc: bool,
    pub append: bool,
    pub directory: bool,
    pub nofollow: bool,
    /// `O_PATH`: every flag but `O_DIRECTORY` and `O_NOFOLLOW` is ignored
    /// (open.c: build_open_flags).
    pub path: bool,
}

impl OpenFlags {
    /// The flag names in the order the text format prints them.
    pub const NAMES: [&'static str; 10] = [
        "O_RDONLY",
        "O_WRONLY",
        "O_RDWR",
        "O_CREAT",
        "O_EXCL",
        "O_TRUNC",
        "O_APPEND",
        "O_DIRECTORY",
        "O_NOFOLLOW",
        "O_PATH",
    ];

    /// `O_RDONLY` or `O_RDWR`, maybe with `O_TRUNC`: what the short form
    /// `open P [rdwr] [trunc]` says.
    pub fn plain(write: bool, trunc: bool) -> OpenFlags {
        OpenFlags {
            access: if write { Access::Rdwr } else { Access::Rdonly },
            trunc,
            ..OpenFlags::default()
        }
    }

    /// Whether the short form `open P [rdwr] [trunc]` says these flags.
    pub fn is_plain(&self) -> bool {
        *self == OpenFlags::plain(self.access == Access::Rdwr, self.trunc)
    }

    /// The flags as `open(2)` takes them, `|`-joined (`O_RDWR|O_CREAT`).
    pub fn names(&self) -> String {
        let mut v = vec![match self.access {
            Access::Rdonly => "O_RDONLY",
            Access::Wronly => "O_WRONLY",
            Access::Rdwr => "O_RDWR",
        }];
        for (set, name) in [
            (self.creat, "O_CREAT"),
            (self.excl, "O_EXCL"),
            (self.trunc, "O_TRUNC"),
            (self.append, "O_APPEND"),
            (self.directory, "O_DIRECTORY"),
            (self.nofollow, "O_NOFOLLOW"),
            (self.path, "O_PATH"),
        ] {
            if set {
                v.push(name);
            }
        }
        v.join("|")
    }
}

/// `whence` of `lseek(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Whence {
    Set,
    Cur,
    End,
}

impl Whence {
    pub fn keyword(self) -> &'static str {
        match self {
            Whence::Set => "SEEK_SET",
            Whence::Cur => "SEEK_CUR",
            Whence::End => "SEEK_END",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Whence> {
        Some(match s {
            "SEEK_SET" => Whence::Set,
            "SEEK_CUR" => Whence::Cur,
            "SEEK_END" => Whence::End,
            _ => return None,
        })
    }
}

/// Checks the name of an open file descriptor (`open P FLAGS as F`): a
/// lowercase letter, then up to 15 lowercase letters, digits or `_`.
pub fn check_fd_name(s: &str) -> Result<(), String> {
    let ok = s.len() <= 16
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid fd name `{s}`: a lowercase letter, then up to 15 lowercase letters, digits or `_`"
        ))
    }
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
    /// `statfs(2)`: which filesystem id it reports ([`crate::Fsid`]).
    Statfs { path: OpPath },
    /// `open(P, flags, mode)`: with `fd`, the file stays open under that
    /// name for the fd ops that follow (an fd already open under the name
    /// is closed first); without, it is closed at once. `mode` counts only
    /// with `O_CREAT` (it is 0 otherwise).
    Open {
        path: OpPath,
        flags: OpenFlags,
        mode: u32,
        fd: Option<String>,
    },
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
    /// `utimensat(2)`: atime and mtime set to `mtime` seconds, or with
    /// `None` (`utimes P now`) to the current time (NULL times), which the
    /// owner or a writer may do (fs/utimes.c: vfs_utimes, ATTR_TOUCH).
    Utimes { path: OpPath, mtime: Option<i64> },
    /// `setxattr(2)` with flags 0.
    Setxattr {
        path: OpPath,
        name: String,
        value: Vec<u8>,
    },
    /// `removexattr(2)`
    Removexattr { path: OpPath, name: String },
    /// `chattr =FLAGS P`: open O_RDONLY|O_NONBLOCK (following a final
    /// symlink), then FS_IOC_SETFLAGS with exactly these inode flags
    /// (ioctl_iflags(2)) among those the format names; a flag of the
    /// layer filesystem's own that FS_IOC_GETFLAGS shows (ext4's extents
    /// flag) is kept, as chattr(1) keeps it.
    Chattr {
        path: OpPath,
        flags: crate::iflags::InodeFlags,
    },
    /// `fstat(2)` of an open fd.
    Fstat { fd: String },
    /// `read(2)` at the fd's position: `len` bytes at most, or to the end.
    Fread { fd: String, len: Option<u64> },
    /// `getdents64(2)` from the fd's position to the end of the directory;
    /// names sorted, without `.`/`..`.
    Freaddir { fd: String },
    /// `lseek(2)`; the outcome is `ok`, the position shows in later reads.
    Lseek {
        fd: String,
        offset: i64,
        whence: Whence,
    },
    /// `fsync(2)`
    Fsync { fd: String },
    /// `pwrite(2)` at `offset`, or `write(2)` at the fd's position.
    Fwrite {
        fd: String,
        offset: Option<u64>,
        data: Vec<u8>,
    },
    /// `close(2)`
    Close { fd: String },
    /// Unmount and mount the same layers again.
    Remount,
    /// Unmount, change lower layer `layer` (the case's `lower` sections
    /// counted from 0), mount again: an offline change to the lower tree
    /// (overlayfs.rst: "Changes to underlying filesystems").
    Offline { layer: usize, change: OfflineChange },
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
        "statfs",
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
        "chattr",
        "fstat",
        "fread",
        "freaddir",
        "lseek",
        "fsync",
        "fwrite",
        "close",
        "remount",
        "offline",
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
            Op::Statfs { .. } => "statfs",
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
            Op::Chattr { .. } => "chattr",
            Op::Fstat { .. } => "fstat",
            Op::Fread { .. } => "fread",
            Op::Freaddir { .. } => "freaddir",
            Op::Lseek { .. } => "lseek",
            Op::Fsync { .. } => "fsync",
            Op::Fwrite { .. } => "fwrite",
            Op::Close { .. } => "close",
            Op::Remount => "remount",
            Op::Offline { .. } => "offline",
            Op::Commit => "commit",
        }
    }

    /// The paths this op names (for generators, shrinkers and reports).
    pub fn paths(&self) -> Vec<&RelPath> {
        match self {
            Op::Link { old, new } | Op::Rename { old, new, .. } => vec![&old.path, &new.path],
            Op::Remount
            | Op::Offline { .. }
            | Op::Commit
            | Op::Fstat { .. }
            | Op::Fread { .. }
            | Op::Freaddir { .. }
            | Op::Lseek { .. }
            | Op::Fsync { .. }
            | Op::Fwrite { .. }
            | Op::Close { .. } => vec![],
            Op::Lstat { path }
            | Op::Stat { path }
            | Op::Read { path }
            | Op::Readlink { path }
            | Op::Readdir { path }
            | Op::Getxattr { path, .. }
            | Op::Listxattr { path }
            | Op::Statfs { path }
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
            | Op::Removexattr { path, .. }
            | Op::Chattr { path, .. } => vec![&path.path],
        }
    }

    /// The fd this op names: the one an `open ... as F` opens, or the one
    /// an fd op uses.
    pub fn fd(&self) -> Option<&str> {
        match self {
            Op::Open { fd, .. } => fd.as_deref(),
            Op::Fstat { fd }
            | Op::Fread { fd, .. }
            | Op::Freaddir { fd }
            | Op::Lseek { fd, .. }
            | Op::Fsync { fd }
            | Op::Fwrite { fd, .. }
            | Op::Close { fd } => Some(fd),
            _ => None,
        }
    }

    /// True for the ops on an open fd (all but the `open` that makes it).
    pub fn uses_fd(&self) -> bool {
        !matches!(self, Op::Open { .. }) && self.fd().is_some()
    }

    /// True for `remount`, `offline` and `commit`.
    pub fn is_lifecycle(&self) -> bool {
        matches!(self, Op::Remount | Op::Offline { .. } | Op::Commit)
    }
}

/// What an `offline` step does to a lower layer's directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OfflineChange {
    /// Removes the entry at the path, a directory with all it holds.
    Remove(RelPath),
    /// Puts a new regular file (owner 0:0) at the path, in place of any
    /// non-directory there.
    File {
        path: RelPath,
        mode: u32,
        data: Vec<u8>,
    },
}

impl OfflineChange {
    /// The layer path it changes.
    pub fn path(&self) -> &RelPath {
        match self {
            OfflineChange::Remove(p) | OfflineChange::File { path: p, .. } => p,
        }
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
