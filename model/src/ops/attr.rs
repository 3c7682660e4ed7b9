//! Ops that change data or attributes of an existing object: write,
//! truncate, chmod, chown, utimes, setxattr, removexattr. Each copies the
//! object up first (overlayfs.rst: "Non-directories"; inode.c:
//! ovl_setattr, ovl_xattr_set), metadata-only where metacopy allows.

use super::read::{xattr_handler, xattr_ns, XattrNs, XATTR_SIZE_MAX};
use crate::copy_up::CopyUp;
use crate::fs::{Inode, Kind};
use crate::perm::{
    chmod_mode, mode_after_chown, mode_after_write, owner_or_capable, permission, MAY_WRITE,
};
use crate::resolve::{Follow, Walk};
use crate::space;
use crate::Model;
use ovlcheck_case::{Cred, Errno, OpPath, Value};

/// The largest file the model writes (a model limit, not a kernel one):
/// writes or truncates beyond it fail with EFBIG.
pub(crate) const MODEL_MAX_FILE: u64 = 1 << 24;

impl Model {
    /// Resolves an existing object, checks EROFS, and copies it up after
    /// `check` passes; returns the upper inode number.
    fn modify(
        &mut self,
        path: &OpPath,
        how: CopyUp,
        cred: Cred,
        check: impl FnOnce(&Inode) -> Result<(), Errno>,
    ) -> Result<u32, Errno> {
        let w: Walk = self.resolve_existing(path, Follow::Yes, cred)?;
        self.modify_walk(w, how, check)
    }

    /// [`Model::modify`] of an object already resolved.
    fn modify_walk(
        &mut self,
        mut w: Walk,
        how: CopyUp,
        check: impl FnOnce(&Inode) -> Result<(), Errno>,
    ) -> Result<u32, Errno> {
        self.check_writable()?;
        check(self.attr(w.last()))?;
        self.copy_up(&mut w, how)?;
        Ok(w.last().upper.expect("copied up"))
    }

    /// [`Model::modify`] for xattr changes (inode.c: ovl_xattr_set): they
    /// go to the overlay inode's upper whenever it has one, even an index
    /// entry not yet linked at this name (index=on: a lower hard link whose
    /// inode another name copied up), so such a name is not linked up
    /// (observed on 6.18); only an inode without an upper is copied up.
    fn modify_xattrs(
        &mut self,
        path: &OpPath,
        cred: Cred,
        check: impl FnOnce(&Inode) -> Result<(), Errno>,
    ) -> Result<u32, Errno> {
        let w: Walk = self.resolve_existing(path, Follow::Yes, cred)?;
        match w.last().upper {
            Some(u) => {
                self.check_writable()?;
                check(self.attr(w.last()))?;
                Ok(u)
            }
            None => self.modify_walk(w, CopyUp::Meta, check),
        }
    }

    /// open O_WRONLY, pwrite, close. A fifo without a reader: ENXIO (the
    /// open is non-blocking). On a sized upper the open's copy-up may fail
    /// with ENOSPC; so may the write, after it updated the times and
    /// dropped set-id bits (shmem.c: shmem_file_write_iter calls
    /// file_remove_privs and file_update_time before generic_perform_write),
    /// having written the pages that fit (see `space::write`).
    pub(crate) fn op_write(
        &mut self,
        path: &OpPath,
        offset: u64,
        data: &[u8],
        cred: Cred,
    ) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        match &self.attr(w.last()).kind {
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Fifo => {
                // may_open checks permission before fifo_open's ENXIO.
                permission(cred, self.attr(w.last()), MAY_WRITE)?;
                return Err(Errno::ENXIO);
            }
            _ => {}
        }
        if offset.saturating_add(data.len() as u64) > MODEL_MAX_FILE {
            return Err(Errno::EFBIG);
        }
        // The same walk `modify` would make: nothing changed since.
        let u = self.modify_walk(w, CopyUp::Data, |a| permission(cred, a, MAY_WRITE))?;
        if data.is_empty() {
            return Ok(Value::Unit);
        }
        let init_caps = self.feat.init_caps;
        let free = self.free_pages();
        let inode = self.upper_mut().get_mut(u);
        inode.mtime = None;
        inode.mode = mode_after_write(cred, inode.mode, init_caps);
        if space::write(inode, offset, data, free) < data.len() {
            return Err(Errno::ENOSPC);
        }
        Ok(Value::Unit)
    }

    /// `truncate(2)`: EISDIR, EINVAL on non-regular files; always copies
    /// the data (inode.c: ovl_setattr with ATTR_SIZE), which may fail with
    /// ENOSPC on a sized upper even when the truncate would shrink it; the
    /// truncate itself allocates nothing (a larger size is a hole).
    pub(crate) fn op_truncate(
        &mut self,
        path: &OpPath,
        size: u64,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        match &self.attr(w.last()).kind {
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::File(_) => {}
            _ => return Err(Errno::EINVAL),
        }
        if size > MODEL_MAX_FILE {
            return Err(Errno::EFBIG);
        }
        // The same walk `modify` would make: nothing changed since.
        let u = self.modify_walk(w, CopyUp::Data, |a| permission(cred, a, MAY_WRITE))?;
        let init_caps = self.feat.init_caps;
        let inode = self.upper_mut().get_mut(u);
        if inode.is_reg() {
            space::set_size(inode, size);
        }
        inode.mtime = None;
        inode.mode = mode_after_write(cred, inode.mode, init_caps);
        Ok(Value::Unit)
    }

    /// `chmod(2)`: the owner or CAP_FOWNER (EPERM).
    pub(crate) fn op_chmod(
        &mut self,
        path: &OpPath,
        mode: u32,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let mut new_mode = 0;
        let u = self.modify(path, CopyUp::Meta, cred, |a| {
            if !owner_or_capable(cred, a) {
                return Err(Errno::EPERM);
            }
            new_mode = chmod_mode(cred, a, mode);
            Ok(())
        })?;
        self.upper_mut().get_mut(u).mode = new_mode;
        Ok(Value::Unit)
    }

    /// `chown(2)`: changing the owner needs CAP_CHOWN; the owner may change
    /// the group to one it is in. Set-id bits of non-directories go.
    pub(crate) fn op_chown(
        &mut self,
        path: &OpPath,
        uid: u32,
        gid: u32,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let u = self.modify(path, CopyUp::Meta, cred, |a| {
            let uid_ok = cred.is_root() || (cred.uid == a.uid && uid == a.uid);
            let gid_ok = cred.is_root() || (cred.uid == a.uid && (gid == a.gid || gid == cred.gid));
            if uid_ok && gid_ok {
                Ok(())
            } else {
                Err(Errno::EPERM)
            }
        })?;
        let inode = self.upper_mut().get_mut(u);
        inode.uid = uid;
        inode.gid = gid;
        inode.mode = mode_after_chown(inode.mode, inode.is_dir());
        Ok(Value::Unit)
    }

    /// `utimensat(2)` with explicit times: the owner or CAP_FOWNER.
    pub(crate) fn op_utimes(
        &mut self,
        path: &OpPath,
        mtime: i64,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let u = self.modify(path, CopyUp::Meta, cred, |a| {
            if owner_or_capable(cred, a) {
                Ok(())
            } else {
                Err(Errno::EPERM)
            }
        })?;
        self.upper_mut().get_mut(u).mtime = Some(mtime);
        Ok(Value::Unit)
    }

    /// `setxattr(2)` with flags 0.
    pub(crate) fn op_setxattr(
        &mut self,
        path: &OpPath,
        name: &str,
        value: &[u8],
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        let private = self.private_suffix(name).map(str::to_string);
        let u = self.modify_xattrs(path, cred, |a| xattr_write_permission(cred, a, ns))?;
        // Overlay's catch-all handler (ovl_other_xattr_handler) copies up
        // before the upper filesystem refuses an unknown name (verified on
        // 6.18: the copy-up stays).
        xattr_handler(ns)?;
        let inode = self.upper_mut().get_mut(u);
        match private {
            Some(k) => inode.ovl.escaped.insert(k, value.to_vec()),
            None => inode.xattrs.insert(name.to_string(), value.to_vec()),
        };
        Ok(Value::Unit)
    }

    /// `removexattr(2)`: a missing xattr on a lower-only object is ENODATA
    /// without copy-up (inode.c: ovl_xattr_set).
    pub(crate) fn op_removexattr(
        &mut self,
        path: &OpPath,
        name: &str,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        let private = self.private_suffix(name).map(str::to_string);
        let u = self.modify_xattrs(path, cred, |a| {
            xattr_write_permission(cred, a, ns)?;
            xattr_handler(ns)?;
            let present = match &private {
                Some(k) => a.ovl.escaped.contains_key(k),
                None => a.xattrs.contains_key(name),
            };
            if present {
                Ok(())
            } else {
                Err(Errno::ENODATA)
            }
        })?;
        let inode = self.upper_mut().get_mut(u);
        match private {
            Some(k) => {
                inode.ovl.escaped.remove(&k);
            }
            None => {
                inode.xattrs.remove(name);
            }
        }
        Ok(Value::Unit)
    }
}

/// xattr_permission for writing: trusted.* and security.* need
/// CAP_SYS_ADMIN; user.* only on regular files and directories, not on a
/// sticky directory one does not own, and needs write permission.
fn xattr_write_permission(cred: Cred, a: &Inode, ns: XattrNs) -> Result<(), Errno> {
    match ns {
        XattrNs::Trusted | XattrNs::Security if !cred.is_root() => Err(Errno::EPERM),
        XattrNs::User if !(a.is_reg() || a.is_dir()) => Err(Errno::EPERM),
        XattrNs::User if a.is_dir() && a.mode & 0o1000 != 0 && !owner_or_capable(cred, a) => {
            Err(Errno::EPERM)
        }
        XattrNs::User | XattrNs::Unknown(_) => permission(cred, a, MAY_WRITE),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn removing_a_missing_xattr_does_not_copy_up() {
        let mut m = model("lower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "removexattr f user.none"), "ENODATA");
        assert!(!upper(&m).contains("\nf "));
        assert_eq!(run(&mut m, "setxattr f user.k \"v\""), "ok");
        assert!(upper(&m).contains("user.k=\"v\""));
    }

    #[test]
    fn owner_rules_for_attributes() {
        let mut m = model("lower\n  file f 0666 \"f\"\n  owner f 2000 2000\n");
        assert_eq!(run(&mut m, "as 1000:1000 chmod f 0600"), "EPERM");
        assert_eq!(run(&mut m, "as 1000:1000 utimes f 1"), "EPERM");
        assert_eq!(run(&mut m, "as 1000:1000 write f 0 \"w\""), "ok");
        assert_eq!(run(&mut m, "utimes f 9"), "ok");
        assert!(upper(&m).contains("mtime=9"));
    }

    #[test]
    fn truncate_kinds() {
        let mut m = model("lower\n  dir d 0755\n  fifo p 0644\n  file f 0644 \"abc\"\n");
        assert_eq!(run(&mut m, "truncate d 0"), "EISDIR");
        assert_eq!(run(&mut m, "truncate p 0"), "EINVAL");
        assert_eq!(run(&mut m, "truncate f 5"), "ok");
        assert_eq!(run(&mut m, "read f"), "\"abc\\x00\\x00\"");
    }
}
