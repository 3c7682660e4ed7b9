//! The store's `ApplyDiff`: a layer tar unpacked into a new layer's
//! `diff/` with the overlay whiteout converter.

use super::{annotate, entry_path, errno_io, invalid, split_path, Pax, Xattr};
use crate::sys::{self, Follow};
use ovlcheck_case::oci::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use std::collections::HashSet;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::EntryType;

/// moby overlay2 `ApplyDiff` (untar with go-archive's overlay whiteout
/// converter, archive_linux.go `ConvertRead`, and `Unpack`): unpacks layer
/// tar `tar` into `diff`, a new layer's empty `diff/` directory. `prefix`
/// is the overlay xattr prefix ([`ovlcheck_case::Profile::xattr_prefix`]).
///
/// - `DIR/.wh..wh..opq` sets `<prefix>opaque` = `y` on `DIR`;
/// - `.wh.NAME` makes `NAME` a whiteout (char 0/0, mode 0) owned by the
///   entry's uid/gid; a `.wh.` with no name after it (or `.` or `..`) is
///   an error;
/// - any other entry is created with its mode, owner, xattrs, symlink
///   target or data and mtime (directories' mtimes last, once their
///   entries are in); a link entry is a hard link to the earlier entry;
/// - missing parent directories are made 0755, owned by 0:0.
///
/// Everything happens beneath `diff`: names that are absolute or have a
/// `..` are refused, and paths are resolved through no symlink (`openat2`
/// with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, then `*at` calls on the
/// directory fd), so a symlink the tar made is never followed.
pub fn apply(tar: &[u8], diff: &Path, prefix: &str) -> io::Result<()> {
    let root = sys::openat(
        sys::CWD,
        diff.as_os_str().as_bytes(),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(errno_io)
    .map_err(annotate("open", diff.as_os_str().as_bytes()))?;
    let mut u = Unpacker {
        root,
        prefix,
        ids: sys::effective_ids(),
        parent: None,
        written: HashSet::new(),
        dirs: Vec::new(),
        default_acls: Vec::new(),
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let path = entry_path(&raw).map_err(invalid)?.to_vec();
        u.entry(&mut entry, &path)
            .map_err(annotate("unpack", &path))?;
    }
    // Default ACLs once every object is made: none inherits one
    // (posix_acl_create), so every object has the ACLs its entry gives.
    // go-archive and containerd set each directory's xattrs as they make
    // it, and what they make in it then inherits (docs/semantics.md §1.19).
    for (path, value) in std::mem::take(&mut u.default_acls) {
        let fd = u.open_dir(&path).map_err(annotate("open", &path))?;
        sys::fsetxattr(&fd, ovlcheck_case::acl::DEFAULT.as_bytes(), &value)
            .map_err(errno_io)
            .map_err(annotate("set the default ACL of", &path))?;
    }
    // Directory mtimes once nothing more is made in them (go-archive
    // `Unpack` sets them after the last entry).
    for (path, mtime) in std::mem::take(&mut u.dirs) {
        let fd = u.open_dir(&path).map_err(annotate("open", &path))?;
        sys::futimens(&fd, mtime)
            .map_err(errno_io)
            .map_err(annotate("set mtime of", &path))?;
    }
    Ok(())
}

/// The state of one [`apply`].
struct Unpacker<'p> {
    /// The layer's `diff/`.
    root: OwnedFd,
    prefix: &'p str,
    /// The process's effective uid and gid: the owner of what it makes.
    ids: (u32, u32),
    /// The directory of the last entry, open: entries come directory by
    /// directory.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Layer paths of the objects made so far (what a link may name).
    written: HashSet<Vec<u8>>,
    /// Directories made, with their mtimes.
    dirs: Vec<(Vec<u8>, i64)>,
    /// Directories' default ACLs (binary), set after every entry.
    default_acls: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &[u8]) -> io::Result<()> {
        let dir_rel = split_path(path).0;
        let dir = self.parent_dir(dir_rel)?;
        let made = self.make(entry, path, dir.as_fd());
        self.parent = Some((dir_rel.to_vec(), dir));
        made
    }

    /// Unpacks the entry at layer path `path` into its directory `dir`.
    fn make<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        dir: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let base = split_path(path).1;
        let h = entry.header();
        let uid = u32::try_from(h.uid()?).map_err(|_| invalid("uid out of range".into()))?;
        let gid = u32::try_from(h.gid()?).map_err(|_| invalid("gid out of range".into()))?;
        if base == OPAQUE_WHITEOUT.as_bytes() {
            let key = format!("{}opaque", self.prefix);
            return sys::fsetxattr(dir, key.as_bytes(), b"y").map_err(errno_io);
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(invalid("invalid whiteout entry".into()));
            }
            let dev = sys::makedev(0, 0);
            sys::mknodat(dir, hidden, sys::FileType::CharacterDevice, 0, dev).map_err(errno_io)?;
            return sys::fchownat(dir, hidden, uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                .map_err(errno_io);
        }
        let mode = h.mode()? & 0o7777;
        let mut pax = Pax::of(entry)?;
        let mtime = pax.mtime(entry.header())?;
        let kind = entry.header().entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let default_name = ovlcheck_case::acl::DEFAULT.as_bytes();
        if let Some(i) = pax.xattrs.iter().position(|(k, _)| k == default_name) {
            let (_, value) = pax.xattrs.remove(i);
            self.default_acls.push((path.to_vec(), value));
        }
        let attrs = Attrs {
            mode,
            uid,
            gid,
            mtime,
            xattrs: &pax.xattrs,
        };
        match kind {
            EntryType::Link => {
                let target = link.ok_or_else(|| invalid("link without a target".into()))?;
                let target = entry_path(&target).map_err(invalid)?.to_vec();
                if !self.written.contains(&target) {
                    let t = String::from_utf8_lossy(&target);
                    return Err(invalid(format!("link to {t:?}, not an earlier entry")));
                }
                let (tdir_rel, tbase) = split_path(&target);
                let tdir = self.open_dir(tdir_rel)?;
                sys::linkat(&tdir, tbase, dir, base, 0).map_err(errno_io)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = sys::openat(
                    dir,
                    base,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    mode,
                )
                .map_err(errno_io)?;
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                sys::write_all(&fd, &data).map_err(errno_io)?;
                attrs.set_on_fd(fd.as_fd())?;
                sys::futimens(&fd, mtime).map_err(errno_io)?;
            }
            EntryType::Directory => {
                match sys::mkdirat(dir, base, mode) {
                    Ok(()) => {}
                    // Made earlier as a missing parent: it takes this
                    // entry's attributes.
                    Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(errno_io(e)),
                }
                let fd = sys::openat(
                    dir,
                    base,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(errno_io)?;
                attrs.set_on_fd(fd.as_fd())?;
                self.dirs.push((path.to_vec(), mtime));
            }
            EntryType::Symlink => {
                let target = link.ok_or_else(|| invalid("symlink without a target".into()))?;
                sys::symlinkat(&target, dir, base).map_err(errno_io)?;
                attrs.set_at(dir.as_fd(), base, false)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ft, dev) = match kind {
                    EntryType::Fifo => (sys::FileType::Fifo, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major()?.unwrap_or(0);
                        let minor = h.device_minor()?.unwrap_or(0);
                        let ft = match kind {
                            EntryType::Char => sys::FileType::CharacterDevice,
                            _ => sys::FileType::BlockDevice,
                        };
                        (ft, sys::makedev(major, minor))
                    }
                };
                sys::mknodat(dir, base, ft, mode, dev).map_err(errno_io)?;
                attrs.set_at(dir.as_fd(), base, true)?;
            }
            other => {
                let k = other.as_byte() as char;
                return Err(invalid(format!("entry type {k:?} cannot be unpacked")));
            }
        }
        self.written.insert(path.to_vec());
        Ok(())
    }

    /// The directory of the next entry, made (with its missing parents)
    /// when the tar did not list it first.
    fn parent_dir(&mut self, rel: &[u8]) -> io::Result<OwnedFd> {
        if let Some((p, fd)) = self.parent.take() {
            if p == rel {
                return Ok(fd);
            }
        }
        match self.open_dir(rel) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => return r,
        }
        let mut at = self.open_dir(b"")?;
        for part in rel.split(|b| *b == b'/') {
            match sys::mkdirat(&at, part, 0o755) {
                Ok(()) => {
                    sys::fchmodat(&at, part, 0o755).map_err(errno_io)?;
                    if self.ids != (0, 0) {
                        sys::fchownat(&at, part, 0, 0, libc::AT_SYMLINK_NOFOLLOW)
                            .map_err(errno_io)?;
                    }
                }
                Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(errno_io(e)),
            }
            at = sys::openat(
                &at,
                part,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(errno_io)?;
        }
        Ok(at)
    }

    /// Directory `rel` of the layer (`""`: its root), through no symlink.
    fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let path: &[u8] = if rel.is_empty() { b"." } else { rel };
        sys::openat2(
            &self.root,
            path,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
        )
        .map_err(errno_io)
    }
}

/// The attributes an unpacked object takes from its entry.
struct Attrs<'a> {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: &'a [Xattr],
}

impl Attrs<'_> {
    /// Owner, mode (after the owner: chown clears set-id bits) and xattrs
    /// of an open file or directory.
    fn set_on_fd(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        sys::fchown(fd, self.uid, self.gid).map_err(errno_io)?;
        sys::fchmod(fd, self.mode).map_err(errno_io)?;
        for (k, v) in self.xattrs {
            sys::fsetxattr(fd, k, v).map_err(errno_io)?;
        }
        Ok(())
    }

    /// Owner, mode (`chmod`: not for symlinks), xattrs and mtime of
    /// `name` in `dir`, not following it.
    fn set_at(&self, dir: BorrowedFd<'_>, name: &[u8], chmod: bool) -> io::Result<()> {
        sys::fchownat(dir, name, self.uid, self.gid, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(errno_io)?;
        if chmod {
            sys::fchmodat(dir, name, self.mode).map_err(errno_io)?;
        }
        if !self.xattrs.is_empty() {
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(name);
            let path = CString::new(path).map_err(|_| invalid("NUL in a name".into()))?;
            for (k, v) in self.xattrs {
                sys::setxattr(&path, k, v, Follow::No).map_err(errno_io)?;
            }
        }
        sys::utimensat(dir, name, self.mtime, libc::AT_SYMLINK_NOFOLLOW).map_err(errno_io)
    }
}
