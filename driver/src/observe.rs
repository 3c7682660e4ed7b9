//! The observer: walks a tree with `openat`/`fstatat` (never following a
//! symlink) into a [`View`], as documented in `case/src/view.rs`.
//!
//! - Merged views: what users see; ordinary xattrs are the `user.*` ones;
//!   non-directories carry an inode label (`=P` for an inode the merged path
//!   P had when the current mount was made, `+P` for a newer one, P the
//!   smallest such path) and a [`DevClass`] (overlay's st_dev or another).
//! - Raw views (one layer's `diff/`): whiteouts as [`NodeKind::Whiteout`]
//!   with no link count (the kernel hard-links all whiteouts to one shared
//!   inode), every xattr that is not overlay-private in `xattrs`, and the
//!   overlay-private ones by short name in `overlay`, binary values
//!   normalised (`origin`/`upper` file handles to `fh`, `uuid` to `uuid`).
//! - A name that `readdir` lists but whose lookup fails with `ENOENT` — what
//!   the kernel shows for a whiteout inside a pure-upper directory that is
//!   not a merge directory (e.g. an upper dir above a lower whiteout; `ls`
//!   prints `c?????????`) — is a *phantom*: a [`NodeKind::Whiteout`] node
//!   with mode 0, owner 0:0 and no other field, in merged and raw views
//!   alike, so that such a layout shows up in a comparison instead of
//!   failing the walk.

use crate::sys::{self, Follow};
use nix::errno::Errno;
use ovlcheck_case::{DevClass, InodeFlags, Node, NodeKind, View};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `(st_dev, st_ino)` of every merged non-directory at mount time, with the
/// smallest path that had it.
pub type Snapshot = HashMap<(u64, u64), String>;

/// The node of a phantom name (see the module docs).
pub fn phantom_node() -> Node {
    Node::new(NodeKind::Whiteout, 0, 0, 0)
}

fn open_dir(dirfd: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    sys::openat(
        dirfd,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// The process's working directory during a walk. The xattr calls take
/// paths, so the walker `fchdir`s into the directory whose entries it looks
/// at and names them by their bare names (no long absolute paths to
/// resolve). The old working directory comes back on drop.
struct Cwd {
    saved: OwnedFd,
    /// The fd we last changed into (-1: unknown).
    at: RawFd,
}

impl Cwd {
    fn new() -> Result<Cwd, Errno> {
        sys::own_fs()?;
        let saved = sys::openat(sys::CWD, b".", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(Cwd { saved, at: -1 })
    }

    fn enter(&mut self, dir: BorrowedFd<'_>) -> Result<(), Errno> {
        if self.at != dir.as_raw_fd() {
            sys::fchdir(dir)?;
            self.at = dir.as_raw_fd();
        }
        Ok(())
    }

    /// Forgets where we are (the fd we entered may be closed and its number
    /// reused).
    fn forget(&mut self) {
        self.at = -1;
    }
}

impl Drop for Cwd {
    fn drop(&mut self) {
        let _ = sys::fchdir(&self.saved);
    }
}

/// One path met by a walk: its directory fd, its name there (`.` for the
/// root), its relative path (the root is `""`) and its `lstat`.
struct Entry<'a> {
    dir: BorrowedFd<'a>,
    name: &'a CStr,
    rel: &'a str,
    st: &'a sys::Stat,
    /// A directory's own fd, as the walk opened it to list it (or why it
    /// could not), so that reading its flags opens nothing more; `None`
    /// for the root and for non-directories.
    opened: Option<Result<BorrowedFd<'a>, Errno>>,
}

/// What a walk met besides the entries it visited.
#[derive(Default)]
struct Walked {
    /// Names readdir listed and lookup could not find.
    phantoms: Vec<String>,
    /// Paths beneath the root that could not be stat'ed, opened or listed,
    /// with the errno: an implementation's failure, shown in its view.
    unreadable: Vec<(String, Errno)>,
}

impl Walked {
    /// Puts the phantoms and unreadable paths into `view`.
    fn mark(self, view: &mut View) {
        for p in self.phantoms {
            view.nodes.insert(p, phantom_node());
        }
        for (p, e) in self.unreadable {
            let kind = NodeKind::Unreadable(ovlcheck_case::Errno::from_code(e as i32));
            view.nodes
                .entry(p)
                .or_insert_with(|| Node::new(kind, 0, 0, 0))
                .kind = kind;
        }
    }
}

/// Walks every path beneath `root` (the root itself first), depth first,
/// parents before children, calling `visit` on each. `skip_top` names
/// top-level entries to leave out.
fn walk(
    root: &Path,
    skip_top: &[&str],
    visit: &mut dyn FnMut(&mut Cwd, &Entry) -> Result<(), Fail>,
) -> Result<Walked, String> {
    let fd = open_dir(sys::CWD, root.as_os_str().as_bytes())
        .map_err(|e| format!("open {}: {e}", root.display()))?;
    let st = sys::fstat(&fd).map_err(|e| format!("stat {}: {e}", root.display()))?;
    let mut cwd = Cwd::new().map_err(|e| format!("open .: {e}"))?;
    let top = Entry {
        dir: fd.as_fd(),
        name: c".",
        rel: "",
        st: &st,
        opened: Some(Ok(fd.as_fd())),
    };
    visit(&mut cwd, &top).map_err(|f| format!("walk {}: {f}", root.display()))?;
    let mut walked = Walked::default();
    walk_dir(&mut cwd, fd, "", skip_top, visit, &mut walked);
    Ok(walked)
}

/// A failed syscall while observing one entry: what was done, the errno.
struct Fail {
    what: String,
    errno: Errno,
}

impl Fail {
    fn of(what: &str, rel: &str) -> impl FnOnce(Errno) -> Fail {
        let what = format!("{what} {rel}");
        move |errno| Fail { what, errno }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.errno)
    }
}

fn walk_dir(
    cwd: &mut Cwd,
    fd: OwnedFd,
    prefix: &str,
    skip: &[&str],
    visit: &mut dyn FnMut(&mut Cwd, &Entry) -> Result<(), Fail>,
    walked: &mut Walked,
) {
    let dir = fd.as_fd();
    let names = match sys::read_dir(dir) {
        Ok(names) => names,
        Err(e) => {
            walked.unreadable.push((prefix.to_string(), e));
            return;
        }
    };
    for name in names {
        let lossy = String::from_utf8_lossy(name.to_bytes());
        if prefix.is_empty() && skip.contains(&&*lossy) {
            continue;
        }
        let rel = join(prefix, &lossy);
        let st = match sys::fstatat(dir, name.to_bytes(), libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                walked.phantoms.push(rel);
                continue;
            }
            Err(e) => {
                walked.unreadable.push((rel, e));
                continue;
            }
        };
        // A directory is opened once, to read its flags and to list it.
        let sub = is_dir(&st).then(|| open_dir(dir, name.to_bytes()));
        let e = Entry {
            dir,
            name: &name,
            rel: &rel,
            st: &st,
            opened: sub
                .as_ref()
                .map(|r| r.as_ref().map(|fd| fd.as_fd()).map_err(|e| *e)),
        };
        if let Err(f) = visit(cwd, &e) {
            walked.unreadable.push((rel, f.errno));
            continue;
        }
        match sub {
            Some(Ok(sub)) => {
                walk_dir(cwd, sub, &rel, skip, visit, walked);
                cwd.forget();
            }
            Some(Err(e)) => walked.unreadable.push((rel, e)),
            None => {}
        }
    }
}

fn is_dir(st: &sys::Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn node_kind(st: &sys::Stat, raw: bool) -> NodeKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFREG => NodeKind::File,
        libc::S_IFLNK => NodeKind::Symlink,
        libc::S_IFIFO => NodeKind::Fifo,
        libc::S_IFCHR => {
            let (ma, mi) = (sys::major(st.st_rdev), sys::minor(st.st_rdev));
            if raw && ma == 0 && mi == 0 {
                NodeKind::Whiteout
            } else {
                NodeKind::Char(ma, mi)
            }
        }
        _ => NodeKind::Other,
    }
}

/// The common fields of a node: kind, mode, owner, size, data, target,
/// nlink and mtime (non-directories), inode flags (files, directories).
fn base_node(e: &Entry, raw: bool, iflags: bool) -> Result<Node, Fail> {
    let st = e.st;
    let kind = node_kind(st, raw);
    let mut n = Node::new(kind, st.st_mode & 0o7777, st.st_uid, st.st_gid);
    let name = e.name.to_bytes();
    match kind {
        NodeKind::File => {
            n.size = st.st_size as u64;
            let fd = sys::openat(
                e.dir,
                name,
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                0,
            )
            .map_err(Fail::of("open", e.rel))?;
            let data = sys::read_to_end_sized(&fd, crate::exec::READ_LIMIT, n.size as usize)
                .map_err(Fail::of("read", e.rel))?;
            n.data = Some(data);
            if iflags {
                n.flags = inode_flags(&fd).map_err(Fail::of("FS_IOC_GETFLAGS", e.rel))?;
            }
        }
        NodeKind::Dir if iflags => {
            let flags = match e.opened {
                Some(opened) => inode_flags(opened.map_err(Fail::of("open", e.rel))?),
                None => inode_flags(open_dir(e.dir, name).map_err(Fail::of("open", e.rel))?),
            };
            n.flags = flags.map_err(Fail::of("FS_IOC_GETFLAGS", e.rel))?;
        }
        NodeKind::Symlink => {
            n.size = st.st_size as u64;
            n.target = Some(sys::readlinkat(e.dir, name).map_err(Fail::of("readlink", e.rel))?);
        }
        _ => {}
    }
    if kind != NodeKind::Dir {
        n.mtime = Some(st.st_mtime);
        if kind != NodeKind::Whiteout {
            n.nlink = Some(st.st_nlink as u32);
        }
    }
    Ok(n)
}

/// The inode flags of an open file or directory; none where the
/// filesystem has no such ioctl (ENOTTY, EOPNOTSUPP, EINVAL).
fn inode_flags(fd: impl AsFd) -> Result<InodeFlags, Errno> {
    match sys::get_iflags(fd) {
        Ok(word) => Ok(InodeFlags::from_fs(word)),
        Err(Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::EINVAL) => Ok(InodeFlags::NONE),
        Err(e) => Err(e),
    }
}

/// `(name, value)` of every xattr of the entry (not following) whose name
/// `keep` accepts.
fn xattrs(
    cwd: &mut Cwd,
    e: &Entry,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<Vec<(String, Vec<u8>)>, Fail> {
    let fail = |errno: Errno| Fail {
        what: format!("xattrs of {}", e.rel),
        errno,
    };
    cwd.enter(e.dir).map_err(fail)?;
    let mut out = Vec::new();
    for name in sys::listxattr(e.name, Follow::No).map_err(fail)? {
        if !keep(&name) {
            continue;
        }
        match sys::getxattr(e.name, &name, Follow::No) {
            Ok(v) => {
                let v = ovlcheck_case::acl::from_kernel(&name, v);
                out.push((String::from_utf8_lossy(&name).into_owned(), v));
            }
            Err(Errno::ENODATA) => {}
            Err(err) => return Err(fail(err)),
        }
    }
    Ok(out)
}

/// A raw overlay xattr value as a view shows it (view.rs: binary values
/// normalised to a fixed word).
pub fn normalise_overlay_value(short: &str, value: &[u8]) -> String {
    match short {
        "origin" | "upper" => "fh".into(),
        "uuid" => "uuid".into(),
        _ => match std::str::from_utf8(value) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
            _ => "bin".into(),
        },
    }
}

/// The raw view of one layer directory. `private` is the overlay xattr
/// prefix (`trusted.overlay.` or `user.overlay.`); `skip_top` names
/// top-level entries to leave out.
pub fn raw_view(root: &Path, private: &str, skip_top: &[&str]) -> Result<View, String> {
    let mut view = View::default();
    let walked = walk(root, skip_top, &mut |cwd, e| {
        let mut n = base_node(e, true, true)?;
        for (name, value) in xattrs(cwd, e, |_| true)? {
            match name.strip_prefix(private) {
                Some(short) => {
                    let v = normalise_overlay_value(short, &value);
                    n.overlay.insert(short.to_string(), v);
                }
                None => {
                    n.xattrs.insert(name, value);
                }
            }
        }
        view.nodes.insert(e.rel.to_string(), n);
        Ok(())
    })?;
    walked.mark(&mut view);
    Ok(view)
}

/// Records the inode of every merged non-directory (mount time).
pub fn snapshot(merged: &Path) -> Result<Snapshot, String> {
    let mut snap = Snapshot::new();
    walk(merged, &[], &mut |_, e| {
        if !is_dir(e.st) {
            remember_smallest(&mut snap, (e.st.st_dev, e.st.st_ino), e.rel);
        }
        Ok(())
    })?;
    Ok(snap)
}

fn remember_smallest(map: &mut HashMap<(u64, u64), String>, key: (u64, u64), path: &str) {
    match map.get_mut(&key) {
        Some(p) if p.as_str() <= path => {}
        Some(p) => *p = path.to_string(),
        None => {
            map.insert(key, path.to_string());
        }
    }
}

/// The merged view, labelling inodes against `snap`. With `iflags` the
/// inode flags of files and directories are read (FS_IOC_GETFLAGS);
/// without, they show as none: on a FUSE mount the ioctl makes the daemon
/// open the file itself (fuse_fileattr_get), and in a corpus replay a
/// walker's FS_IOC_GETFLAGS of a directory of a fuse-overlayfs 1.10 mount
/// waited, uninterruptibly, for a daemon that was itself waiting in a
/// blocking open of a fifo.
pub fn merged_view(merged: &Path, snap: &Snapshot, iflags: bool) -> Result<View, String> {
    merged_walk(
        merged,
        Some(snap),
        iflags,
        ovlcheck_case::view::merged_xattr,
    )
    .map(|(v, _)| v)
}

/// The merged view of a tree that has not changed since it was mounted,
/// and its mount-time [`Snapshot`], in one walk: what [`snapshot`] then
/// [`merged_view`] would give.
pub fn merged_view_and_snapshot(merged: &Path, iflags: bool) -> Result<(View, Snapshot), String> {
    merged_walk(merged, None, iflags, ovlcheck_case::view::merged_xattr)
}

/// The merged tree as a naive differ reads it: the merged view with the
/// xattrs of `ovlcheck_case::oci::diff_xattr` (each file's capability
/// too), labelled against its own identities.
pub fn diff_view(merged: &Path, iflags: bool) -> Result<View, String> {
    merged_walk(merged, None, iflags, ovlcheck_case::oci::diff_xattr).map(|(v, _)| v)
}

/// The merged view with labels against `snap`, or against the tree's own
/// identities when `snap` is `None`, and the xattrs `keep` accepts; and
/// those identities.
fn merged_walk(
    merged: &Path,
    snap: Option<&Snapshot>,
    iflags: bool,
    keep: fn(&[u8]) -> bool,
) -> Result<(View, Snapshot), String> {
    let mut view = View::default();
    let mut current = Snapshot::new();
    let mut root_dev = None;
    // (rel, inode) of every non-directory, labelled once `current` is whole.
    let mut inodes = Vec::new();
    let walked = walk(merged, &[], &mut |cwd, e| {
        let root_dev = *root_dev.get_or_insert(e.st.st_dev);
        let mut n = base_node(e, false, iflags)?;
        n.xattrs = xattrs(cwd, e, keep)?
            .into_iter()
            .collect::<BTreeMap<_, _>>();
        if !is_dir(e.st) {
            let key = (e.st.st_dev, e.st.st_ino);
            remember_smallest(&mut current, key, e.rel);
            inodes.push((e.rel.to_string(), key));
            n.dev = Some(if e.st.st_dev == root_dev {
                DevClass::Overlay
            } else {
                DevClass::Other
            });
        }
        view.nodes.insert(e.rel.to_string(), n);
        Ok(())
    })?;
    for (rel, key) in inodes {
        let label = match snap.map_or(current.get(&key), |s| s.get(&key)) {
            Some(p) => format!("={p}"),
            None => format!("+{}", current[&key]),
        };
        if let Some(n) = view.nodes.get_mut(&rel) {
            n.ino = Some(label);
        }
    }
    walked.mark(&mut view);
    Ok((view, current))
}
