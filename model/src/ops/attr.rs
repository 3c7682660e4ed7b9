//! Ops that change the attributes of an existing object: chmod, chown,
//! utimes, chattr. Each copies the object up first, metadata-only where metacopy
//! allows (overlayfs.rst: "Non-directories"; inode.c: ovl_setattr). The
//! copy-up helpers here serve the data and xattr changes too (modules
//! `file`, `xattr`).

use crate::copy_up::CopyUp;
use crate::fs::{Inode, UNMAPPED};
use crate::perm::{
    capable, chmod_mode, may_setattr, mode_after_chown, owner_or_capable, setattr_mapped, MAY_READ,
};
use crate::resolve::{Follow, Walk};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::acl;
use ovlcheck_case::{Cred, Errno, InodeFlags, OpPath, Value};

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
            may_setattr(a, false)?;
            setattr_mapped(a)?;
            if !owner_or_capable(cred, a) {
                return Err(Errno::EPERM);
            }
            new_mode = chmod_mode(cred, a, mode);
            Ok(())
        })?;
        let inode = self.upper_mut().get_mut(u);
        inode.mode = new_mode;
        if let Some(mut acl) = inode.acl(acl::ACCESS) {
            acl.chmod(new_mode);
            inode.set_acl(acl::ACCESS, Some(&acl));
            self.hit(Rule::ChmodAcl);
        }
        Ok(Value::Unit)
    }

    /// `chown(2)`: changing the owner needs CAP_CHOWN; the owner may change
    /// the group to one it is in. Set-id bits of non-directories go. Root
    /// may give an unmapped owner or group a value (chown_ok, chgrp_ok:
    /// CAP_CHOWN in the superblock's namespace), but change a mapped one of
    /// such an inode only when both are mapped (observed on 6.18); the
    /// copy-up of a lower one is EOVERFLOW all the same.
    pub(crate) fn op_chown(
        &mut self,
        path: &OpPath,
        uid: u32,
        gid: u32,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let u = self.modify(path, CopyUp::Meta, cred, |a| {
            // The caller's check on the overlay inode, then the mounter's
            // on the real one (ovl_setattr), which only an unmapped id can
            // fail (observed on 6.18).
            may_setattr(a, false)?;
            if chown_ok(cred, a, uid, gid) && chown_ok(Cred::ROOT, a, uid, gid) {
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
            may_setattr(a, false)?;
            setattr_mapped(a)?;
            if owner_or_capable(cred, a) {
                Ok(())
            } else {
                Err(Errno::EPERM)
            }
        })?;
        self.upper_mut().get_mut(u).mtime = Some(mtime);
        Ok(Value::Unit)
    }

    /// `chattr =FLAGS P`: open O_RDONLY|O_NONBLOCK, then FS_IOC_SETFLAGS
    /// (fs/file_attr.c: ioctl_setflags, vfs_fileattr_set): EROFS
    /// (mnt_want_write_file); ENOTTY for what has no fileattr (fifos); the
    /// owner or CAP_FOWNER (EPERM); a change of `i` or `a` needs
    /// CAP_LINUX_IMMUTABLE, which only root in the initial user namespace
    /// has (EPERM). Then overlay copies the object up, metadata only where
    /// metacopy allows, and keeps `i` and `a` in `protattr`, the rest on
    /// the upper inode (inode.c: ovl_fileattr_set, util.c:
    /// ovl_set_protattr); an upper inode with an unmapped id refuses that
    /// xattr where it is set or removed (EPERM, observed on 6.18).
    pub(crate) fn op_chattr(
        &mut self,
        path: &OpPath,
        flags: InodeFlags,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let mut w = self.resolve_existing(path, Follow::Yes, cred)?;
        self.open_file(&mut w, MAY_READ, false, false, cred)?;
        self.check_writable()?;
        let a = self.attr(w.last());
        if !(a.is_dir() || a.is_reg()) {
            return Err(Errno::ENOTTY);
        }
        if !owner_or_capable(cred, a) {
            return Err(Errno::EPERM);
        }
        let prot = flags.intersection(InodeFlags::PROTECTED);
        let old_prot = a.seen_flags().intersection(InodeFlags::PROTECTED);
        let immutable_cap = cred.is_root() && self.feat.init_caps;
        if old_prot != prot && !immutable_cap {
            return Err(Errno::EPERM);
        }
        self.copy_up(&mut w, CopyUp::Meta)?;
        let u = w.last().upper.expect("copied up");
        // ovl_set_protattr sets the xattr for new protection flags, or
        // removes it when the overlay inode had some, which an upper inode
        // with an unmapped id refuses (may_write_xattr). Else the xattr
        // stays: the root's, whose inode takes no flags from it once
        // mounted again (corpus/regressions/protattr-root-kept-when-cleared.ovl).
        let touches_xattr = !prot.is_empty() || !old_prot.is_empty();
        if touches_xattr && !self.upper_inode(u).ids_mapped() {
            return Err(Errno::EPERM);
        }
        self.hit(Rule::FileattrSet);
        let inode = self.upper_mut().get_mut(u);
        if touches_xattr {
            inode.ovl.protattr = prot;
        }
        inode.prot = prot;
        inode.flags = flags.without(InodeFlags::PROTECTED);
        Ok(Value::Unit)
    }
}

/// chown_ok and chgrp_ok for `cred` changing `a` to `uid:gid`: CAP_CHOWN
/// over the inode, or the owner keeping the owner and giving a group it is
/// in; root may also give an unmapped id a value (CAP_CHOWN in the
/// superblock's namespace). Where the chown drops set-id bits, the mode
/// change needs the owner or CAP_FOWNER (setattr_prepare: ATTR_MODE from
/// ATTR_KILL_SUID), which root lacks over an unmapped owner.
fn chown_ok(cred: Cred, a: &Inode, uid: u32, gid: u32) -> bool {
    let kills = !a.is_dir() && mode_after_chown(a.mode, false) != a.mode;
    if kills && !owner_or_capable(cred, a) {
        return false;
    }
    let capable = capable(cred, a);
    let fixes = |id: u32| cred.is_root() && id == UNMAPPED;
    let owner = cred.uid == a.uid;
    let uid_ok = capable || fixes(a.uid) || (owner && uid == a.uid);
    let gid_ok = capable || fixes(a.gid) || (owner && (gid == a.gid || gid == cred.gid));
    uid_ok && gid_ok
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
