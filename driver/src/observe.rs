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
use ovlcheck_case::{DevClass, Node, NodeKind, View};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `(st_dev, st_ino)` of every merged non-directory at mount time, with the
/// smallest path that had it.
pub type Snapshot = HashMap<(u64, u64), String>;

/// One walked path: its relative name and `lstat`.
struct Walked {
    rel: String,
    st: libc::stat,
}

/// A walk: the paths that could be looked up, and the phantom names that
/// readdir listed but lookup did not find.
struct Walk {
    found: Vec<Walked>,
    phantoms: Vec<String>,
}

/// The node of a phantom name (see the module docs).
pub fn phantom_node() -> Node {
    Node::new(NodeKind::Whiteout, 0, 0, 0)
}

fn open_dir(dirfd: RawFd, name: &[u8]) -> Result<OwnedFd, Errno> {
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

/// Every path beneath `root` (the root itself as `""`), depth first.
fn walk(root: &Path, skip_top: &[&str]) -> Result<Walk, String> {
    let rootb = root.as_os_str().as_bytes();
    let fd =
        open_dir(libc::AT_FDCWD, rootb).map_err(|e| format!("open {}: {e}", root.display()))?;
    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| format!("stat {}: {e}", root.display()))?;
    let mut out = Walk {
        found: vec![Walked {
            rel: String::new(),
            st,
        }],
        phantoms: Vec::new(),
    };
    walk_dir(fd, "", skip_top, &mut out).map_err(|e| format!("walk {}: {e}", root.display()))?;
    Ok(out)
}

fn walk_dir(fd: OwnedFd, prefix: &str, skip: &[&str], out: &mut Walk) -> Result<(), Errno> {
    let dup = nix::unistd::dup(&fd)?;
    let names = crate::exec::read_names(dup)?;
    for name in names {
        if prefix.is_empty() && skip.contains(&name.as_str()) {
            continue;
        }
        let rel = join(prefix, &name);
        let st = match sys::fstatat(fd.as_raw_fd(), name.as_bytes(), libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => {
                out.phantoms.push(rel);
                continue;
            }
            Err(e) => return Err(e),
        };
        out.found.push(Walked {
            rel: rel.clone(),
            st,
        });
        if is_dir(&st) {
            let sub = open_dir(fd.as_raw_fd(), name.as_bytes())?;
            walk_dir(sub, &rel, skip, out)?;
        }
    }
    Ok(())
}

fn abs_path(root: &Path, rel: &str) -> CString {
    let mut v = root.as_os_str().as_bytes().to_vec();
    if !rel.is_empty() {
        v.push(b'/');
        v.extend_from_slice(rel.as_bytes());
    }
    CString::new(v).expect("paths have no NUL")
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn node_kind(st: &libc::stat, raw: bool) -> NodeKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFREG => NodeKind::File,
        libc::S_IFLNK => NodeKind::Symlink,
        libc::S_IFIFO => NodeKind::Fifo,
        libc::S_IFCHR => {
            let (ma, mi) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
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
/// nlink and mtime (non-directories).
fn base_node(root: &Path, w: &Walked, raw: bool) -> Result<Node, String> {
    let st = &w.st;
    let kind = node_kind(st, raw);
    let mut n = Node::new(kind, st.st_mode & 0o7777, st.st_uid, st.st_gid);
    let path = abs_path(root, &w.rel);
    match kind {
        NodeKind::File => {
            n.size = st.st_size as u64;
            let fd = sys::openat(
                libc::AT_FDCWD,
                path.as_bytes(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
                0,
            )
            .map_err(|e| format!("open {}: {e}", w.rel))?;
            let data = sys::read_to_end(fd.as_raw_fd(), crate::exec::READ_LIMIT)
                .map_err(|e| format!("read {}: {e}", w.rel))?;
            n.data = Some(data);
        }
        NodeKind::Symlink => {
            n.size = st.st_size as u64;
            n.target = Some(
                sys::readlinkat(libc::AT_FDCWD, path.as_bytes())
                    .map_err(|e| format!("readlink {}: {e}", w.rel))?,
            );
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

/// `(name, value)` of every xattr of `path` (not following).
fn xattrs(path: &CString) -> Result<Vec<(String, Vec<u8>)>, Errno> {
    let mut out = Vec::new();
    for name in sys::listxattr(path, Follow::No)? {
        match sys::getxattr(path, &name, Follow::No) {
            Ok(v) => out.push((String::from_utf8_lossy(&name).into_owned(), v)),
            Err(Errno::ENODATA) => {}
            Err(e) => return Err(e),
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
    let walked = walk(root, skip_top)?;
    for p in walked.phantoms {
        view.nodes.insert(p, phantom_node());
    }
    for w in walked.found {
        let mut n = base_node(root, &w, true)?;
        let path = abs_path(root, &w.rel);
        for (name, value) in xattrs(&path).map_err(|e| format!("xattrs of {}: {e}", w.rel))? {
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
        view.nodes.insert(w.rel, n);
    }
    Ok(view)
}

/// Records the inode of every merged non-directory (mount time).
pub fn snapshot(merged: &Path) -> Result<Snapshot, String> {
    let mut snap = Snapshot::new();
    for w in walk(merged, &[])?.found {
        if !is_dir(&w.st) {
            remember_smallest(&mut snap, (w.st.st_dev, w.st.st_ino), w.rel);
        }
    }
    Ok(snap)
}

fn remember_smallest(map: &mut HashMap<(u64, u64), String>, key: (u64, u64), path: String) {
    match map.get_mut(&key) {
        Some(p) if *p <= path => {}
        Some(p) => *p = path,
        None => {
            map.insert(key, path);
        }
    }
}

/// The merged view, labelling inodes against `snap`.
pub fn merged_view(merged: &Path, snap: &Snapshot) -> Result<View, String> {
    let Walk {
        found: walked,
        phantoms,
    } = walk(merged, &[])?;
    let root_dev = walked[0].st.st_dev;
    let mut current = HashMap::new();
    for w in walked.iter().filter(|w| !is_dir(&w.st)) {
        remember_smallest(&mut current, (w.st.st_dev, w.st.st_ino), w.rel.clone());
    }
    let mut view = View::default();
    for p in phantoms {
        view.nodes.insert(p, phantom_node());
    }
    for w in &walked {
        let mut n = base_node(merged, w, false)?;
        let path = abs_path(merged, &w.rel);
        let xs = xattrs(&path).map_err(|e| format!("xattrs of {}: {e}", w.rel))?;
        n.xattrs = xs
            .into_iter()
            .filter(|(k, _)| k.starts_with("user."))
            .collect::<BTreeMap<_, _>>();
        if !is_dir(&w.st) {
            let key = (w.st.st_dev, w.st.st_ino);
            n.ino = Some(match snap.get(&key) {
                Some(p) => format!("={p}"),
                None => format!("+{}", current[&key]),
            });
            n.dev = Some(if w.st.st_dev == root_dev {
                DevClass::Overlay
            } else {
                DevClass::Other
            });
        }
        view.nodes.insert(w.rel.clone(), n);
    }
    Ok(view)
}
