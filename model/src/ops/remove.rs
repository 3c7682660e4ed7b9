//! unlink and rmdir (dir.c: ovl_do_remove, ovl_remove_upper,
//! ovl_remove_and_whiteout; overlayfs.rst: "whiteouts and opaque
//! directories").

use crate::fs::{Inode, Kind};
use crate::lookup::Dentry;
use crate::perm::may_delete;
use crate::resolve::{Follow, Resolved, Walk};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::{Cred, Errno, OpPath, Value};

impl Model {
    /// do_unlinkat: parent errors, then EROFS, then the name (not
    /// followed): missing ENOENT; a trailing slash ENOTDIR (EISDIR on a
    /// directory); may_delete; EISDIR.
    pub(crate) fn op_unlink(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        if path.path.is_root() {
            // do_unlinkat: the root is LAST_ROOT, not a name: EISDIR.
            return Err(Errno::EISDIR);
        }
        let w = self.resolve_victim(path, cred)?;
        let d = w.last().clone();
        if path.trailing_slash {
            return Err(if d.is_dir {
                Errno::EISDIR
            } else {
                Errno::ENOTDIR
            });
        }
        may_delete(cred, self.attr(w.parent_dentry()), self.attr(&d))?;
        if d.is_dir {
            return Err(Errno::EISDIR);
        }
        let path = w.path();
        self.remove(w, false)?;
        self.fresh_links.remove(&path);
        self.pending_links.remove(&path);
        Ok(Value::Unit)
    }

    /// do_rmdir: like unlink; ENOTDIR for a non-directory (after the
    /// permission check), ENOTEMPTY from overlay.
    pub(crate) fn op_rmdir(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        if path.path.is_root() {
            // do_rmdir: LAST_ROOT is EBUSY.
            return Err(Errno::EBUSY);
        }
        let w = self.resolve_victim(path, cred)?;
        let d = w.last().clone();
        may_delete(cred, self.attr(w.parent_dentry()), self.attr(&d))?;
        if !d.is_dir {
            return Err(Errno::ENOTDIR);
        }
        let dir_path = w.path();
        self.remove(w, true)?;
        self.held_removed(&d, &dir_path);
        Ok(Value::Unit)
    }

    /// The object an unlink or rmdir names, not following the last
    /// component: filename_parentat's walk (search permission on the
    /// parent), then EROFS (mnt_want_write), then the lookup of the name,
    /// whose errors (a refused metacopy: EPERM) and ENOENT come after it.
    pub(crate) fn resolve_victim(&self, path: &OpPath, cred: Cred) -> Result<Walk, Errno> {
        let plain = OpPath::plain(path.path.clone());
        let place = self.place(&plain, cred)?;
        self.search_place(&place, cred)?;
        self.check_writable()?;
        match self.lookup_at(&place, Follow::Never, cred)? {
            Resolved::Found(w) => Ok(w),
            Resolved::Missing { .. } => Err(Errno::ENOENT),
        }
    }

    /// ovl_lower_positive: does the name exist below the upper? A negative
    /// dentry: only if it is an upper whiteout. No upper: yes. Otherwise
    /// the first lower parent dir that has the name decides (a whiteout
    /// there, an xattr whiteout too, means no: observed on 6.18,
    /// `corpus/rules/64-xwhiteout-is-not-lower-positive.ovl`).
    pub(crate) fn lower_positive(&self, parent: &Dentry, name: &str, d: &Dentry) -> bool {
        if !d.is_positive() {
            return d.is_whiteout();
        }
        if d.upper.is_none() || !d.upper_alias {
            return true;
        }
        for l in &parent.lowers {
            if let Some(c) = self.lowers[l.layer as usize].child(l.ino, name) {
                return !self.is_whiteout_in(self.lowers[l.layer as usize].get(c));
            }
        }
        false
    }

    /// ovl_pure_upper for a directory: upper only, no origin
    /// (OVL_WHITEOUTS not set).
    pub(crate) fn is_pure_upper_dir(&self, d: &Dentry) -> bool {
        d.lowers.is_empty()
            && d.upper
                .is_some_and(|u| self.upper_inode(u).ovl.origin.is_none())
    }

    /// Whether a directory may be removed or replaced: a merged (or former
    /// merged) one by its merged listing (ovl_check_empty_dir), a pure
    /// upper one by its raw entries (the upper filesystem's rmdir).
    pub(crate) fn check_empty_dir(
        &self,
        parent: &Dentry,
        name: &str,
        d: &Dentry,
    ) -> Result<(), Errno> {
        let empty = if self.lower_positive(parent, name, d) || !self.is_pure_upper_dir(d) {
            self.merged_dir_is_empty(d)
        } else {
            let u = d.upper.expect("pure upper");
            self.upper_inode(u).entries().is_none_or(|e| e.is_empty())
        };
        if empty {
            Ok(())
        } else {
            Err(Errno::ENOTEMPTY)
        }
    }

    /// ovl_do_remove: a name with something below becomes a whiteout; one
    /// without is simply removed from the upper.
    fn remove(&mut self, mut w: Walk, is_dir: bool) -> Result<(), Errno> {
        if !is_dir {
            self.nlink_start(&mut w)?;
        }
        let d = w.last().clone();
        let name = w.name().to_string();
        let mut parent = w.parent();
        let lower_positive = self.lower_positive(parent.last(), &name, &d);
        if is_dir {
            self.check_empty_dir(parent.last(), &name, &d)
                .inspect_err(|_| self.hit(Rule::RemoveNotEmpty))?;
        }
        self.copy_up_dir(&mut parent)?;
        if !is_dir {
            self.check_upper_alias(&d)?;
        }
        let pu = parent.last().upper.expect("parent copied up");
        if d.upper_alias {
            self.upper_mut().unlink(pu, &name);
        }
        // ovl_nlink_end: the nlink xattr is written after the unlink, from
        // the new union and real counts (observed on 6.18).
        if let (Some(u), false) = (d.upper, is_dir) {
            self.index_nlink_delta(u, -1);
        }
        if lower_positive {
            self.hit(Rule::RemoveWhiteout);
            // Made in the work dir and moved into place: the mounter's group.
            self.put_whiteout(pu, &name, 0);
        }
        self.dir_modified(parent.last());
        Ok(())
    }

    /// inode.c ovl_nlink_start: before a whiteout or a rename over a lower
    /// hard link that would be indexed (ovl_need_index: index=on, the
    /// lower a non-directory with nlink > 1) and has no upper alias yet,
    /// it is copied up, so that the index holds the union nlink to drop
    /// (verified on 6.18: the other names then report nlink 1 and the
    /// parent is marked impure).
    pub(crate) fn nlink_start(&mut self, w: &mut Walk) -> Result<(), Errno> {
        let d = w.last();
        if !self.feat.index || d.upper_alias || d.is_dir {
            return Ok(());
        }
        let Some(l) = d.lowers.first() else {
            return Ok(());
        };
        if self.lowers[l.layer as usize].nlink(l.ino) > 1 {
            self.hit(Rule::NlinkStart);
            // dir.c: ovl_do_remove copies the parent up before, so it
            // stays up when this copy-up fails (a metacopy's missing data).
            let mut parent = w.parent();
            self.copy_up_dir(&mut parent)?;
            *w = self.refresh(w);
            self.copy_up(w, crate::copy_up::CopyUp::Meta)?;
        }
        Ok(())
    }

    /// dir.c: ovl_remove_and_whiteout, ovl_remove_upper and ovl_rename
    /// (ovl_matches_upper): a non-directory whose upper was found through
    /// the index but never linked into its directory is not that
    /// directory's entry: ESTALE. ovl_nlink_start links such an upper up
    /// only while its lower inode has more than one link, which an offline
    /// change can end; the `nlink` xattr it wrote stays.
    pub(crate) fn check_upper_alias(&mut self, d: &Dentry) -> Result<(), Errno> {
        match d.upper {
            Some(u) if !d.is_dir && !d.upper_alias => {
                self.hit(Rule::IndexNoUpperAlias);
                if self.upper_inode(u).union_nlink.is_some() {
                    self.update_index_nlink(u);
                }
                Err(Errno::ESTALE)
            }
            _ => Ok(()),
        }
    }

    /// Creates a whiteout (char 0/0, mode 0, owned by the mounter, group
    /// `gid`) at `name` in upper dir `dir`.
    pub(crate) fn put_whiteout(&mut self, dir: u32, name: &str, gid: u32) {
        let ino = self
            .upper_mut()
            .alloc(Inode::new(Kind::Whiteout, 0, 0, gid));
        self.upper_mut().link(dir, name, ino);
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn whiteout_only_when_something_lies_below() {
        let mut m = model("lower\n  file low 0644 \"l\"\nupper\n  file up 0644 \"u\"\n");
        assert_eq!(run(&mut m, "unlink low"), "ok");
        assert_eq!(run(&mut m, "unlink up"), "ok");
        let u = upper(&m);
        assert!(u.contains("low whiteout"), "{u}");
        assert!(!u.contains("up "), "{u}");
    }

    #[test]
    fn rmdir_of_merged_dir_checks_the_merged_listing() {
        let mut m = model("lower\n  dir d 0755\n  file d/x 0644 \"x\"\nupper\n  dir d 0755\n");
        assert_eq!(run(&mut m, "rmdir d"), "ENOTEMPTY");
        assert_eq!(run(&mut m, "unlink d/x"), "ok");
        assert_eq!(run(&mut m, "rmdir d"), "ok");
        assert!(upper(&m).contains("d whiteout"));
        assert_eq!(run(&mut m, "mkdir d 0755"), "ok");
        assert!(upper(&m).contains("d dir 0755 0:0 opaque=y"));
    }

    #[test]
    fn the_root_is_not_a_name() {
        let mut m = model("lower\n  dir d 0755\n");
        let root = ovlcheck_case::OpPath::plain(ovlcheck_case::RelPath::root());
        let cred = ovlcheck_case::Cred::ROOT;
        assert_eq!(m.op_unlink(&root, cred), Err(ovlcheck_case::Errno::EISDIR));
        assert_eq!(m.op_rmdir(&root, cred), Err(ovlcheck_case::Errno::EBUSY));
        let d = ovlcheck_case::OpPath::parse("d").unwrap();
        let flags = ovlcheck_case::RenameFlags::default();
        assert_eq!(
            m.op_rename(&root, &d, flags, cred),
            Err(ovlcheck_case::Errno::EBUSY)
        );
        assert_eq!(
            m.op_rename(&d, &root, flags, cred),
            Err(ovlcheck_case::Errno::EBUSY)
        );
        assert_eq!(
            m.op_mkdir(&root, 0o755, cred),
            Err(ovlcheck_case::Errno::EEXIST)
        );
        assert_eq!(run(&mut m, "readdir d"), "[]");
    }

    #[test]
    fn readonly_unlink_is_erofs_before_enoent() {
        let mut m = model("profile readonly\nlower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "unlink missing"), "EROFS");
        assert_eq!(run(&mut m, "mkdir f 0755"), "EEXIST");
    }
}
