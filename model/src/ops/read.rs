//! Ops that only read: stat, lstat, read, readlink, readdir (getxattr and
//! listxattr are in module `xattr`). None of them copies up (overlayfs.rst: "Non-directories";
//! copy_up.c: ovl_open_flags_need_copy_up).

use crate::fs::Kind;
use crate::perm::{permission, MAY_READ};
use crate::resolve::{join_path, Follow, Resolved};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::{Cred, Errno, Fsid, OpPath, Value};

impl Model {
    /// `stat`/`lstat`.
    pub(crate) fn op_stat(&self, path: &OpPath, follow: bool, cred: Cred) -> Result<Value, Errno> {
        let r = if follow {
            self.resolve(path, Follow::Yes, cred)?
        } else {
            self.resolve_last(path, Follow::No, cred)?
        };
        let Resolved::Found(w) = r else {
            return Err(Errno::ENOENT);
        };
        Ok(Value::Stat(self.stat_info(w.last())))
    }

    /// `statfs`: the path resolves as `stat` does; the fsid is the
    /// overlay's, whichever path names it ([`Model::fsid`]).
    pub(crate) fn op_statfs(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        match self.resolve(path, Follow::Yes, cred)? {
            Resolved::Found(_) => Ok(Value::Fsid(self.fsid())),
            _ => Err(Errno::ENOENT),
        }
    }

    /// The fsid `statfs` reports (overlayfs.rst: "UUID and fsid"; super.c:
    /// ovl_statfs): the overlay's own once its upper root keeps a uuid,
    /// zero for uuid=auto without an upper, and otherwise the real root's
    /// filesystem's: the upper, or the top lower without one.
    pub(crate) fn fsid(&self) -> Fsid {
        let f = &self.feat;
        let (rule, id) = match &self.upper {
            _ if !f.fsid_from_uuid => (Rule::StatfsUpperFsidBefore66, self.real_fsid()),
            Some(u) if f.uuid_xattr && u.get(u.root).ovl.uuid => (Rule::StatfsOwnFsid, Fsid::Own),
            None if f.zero_fsid_without_upper => (Rule::StatfsZeroFsid, Fsid::Zero),
            _ => (Rule::StatfsRealFsid, self.real_fsid()),
        };
        self.hit(rule);
        id
    }

    fn real_fsid(&self) -> Fsid {
        match self.upper {
            Some(_) => Fsid::Upper,
            None => Fsid::Lower,
        }
    }

    /// open O_RDONLY, read everything. A fifo reads what its pipe holds
    /// (module `fds`: open fds may have written it); while an fd may still
    /// write, the read that finds it empty fails (EAGAIN, the open is
    /// non-blocking), after taking the data.
    pub(crate) fn op_read(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let d = w.last();
        let a = self.attr(d);
        permission(cred, a, MAY_READ)?;
        match &a.kind {
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::File(_) => {
                self.verify_lowerdata(d)?;
                Ok(Value::Bytes(self.file_data(d).to_vec()))
            }
            Kind::Fifo => self.drain_fifo(&w),
            _ => Ok(Value::Bytes(Vec::new())),
        }
    }

    /// `readlink`: EINVAL on anything but a symlink.
    pub(crate) fn op_readlink(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let Resolved::Found(w) = self.resolve_last(path, Follow::No, cred)? else {
            return Err(Errno::ENOENT);
        };
        match &self.attr(w.last()).kind {
            Kind::Symlink(t) => Ok(Value::Bytes(t.to_vec())),
            _ => Err(Errno::EINVAL),
        }
    }

    /// open O_DIRECTORY and getdents: the merged listing
    /// (overlayfs.rst: "readdir").
    /// Reading may drop a stale `impure` xattr (readdir_clears_impure).
    pub(crate) fn op_readdir(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let d = w.last();
        if !d.is_dir {
            return Err(Errno::ENOTDIR);
        }
        permission(cred, self.attr(d), MAY_READ)?;
        let names = self.readdir_names(d)?;
        let dir_path = w.path();
        if self.listing_looks_up(d) {
            let entries: Vec<String> = names.iter().map(|n| join_path(&dir_path, n)).collect();
            self.look_up_pending(&entries);
        }
        if let Some(u) = self.readdir_clears_impure(&dir_path, d) {
            self.upper_mut().get_mut(u).ovl.impure = false;
        }
        Ok(Value::Names(names))
    }
}
