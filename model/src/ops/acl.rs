//! POSIX ACLs set, removed and read through the overlay as their xattrs
//! (docs/semantics.md §1.19; fs/posix_acl.c: do_set_acl, vfs_set_acl;
//! inode.c: ovl_set_or_remove_acl, ovl_get_acl). The model keeps an ACL
//! in its xattr in the short text form (ovlcheck_case::acl).

use super::xattr::may_write_xattr;
use crate::resolve::Follow;
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::acl::{self, Acl};
use ovlcheck_case::{Cred, Errno, OpPath, Value};

/// posix_acl_from_xattr: the value as an ACL; an id with no mapping is
/// EINVAL.
fn from_value(value: &[u8]) -> Result<Acl, Errno> {
    let text = std::str::from_utf8(value).map_err(|_| Errno::EINVAL)?;
    let a = Acl::parse(text).map_err(|_| Errno::EINVAL)?;
    if a.ids().any(|id| id == u32::MAX) {
        return Err(Errno::EINVAL);
    }
    Ok(a)
}

impl Model {
    /// setxattr (`value`) or removexattr (`None`) of an ACL xattr. In the
    /// kernel's order: EROFS, the value's form, may_write_xattr (EPERM), a
    /// default ACL on a non-directory (EACCES, or nothing to remove), the
    /// owner or CAP_FOWNER (EPERM), posix_acl_valid (EINVAL); then a
    /// caller outside the file's group without CAP_FSETID loses set-gid
    /// through a setattr that copies up; removing an ACL a lower-only
    /// object lacks is ENODATA without copy-up; else the object is copied
    /// up (metadata only) and the upper filesystem keeps the ACL, an
    /// access ACL's bits becoming the mode's (posix_acl_update_mode,
    /// which keeps no ACL the mode says all of). Verified on 6.18; before
    /// v6.2 the form comes after may_write_xattr, validity after the copy-up
    /// and an empty ACL is set, not removed (`Features::vfs_acl`, seen in a
    /// 6.1 guest).
    pub(crate) fn op_set_acl(
        &mut self,
        path: &OpPath,
        name: &str,
        value: Option<&[u8]>,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        self.check_writable()?;
        let vfs = self.feat.vfs_acl;
        let form = || value.map(from_value).transpose();
        // The value's form: before may_write_xattr since v6.2, after it
        // before.
        let checked = if vfs { Some(form()?) } else { None };
        let a = self.attr(w.last());
        may_write_xattr(a)?;
        let new = match checked {
            Some(new) => new,
            None => form().inspect_err(|_| self.hit(Rule::AclChecksAfterCopyUpBefore62))?,
        };
        let new = new.filter(|x| !x.entries.is_empty());
        let access = name == acl::ACCESS;
        if !access && !a.is_dir() {
            return if new.is_some() {
                Err(Errno::EACCES)
            } else {
                Ok(Value::Unit)
            };
        }
        if !crate::perm::owner_or_capable(cred, a) {
            return Err(Errno::EPERM);
        }
        let invalid = new.as_ref().is_some_and(|x| !x.valid());
        if vfs && invalid {
            return Err(Errno::EINVAL);
        }
        self.hit(Rule::AclSet);
        let kill_sgid =
            access && a.mode & 0o2000 != 0 && !crate::perm::capable(cred, a) && cred.gid != a.gid;
        // An empty ACL removes (vfs_set_acl); before v6.2 it is set on the
        // copied-up object, which keeps none.
        let removing = if vfs { new.is_none() } else { value.is_none() };
        if !vfs && !removing && new.is_none() {
            self.hit(Rule::AclChecksAfterCopyUpBefore62);
        }
        let missing = w.last().upper.is_none() && !a.xattrs.contains_key(name);
        let u = if kill_sgid {
            self.hit(Rule::AclKillSgid);
            let u = self.xattr_upper(w, |_| Ok(()))?;
            self.upper_mut().get_mut(u).mode &= !0o2000;
            u
        } else if removing && missing {
            return Err(Errno::ENODATA);
        } else {
            self.xattr_upper(w, |_| Ok(()))?
        };
        if invalid {
            // Before v6.2 the upper filesystem refuses it, after the copy-up.
            self.hit(Rule::AclChecksAfterCopyUpBefore62);
            return Err(Errno::EINVAL);
        }
        let inode = self.upper_mut().get_mut(u);
        match new {
            Some(a) if access => {
                let (mode, equiv) = a.equiv_mode(inode.mode);
                inode.mode = mode;
                inode.set_acl(name, (!equiv).then_some(&a));
            }
            new => inode.set_acl(name, new.as_ref()),
        }
        Ok(Value::Unit)
    }

    /// getxattr of an ACL xattr: no permission check (vfs_get_acl), the
    /// real inode's ACL, ENODATA when it has none.
    pub(crate) fn op_get_acl(&self, path: &OpPath, name: &str, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        match self.attr(w.last()).xattrs.get(name) {
            Some(v) => Ok(Value::Bytes(v.clone())),
            None => Err(Errno::ENODATA),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{merged, model, run, upper};

    const LOWER: &str = "lower\n  file f 2775 \"f\"\n  owner f 1000 5\n  file g 0640 \"g\"\n";

    #[test]
    fn a_missing_acl_is_enodata_without_copy_up_but_after_the_set_gid_kill() {
        let mut m = model(LOWER);
        assert_eq!(
            run(&mut m, "removexattr g system.posix_acl_access"),
            "ENODATA"
        );
        assert!(!upper(&m).contains("\ng "), "{}", upper(&m));
        assert_eq!(
            run(&mut m, "as 1000:1000 removexattr f system.posix_acl_access"),
            "ok"
        );
        assert!(upper(&m).contains("\nf file 0775 1000:5"), "{}", upper(&m));
    }

    #[test]
    fn refusals_come_before_copy_up() {
        let mut m = model(LOWER);
        let bad = "setxattr g system.posix_acl_access \"u::rw-,u:7:r--,g::r--,o::---\"";
        assert_eq!(run(&mut m, bad), "EINVAL");
        let default = "setxattr g system.posix_acl_default \"u::rwx,g::r-x,o::r-x\"";
        assert_eq!(run(&mut m, default), "EACCES");
        let user = "as 1001:1001 setxattr g system.posix_acl_access \"u::rw-,g::r--,o::---\"";
        assert_eq!(run(&mut m, user), "EPERM");
        assert!(!upper(&m).contains("\ng "), "{}", upper(&m));
    }

    #[test]
    fn setting_an_acl_sets_the_mode_and_a_minimal_one_is_not_kept() {
        let mut m = model(LOWER);
        let acl = "u::rwx,u:7:r-x,g::r--,m::r-x,o::---";
        assert_eq!(
            run(
                &mut m,
                &format!("setxattr g system.posix_acl_access \"{acl}\"")
            ),
            "ok"
        );
        assert!(merged(&m).contains("g file 0750 0:0"), "{}", merged(&m));
        assert!(merged(&m).contains(acl), "{}", merged(&m));
        let minimal = "setxattr g system.posix_acl_access \"u::rw-,g::r--,o::r--\"";
        assert_eq!(run(&mut m, minimal), "ok");
        assert!(merged(&m).contains("g file 0644 0:0"), "{}", merged(&m));
        assert!(!merged(&m).contains("posix_acl"), "{}", merged(&m));
    }

    #[test]
    fn a_default_acl_masks_what_is_created_and_chmod_rewrites_the_acl() {
        let mut m = model(
            "lower\n  dir d 0755\n  xattr d system.posix_acl_default \"u::rwx,u:1000:rwx,g::r-x,m::rwx,o::r-x\"\n",
        );
        assert_eq!(run(&mut m, "create d/f 0640"), "ok");
        assert_eq!(
            run(&mut m, "getxattr d/f system.posix_acl_access"),
            "\"u::rw-,u:1000:rwx,g::r-x,m::r--,o::---\""
        );
        assert_eq!(run(&mut m, "as 1000:1000 read d/f"), "\"\"");
        assert_eq!(run(&mut m, "as 1000:1000 write d/f 0 \"x\""), "EACCES");
        assert_eq!(run(&mut m, "chmod d/f 0660"), "ok");
        assert_eq!(run(&mut m, "as 1000:1000 write d/f 0 \"x\""), "ok");
        assert_eq!(run(&mut m, "symlink \"f\" d/l"), "ok");
        assert!(!merged(&m).contains("d/l symlink 0777 0:0 nlink=1 ino=+d/l dev=ovl system"));
    }
}
