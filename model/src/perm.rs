//! Discretionary access control (fs/namei.c: generic_permission,
//! may_delete, may_create; fs/attr.c: setattr_prepare). Root (cred 0:0)
//! holds every capability, over every inode whose ids are mapped
//! (`capable_wrt_inode_uidgid`). Overlay also checks the mounter's
//! credentials against the real inode (overlayfs.rst: "Permission model");
//! the mounter is root here, so that second check passes whenever the
//! first does, but for chown over an unmapped id (`ops/attr.rs: chown_ok`).
//!
//! An inode with an unmapped owner or group (idmapped layers,
//! [`crate::fs::UNMAPPED`]) has no owner and no capability over it: its
//! "other" bits decide, a write permission check is EACCES
//! (inode_permission: HAS_UNMAPPED_ID), and removing or linking it is
//! EOVERFLOW (may_delete, may_linkat). Observed on 6.18
//! (docs/semantics.md §1.16).
//!
//! A caller who does not own an inode with an access ACL (POSIX ACLs,
//! docs/semantics.md §1.19) is judged by the ACL, as long as the mode's
//! group class, the ACL's mask, grants anything (acl_permission_check,
//! posix_acl_permission); overlay hands the VFS the real inode's ACL
//! (inode.c: ovl_get_inode_acl).
//!
//! Inode flags (`chattr`) as the overlay inode has them
//! ([`Inode::seen_flags`]): an immutable inode takes no write, attribute
//! change, link or removal, an append-only one only appending writes
//! (inode_permission, may_open, may_setattr, may_delete, vfs_link;
//! docs/semantics.md §1.17).

use crate::fs::{Inode, Kind};
use ovlcheck_case::acl;
use ovlcheck_case::{Cred, Errno, InodeFlags, Sysctls};

pub(crate) const MAY_EXEC: u32 = 1;
pub(crate) const MAY_WRITE: u32 = 2;
pub(crate) const MAY_READ: u32 = 4;

/// generic_permission: the owner, group or other class bits must grant
/// `mask`. CAP_DAC_OVERRIDE grants everything except executing a file
/// without any x bit.
pub(crate) fn permission(cred: Cred, inode: &Inode, mask: u32) -> Result<(), Errno> {
    // inode_permission: nobody gets write access to an immutable inode.
    if mask & MAY_WRITE != 0 && inode.seen_flags().intersects(InodeFlags::IMMUTABLE) {
        return Err(Errno::EPERM);
    }
    if mask & MAY_WRITE != 0 && !inode.ids_mapped() {
        return Err(Errno::EACCES);
    }
    if capable(cred, inode) {
        let exec_ok = inode.is_dir() || mask & MAY_EXEC == 0 || inode.mode & 0o111 != 0;
        return if exec_ok { Ok(()) } else { Err(Errno::EACCES) };
    }
    let granted = if cred.uid == inode.uid {
        (inode.mode >> 6) & 7 & mask == mask
    } else if let Some(acl) = (inode.mode & 0o070 != 0)
        .then(|| inode.acl(acl::ACCESS))
        .flatten()
    {
        // acl_permission_check: the access ACL decides for a caller who
        // is not the owner, unless the mode's group class (the ACL's
        // mask) is empty; the group and other bits decide then.
        ACL_DECIDED.set(true);
        acl.permits(cred.uid, |g| in_group(cred, inode, g), mask)
    } else {
        let bits = if cred.gid == inode.gid {
            (inode.mode >> 3) & 7
        } else {
            inode.mode & 7
        };
        bits & mask == mask
    };
    if granted {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// in_group_p for an ACL group entry: the caller's one group (the
/// executor sets no others); `u32::MAX` stands for the inode's group.
fn in_group(cred: Cred, inode: &Inode, group: u32) -> bool {
    let group = if group == u32::MAX { inode.gid } else { group };
    cred.gid == group
}

thread_local! {
    /// Set when an access ACL decided a permission check: permission
    /// checks see inodes, not the model, so [`take_acl_decided`] carries
    /// the fact to the step that records `perm.acl`.
    static ACL_DECIDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an access ACL decided a permission check since the last call.
pub(crate) fn take_acl_decided() -> bool {
    ACL_DECIDED.replace(false)
}

/// capable_wrt_inode_uidgid: root's capabilities cover an inode whose
/// owner and group are both mapped.
pub(crate) fn capable(cred: Cred, inode: &Inode) -> bool {
    cred.is_root() && inode.ids_mapped()
}

/// inode_owner_or_capable: the owner, or CAP_FOWNER over an inode whose
/// owner is mapped (its group may not be).
pub(crate) fn owner_or_capable(cred: Cred, inode: &Inode) -> bool {
    (cred.is_root() && inode.uid != crate::fs::UNMAPPED) || cred.uid == inode.uid
}

/// notify_change: an attribute change of an inode with an unmapped owner
/// or group is EOVERFLOW, unless it is a chown that gives both ids.
pub(crate) fn setattr_mapped(inode: &Inode) -> Result<(), Errno> {
    if inode.ids_mapped() {
        Ok(())
    } else {
        Err(Errno::EOVERFLOW)
    }
}

/// check_sticky: in a sticky directory only the owner of the file or of the
/// directory (or CAP_FOWNER) may delete or rename an entry.
pub(crate) fn sticky_denies(cred: Cred, dir: &Inode, victim: &Inode) -> bool {
    dir.mode & 0o1000 != 0
        && !capable(cred, victim)
        && cred.uid != victim.uid
        && cred.uid != dir.uid
}

/// may_create: write and search permission on the parent.
pub(crate) fn may_create(cred: Cred, dir: &Inode) -> Result<(), Errno> {
    permission(cred, dir, MAY_WRITE | MAY_EXEC)
}

/// may_delete: a victim with an unmapped id is EOVERFLOW; then write and
/// search on the parent; then an append-only parent, the sticky bit, an
/// append-only or immutable victim (EPERM).
pub(crate) fn may_delete(cred: Cred, dir: &Inode, victim: &Inode) -> Result<(), Errno> {
    setattr_mapped(victim)?;
    permission(cred, dir, MAY_WRITE | MAY_EXEC)?;
    if dir.seen_flags().intersects(InodeFlags::APPEND)
        || sticky_denies(cred, dir, victim)
        || victim.seen_flags().intersects(InodeFlags::PROTECTED)
    {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// vfs_link, after may_create: no link to an append-only or immutable
/// inode.
pub(crate) fn may_link_to(inode: &Inode) -> Result<(), Errno> {
    if inode.seen_flags().intersects(InodeFlags::PROTECTED) {
        Err(Errno::EPERM)
    } else {
        Ok(())
    }
}

/// may_setattr: no change of mode, owner or explicit times of an
/// append-only or immutable inode, and no `utimes now` (`touch`) of an
/// immutable one; checked before anything else of notify_change.
pub(crate) fn may_setattr(inode: &Inode, touch: bool) -> Result<(), Errno> {
    let denied = if touch {
        InodeFlags::IMMUTABLE
    } else {
        InodeFlags::PROTECTED
    };
    if inode.seen_flags().intersects(denied) {
        Err(Errno::EPERM)
    } else {
        Ok(())
    }
}

/// may_open of an append-only inode: write access needs O_APPEND, and
/// O_TRUNC is refused (EPERM), after the permission check.
pub(crate) fn may_open_append(
    inode: &Inode,
    write: bool,
    append: bool,
    trunc: bool,
) -> Result<(), Errno> {
    if inode.seen_flags().intersects(InodeFlags::APPEND) && ((write && !append) || trunc) {
        Err(Errno::EPERM)
    } else {
        Ok(())
    }
}

/// may_linkat: an inode with an unmapped id is EOVERFLOW; then, with
/// fs.protected_hardlinks=1, a non-owner may only link a regular,
/// non-setuid, non-setgid-executable file it can read and write.
pub(crate) fn may_linkat(sysctls: Sysctls, cred: Cred, inode: &Inode) -> Result<(), Errno> {
    setattr_mapped(inode)?;
    if sysctls.protected_hardlinks == 0 || owner_or_capable(cred, inode) {
        return Ok(());
    }
    let safe = inode.is_reg()
        && inode.mode & 0o4000 == 0
        && inode.mode & 0o2010 != 0o2010
        && permission(cred, inode, MAY_READ | MAY_WRITE).is_ok();
    if safe {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// may_follow_link, for a symlink a walk follows as its last component
/// (pick_link with WALK_TRAILING; not one in the middle of a path): with
/// fs.protected_symlinks=1 a symlink `link` in a sticky world-writable
/// directory `dir` is followed only by its owner, or when the directory's
/// owner owns it; not even root may follow it otherwise.
pub(crate) fn may_follow_link(
    sysctls: Sysctls,
    cred: Cred,
    dir: &Inode,
    link: &Inode,
) -> Result<(), Errno> {
    let allowed = sysctls.protected_symlinks == 0
        || cred.uid == link.uid
        || dir.mode & 0o1002 != 0o1002
        || (dir.uid != crate::fs::UNMAPPED && dir.uid == link.uid);
    allowed.then_some(()).ok_or(Errno::EACCES)
}

/// may_create_in_sticky: `O_CREAT` that finds `inode` already in a sticky
/// directory `dir` (do_open, after the EISDIR check) opens it only when
/// the caller or the directory's owner owns it, or the directory is
/// neither world- nor (with a setting of 2) group-writable. A regular
/// file or fifo is checked only with fs.protected_regular or
/// fs.protected_fifos set; any other kind always (observed on 6.18 with
/// both at 0: an existing symlink met by `O_CREAT|O_NOFOLLOW` there is
/// EACCES, corpus/sysctls/05-default-sticky-creat.ovl).
pub(crate) fn may_create_in_sticky(
    sysctls: Sysctls,
    cred: Cred,
    dir: &Inode,
    inode: &Inode,
) -> Result<(), Errno> {
    let setting = match inode.kind {
        Kind::File(_) => Some(sysctls.protected_regular),
        Kind::Fifo => Some(sysctls.protected_fifos),
        _ => None,
    };
    let owned = inode.uid != crate::fs::UNMAPPED && (inode.uid == dir.uid || inode.uid == cred.uid);
    let unchecked = dir.mode & 0o1000 == 0 || setting == Some(0) || owned;
    let group_writable_refused = dir.mode & 0o020 != 0 && setting.is_some_and(|s| s >= 2);
    let refused = !unchecked && (dir.mode & 0o002 != 0 || group_writable_refused);
    (!refused).then_some(()).ok_or(Errno::EACCES)
}

/// The mode after a write or truncate by `cred` (file_remove_privs /
/// should_remove_suid): without CAP_FSETID, setuid goes, and setgid when
/// group-exec is set. should_remove_suid asks `capable(CAP_FSETID)`, i.e.
/// in the initial user namespace: `init_caps` is false when the mount
/// lives in a user namespace (userxattr), where even its root lacks it
/// (verified on 6.18).
pub(crate) fn mode_after_write(cred: Cred, mode: u32, init_caps: bool) -> u32 {
    if cred.is_root() && init_caps {
        return mode;
    }
    drop_set_id(mode)
}

/// The mode chown leaves on a non-directory (notify_change with
/// ATTR_KILL_SUID|ATTR_KILL_SGID): setuid always goes, setgid when
/// group-exec is set, even for root.
pub(crate) fn mode_after_chown(mode: u32, is_dir: bool) -> u32 {
    if is_dir {
        return mode;
    }
    drop_set_id(mode)
}

/// The set-id bits a write and a chown drop (should_remove_suid,
/// setattr_should_drop_suidgid): setuid, and setgid only with group-exec
/// (setgid without it marks mandatory locking, not a set-group-id program).
fn drop_set_id(mode: u32) -> u32 {
    let mut m = mode & !0o4000;
    if mode & 0o2010 == 0o2010 {
        m &= !0o2000;
    }
    m
}

/// setattr_copy for chmod: a caller not in the file's group without
/// CAP_FSETID loses the setgid bit.
pub(crate) fn chmod_mode(cred: Cred, inode: &Inode, mode: u32) -> u32 {
    let mode = mode & 0o7777;
    if !capable(cred, inode) && cred.gid != inode.gid {
        mode & !0o2000
    } else {
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Kind;
    use imbl::OrdMap;

    fn inode(mode: u32, uid: u32, gid: u32, dir: bool) -> Inode {
        let kind = if dir {
            Kind::Dir(OrdMap::new())
        } else {
            Kind::Fifo
        };
        Inode::new(kind, mode, uid, gid)
    }

    const U: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };

    #[test]
    fn owner_group_other_classes() {
        assert!(permission(U, &inode(0o600, 1000, 0, false), MAY_READ | MAY_WRITE).is_ok());
        assert!(permission(U, &inode(0o060, 1000, 1000, false), MAY_READ).is_err());
        assert!(permission(U, &inode(0o060, 5, 1000, false), MAY_READ).is_ok());
        assert!(permission(U, &inode(0o004, 5, 5, false), MAY_WRITE).is_err());
        assert!(permission(Cred::ROOT, &inode(0o000, 5, 5, false), MAY_WRITE).is_ok());
        assert!(permission(Cred::ROOT, &inode(0o644, 5, 5, false), MAY_EXEC).is_err());
        assert!(permission(Cred::ROOT, &inode(0o000, 5, 5, true), MAY_EXEC).is_ok());
    }

    #[test]
    fn sticky_directories() {
        let tmp = inode(0o1777, 0, 0, true);
        assert_eq!(
            may_delete(U, &tmp, &inode(0o666, 2000, 0, false)),
            Err(Errno::EPERM)
        );
        assert!(may_delete(U, &tmp, &inode(0o666, 1000, 0, false)).is_ok());
        assert!(may_delete(Cred::ROOT, &tmp, &inode(0o666, 2000, 0, false)).is_ok());
    }

    #[test]
    fn unmapped_ids_give_root_no_capability() {
        use crate::fs::UNMAPPED;
        let file = inode(0o644, UNMAPPED, UNMAPPED, false);
        assert!(permission(Cred::ROOT, &file, MAY_READ).is_ok());
        assert_eq!(permission(Cred::ROOT, &file, MAY_WRITE), Err(Errno::EACCES));
        let open = inode(0o777, 1000, UNMAPPED, false);
        assert_eq!(permission(U, &open, MAY_WRITE), Err(Errno::EACCES));
        assert!(!owner_or_capable(
            Cred::ROOT,
            &inode(0o644, UNMAPPED, 0, false)
        ));
        assert!(owner_or_capable(
            Cred::ROOT,
            &inode(0o644, 0, UNMAPPED, false)
        ));
        let tmp = inode(0o1777, 0, 0, true);
        assert_eq!(may_delete(Cred::ROOT, &tmp, &file), Err(Errno::EOVERFLOW));
        assert_eq!(
            may_linkat(Sysctls::default(), Cred::ROOT, &file),
            Err(Errno::EOVERFLOW)
        );
        assert_eq!(setattr_mapped(&open), Err(Errno::EOVERFLOW));
    }

    #[test]
    fn set_id_bits() {
        assert_eq!(mode_after_write(U, 0o6755, true), 0o0755);
        assert_eq!(mode_after_write(U, 0o2745, true), 0o2745);
        assert_eq!(mode_after_write(Cred::ROOT, 0o6755, true), 0o6755);
        assert_eq!(mode_after_write(Cred::ROOT, 0o6755, false), 0o0755);
        assert_eq!(mode_after_chown(0o4755, false), 0o0755);
        assert_eq!(mode_after_chown(0o4755, true), 0o4755);
        assert_eq!(chmod_mode(U, &inode(0o644, 1000, 5, false), 0o2755), 0o0755);
    }
}
