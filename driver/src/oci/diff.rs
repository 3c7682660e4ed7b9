//! The store's `Diff`: a container layer's changeset as a tar, from the
//! upper directory alone ([`write_native`]) or from the changes between
//! two merged trees ([`write_naive`]).

use super::{annotate, errno_io, Body, Meta, TarWriter, Xattr};
use crate::sys::{self, Follow};
use nix::errno::Errno;
use ovlcheck_case::oci::{self, Change, ChangeKind};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// moby overlay2 `Diff` with go-archive's overlay whiteout converter
/// (archive_linux.go, `ConvertWrite`): the tar of the upper directory
/// `upper`, walked depth first in name order, the directory itself left
/// out. `prefix` is the overlay xattr prefix (`trusted.overlay.` or
/// `user.overlay.`, [`ovlcheck_case::Profile::xattr_prefix`]).
///
/// - A whiteout (char 0/0) `NAME` is a regular empty entry `.wh.NAME` with
///   mode 0600 and the device's owner and mtime, never a hard link, even
///   when the kernel made all whiteouts one inode.
/// - A directory whose `<prefix>opaque` is `y` is followed by the entry
///   `DIR/.wh..wh..opq`: regular, empty, mode `dir mode & 0777`, the
///   directory's owner and mtime.
/// - Every xattr but the overlay-private ones goes in PAX records.
/// - A non-directory with more than one link is written once, at its
///   first name; its later names are link entries to it.
/// - Sockets have no tar form and are left out (go-archive skips them).
pub fn write_native(upper: &Path, prefix: &str) -> io::Result<Vec<u8>> {
    native(upper, prefix).and_then(|(w, _)| w.finish())
}

/// [`write_native`] of an upper that holds none of the markers that make
/// a native diff wrong ([`oci::NATIVE_BLOCKING_MARKERS`] on a directory
/// or file, the upper half of [`oci::native_blocker`]); `Ok(Err(why))`
/// names the first such marker met. The markers are found by the walk
/// that writes the tar, so an upper is read once whichever way it goes.
pub fn write_native_unmarked(upper: &Path, prefix: &str) -> io::Result<Result<Vec<u8>, String>> {
    let (w, marked) = native(upper, prefix)?;
    match marked {
        Some(why) => Ok(Err(why)),
        None => w.finish().map(Ok),
    }
}

/// The native tar of `upper`, unfinished, and the first blocking marker
/// met in it.
fn native(upper: &Path, prefix: &str) -> io::Result<(TarWriter, Option<String>)> {
    let root = open_dir(sys::CWD, upper.as_os_str().as_bytes())
        .map_err(annotate("open", upper.as_os_str().as_bytes()))?;
    let mut walk = NativeWalk {
        w: TarWriter::new(),
        prefix,
        links: Links::default(),
        marked: None,
    };
    walk.dir(root.as_fd(), b"")?;
    Ok((walk.w, walk.marked))
}

/// The state of [`write_native`]'s walk.
struct NativeWalk<'a> {
    w: TarWriter,
    /// The overlay xattr prefix.
    prefix: &'a str,
    links: Links,
    /// The first [`oci::NATIVE_BLOCKING_MARKERS`] marker met.
    marked: Option<String>,
}

impl NativeWalk<'_> {
    /// The entries of directory `dir` (layer path `rel`) and below.
    fn dir(&mut self, dir: BorrowedFd<'_>, rel: &[u8]) -> io::Result<()> {
        let mut names = sys::read_dir(dir)
            .map_err(errno_io)
            .map_err(annotate("list", rel))?;
        names.sort();
        let prefix = self.prefix.as_bytes();
        for name in names {
            let path = join(rel, name.to_bytes());
            let st = sys::fstatat(dir, name.to_bytes(), libc::AT_SYMLINK_NOFOLLOW)
                .map_err(errno_io)
                .map_err(annotate("stat", &path))?;
            let meta = Meta::of(&st);
            if is_whiteout(&st) {
                let wh = oci::whiteout_name(&String::from_utf8_lossy(&path));
                let m = Meta {
                    mode: 0o600,
                    ..meta
                };
                self.w.entry(wh.as_bytes(), m, Body::File(b""), &[])?;
                continue;
            }
            let all = xattrs(dir, &name).map_err(annotate("xattrs of", &path))?;
            let marker = |key: &[u8]| -> Option<&[u8]> {
                all.iter()
                    .find(|(k, _)| k.strip_prefix(prefix) == Some(key))
                    .map(|(_, v)| v.as_slice())
            };
            let opaque = marker(b"opaque") == Some(b"y");
            if self.marked.is_none() {
                self.marked = oci::NATIVE_BLOCKING_MARKERS
                    .iter()
                    .find(|k| marker(k.as_bytes()).is_some())
                    .map(|k| oci::upper_marker_blocker(k, &String::from_utf8_lossy(&path)));
            }
            let kept: Vec<Xattr> = all
                .into_iter()
                .filter(|(k, _)| !k.starts_with(prefix))
                .collect();
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                object_entry(&mut self.w, dir, &name, &path, &st, &kept, &mut self.links)?;
                continue;
            }
            self.w.entry(&path, meta, Body::Dir, &kept)?;
            if opaque {
                let marker = oci::opaque_name(&String::from_utf8_lossy(&path));
                let m = Meta {
                    mode: meta.mode & 0o777,
                    ..meta
                };
                self.w.entry(marker.as_bytes(), m, Body::File(b""), &[])?;
            }
            let sub = open_dir(dir, name.to_bytes()).map_err(annotate("open", &path))?;
            self.dir(sub.as_fd(), &path)?;
        }
        Ok(())
    }
}

/// moby `NaiveDiffDriver.Diff` (go-archive changes.go, `ExportChanges`):
/// one entry per change of `changes` (from
/// [`ovlcheck_case::oci::naive_changes`], in path order), taken from the
/// mounted merged tree `merged`:
///
/// - a deletion is a regular empty entry at the whiteout name, mode 0,
///   owner 0:0; its mtime is 0 (moby stamps the clock, which no
///   prediction can match; containerd writes the epoch);
/// - an addition or modification is the merged path's object as it is
///   now, with its `user.*` xattrs and ACLs (all a merged tree shows:
///   `ovlcheck_case::view::merged_xattr`) and its file
///   capability (go-archive `ReadSecurityXattrToTarHeader`); a
///   non-directory met again under another name (same `st_dev` and
///   `st_ino`) is a link entry to the first.
pub fn write_naive(changes: &[Change], merged: &Path) -> io::Result<Vec<u8>> {
    let root = open_dir(sys::CWD, merged.as_os_str().as_bytes())
        .map_err(annotate("open", merged.as_os_str().as_bytes()))?;
    let mut w = TarWriter::new();
    let mut links = Links::default();
    // The directory of the last change: changes come in path order, so
    // siblings follow each other.
    let mut parent: Option<(String, OwnedFd)> = None;
    for c in changes {
        let path = c.path.as_bytes();
        if c.kind == ChangeKind::Delete {
            let wh = oci::whiteout_name(&c.path);
            let m = Meta {
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
            };
            w.entry(wh.as_bytes(), m, Body::File(b""), &[])?;
            continue;
        }
        let (dir_rel, base) = super::split_path(path);
        let dir_rel = String::from_utf8_lossy(dir_rel).into_owned();
        if parent.as_ref().is_none_or(|(p, _)| *p != dir_rel) {
            let fd = open_beneath(root.as_fd(), &dir_rel).map_err(annotate("open", path))?;
            parent = Some((dir_rel, fd));
        }
        let Some((_, dir)) = &parent else {
            unreachable!("set above")
        };
        let name = CString::new(base)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        let st = sys::fstatat(dir, base, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(errno_io)
            .map_err(annotate("stat", path))?;
        let kept: Vec<Xattr> = xattrs(dir.as_fd(), &name)
            .map_err(annotate("xattrs of", path))?
            .into_iter()
            .filter(|(k, _)| oci::diff_xattr(k))
            .collect();
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            w.entry(path, Meta::of(&st), Body::Dir, &kept)?;
        } else {
            object_entry(&mut w, dir.as_fd(), &name, path, &st, &kept, &mut links)?;
        }
    }
    w.finish()
}

/// The first entry name written for each multiply-linked inode.
#[derive(Default)]
struct Links {
    first: HashMap<(u64, u64), Vec<u8>>,
}

/// The entry of a non-directory `name` in `dir` (layer path `path`): a
/// link entry when an earlier entry had its inode, else the object.
fn object_entry(
    w: &mut TarWriter,
    dir: BorrowedFd<'_>,
    name: &CStr,
    path: &[u8],
    st: &sys::Stat,
    xattrs: &[Xattr],
    links: &mut Links,
) -> io::Result<()> {
    let meta = Meta::of(st);
    if st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = links.first.get(&key) {
            return w.entry(path, meta, Body::Link(first), &[]);
        }
        links.first.insert(key, path.to_vec());
    }
    let dev = || (sys::major(st.st_rdev), sys::minor(st.st_rdev));
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let fd = sys::openat(dir, name.to_bytes(), libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                .map_err(errno_io)
                .map_err(annotate("open", path))?;
            let data = sys::read_to_end_sized(&fd, usize::MAX, st.st_size as usize)
                .map_err(errno_io)
                .map_err(annotate("read", path))?;
            w.entry(path, meta, Body::File(&data), xattrs)
        }
        libc::S_IFLNK => {
            let target = sys::readlinkat(dir, name.to_bytes())
                .map_err(errno_io)
                .map_err(annotate("readlink", path))?;
            w.entry(path, meta, Body::Symlink(&target), xattrs)
        }
        libc::S_IFCHR => w.entry(path, meta, Body::Char(dev().0, dev().1), xattrs),
        libc::S_IFBLK => w.entry(path, meta, Body::Block(dev().0, dev().1), xattrs),
        libc::S_IFIFO => w.entry(path, meta, Body::Fifo, xattrs),
        _ => Ok(()),
    }
}

/// A char 0/0 device: an overlay whiteout (overlayfs.rst, "whiteouts and
/// opaque directories").
fn is_whiteout(st: &sys::Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn open_dir(dir: impl AsFd, path: &[u8]) -> io::Result<OwnedFd> {
    sys::openat(
        dir,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(errno_io)
}

/// Directory `rel` of the tree at `root` (`""`: the root), through no
/// symlink and never above the root.
fn open_beneath(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    let path = if rel.is_empty() { "." } else { rel };
    sys::openat2(
        root,
        path.as_bytes(),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    )
    .map_err(errno_io)
}

/// Every xattr of `name` in `dir` (not following it), sorted by name.
fn xattrs(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<Xattr>> {
    // The directory through its /proc magic link, then the bare name: the
    // l*xattr calls take paths.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
    let mut out = Vec::new();
    for key in sys::listxattr(&path, Follow::No).map_err(errno_io)? {
        match sys::getxattr(&path, &key, Follow::No) {
            Ok(v) => out.push((key, v)),
            Err(Errno::ENODATA) => {}
            Err(e) => return Err(errno_io(e)),
        }
    }
    out.sort();
    Ok(out)
}
