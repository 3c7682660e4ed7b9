//! rename and exchange (fs/namei.c: do_renameat2, vfs_rename; dir.c:
//! ovl_rename; overlayfs.rst: "renaming directories").

use crate::copy_up::CopyUp;
use crate::fs::{Inode, Kind};
use crate::lookup::Dentry;
use crate::perm::{may_create, may_delete, permission, MAY_WRITE};
use crate::resolve::{join_path, Follow, Frame, Place, Resolved, Walk};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::{Cred, Errno, OpPath, RenameFlags, Value};

/// The new name of a rename: an existing object or a missing name.
struct Target {
    dir: Walk,
    name: String,
    /// The dentry at the new name (negative when missing).
    d: Dentry,
    exists: bool,
}

impl Target {
    /// The walk to the new name.
    fn walk(&self) -> Walk {
        let mut w = self.dir.clone();
        w.frames.push(Frame {
            name: self.name.clone(),
            dentry: self.d.clone(),
        });
        w
    }
}

/// How the upper-level rename is done (dir.c: ovl_rename).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpperRename {
    /// Plain rename; the old name goes away.
    Plain,
    /// RENAME_WHITEOUT on the upper: a new whiteout is left at the old
    /// name ("Whiteout source").
    Whiteout,
    /// The new name is a whiteout and the old one needs one: RENAME_EXCHANGE,
    /// so the whiteout moves to the old name as it is, its owner included
    /// ("Switch whiteouts"; observed on 6.18: a whiteout made before its
    /// directory was set-gid keeps its group).
    SwitchWhiteouts,
    /// A directory renamed over a whiteout without anything below: exchange
    /// and remove the whiteout (cleanup_whiteout).
    OverWhiteoutCleanup,
    /// RENAME_EXCHANGE.
    Exchange,
}

impl UpperRename {
    /// The named rule that chose this rename, if it is not a plain one.
    fn rule(self) -> Option<Rule> {
        match self {
            UpperRename::Whiteout => Some(Rule::RenameWhiteout),
            UpperRename::SwitchWhiteouts | UpperRename::OverWhiteoutCleanup => {
                Some(Rule::RenameOverWhiteout)
            }
            UpperRename::Plain | UpperRename::Exchange => None,
        }
    }
}

impl Model {
    /// `renameat2(old, new, flags)`.
    pub(crate) fn op_rename(
        &mut self,
        old: &OpPath,
        new: &OpPath,
        flags: RenameFlags,
        cred: Cred,
    ) -> Result<Value, Errno> {
        check_flags(flags, cred)?;
        // The driver opens both parents, then do_renameat2: both
        // filename_parentat walks (search permission on each parent), the
        // last types (LAST_ROOT: EBUSY, or EEXIST for the new name with
        // RENAME_NOREPLACE), mnt_want_write, then the lookups.
        let op = self.place(old, cred)?;
        let np = self.place(new, cred)?;
        self.search_place(&op, cred)?;
        self.search_place(&np, cred)?;
        if matches!(op, Place::Root) {
            return Err(Errno::EBUSY);
        }
        if matches!(np, Place::Root) {
            return Err(if flags.noreplace {
                Errno::EEXIST
            } else {
                Errno::EBUSY
            });
        }
        self.check_writable()?;
        let or = self.lookup_at(&op, Follow::Never, cred)?;
        let ow = match or {
            Resolved::Found(w) => w,
            Resolved::Missing { .. } => return Err(Errno::ENOENT),
        };
        let nr = self.lookup_at(&np, Follow::Never, cred)?;
        let t = match nr {
            Resolved::Found(w) => Target {
                dir: w.parent(),
                name: w.name().to_string(),
                d: w.last().clone(),
                exists: true,
            },
            Resolved::Missing { dir, name, neg, .. } => Target {
                dir,
                name,
                d: neg,
                exists: false,
            },
        };
        self.rename_vfs_checks(&ow, &t, old, new, flags, cred)?;
        // One dentry (the same name) is always one inode, hard link or not.
        let same_name = t.exists && ow.parent_names() == t.dir.names() && ow.name() == t.name;
        let old_path = ow.path();
        let new_path = join_path(&t.dir.path(), &t.name);
        if !same_name && self.same_inode(ow.last(), &t) {
            // Two names of one upper inode that are two overlay inodes (see
            // `Model::fresh_links`): vfs_rename's permission checks pass
            // first (source != target), then dir.c ovl_rename finds the
            // upper it looks up is not the one it expects. Two fresh names
            // are one overlay inode (both hashed by the upper inode), so
            // renaming one onto the other does nothing, as for any two
            // names of one inode (observed on 6.18).
            if self.fresh_links.contains(&old_path) != self.fresh_links.contains(&new_path) {
                self.rename_permission(&ow, &t, flags, cred)?;
                self.ovl_rename_refusals(ow.last(), &t, flags)?;
                self.hit(Rule::RenameStaleLink);
                return Err(Errno::ESTALE);
            }
            self.hit(Rule::RenameSameInode);
            return Ok(Value::Unit);
        }
        if same_name {
            return Ok(Value::Unit);
        }
        self.rename_permission(&ow, &t, flags, cred)?;
        self.ovl_rename(ow, t, flags)?;
        self.move_fresh_links(&old_path, &new_path, flags.exchange);
        Ok(Value::Unit)
    }

    /// do_renameat2's checks after the lookups.
    fn rename_vfs_checks(
        &self,
        ow: &Walk,
        t: &Target,
        old: &OpPath,
        new: &OpPath,
        flags: RenameFlags,
        _cred: Cred,
    ) -> Result<(), Errno> {
        if flags.noreplace && t.exists {
            return Err(Errno::EEXIST);
        }
        if flags.exchange && !t.exists {
            return Err(Errno::ENOENT);
        }
        if flags.exchange && !t.d.is_dir && new.trailing_slash {
            return Err(Errno::ENOTDIR);
        }
        if !ow.last().is_dir && (old.trailing_slash || (!flags.exchange && new.trailing_slash)) {
            return Err(Errno::ENOTDIR);
        }
        let old_names = ow.names();
        if t.dir.names().starts_with(&old_names) {
            return Err(Errno::EINVAL);
        }
        let mut new_names = t.dir.names();
        new_names.push(t.name.clone());
        if t.exists && ow.parent_names().starts_with(&new_names) {
            return Err(if flags.exchange {
                Errno::EINVAL
            } else {
                Errno::ENOTEMPTY
            });
        }
        Ok(())
    }

    /// vfs_rename: `if (source == target) return 0`. Overlay inodes are
    /// shared by upper hard links, and by lower hard links only when they
    /// are hashed by the lower inode (inode.c: ovl_hash_bylower).
    fn same_inode(&self, a: &Dentry, t: &Target) -> bool {
        if !t.exists {
            return false;
        }
        let b = &t.d;
        match (a.upper, b.upper) {
            (Some(x), Some(y)) => x == y,
            (None, None) => {
                let (x, y) = (a.lowers[0], b.lowers[0]);
                x == y
                    && (a.is_dir
                        || self.feat.index
                        || self.lowers[x.layer as usize].nlink(x.ino) == 1)
            }
            _ => false,
        }
    }

    /// vfs_rename's may_delete/may_create and the write permission a
    /// directory needs to change its `..`.
    fn rename_permission(
        &self,
        ow: &Walk,
        t: &Target,
        flags: RenameFlags,
        cred: Cred,
    ) -> Result<(), Errno> {
        let old = ow.last();
        let old_dir = ow.parent();
        may_delete(cred, self.attr(old_dir.last()), self.attr(old))?;
        let new_dir_attr = self.attr(t.dir.last());
        if t.exists {
            may_delete(cred, new_dir_attr, self.attr(&t.d))?;
            let want_dir = if flags.exchange {
                t.d.is_dir
            } else {
                old.is_dir
            };
            match (want_dir, t.d.is_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
        } else {
            may_create(cred, new_dir_attr)?;
        }
        if old_dir.names() != t.dir.names() {
            if old.is_dir {
                permission(cred, self.attr(old), MAY_WRITE)?;
            }
            if flags.exchange && t.d.is_dir {
                permission(cred, self.attr(&t.d), MAY_WRITE)?;
            }
        }
        Ok(())
    }

    /// ovl_can_move: merged or lower directories move only with
    /// redirect_dir=on; otherwise EXDEV and userspace copies.
    fn can_move(&self, d: &Dentry) -> bool {
        self.feat.creates_redirects() || !d.is_dir || !d.is_merge_or_lower(self)
    }

    /// What ovl_rename refuses before it touches anything: RENAME_WHITEOUT
    /// (EINVAL) and moves it cannot make (EXDEV).
    fn ovl_rename_refusals(
        &self,
        old: &Dentry,
        t: &Target,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.whiteout {
            self.hit(Rule::RenameFlagsRefused);
            return Err(Errno::EINVAL);
        }
        if !self.can_move(old) || (flags.exchange && !self.can_move(&t.d)) {
            self.hit(Rule::RenameDirExdev);
            return Err(Errno::EXDEV);
        }
        Ok(())
    }

    /// ovl_rename.
    fn ovl_rename(&mut self, mut ow: Walk, mut t: Target, flags: RenameFlags) -> Result<(), Errno> {
        self.ovl_rename_refusals(ow.last(), &t, flags)?;
        let overwrite = !flags.exchange;
        let old = ow.last().clone();
        // A merged (or once merged) target directory is checked for
        // emptiness first (ovl_check_empty_dir). A pure upper one is left to
        // the upper filesystem's rename, which fails with ENOTEMPTY only
        // after the copy-ups, impure and redirect/opaque marks below have
        // been made (dir.c: ovl_rename skips the check when ovl_pure_upper;
        // observed on 6.18).
        let raw_target = overwrite && t.exists && t.d.is_dir && self.is_pure_upper_dir(&t.d);
        if overwrite && t.exists && t.d.is_dir && !raw_target {
            self.check_empty_dir(t.dir.last(), &t.name, &t.d)
                .inspect_err(|_| self.hit(Rule::RenameNotEmpty))?;
        }
        let old_name = ow.name().to_string();
        let mode = self.upper_rename_mode(&ow, &t, overwrite);
        let old_opaque = old.opaque;
        let new_opaque = t.d.opaque;
        let samedir = ow.parent_names() == t.dir.names();
        // Copy up old, the new parent, and for an exchange the new object.
        self.copy_up(&mut ow, CopyUp::Meta)?;
        t.dir = self.refresh(&t.dir);
        self.copy_up_dir(&mut t.dir)?;
        if !overwrite {
            let mut nw = self.refresh(&t.walk());
            self.copy_up(&mut nw, CopyUp::Meta)?;
            t.d = nw.last().clone();
        } else if t.exists && !t.d.is_dir {
            let mut nw = self.refresh(&t.walk());
            self.nlink_start(&mut nw)?;
            t.d = nw.last().clone();
            self.check_upper_alias(&t.d)?;
        }
        ow = self.refresh(&ow);
        t.dir = self.refresh(&t.dir);
        let old = ow.last().clone();
        let old_parent = ow.parent();
        let ou = old_parent.last().upper.expect("old parent upper");
        let nu = t.dir.last().upper.expect("new parent upper");
        if !samedir {
            if self.type_origin(|| ow.path(), &old) {
                self.set_impure(nu);
            }
            let new_path = || join_path(&t.dir.path(), &t.name);
            if !overwrite && self.type_origin(new_path, &t.d) {
                self.set_impure(ou);
            }
        }
        self.mark_moved(&ow, &old, samedir, old_opaque, t.dir.last())?;
        if !overwrite {
            self.mark_moved(&t.walk(), &t.d, samedir, new_opaque, old_parent.last())?;
        }
        if raw_target {
            let u = t.d.upper.expect("pure upper target");
            if self.upper_inode(u).entries().is_some_and(|e| !e.is_empty()) {
                self.hit(Rule::RenameNotEmpty);
                return Err(Errno::ENOTEMPTY);
            }
        }
        self.rename_upper(ou, &old_name, nu, &t.name, mode);
        self.dir_modified(old_parent.last());
        self.dir_modified(t.dir.last());
        // ovl_nlink_end: the replaced target's nlink xattr is written after
        // the rename, from the new union and real counts.
        if overwrite && t.exists && !t.d.is_dir {
            if let Some(u) = t.d.upper {
                self.index_nlink_delta(u, -1);
            }
        }
        Ok(())
    }

    /// Chooses the upper-level rename (ovl_rename: "Whiteout source",
    /// "Switch whiteouts", cleanup_whiteout).
    fn upper_rename_mode(&self, ow: &Walk, t: &Target, overwrite: bool) -> UpperRename {
        if !overwrite {
            return UpperRename::Exchange;
        }
        let old = ow.last();
        if self.lower_positive(ow.parent_dentry(), ow.name(), old) {
            if t.d.is_whiteout() {
                UpperRename::SwitchWhiteouts
            } else {
                UpperRename::Whiteout
            }
        } else if old.is_dir && t.d.is_whiteout() {
            UpperRename::OverWhiteoutCleanup
        } else {
            UpperRename::Plain
        }
    }

    /// After copy-up, before the move: a merged or lower object gets a
    /// redirect (ovl_set_redirect: relative in the same parent, absolute
    /// otherwise); a directory without one that lands in a merged parent
    /// is made opaque so nothing below shows through (ovl_set_opaque_xerr).
    fn mark_moved(
        &mut self,
        w: &Walk,
        d: &Dentry,
        samedir: bool,
        was_opaque: bool,
        new_parent: &Dentry,
    ) -> Result<(), Errno> {
        let u = d.upper.expect("copied up");
        if d.is_merge_or_lower(self) {
            // ovl_need_absolute_redirect: not in the same dir, or a
            // non-directory whose lower is a hard link.
            let lower_hardlink = !d.is_dir
                && d.lowers
                    .first()
                    .or(d.origin.as_ref())
                    .is_some_and(|l| self.lowers[l.layer as usize].nlink(l.ino) > 1);
            let absolute = !samedir || lower_hardlink;
            let current = self.upper_inode(u).ovl.redirect.clone();
            if let Some(r) = &current {
                if !absolute || r.starts_with('/') {
                    return Ok(());
                }
            }
            let r = if !absolute {
                w.name().to_string()
            } else {
                absolute_redirect(w)
            };
            self.hit(Rule::RenameDirRedirect);
            self.upper_mut().get_mut(u).ovl.redirect = Some(r);
        } else if d.is_dir
            && !was_opaque
            && new_parent.upper.is_some()
            && !new_parent.lowers.is_empty()
        {
            self.hit(Rule::RenameOpaque);
            self.upper_mut().get_mut(u).ovl.opaque = Some('y');
        }
        Ok(())
    }

    /// The rename on the upper layer.
    fn rename_upper(&mut self, ou: u32, old: &str, nu: u32, new: &str, mode: UpperRename) {
        if let Some(rule) = mode.rule() {
            self.hit(rule);
        }
        let up = self.upper_mut();
        let oi = up.child(ou, old).expect("old copied up");
        match mode {
            UpperRename::Exchange | UpperRename::SwitchWhiteouts => {
                let ni = up.child(nu, new).expect("new copied up or a whiteout");
                up.set_entry(ou, old, ni);
                up.set_entry(nu, new, oi);
            }
            UpperRename::Plain | UpperRename::Whiteout | UpperRename::OverWhiteoutCleanup => {
                up.take_entry(ou, old);
                if up.child(nu, new).is_some() {
                    up.unlink(nu, new);
                }
                up.set_entry(nu, new, oi);
                if mode == UpperRename::Whiteout {
                    // RENAME_WHITEOUT: the upper filesystem makes the
                    // whiteout in the old directory itself (shmem_whiteout
                    // -> inode_init_owner), so a setgid directory gives it
                    // its group and its default ACL (posix_acl_create;
                    // observed on 6.18).
                    let dir = self.upper_inode(ou);
                    let gid = if dir.mode & 0o2000 != 0 { dir.gid } else { 0 };
                    let mut whiteout = Inode::new(Kind::Whiteout, 0, 0, gid);
                    self.inherit_acls(dir, &mut whiteout);
                    let ino = self.upper_mut().alloc(whiteout);
                    self.upper_mut().link(ou, old, ino);
                }
            }
        }
    }
}

/// do_renameat2's flag checks: EXCHANGE excludes NOREPLACE and WHITEOUT.
/// RENAME_WHITEOUT needs no capability since v5.8 (a3c751a50fe6 "vfs: allow
/// unprivileged whiteout creation"; verified on 6.18).
fn check_flags(flags: RenameFlags, _cred: Cred) -> Result<(), Errno> {
    if flags.exchange && (flags.noreplace || flags.whiteout) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// ovl_get_redirect with an absolute path: the names from the object up to
/// the root, each ancestor contributing its own redirect if it has one, an
/// absolute one ending the walk.
pub(super) fn absolute_redirect(w: &Walk) -> String {
    let mut parts: Vec<String> = Vec::new();
    for f in w.frames[1..].iter().rev() {
        match &f.dentry.redirect {
            Some(r) if r.starts_with('/') => {
                parts.push(r.trim_start_matches('/').to_string());
                break;
            }
            Some(r) => parts.push(r.clone()),
            None => parts.push(f.name.clone()),
        }
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

impl Model {
    /// Renames keep a name's dentry, so a fresh link name moves with it
    /// (and with its directory); a replaced target's entry goes away. A
    /// pending link's name moves too: the rename of a directory does not
    /// look up its entries.
    fn move_fresh_links(&mut self, old: &str, new: &str, exchange: bool) {
        if !self.fresh_links.is_empty() {
            let mut next = imbl::OrdSet::new();
            for p in self.fresh_links.iter() {
                if let Some(q) = moved_path(p, old, new, exchange) {
                    next.insert(q);
                }
            }
            self.fresh_links = next;
        }
        if !self.pending_links.is_empty() {
            let mut next = imbl::OrdMap::new();
            for (p, u) in self.pending_links.iter() {
                if let Some(q) = moved_path(p, old, new, exchange) {
                    next.insert(q, *u);
                }
            }
            self.pending_links = next;
        }
    }
}

/// Where merged path `p` is after renaming `old` to `new` (`exchange`:
/// swapping them); `None` where the rename replaced it.
pub(crate) fn moved_path(p: &str, old: &str, new: &str, exchange: bool) -> Option<String> {
    let moved = |from: &str, to: &str| -> Option<String> {
        if p == from {
            Some(to.to_string())
        } else {
            p.strip_prefix(from)
                .filter(|r| r.starts_with('/'))
                .map(|r| format!("{to}{r}"))
        }
    };
    if let Some(q) = moved(old, new) {
        Some(q)
    } else if let Some(q) = moved(new, old) {
        exchange.then_some(q)
    } else {
        Some(p.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn lower_dir_rename_is_exdev_without_redirect_dir() {
        let mut m = model("lower\n  dir d 0755\n");
        assert_eq!(run(&mut m, "rename d e"), "EXDEV");
        assert_eq!(run(&mut m, "mkdir p 0755"), "ok");
        assert_eq!(run(&mut m, "rename p q"), "ok");
    }

    #[test]
    fn redirects_relative_then_absolute() {
        let mut m =
            model("profile redirect\nlower\n  dir d 0755\n  file d/f 0644 \"f\"\n  dir p 0755\n");
        assert_eq!(run(&mut m, "rename d e"), "ok");
        assert!(upper(&m).contains("e dir 0755 0:0 origin=fh redirect=d"));
        assert_eq!(run(&mut m, "rename e p/q"), "ok");
        assert!(upper(&m).contains("p/q dir 0755 0:0 origin=fh redirect=/d"));
        assert_eq!(run(&mut m, "read p/q/f"), "\"f\"");
    }

    #[test]
    fn flags_and_self_moves() {
        let mut m = model("lower\n  file a 0644 \"a\"\n  file b 0644 \"b\"\n");
        assert_eq!(run(&mut m, "rename a b whiteout"), "EINVAL");
        assert_eq!(run(&mut m, "rename a b noreplace"), "EEXIST");
        assert_eq!(run(&mut m, "rename a a"), "ok");
        assert_eq!(run(&mut m, "mkdir u 0755"), "ok");
        assert_eq!(run(&mut m, "rename u u/v"), "EINVAL");
    }

    #[test]
    fn file_move_leaves_a_whiteout() {
        let mut m = model("lower\n  file f 0644 \"f\"\n  dir d 0755\n");
        assert_eq!(run(&mut m, "rename f d/g"), "ok");
        assert!(upper(&m).contains("f whiteout"));
    }
}
