//! The confined executor: each [`Op`] as its real syscall, beneath the merged
//! root, with the kernel's errno passed through untranslated.
//!
//! Confinement: every path is resolved with `openat2(root, path,
//! RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (openat2(2)), so absolute
//! symlink targets start at the overlay root and `..` stops there; nothing a
//! case does can reach a file outside the mount.
//!
//! - Ops on the last component itself (lstat, readlink, mkdir, mkfifo,
//!   symlink, unlink, rmdir, link, rename) open the *parent* `O_PATH |
//!   O_DIRECTORY` and call the `*at` syscall with the last name, trailing
//!   slash kept, so the kernel applies its own last-component and
//!   trailing-slash rules. Search permission on the parent is checked by the
//!   `*at` lookup, as on a plain walk.
//! - Ops that follow (stat, statfs, read, open, create, write, truncate,
//!   chmod, chown, utimes, xattrs, chattr) open the full path; path-based calls then go
//!   through the `/proc/self/fd/N` magic link of an `O_PATH` fd, which
//!   applies the same inode permission checks as the original path.
//!   (The magic link is followed by the worker's own call, which is not
//!   confined by `RESOLVE_NO_MAGICLINKS`: only case paths are.)
//! - An op on the root itself (`.`) as its last component runs in a
//!   momentary chroot with the path `/` (see [`apply`]).
//! - `open P FLAGS as F` keeps the fd in the caller's [`FdTable`] under
//!   its name; the fd ops (`fstat`, `fread`, ...) act on it, and an unknown
//!   name is EBADF, as a closed fd number is. Every open adds
//!   `O_NONBLOCK` (a fifo must never block the worker) and `O_CLOEXEC`.
//!   A write to a fifo without readers is EPIPE: the worker, a Rust
//!   program, ignores SIGPIPE (the Rust runtime sets it to SIG_IGN).

use crate::creds;
use crate::sys::{self, Follow};
use nix::errno::Errno;
use ovlcheck_case::{Access, OpenFlags, Whence};
use ovlcheck_case::{
    Cred, Errno as CaseErrno, FileKind, Fsid, Op, OpPath, Outcome, RenameFlags, StatInfo, Value,
};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The fds a case holds open, by their names in the case (`open P FLAGS
/// as F`). Dropping it closes them all: the worker drops it before every
/// unmount.
pub type FdTable = BTreeMap<String, OwnedFd>;

/// The fsids of the filesystems beneath the mount, which `statfs` tells
/// apart from the overlay's own ([`Fsid`]): the upper layer's, and the
/// top lower layer's. Unknown ones (`None`) match nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerFsids {
    pub upper: Option<u64>,
    pub lower: Option<u64>,
}

impl LayerFsids {
    /// Whose fsid `raw` is: a layer filesystem's (the upper first, which
    /// is the real root when the layers share a filesystem), zero, or else
    /// the overlay's own.
    pub fn class(&self, raw: u64) -> Fsid {
        if Some(raw) == self.upper {
            Fsid::Upper
        } else if Some(raw) == self.lower {
            Fsid::Lower
        } else if raw == 0 {
            Fsid::Zero
        } else {
            Fsid::Own
        }
    }
}

/// Most bytes a `read` returns (the case limit).
pub const READ_LIMIT: usize = 16 << 20;

/// `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`.
pub const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

type OpResult = Result<Value, Errno>;

/// Performs `op` (not a lifecycle op) beneath the directory `root` with
/// the caller's credentials.
///
/// An op on the root itself as its last component (`rmdir .`, `rename .
/// x`, `lstat .`, ...) runs inside a momentary `chroot` to the merged root
/// with the path `/`, so the kernel applies its own rules for the root of a
/// container (`rmdir /` is `EBUSY`, `unlink /` is `EISDIR`, ...): the caller
/// must be single-threaded (the worker is).
pub fn apply(root: impl AsFd, op: &Op) -> Outcome {
    let none = LayerFsids::default();
    match apply_as(root, &mut FdTable::new(), op, Cred::ROOT, &none) {
        Ok(o) => o,
        Err(_) => Outcome::Err(CaseErrno::EIO),
    }
}

/// [`apply`] as `cred` (see [`crate::creds`]) with the case's open fds
/// and the layers' fsids; `Err` when the credentials or the chroot could
/// not be switched.
pub fn apply_as(
    root: impl AsFd,
    fds: &mut FdTable,
    op: &Op,
    cred: Cred,
    layers: &LayerFsids,
) -> Result<Outcome, String> {
    let root = root.as_fd();
    let jail = if names_root_entry(op) {
        Some(Chroot::enter(root)?)
    } else {
        None
    };
    let saved = creds::switch(cred)?;
    let result = match op.fd() {
        Some(_) => run_fd(root, fds, op),
        None => run(root, op, layers),
    };
    creds::restore(saved)?;
    if let Some(j) = jail {
        j.leave()?;
    }
    Ok(match result {
        Ok(v) => Outcome::Ok(v),
        Err(e) => Outcome::Err(CaseErrno::from_code(e as i32)),
    })
}

/// Whether `op` acts on the root itself as a last component (not
/// following it), which needs the momentary chroot.
pub fn names_root_entry(op: &Op) -> bool {
    let root = |p: &OpPath| p.path.is_root();
    match op {
        Op::Lstat { path }
        | Op::Readlink { path }
        | Op::Mkdir { path, .. }
        | Op::Mkfifo { path, .. }
        | Op::Symlink { path, .. }
        | Op::Unlink { path }
        | Op::Rmdir { path } => root(path),
        Op::Link { old, new } | Op::Rename { old, new, .. } => root(old) || root(new),
        _ => false,
    }
}

/// A momentary `chroot` into the merged root, so that `/` names it (the
/// thread's own root: [`sys::own_fs`]).
struct Chroot {
    real_root: OwnedFd,
}

impl Chroot {
    fn enter(root: BorrowedFd<'_>) -> Result<Chroot, String> {
        sys::own_fs().map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
        let real_root = sys::openat(sys::CWD, b"/", libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| format!("open /: {e}"))?;
        sys::fchdir(root)
            .and_then(|_| sys::chroot(c"."))
            .map_err(|e| format!("chroot into the merged root: {e}"))?;
        Ok(Chroot { real_root })
    }

    fn leave(self) -> Result<(), String> {
        sys::fchdir(&self.real_root)
            .and_then(|_| sys::chroot(c"."))
            .map_err(|e| format!("leaving the chroot: {e}"))
    }
}

fn run(root: BorrowedFd<'_>, op: &Op, layers: &LayerFsids) -> OpResult {
    match op {
        Op::Stat { path } => stat(root, path),
        Op::Statfs { path } => statfs(root, path, layers),
        Op::Read { path } => read(root, path),
        // A trailing slash makes the kernel follow a final symlink (the last
        // component must then be a directory), so these resolve the whole
        // path beneath the root instead of handing `name/` to a plain `*at`
        // call, which would follow an absolute or `..` target from the
        // worker's own root (namei.c: LOOKUP_FOLLOW | LOOKUP_DIRECTORY).
        // `link` does the same for its old path (see [`link`]).
        Op::Lstat { path } if path.trailing_slash => stat(root, path),
        Op::Readlink { path } if path.trailing_slash => {
            // What is found is a directory, never a symlink: EINVAL.
            open(root, path, libc::O_PATH, 0).and(Err(Errno::EINVAL))
        }
        Op::Link { old, new } => link(root, old, new, names_root_entry(op)),
        Op::Readlink { path } => {
            at_parent(root, path, |d, n| sys::readlinkat(d, n).map(Value::Bytes))
        }
        Op::Lstat { path } => lstat(root, path),
        Op::Readdir { path } => readdir(root, path),
        Op::Getxattr { path, name } => getxattr(root, path, name),
        Op::Listxattr { path } => listxattr(root, path),
        Op::Open {
            path, flags, mode, ..
        } => {
            let (f, mode) = open_flags(*flags, *mode);
            open(root, path, f, mode).map(|_| Value::Unit)
        }
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } => {
            let mut f = libc::O_CREAT | libc::O_WRONLY;
            f |= if *excl { libc::O_EXCL } else { 0 };
            f |= if *trunc { libc::O_TRUNC } else { 0 };
            open(root, path, f, *mode).map(|_| Value::Unit)
        }
        Op::Write { path, offset, data } => {
            let fd = open(root, path, libc::O_WRONLY, 0)?;
            sys::pwrite_all(&fd, data, *offset).map(|_| Value::Unit)
        }
        Op::Truncate { path, size } => via_proc(root, path, |p| sys::truncate(p, *size)),
        Op::Chattr { path, flags } => {
            let fd = open(root, path, libc::O_RDONLY, 0)?;
            sys::set_iflags(&fd, flags.to_fs() | fs_own_flags(&fd)).map(|_| Value::Unit)
        }
        Op::Mkdir { path, mode } => unit(at_parent(root, path, |d, n| sys::mkdirat(d, n, *mode))),
        Op::Mkfifo { path, mode } => unit(at_parent(root, path, |d, n| {
            sys::mknodat(d, n, sys::FileType::Fifo, mode & 0o7777, 0)
        })),
        Op::Symlink { target, path } => {
            unit(at_parent(root, path, |d, n| sys::symlinkat(target, d, n)))
        }
        Op::Unlink { path } => unit(at_parent(root, path, |d, n| sys::unlinkat(d, n, 0))),
        Op::Rmdir { path } => unit(at_parent(root, path, |d, n| {
            sys::unlinkat(d, n, libc::AT_REMOVEDIR)
        })),
        Op::Rename { old, new, flags } => {
            let f = rename_flags(*flags);
            two_parents(root, old, new, |od, on, nd, nn| {
                sys::renameat2(od, on, nd, nn, f)
            })
        }
        Op::Chmod { path, mode } => {
            via_proc(root, path, |p| sys::fchmodat(sys::CWD, p.to_bytes(), *mode))
        }
        Op::Chown { path, uid, gid } => via_proc(root, path, |p| {
            sys::fchownat(sys::CWD, p.to_bytes(), *uid, *gid, 0)
        }),
        Op::Utimes {
            path,
            mtime: Some(mtime),
        } => via_proc(root, path, |p| {
            sys::utimensat(sys::CWD, p.to_bytes(), *mtime, 0)
        }),
        Op::Utimes { path, mtime: None } => via_proc(root, path, |p| sys::utimes_now(p.to_bytes())),
        Op::Setxattr { path, name, value } => via_proc(root, path, |p| {
            let value = ovlcheck_case::acl::to_kernel(name.as_bytes(), value);
            sys::setxattr(p, name.as_bytes(), &value, Follow::Yes)
        }),
        Op::Removexattr { path, name } => {
            via_proc(root, path, |p| sys::removexattr(p, name.as_bytes()))
        }
        Op::Remount
        | Op::Commit
        | Op::Offline { .. }
        | Op::Fstat { .. }
        | Op::Fread { .. }
        | Op::Freaddir { .. }
        | Op::Lseek { .. }
        | Op::Fsync { .. }
        | Op::Fwrite { .. }
        | Op::Close { .. } => Err(Errno::EINVAL),
    }
}

/// `open(2)`'s flags and mode for the confined `openat2`: open(2) keeps
/// only `O_DIRECTORY` and `O_NOFOLLOW` beside `O_PATH` (open.c:
/// build_open_how), where openat2 would refuse the others (EINVAL), and it
/// takes a mode only with `O_CREAT`.
pub fn open_flags(f: OpenFlags, mode: u32) -> (i32, u32) {
    let bit = |set: bool, b: i32| if set { b } else { 0 };
    let dir_nofollow = bit(f.directory, libc::O_DIRECTORY) | bit(f.nofollow, libc::O_NOFOLLOW);
    if f.path {
        return (libc::O_PATH | dir_nofollow, 0);
    }
    let acc = match f.access {
        Access::Rdonly => libc::O_RDONLY,
        Access::Wronly => libc::O_WRONLY,
        Access::Rdwr => libc::O_RDWR,
    };
    let flags = acc
        | dir_nofollow
        | bit(f.creat, libc::O_CREAT)
        | bit(f.excl, libc::O_EXCL)
        | bit(f.trunc, libc::O_TRUNC)
        | bit(f.append, libc::O_APPEND);
    (flags, if f.creat { mode & 0o7777 } else { 0 })
}

/// An op that opens or uses a named fd.
fn run_fd(root: BorrowedFd<'_>, fds: &mut FdTable, op: &Op) -> OpResult {
    let get = |fds: &FdTable, name: &str| -> Result<OwnedFd, Errno> {
        let fd = fds.get(name).ok_or(Errno::EBADF)?;
        fd.try_clone()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
    };
    match op {
        Op::Open {
            path,
            flags,
            mode,
            fd: Some(name),
        } => {
            // An fd already open under the name is closed first.
            fds.remove(name);
            let (f, mode) = open_flags(*flags, *mode);
            let fd = open(root, path, f, mode)?;
            fds.insert(name.clone(), fd);
            Ok(Value::Unit)
        }
        Op::Close { fd } => fds.remove(fd).map(|_| Value::Unit).ok_or(Errno::EBADF),
        Op::Fstat { fd } => get(fds, fd)
            .and_then(|f| sys::fstat(&f))
            .map(|st| Value::Stat(stat_info(&st))),
        Op::Fsync { fd } => unit(get(fds, fd).and_then(|f| sys::fsync(&f))),
        Op::Fread { fd, len } => fd_read(&get(fds, fd)?, *len).map(Value::Bytes),
        Op::Freaddir { fd } => {
            let f = get(fds, fd)?;
            let mut names: Vec<String> = sys::read_dir(&f)?
                .iter()
                .map(|n| String::from_utf8_lossy(n.to_bytes()).into_owned())
                .collect();
            names.sort();
            Ok(Value::Names(names))
        }
        Op::Lseek { fd, offset, whence } => {
            let w = match whence {
                Whence::Set => libc::SEEK_SET,
                Whence::Cur => libc::SEEK_CUR,
                Whence::End => libc::SEEK_END,
            };
            sys::lseek(&get(fds, fd)?, *offset, w).map(|_| Value::Unit)
        }
        Op::Fwrite { fd, offset, data } => {
            let f = get(fds, fd)?;
            unit(match offset {
                Some(o) => sys::pwrite_all(&f, data, *o),
                None => sys::write_all(&f, data),
            })
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `read(2)` from the fd's position: `len` bytes at most (at least one
/// call, so a read of 0 bytes still checks the fd), or to the end. A fifo
/// that runs dry after some data (EAGAIN) ends the read there.
fn fd_read(fd: &OwnedFd, len: Option<u64>) -> Result<Vec<u8>, Errno> {
    let limit = len.map_or(READ_LIMIT, |l| (l as usize).min(READ_LIMIT));
    let mut out = Vec::new();
    let mut buf = vec![0u8; limit.min(65536)];
    loop {
        let want = (limit - out.len()).min(buf.len());
        match sys::read_some(fd, &mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) if !out.is_empty() => break,
            Err(e) => return Err(e),
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn unit(r: Result<(), Errno>) -> OpResult {
    r.map(|_| Value::Unit)
}

/// `a/b` or `a/b/` as the op names it; `.` for the root.
pub fn op_bytes(p: &OpPath) -> Vec<u8> {
    if p.path.is_root() {
        return b".".to_vec();
    }
    let mut v = p.path.as_string().into_bytes();
    if p.trailing_slash {
        v.push(b'/');
    }
    v
}

/// Where a last-component op acts: a parent directory and a name (with the
/// trailing slash, if any), or the root itself (`/` inside [`Chroot`]).
enum Place {
    At(OwnedFd, Vec<u8>),
    Root,
}

impl Place {
    fn parts(&self) -> (BorrowedFd<'_>, &[u8]) {
        match self {
            Place::At(fd, name) => (fd.as_fd(), name),
            Place::Root => (sys::CWD, b"/"),
        }
    }
}

/// Opens the parent of `p` beneath `root` (`O_PATH | O_DIRECTORY`).
fn place(root: BorrowedFd<'_>, p: &OpPath) -> Result<Place, Errno> {
    let (Some(parent), Some(name)) = (p.path.parent(), p.path.file_name()) else {
        return Ok(Place::Root);
    };
    let mut name = name.as_str().as_bytes().to_vec();
    if p.trailing_slash {
        name.push(b'/');
    }
    let parent = if parent.is_root() {
        b".".to_vec()
    } else {
        parent.as_string().into_bytes()
    };
    let dir = sys::openat2(root, &parent, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE)?;
    Ok(Place::At(dir, name))
}

fn at_parent<T>(
    root: BorrowedFd<'_>,
    p: &OpPath,
    f: impl FnOnce(BorrowedFd<'_>, &[u8]) -> Result<T, Errno>,
) -> Result<T, Errno> {
    let pl = place(root, p)?;
    let (d, n) = pl.parts();
    f(d, n)
}

fn two_parents(
    root: BorrowedFd<'_>,
    old: &OpPath,
    new: &OpPath,
    f: impl FnOnce(BorrowedFd<'_>, &[u8], BorrowedFd<'_>, &[u8]) -> Result<(), Errno>,
) -> OpResult {
    let o = place(root, old)?;
    let n = place(root, new)?;
    let ((od, on), (nd, nn)) = (o.parts(), n.parts());
    f(od, on, nd, nn).map(|_| Value::Unit)
}

/// `link(old, new)` in do_linkat's order: the old path is looked up in
/// full first (not following a final symlink, unless a trailing slash makes
/// the kernel follow it), then the new name's parent, then the link.
///
/// A trailing slash on the old path would make a plain `linkat(dir, "name/")`
/// follow a final symlink from the worker's own root, so outside the chroot
/// the link is made through the resolved inode's `/proc/self/fd` magic link
/// (open(2), `O_PATH`). Inside the momentary chroot (an op naming the root)
/// `/proc` is out of reach, and `/` is the merged root anyway.
fn link(root: BorrowedFd<'_>, old: &OpPath, new: &OpPath, chrooted: bool) -> OpResult {
    let nofollow = if old.trailing_slash {
        0
    } else {
        libc::O_NOFOLLOW
    };
    // The old path is looked up in full first (do_linkat), except the root
    // itself: in the chroot it is `/`, which takes no walk and so no
    // permission check.
    if old.path.is_root() {
        return two_parents(root, old, new, |od, on, nd, nn| {
            sys::linkat(od, on, nd, nn, 0)
        });
    }
    let fd = open(root, old, libc::O_PATH | nofollow, 0)?;
    if !old.trailing_slash || chrooted {
        return two_parents(root, old, new, |od, on, nd, nn| {
            sys::linkat(od, on, nd, nn, 0)
        });
    }
    let n = place(root, new)?;
    let (nd, nn) = n.parts();
    let magic = sys::proc_fd_path(&fd);
    sys::linkat(sys::CWD, magic.to_bytes(), nd, nn, libc::AT_SYMLINK_FOLLOW).map(|_| Value::Unit)
}

fn rename_flags(f: RenameFlags) -> u32 {
    let mut v = 0;
    if f.noreplace {
        v |= libc::RENAME_NOREPLACE;
    }
    if f.exchange {
        v |= libc::RENAME_EXCHANGE;
    }
    if f.whiteout {
        v |= libc::RENAME_WHITEOUT;
    }
    v
}

/// Opens the full path (following) with `flags | O_NONBLOCK`.
/// (`openat2` refuses `O_PATH` with any flag but `O_DIRECTORY`,
/// `O_NOFOLLOW` and `O_CLOEXEC`.)
fn open(root: BorrowedFd<'_>, p: &OpPath, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let nonblock = if flags & libc::O_PATH != 0 {
        0
    } else {
        libc::O_NONBLOCK
    };
    sys::openat2(root, &op_bytes(p), flags | nonblock, mode, RESOLVE)
}

fn via_proc(
    root: BorrowedFd<'_>,
    p: &OpPath,
    f: impl FnOnce(&std::ffi::CStr) -> Result<(), Errno>,
) -> OpResult {
    let fd = open(root, p, libc::O_PATH, 0)?;
    f(&sys::proc_fd_path(&fd)).map(|_| Value::Unit)
}

/// The file type of a `st_mode`.
pub fn file_kind(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFCHR => FileKind::Char,
        _ => FileKind::Other,
    }
}

/// The deterministic fields of a `struct stat` (size 0 for directories).
pub fn stat_info(st: &sys::Stat) -> StatInfo {
    let kind = file_kind(st.st_mode);
    StatInfo {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == FileKind::Dir {
            0
        } else {
            st.st_size as u64
        },
        nlink: st.st_nlink as u32,
    }
}

fn lstat(root: BorrowedFd<'_>, p: &OpPath) -> OpResult {
    at_parent(root, p, |d, n| {
        sys::fstatat(d, n, libc::AT_SYMLINK_NOFOLLOW)
    })
    .map(|st| Value::Stat(stat_info(&st)))
}

fn stat(root: BorrowedFd<'_>, p: &OpPath) -> OpResult {
    let fd = open(root, p, libc::O_PATH, 0)?;
    sys::fstat(&fd).map(|st| Value::Stat(stat_info(&st)))
}

/// `statfs(2)` as `stat` resolves the path: `fstatfs` of an `O_PATH` fd.
fn statfs(root: BorrowedFd<'_>, p: &OpPath, layers: &LayerFsids) -> OpResult {
    let fd = open(root, p, libc::O_PATH, 0)?;
    sys::fsid(&fd).map(|raw| Value::Fsid(layers.class(raw)))
}

fn read(root: BorrowedFd<'_>, p: &OpPath) -> OpResult {
    let fd = open(root, p, libc::O_RDONLY, 0)?;
    sys::read_to_end(&fd, READ_LIMIT).map(Value::Bytes)
}

fn readdir(root: BorrowedFd<'_>, p: &OpPath) -> OpResult {
    let fd = open(root, p, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    read_names(fd).map(Value::Names)
}

/// All names of a freshly opened directory except `.` and `..`, sorted.
pub fn read_names(fd: OwnedFd) -> Result<Vec<String>, Errno> {
    let mut names: Vec<String> = sys::read_dir(&fd)?
        .iter()
        .map(|n| String::from_utf8_lossy(n.to_bytes()).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn getxattr(root: BorrowedFd<'_>, p: &OpPath, name: &str) -> OpResult {
    let fd = open(root, p, libc::O_PATH, 0)?;
    sys::getxattr(&sys::proc_fd_path(&fd), name.as_bytes(), Follow::Yes)
        .map(|v| Value::Bytes(ovlcheck_case::acl::from_kernel(name.as_bytes(), v)))
}

fn listxattr(root: BorrowedFd<'_>, p: &OpPath) -> OpResult {
    let fd = open(root, p, libc::O_PATH, 0)?;
    let names = sys::listxattr(&sys::proc_fd_path(&fd), Follow::Yes)?;
    let mut v: Vec<String> = names
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .filter(|n| n.starts_with("user."))
        .collect();
    v.sort();
    Ok(Value::Names(v))
}

/// The inode flags of `fd` that no `chattr` op names, which it keeps as
/// chattr(1) does (it reads the flags first): flags of the layer
/// filesystem itself, such as ext4's extents flag (`e`) that overlay's
/// FS_IOC_GETFLAGS shows from the real inode and that ext4 refuses to
/// clear (EPERM), as on the engines' stores. tmpfs has none; 0 where the
/// flags cannot be read (the set then fails as it would).
fn fs_own_flags(fd: impl std::os::fd::AsFd) -> u32 {
    sys::get_iflags(fd).map_or(0, |w| w & !ovlcheck_case::InodeFlags::fs_mask())
}
