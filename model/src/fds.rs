//! Open file descriptors: `open P FLAGS as F` and the ops on `F`
//! (docs/semantics.md §1.15).
//!
//! An fd holds an overlay inode, not a path. The model keeps, per held
//! inode, the lower stack and upper inode the fd reaches ([`Held`]); a
//! copy-up of that inode through any path updates it, because overlay
//! re-opens the real file when the inode's real inode changed since the
//! open (file.c: ovl_real_fdget, since 4.19): an fd opened read-only on a
//! lower file reads the upper copy once one exists (overlayfs.rst:
//! "Non-directories"). An upper inode an fd holds stays in its layer while
//! held, after its last name went (an unlinked open file stays readable,
//! and tmpfs keeps its pages); closing the last fd frees it.
//!
//! Directory fds follow readdir.c: a merged directory is listed from a
//! cache made at the first read from position 0 (ovl_iterate,
//! ovl_cache_get) and kept while the position is past 0, so a listing
//! continued after a change shows none of it; a rewind to 0 drops a stale
//! cache (ovl_dir_reset, by the inode's version), so a listing from 0
//! shows the directory as it is. A directory that lies in one layer is
//! read straight from its real directory (ovl_dir_is_real); on tmpfs a
//! read that reached the end marks it (libfs.c: offset_readdir, the
//! end-of-directory offset), so a continued listing is empty there too
//! (both observed on 6.18; before v6.13 a read that listed no entry
//! leaves tmpfs where its next read starts again, [`DirPos::Empty`]). The
//! model predicts these tmpfs layers; POSIX leaves it open whether
//! entries added after the last rewind are listed.
//!
//! Every fd is closed before an unmount: the driver closes them before a
//! remount, a commit and the end of the case, so `remount` and `commit`
//! close every fd here too.

use crate::copy_up::CopyUp;
use crate::fs::Kind;
use crate::lookup::Dentry;
use crate::perm::{owner_or_capable, permission, MAY_READ, MAY_WRITE};
use crate::resolve::{Follow, Resolved, Walk};
use crate::rules::Rule;
use crate::space;
use crate::Model;
use imbl::OrdMap;
use ovlcheck_case::{Access, Cred, Errno, OpPath, OpenFlags, Value, Whence};

/// The capacity of a pipe (pipe.c: PIPE_DEF_BUFFERS pages).
const PIPE_CAPACITY: usize = 16 * 4096;

/// The largest file an fd write makes (the model's limit, as for `write`).
const MODEL_MAX_FILE: u64 = 1 << 24;

/// An overlay inode held open by one or more fds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// What the inode reaches: updated by a copy-up of it (ovl_inode_update).
    pub dentry: Dentry,
    /// The merged path it was opened at, kept up to date by renames: a
    /// lower hard link that overlay does not hash by its lower inode is one
    /// overlay inode per name (inode.c: ovl_hash_bylower).
    pub path: String,
    /// Whether overlay hashes the inode by its lower inode, so that every
    /// name of it is this inode (inode.c: ovl_hash_bylower).
    pub by_lower: bool,
    /// A fifo's pipe buffer: the pipe belongs to the overlay inode.
    pub pipe: Vec<u8>,
    /// A directory removed while open: getdents gives ENOENT (readdir.c:
    /// iterate_dir checks IS_DEADDIR).
    pub dead: bool,
    /// The fds that hold it.
    pub fds: u32,
    /// A merged directory's cached listing (readdir.c: ovl_cache_get),
    /// while an fd that read it keeps it and no entry of the directory
    /// changed since (the inode's version): whether the directory was
    /// impure when it was made, which decided the entries whose d_ino is
    /// looked up (ovl_calc_d_ino). A reader of the directory reuses it.
    pub dir_cache: Option<bool>,
}

/// Where a directory fd is in its listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirPos {
    /// At position 0: the next read lists the directory as it is then.
    Start,
    /// Read to the end without an entry since the last rewind: the
    /// position is just past `.` and `..`. A continued read lists nothing,
    /// but on a directory of the upper alone before v6.13, where tmpfs
    /// starts the directory again (`Features::tmpfs_eod`).
    Empty,
    /// Read to the end: a continued read lists nothing, whatever changed.
    End,
}

/// One open fd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenFile {
    /// The [`Held`] inode.
    pub held: u32,
    pub flags: OpenFlags,
    pub pos: u64,
    /// Directories: the listing position.
    pub dir: Option<DirPos>,
    /// Whether this fd holds its inode's cached listing
    /// ([`Held::dir_cache`]).
    pub cache: bool,
}

/// The fd table of a mount.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Fds {
    pub files: OrdMap<String, OpenFile>,
    pub held: OrdMap<u32, Held>,
    pub next: u32,
}

impl Model {
    /// `open(path, flags, mode)`, with the fd kept under `fd` if given (an
    /// fd already open under that name is closed first).
    pub(crate) fn op_open_flags(
        &mut self,
        path: &OpPath,
        flags: OpenFlags,
        mode: u32,
        fd: Option<&str>,
        cred: Cred,
    ) -> Result<Value, Errno> {
        if let Some(name) = fd {
            self.close_fd(name);
        }
        let w = self.open_walk(path, flags, mode, cred)?;
        if let Some(name) = fd {
            self.add_fd(name, &w, flags);
        }
        Ok(Value::Unit)
    }

    /// What open.c (build_open_flags, do_open, may_open) and overlay's
    /// open-time copy-up (copy_up.c: ovl_open_flags_need_copy_up) do, in
    /// their order; the walk of the opened object.
    fn open_walk(
        &mut self,
        path: &OpPath,
        flags: OpenFlags,
        mode: u32,
        cred: Cred,
    ) -> Result<Walk, Errno> {
        let follow = if flags.nofollow {
            Follow::No
        } else {
            Follow::Yes
        };
        if flags.path {
            // O_PATH: only O_DIRECTORY and O_NOFOLLOW count; no
            // permission on the object itself.
            let w = self.resolve_existing(path, follow, cred)?;
            if flags.directory && !w.last().is_dir {
                return Err(Errno::ENOTDIR);
            }
            return Ok(w);
        }
        // build_open_flags: O_DIRECTORY|O_CREAT is refused before any
        // lookup (since 6.4); open(2) drops both beside O_PATH first
        // (build_open_how).
        if flags.directory && flags.creat {
            return Err(Errno::EINVAL);
        }
        if flags.creat {
            return self.open_creat(path, flags, mode, cred);
        }
        let mut w = self.resolve_existing(path, follow, cred)?;
        self.open_existing(&mut w, flags, cred)?;
        Ok(w)
    }

    /// O_CREAT: as `create` (module `create`), with O_NOFOLLOW not
    /// following a final symlink either (do_open then refuses it: ELOOP).
    fn open_creat(
        &mut self,
        path: &OpPath,
        flags: OpenFlags,
        mode: u32,
        cred: Cred,
    ) -> Result<Walk, Errno> {
        if path.trailing_slash {
            return Err(self.creat_with_slash(path, cred));
        }
        let follow = if flags.excl || flags.nofollow {
            Follow::No
        } else {
            Follow::Yes
        };
        match self.resolve(path, follow, cred)? {
            Resolved::Found(_) if flags.excl => Err(Errno::EEXIST),
            Resolved::Found(mut w) => {
                self.creat_found(&w, cred)?;
                self.open_existing(&mut w, flags, cred)?;
                Ok(w)
            }
            Resolved::Missing { slash: true, .. } => Err(Errno::EISDIR),
            Resolved::Missing { .. } => {
                // A new file is opened without a permission check on it
                // (do_open: FMODE_CREATED clears acc_mode).
                self.op_create(path, mode, false, false, cred)?;
                self.resolve_existing(path, Follow::Yes, Cred::ROOT)
            }
        }
    }

    /// do_open and may_open on an existing object, then overlay's copy-up
    /// for write access or O_TRUNC.
    fn open_existing(&mut self, w: &mut Walk, flags: OpenFlags, cred: Cred) -> Result<(), Errno> {
        let kind = self.attr(w.last()).kind.clone();
        if flags.directory && !w.last().is_dir {
            return Err(Errno::ENOTDIR);
        }
        let acc = match flags.access {
            Access::Rdonly => MAY_READ,
            Access::Wronly => MAY_WRITE,
            Access::Rdwr => MAY_READ | MAY_WRITE,
        };
        match kind {
            // may_open: a symlink reached without following it.
            Kind::Symlink(_) => Err(Errno::ELOOP),
            _ => self.open_file(w, acc, flags.trunc, flags.append, cred),
        }
    }

    /// `read P` of a fifo: open O_RDONLY|O_NONBLOCK and read until the
    /// end. The pipe's data comes out; then, while an fd may still write,
    /// the next read fails with EAGAIN and so does the op.
    pub(crate) fn drain_fifo(&mut self, w: &Walk) -> Result<Value, Errno> {
        let Some(h) = self.find_held(w.last(), &w.path()) else {
            return Ok(Value::Bytes(Vec::new()));
        };
        let writers = self
            .fds
            .files
            .values()
            .any(|f| f.held == h && !f.flags.path && f.flags.access.writes());
        let data = std::mem::take(&mut self.fds.held.get_mut(&h).expect("held").pipe);
        if writers {
            Err(Errno::EAGAIN)
        } else {
            Ok(Value::Bytes(data))
        }
    }

    /// Whether the fifo of `w` has an open fd that reads it (fifo_open:
    /// O_WRONLY|O_NONBLOCK without one is ENXIO).
    pub(crate) fn fifo_has_reader(&self, w: &Walk) -> bool {
        let Some(h) = self.find_held(w.last(), &w.path()) else {
            return false;
        };
        self.fds
            .files
            .values()
            .any(|f| f.held == h && !f.flags.path && f.flags.access.reads())
    }

    /// ovl_hash_bylower: a lower non-directory with more than one link is
    /// one overlay inode per name when it has an upper or there is no index.
    fn hashed_by_lower(&self, d: &Dentry) -> bool {
        let Some(l) = d.lowers.first() else {
            return false;
        };
        let nlink = self.lowers[l.layer as usize].nlink(l.ino);
        d.is_dir || nlink <= 1 || (d.upper.is_none() && self.feat.index)
    }

    /// The held inode that `d` (reached at `path`) is, if any.
    fn find_held(&self, d: &Dentry, path: &str) -> Option<u32> {
        let by_lower = self.hashed_by_lower(d);
        self.fds.held.iter().find_map(|(id, h)| {
            let same = match (d.upper, h.dentry.upper) {
                (Some(a), Some(b)) => a == b,
                (None, None) => {
                    !d.lowers.is_empty()
                        && d.lowers.first() == h.dentry.lowers.first()
                        && (by_lower || h.path == path)
                }
                _ => false,
            };
            same.then_some(*id)
        })
    }

    /// Registers fd `name` on the object of `w`.
    fn add_fd(&mut self, name: &str, w: &Walk, flags: OpenFlags) {
        let d = w.last().clone();
        let path = w.path();
        let held = match self.find_held(&d, &path) {
            Some(id) => id,
            None => {
                let id = self.fds.next;
                self.fds.next += 1;
                if let Some(u) = d.upper {
                    self.upper_mut().hold(u);
                }
                let by_lower = self.hashed_by_lower(&d);
                self.fds.held.insert(
                    id,
                    Held {
                        dentry: d.clone(),
                        path,
                        by_lower,
                        pipe: Vec::new(),
                        dead: false,
                        fds: 0,
                        dir_cache: None,
                    },
                );
                id
            }
        };
        self.fds.held.get_mut(&held).expect("held").fds += 1;
        let dir = (d.is_dir && !flags.path).then_some(DirPos::Start);
        self.fds.files.insert(
            name.to_string(),
            OpenFile {
                held,
                flags,
                pos: 0,
                dir,
                cache: false,
            },
        );
    }

    /// `close(F)`; false when no fd has that name.
    pub(crate) fn close_fd(&mut self, name: &str) -> bool {
        let Some(f) = self.fds.files.remove(name) else {
            return false;
        };
        let cached =
            |files: &OrdMap<String, OpenFile>| files.values().any(|o| o.held == f.held && o.cache);
        let kept = cached(&self.fds.files);
        let h = self.fds.held.get_mut(&f.held).expect("held");
        h.fds -= 1;
        if f.cache && !kept {
            // The last reference to the cached listing (ovl_cache_put).
            h.dir_cache = None;
        }
        if h.fds == 0 {
            let h = self.fds.held.remove(&f.held).expect("held");
            if let Some(u) = h.dentry.upper {
                self.upper_mut().release(u);
            }
        }
        true
    }

    /// ovl_dir_modified: an entry of directory `d` was made, removed or
    /// renamed, which moves its overlay inode's version, so a new reader
    /// no longer takes the cached listing (ovl_cache_get); an fd that read
    /// it keeps its own, past its end.
    pub(crate) fn dir_modified(&mut self, d: &Dentry) {
        let Some(id) = self.find_held(d, "") else {
            return;
        };
        if self.fds.held[&id].dir_cache.is_none() {
            return;
        }
        self.fds.held.get_mut(&id).expect("held").dir_cache = None;
        let names: Vec<String> = self
            .fds
            .files
            .iter()
            .filter(|(_, f)| f.held == id)
            .map(|(n, _)| n.clone())
            .collect();
        for n in names {
            self.fds.files.get_mut(&n).expect("fd").cache = false;
        }
    }

    /// Whether merged directory `d` was impure when the listing an open fd
    /// keeps cached for it was made, if one does ([`Held::dir_cache`]).
    pub(crate) fn cached_listing_impure(&self, d: &Dentry) -> Option<bool> {
        if self.fds.held.is_empty() {
            return None;
        }
        self.fds.held[&self.find_held(d, "")?].dir_cache
    }

    /// Closes every fd (before an unmount).
    pub(crate) fn close_all_fds(&mut self) {
        let names: Vec<String> = self.fds.files.keys().cloned().collect();
        for n in names {
            self.close_fd(&n);
        }
    }

    /// A copy-up of the object that `before` was at `path` made `after`:
    /// the held inode it is now reaches the upper (ovl_inode_update), so
    /// its fds read and stat the copy (file.c: ovl_real_fdget).
    pub(crate) fn held_copied_up(&mut self, path: &str, before: &Dentry, after: &Dentry) {
        let Some(id) = self.find_held(before, path) else {
            return;
        };
        self.hit(Rule::FdSeesCopyUp);
        let had = self.fds.held[&id].dentry.upper;
        if had.is_none() {
            if let Some(u) = after.upper {
                self.upper_mut().hold(u);
            }
        }
        self.fds.held.get_mut(&id).expect("held").dentry = after.clone();
    }

    /// The directory `d` at `path` was removed: fds on it list ENOENT.
    pub(crate) fn held_removed(&mut self, d: &Dentry, path: &str) {
        if let Some(id) = self.find_held(d, path) {
            self.fds.held.get_mut(&id).expect("held").dead = true;
        }
    }

    /// A rename moved `old` to `new` (and, for an exchange, `new` to
    /// `old`): the held inodes' paths follow.
    pub(crate) fn held_renamed(&mut self, old: &str, new: &str, exchange: bool) {
        // A path the rename replaced keeps its name: the held inode is
        // unlinked, and its path is only where it was.
        let ids: Vec<u32> = self.fds.held.keys().copied().collect();
        for id in ids {
            let h = self.fds.held.get_mut(&id).expect("held");
            if let Some(p) = crate::ops::rename::moved_path(&h.path, old, new, exchange) {
                h.path = p;
            }
        }
    }

    fn file(&self, fd: &str) -> Result<&OpenFile, Errno> {
        self.fds.files.get(fd).ok_or(Errno::EBADF)
    }

    /// `fstat(F)`: the held inode as stat shows it (nlink 0 once unlinked).
    pub(crate) fn op_fstat(&self, fd: &str) -> Result<Value, Errno> {
        let f = self.file(fd)?;
        let held = &self.fds.held[&f.held];
        let mut st = self.stat_info(&held.dentry);
        // A removed directory that was not merged reports its real
        // inode's link count, which rmdir cleared (inode.c: ovl_getattr
        // gives 1 only to merged directories).
        if held.dead && held.dentry.upper.is_some() && !held.dentry.is_merge_dir() {
            st.nlink = 0;
        }
        Ok(Value::Stat(st))
    }

    /// `fsync(F)`: EBADF for O_PATH, EINVAL for a fifo (no fsync method).
    pub(crate) fn op_fsync(&self, fd: &str) -> Result<Value, Errno> {
        let f = self.file(fd)?;
        if f.flags.path {
            return Err(Errno::EBADF);
        }
        match self.attr(&self.fds.held[&f.held].dentry).kind {
            Kind::Fifo => Err(Errno::EINVAL),
            _ => Ok(Value::Unit),
        }
    }

    /// `read(F, len)` at the fd's position; a fifo reads its pipe.
    pub(crate) fn op_fread(&mut self, fd: &str, len: Option<u64>) -> Result<Value, Errno> {
        let f = self.file(fd)?.clone();
        if f.flags.path || !f.flags.access.reads() {
            return Err(Errno::EBADF);
        }
        let held = &self.fds.held[&f.held];
        let want = len.unwrap_or(u64::MAX);
        match &self.attr(&held.dentry).kind {
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::Fifo => {
                if held.pipe.is_empty() {
                    let writers = self
                        .fds
                        .files
                        .values()
                        .any(|o| o.held == f.held && !o.flags.path && o.flags.access.writes());
                    // pipe_read with O_NONBLOCK: EAGAIN while a writer
                    // may still write, else end of file.
                    return if writers && want > 0 {
                        Err(Errno::EAGAIN)
                    } else {
                        Ok(Value::Bytes(Vec::new()))
                    };
                }
                let n = (want.min(held.pipe.len() as u64)) as usize;
                let h = self.fds.held.get_mut(&f.held).expect("held");
                let out: Vec<u8> = h.pipe.drain(..n).collect();
                Ok(Value::Bytes(out))
            }
            _ => {
                let data = self.file_data(&held.dentry);
                let start = (f.pos as usize).min(data.len());
                let end = start
                    .saturating_add(want.min(usize::MAX as u64) as usize)
                    .min(data.len());
                let out = data[start..end].to_vec();
                self.fds.files.get_mut(fd).expect("fd").pos += out.len() as u64;
                Ok(Value::Bytes(out))
            }
        }
    }

    /// `write(F, data)` at the position (or the end with O_APPEND), or
    /// `pwrite(F, data, offset)` (which appends too under O_APPEND, as
    /// Linux does). The data goes to the held upper inode (write access
    /// copied it up at open), with write's side effects on mode and times.
    pub(crate) fn op_fwrite(
        &mut self,
        fd: &str,
        offset: Option<u64>,
        data: &[u8],
        cred: Cred,
    ) -> Result<Value, Errno> {
        let f = self.file(fd)?.clone();
        if f.flags.path {
            return Err(Errno::EBADF);
        }
        let held = &self.fds.held[&f.held];
        let fifo = matches!(self.attr(&held.dentry).kind, Kind::Fifo);
        // ksys_pwrite64: a pipe has no FMODE_PWRITE, checked before the
        // fd's access mode.
        if fifo && offset.is_some() && !f.flags.path {
            return Err(Errno::ESPIPE);
        }
        if !f.flags.access.writes() {
            return Err(Errno::EBADF);
        }
        match &self.attr(&held.dentry).kind {
            Kind::Fifo => {
                let readers = self
                    .fds
                    .files
                    .values()
                    .any(|o| o.held == f.held && !o.flags.path && o.flags.access.reads());
                if !readers {
                    return Err(Errno::EPIPE);
                }
                if held.pipe.len() + data.len() > PIPE_CAPACITY {
                    return Err(Errno::EAGAIN);
                }
                let h = self.fds.held.get_mut(&f.held).expect("held");
                h.pipe.extend_from_slice(data);
                Ok(Value::Unit)
            }
            _ => {
                let u = held.dentry.upper.expect("opened for write: copied up");
                let size = self.file_data(&held.dentry).len() as u64;
                let at = if f.flags.append {
                    size
                } else {
                    offset.unwrap_or(f.pos)
                };
                if at.saturating_add(data.len() as u64) > MODEL_MAX_FILE {
                    return Err(Errno::EFBIG);
                }
                if data.is_empty() {
                    return Ok(Value::Unit);
                }
                self.contents_changed(u, cred);
                let free = self.free_pages();
                let inode = self.upper_mut().get_mut(u);
                let written = space::write(inode, at, data, free);
                // write(2) moves the position past what it wrote; one that
                // wrote nothing fails and leaves it (ksys_write stores the
                // position only on success), so an O_APPEND write refused
                // with ENOSPC does not move it to the end (observed on
                // 6.18: corpus/regressions/enospc-append-write-keeps-position.ovl).
                if offset.is_none() && written > 0 {
                    self.fds.files.get_mut(fd).expect("fd").pos = at + written as u64;
                }
                if written < data.len() {
                    self.hit(Rule::NoSpace);
                    return Err(Errno::ENOSPC);
                }
                Ok(Value::Unit)
            }
        }
    }

    /// `lseek(F, offset, whence)`. A fifo: ESPIPE. A directory: SEEK_END
    /// and positions below 0 are EINVAL; 0 rewinds it. Its other offsets
    /// are cookies of the real filesystem or indexes into overlay's cache
    /// (counting `.`, `..` and whiteouts) that the model does not predict:
    /// it takes them as the end of the listing, and the generator makes
    /// no nonzero offset on an fd that can be a directory.
    pub(crate) fn op_lseek(
        &mut self,
        fd: &str,
        offset: i64,
        whence: Whence,
    ) -> Result<Value, Errno> {
        let f = self.file(fd)?.clone();
        if f.flags.path {
            return Err(Errno::EBADF);
        }
        let held = &self.fds.held[&f.held];
        match &self.attr(&held.dentry).kind {
            Kind::Fifo => Err(Errno::ESPIPE),
            Kind::Dir(_) => {
                // ovl_dir_llseek and tmpfs's offset_dir_llseek: SEEK_SET
                // and SEEK_CUR to a position not below 0.
                // SEEK_CUR by 0 keeps the position, wherever it is.
                let now = f.dir.unwrap_or(DirPos::Start);
                let to = match whence {
                    Whence::End => return Err(Errno::EINVAL),
                    Whence::Set if offset < 0 => return Err(Errno::EINVAL),
                    Whence::Cur if now == DirPos::Start && offset < 0 => return Err(Errno::EINVAL),
                    Whence::Set if offset == 0 => DirPos::Start,
                    Whence::Cur if offset == 0 => now,
                    Whence::Set | Whence::Cur => DirPos::End,
                };
                let file = self.fds.files.get_mut(fd).expect("fd");
                file.pos = u64::from(to != DirPos::Start);
                if file.dir.is_some() {
                    file.dir = Some(to);
                }
                Ok(Value::Unit)
            }
            _ => {
                let base = match whence {
                    Whence::Set => 0,
                    Whence::Cur => f.pos as i64,
                    Whence::End => self.file_data(&held.dentry).len() as i64,
                };
                let to = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
                if to < 0 {
                    return Err(Errno::EINVAL);
                }
                self.fds.files.get_mut(fd).expect("fd").pos = to as u64;
                Ok(Value::Unit)
            }
        }
    }

    /// `getdents64(F)` to the end, from the fd's position (module doc).
    pub(crate) fn op_freaddir(&mut self, fd: &str) -> Result<Value, Errno> {
        let f = self.file(fd)?.clone();
        if f.flags.path {
            return Err(Errno::EBADF);
        }
        let held = self.fds.held[&f.held].clone();
        let Some(pos) = f.dir else {
            return Err(Errno::ENOTDIR);
        };
        if held.dead {
            return Err(Errno::ENOENT);
        }
        let pos = match pos {
            DirPos::Empty if !self.feat.tmpfs_eod && held.dentry.lowers.is_empty() => {
                self.hit(Rule::EmptyListingReadAgainBefore613);
                DirPos::Start
            }
            pos => pos,
        };
        let names = match pos {
            DirPos::End | DirPos::Empty => {
                self.hit(Rule::FdReaddirCache);
                Vec::new()
            }
            DirPos::Start => {
                let impure = held
                    .dentry
                    .upper
                    .is_some_and(|u| self.upper_inode(u).ovl.impure);
                let h = self.fds.held.get_mut(&f.held).expect("held");
                h.dir_cache.get_or_insert(impure);
                self.fds.files.get_mut(fd).expect("fd").cache = true;
                let names = self.readdir_names(&held.dentry)?;
                if let Some(u) = self.readdir_clears_impure(&held.path, &held.dentry) {
                    self.upper_mut().get_mut(u).ovl.impure = false;
                }
                names
            }
        };
        let file = self.fds.files.get_mut(fd).expect("fd");
        file.pos = 1;
        file.dir = Some(if pos != DirPos::End && names.is_empty() {
            DirPos::Empty
        } else {
            DirPos::End
        });
        Ok(Value::Names(names))
    }

    /// `utimensat(P, NULL)`: times set to now, which the owner, CAP_FOWNER
    /// or anyone who may write the file may do (fs/attr.c: may_setattr
    /// with ATTR_TOUCH: EACCES from the write permission check).
    pub(crate) fn op_utimes_now(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let u = self.modify(path, CopyUp::Meta, cred, |a| {
            // may_setattr's ATTR_TOUCH checks come before notify_change's
            // EOVERFLOW.
            crate::perm::may_setattr(a, true)?;
            if !owner_or_capable(cred, a) {
                permission(cred, a, MAY_WRITE)?;
            }
            crate::perm::setattr_mapped(a)
        })?;
        self.upper_mut().get_mut(u).touch();
        Ok(Value::Unit)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn a_read_only_fd_reads_the_copy_up_made_through_its_path() {
        let mut m = model("lower\n  file a 0644 \"lower\"\n");
        assert_eq!(run(&mut m, "open a O_RDONLY as f"), "ok");
        assert_eq!(run(&mut m, "fread f 2"), "\"lo\"");
        assert_eq!(run(&mut m, "write a 0 \"UP\""), "ok");
        assert_eq!(run(&mut m, "fread f"), "\"wer\"");
        assert_eq!(run(&mut m, "lseek f 0 SEEK_SET"), "ok");
        assert_eq!(run(&mut m, "fread f"), "\"UPwer\"");
        assert_eq!(run(&mut m, "fwrite f \"x\""), "EBADF");
    }

    #[test]
    fn lower_hard_links_are_one_inode_only_with_index() {
        let text = |p: &str| format!("{p}lower\n  file a 0644 \"lower\"\n  hardlink h a\n");
        for (profile, seen) in [("", "\"lower\""), ("profile index\n", "\"UPwer\"")] {
            let mut m = model(&text(profile));
            assert_eq!(run(&mut m, "open h O_RDONLY as f"), "ok");
            assert_eq!(run(&mut m, "write a 0 \"UP\""), "ok");
            assert_eq!(run(&mut m, "fread f"), seen, "{profile}");
        }
    }

    #[test]
    fn an_unlinked_file_lives_until_its_last_fd_closes() {
        let mut m = model("lower\n  file a 0644 \"a\"\n");
        assert_eq!(run(&mut m, "open a O_RDWR as f"), "ok");
        assert_eq!(run(&mut m, "open a O_RDONLY as g"), "ok");
        assert_eq!(run(&mut m, "unlink a"), "ok");
        assert_eq!(run(&mut m, "fwrite f 1 \"b\""), "ok");
        assert_eq!(run(&mut m, "close f"), "ok");
        assert_eq!(run(&mut m, "fread g"), "\"ab\"");
        assert_eq!(run(&mut m, "fstat g"), "{file 0644 0:0 size=2 nlink=0}");
        let held = m.fds.held.values().next().and_then(|h| h.dentry.upper);
        let u = held.expect("the fd holds the upper copy");
        assert_eq!(run(&mut m, "close g"), "ok");
        assert!(!m.upper.as_ref().expect("upper").inodes.contains_key(&u));
        assert_eq!(run(&mut m, "close g"), "EBADF");
    }

    #[test]
    fn a_remount_closes_every_fd() {
        let mut m = model("lower\n  dir d 0755\n");
        assert_eq!(run(&mut m, "open d O_RDONLY|O_DIRECTORY as d"), "ok");
        assert_eq!(run(&mut m, "freaddir d"), "[]");
        assert_eq!(run(&mut m, "create d/x 0644"), "ok");
        assert_eq!(run(&mut m, "freaddir d"), "[]");
        assert_eq!(run(&mut m, "lseek d 0 SEEK_SET"), "ok");
        assert_eq!(run(&mut m, "freaddir d"), "[\"x\"]");
        assert_eq!(run(&mut m, "remount"), "ok");
        assert_eq!(run(&mut m, "fstat d"), "EBADF");
    }

    /// A continued listing of a directory of the upper alone after an
    /// empty read: nothing from v6.13, the entries made since before it
    /// (corpus/versions/6.1-readdir-empty-listing-read-again.ovl).
    #[test]
    fn an_empty_listing_is_read_again_before_6_13() {
        for (profile, seen) in [("", "[]"), ("profile kernel=6.12\n", "[\"x\"]")] {
            let mut m = model(&format!("{profile}lower\nupper\n  dir u 0755\n"));
            assert_eq!(run(&mut m, "open u O_RDONLY|O_DIRECTORY as d"), "ok");
            assert_eq!(run(&mut m, "freaddir d"), "[]");
            assert_eq!(run(&mut m, "lseek d 0 SEEK_CUR"), "ok");
            assert_eq!(run(&mut m, "create u/x 0644"), "ok");
            assert_eq!(run(&mut m, "freaddir d"), seen, "{profile}");
            assert_eq!(run(&mut m, "create u/y 0644"), "ok");
            assert_eq!(run(&mut m, "freaddir d"), "[]", "{profile}");
        }
    }

    #[test]
    fn open_flags_in_the_vfs_order() {
        let mut m = model("lower\n  dir d 0755\n  file f 0644 \"f\"\n  symlink l \"f\"\n");
        assert_eq!(
            run(&mut m, "open d O_RDONLY|O_CREAT|O_DIRECTORY 0755"),
            "EINVAL"
        );
        assert_eq!(run(&mut m, "open d O_PATH|O_CREAT|O_DIRECTORY 0755"), "ok");
        assert_eq!(run(&mut m, "open f O_RDONLY|O_DIRECTORY"), "ENOTDIR");
        assert_eq!(run(&mut m, "open l O_RDONLY|O_NOFOLLOW"), "ELOOP");
        assert_eq!(
            run(&mut m, "open l O_RDWR|O_CREAT|O_NOFOLLOW 0644"),
            "ELOOP"
        );
        assert_eq!(run(&mut m, "open l O_RDONLY|O_CREAT|O_EXCL 0644"), "EEXIST");
        assert_eq!(run(&mut m, "open d O_RDONLY|O_CREAT 0644"), "EISDIR");
        assert_eq!(run(&mut m, "open d O_WRONLY"), "EISDIR");
        assert_eq!(run(&mut m, "open f O_RDONLY|O_EXCL"), "ok");
    }

    #[test]
    fn utimes_now_needs_owner_or_write_permission() {
        let mut m = model("lower\n  file w 0666 \"w\"\n  owner w 5 5\n  file r 0644 \"r\"\n");
        assert_eq!(run(&mut m, "as 1000:1000 utimes w now"), "ok");
        assert_eq!(run(&mut m, "as 1000:1000 utimes r now"), "EACCES");
        assert_eq!(run(&mut m, "as 1000:1000 utimes w 1"), "EPERM");
    }

    #[test]
    fn removed_upper_dir_fd() {
        let mut m = model("lower\nupper\n  dir d 0755\n");
        assert_eq!(run(&mut m, "mkdir d/c 0755"), "ok");
        assert_eq!(run(&mut m, "open d/c as f"), "ok");
        assert_eq!(run(&mut m, "rmdir d/c"), "ok");
        assert_eq!(run(&mut m, "freaddir f"), "ENOENT");
        assert_eq!(run(&mut m, "fstat f"), "{dir 0755 0:0 size=0 nlink=0}");
    }
}
