//! Ops that change the attributes of an existing object: chmod, chown,
//! utimes. Each copies the object up first, metadata-only where metacopy
//! allows (overlayfs.rst: "Non-directories"; inode.c: ovl_setattr). The
//! copy-up helpers here serve the data and xattr changes too (modules
//! `file`, `xattr`).

use crate::copy_up::CopyUp;
use crate::fs::Inode;
use crate::perm::{chmod_mode, mode_after_chown, owner_or_capable};
use crate::resolve::{Follow, Walk};
use crate::Model;
use ovlcheck_case::{Cred, Errno, OpPath, Value};

impl Model {
    /// Resolves an existing object, checks EROFS, and copies it up after
    /// `check` passes; returns the upper inode number.
    pub(crate) fn modify(
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
    pub(super) fn modify_walk(
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
        if !inode.is_dir() {
            // chown_common sets ATTR_KILL_PRIV for non-directories.
            self.kill_priv(u);
        }
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
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn owner_rules_for_attributes() {
        let mut m = model("lower\n  file f 0666 \"f\"\n  owner f 2000 2000\n");
        assert_eq!(run(&mut m, "as 1000:1000 chmod f 0600"), "EPERM");
        assert_eq!(run(&mut m, "as 1000:1000 utimes f 1"), "EPERM");
        assert_eq!(run(&mut m, "as 1000:1000 write f 0 \"w\""), "ok");
        assert_eq!(run(&mut m, "utimes f 9"), "ok");
        assert!(upper(&m).contains("mtime=9"));
    }
}
