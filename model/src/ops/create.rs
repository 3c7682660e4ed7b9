//! Ops that create a name: create (open O_CREAT; an existing file is
//! opened as module `file` does), mkdir, mkfifo, symlink, link (dir.c:
//! ovl_create_object, ovl_create_upper, ovl_create_over_whiteout,
//! ovl_link).

use crate::copy_up::CopyUp;
use crate::fs::{Ino, Inode, Kind};
use crate::lookup::Dentry;
use crate::perm::{may_create, may_create_in_sticky, may_link_to, may_linkat, MAY_WRITE};
use crate::resolve::{join_path, Follow, Place, Resolved, Walk};
use crate::rules::Rule;
use crate::Model;
use imbl::OrdMap;
use ovlcheck_case::acl;
use ovlcheck_case::path::PATH_MAX;
use ovlcheck_case::{Cred, Errno, InodeFlags, OpPath, Value};
use std::sync::Arc;

/// What to put at a new name.
pub(crate) enum NewObj {
    Inode(Box<Inode>),
    /// Another name for an existing upper inode.
    Link(Ino),
}

/// The parent and name a creating op works on.
pub(crate) struct NewName {
    pub dir: Walk,
    pub name: String,
    pub neg: Dentry,
}

impl Model {
    /// filename_create: the final component is never followed; it must be
    /// missing (EEXIST; the root is LAST_ROOT: EEXIST too), and a trailing
    /// slash is only allowed for mkdir (ENOENT). EROFS comes after both
    /// checks (lookup_one_qstr_excl before the mnt_want_write result).
    pub(crate) fn resolve_new(
        &self,
        path: &OpPath,
        want_dir: bool,
        cred: Cred,
    ) -> Result<NewName, Errno> {
        let place = self.place(path, cred)?;
        self.new_name_at(&place, want_dir, cred)
    }

    /// [`Model::resolve_new`] from an already opened parent.
    pub(crate) fn new_name_at(
        &self,
        place: &Place,
        want_dir: bool,
        cred: Cred,
    ) -> Result<NewName, Errno> {
        match self.lookup_at(place, Follow::Never, cred)? {
            Resolved::Found(_) => Err(Errno::EEXIST),
            Resolved::Missing { slash: true, .. } if !want_dir => Err(Errno::ENOENT),
            Resolved::Missing { dir, name, neg, .. } => {
                self.check_writable()?;
                Ok(NewName { dir, name, neg })
            }
        }
    }

    /// A new inode owned by the caller (inode_init_owner): the group of a
    /// setgid parent, which new directories inherit the setgid bit from; a
    /// non-directory loses setgid+group-exec when the caller is not in a
    /// setgid parent's group (mode_strip_sgid); then the parent's default
    /// ACL applies (posix_acl_create).
    pub(crate) fn new_inode(&self, dir: &Dentry, kind: Kind, mode: u32, cred: Cred) -> Inode {
        let parent = self.attr(dir);
        let sgid_dir = parent.mode & 0o2000 != 0;
        let is_dir = matches!(kind, Kind::Dir(_));
        let gid = if sgid_dir { parent.gid } else { cred.gid };
        let mut mode = mode;
        if is_dir && sgid_dir {
            mode |= 0o2000;
        } else if !is_dir
            && sgid_dir
            && mode & 0o2010 == 0o2010
            && !cred.is_root()
            && cred.gid != parent.gid
        {
            mode &= !0o2000;
        }
        let mut inode = Inode::new(kind, mode, cred.uid, gid);
        self.inherit_acls(parent, &mut inode);
        inode
    }

    /// posix_acl_create: a new inode in directory `parent` (not a
    /// symlink) takes the parent's default ACL, masked by its mode, as
    /// its access ACL (none when the mode says all of it) and its mode the
    /// bits the ACL lacks; a directory takes the default ACL too.
    pub(crate) fn inherit_acls(&self, parent: &Inode, inode: &mut Inode) {
        if matches!(inode.kind, Kind::Symlink(_)) {
            return;
        }
        let Some(default_acl) = parent.acl(acl::DEFAULT) else {
            return;
        };
        self.hit(Rule::CreateDefaultAcl);
        let mut access = default_acl.clone();
        let equiv = !access.create_masq(&mut inode.mode);
        inode.set_acl(acl::ACCESS, (!equiv).then_some(&access));
        if inode.is_dir() {
            inode.set_acl(acl::DEFAULT, Some(&default_acl));
        }
    }

    /// ovl_create_object: copies up the parent chain and creates the object
    /// in the upper parent; over an upper whiteout the whiteout is replaced
    /// and a directory made opaque (ovl_create_over_whiteout). A new
    /// directory in a merged parent is opaque only when offline changes
    /// are not allowed (ovl_create_upper; features.opaque_new_dirs). The
    /// copy-up of a parent with an unmapped owner fails (EOVERFLOW).
    pub(crate) fn create_object(&mut self, nn: &mut NewName, obj: NewObj) -> Result<Ino, Errno> {
        self.copy_up_dir(&mut nn.dir)?;
        let parent = nn.dir.last().clone();
        let pu = parent.upper.expect("parent copied up");
        let over_whiteout = nn.neg.is_whiteout();
        if over_whiteout {
            self.hit(Rule::CreateOverWhiteout);
            self.upper_mut().unlink(pu, &nn.name);
        }
        let parent_merge = !parent.lowers.is_empty();
        let ino = match obj {
            NewObj::Inode(i) => {
                let mut i = *i;
                if i.is_dir() && (over_whiteout || (parent_merge && self.feat.opaque_new_dirs)) {
                    if !over_whiteout {
                        self.hit(Rule::MkdirOpaqueInMerged);
                    }
                    i.ovl.opaque = Some('y');
                }
                // tmpfs gives a new inode its directory's no-dump and
                // no-atime flags (shmem_get_inode: SHMEM_FL_INHERITED);
                // over a whiteout the object is made in the work dir.
                if !over_whiteout {
                    let inherited = self
                        .upper_inode(pu)
                        .flags
                        .intersection(InodeFlags::INHERITED);
                    if !inherited.is_empty() {
                        self.hit(Rule::FlagsInherited);
                        i.flags = inherited;
                    }
                }
                self.upper_mut().alloc(i)
            }
            NewObj::Link(ino) => ino,
        };
        self.upper_mut().link(pu, &nn.name, ino);
        self.dir_modified(&parent);
        Ok(ino)
    }

    /// Creates a new non-link object after the permission check.
    fn make(&mut self, mut nn: NewName, kind: Kind, mode: u32, cred: Cred) -> Result<Value, Errno> {
        may_create(cred, self.attr(nn.dir.last()))?;
        let inode = self.new_inode(nn.dir.last(), kind, mode, cred);
        let pages = crate::space::inode_pages(&inode);
        if pages > 0 {
            self.copy_up_dir(&mut nn.dir)?;
            self.reserve(pages)?;
        }
        self.create_object(&mut nn, NewObj::Inode(Box::new(inode)))?;
        Ok(Value::Unit)
    }

    /// `open(O_CREAT|O_WRONLY [|O_EXCL] [|O_TRUNC], mode)`. O_EXCL does not
    /// follow a final symlink; without it a dangling symlink's target is
    /// created. A trailing slash gives EISDIR.
    pub(crate) fn op_create(
        &mut self,
        path: &OpPath,
        mode: u32,
        excl: bool,
        trunc: bool,
        cred: Cred,
    ) -> Result<Value, Errno> {
        if path.trailing_slash {
            return Err(self.creat_with_slash(path, cred));
        }
        let follow = if excl { Follow::No } else { Follow::Yes };
        match self.resolve(path, follow, cred)? {
            Resolved::Found(_) if excl => Err(Errno::EEXIST),
            Resolved::Found(mut w) => {
                self.creat_found(&w, cred)?;
                self.open_file(&mut w, MAY_WRITE, trunc, false, cred)?;
                Ok(Value::Unit)
            }
            Resolved::Missing { slash: true, .. } => Err(Errno::EISDIR),
            Resolved::Missing { dir, name, neg, .. } => {
                self.check_writable()?;
                let nn = NewName { dir, name, neg };
                self.make(nn, Kind::File(Arc::new(Vec::new())), mode & 0o7777, cred)
            }
        }
    }

    /// do_open's checks of an object `O_CREAT` found (not made): EISDIR
    /// for a directory, then may_create_in_sticky against the directory
    /// that holds it (before may_open's permission and ELOOP checks).
    pub(crate) fn creat_found(&self, w: &Walk, cred: Cred) -> Result<(), Errno> {
        if w.last().is_dir {
            return Err(Errno::EISDIR);
        }
        let dir = self.attr(w.parent_dentry());
        may_create_in_sticky(self.feat.sysctls, cred, dir, self.attr(w.last()))
    }

    /// open_last_lookups: O_CREAT with a trailing slash is EISDIR once the
    /// parent is found, before the last component is looked up (a lookup
    /// error there, such as a refused metacopy, is not met: verified on
    /// 6.18); the error of finding the parent, else EISDIR.
    pub(crate) fn creat_with_slash(&self, path: &OpPath, cred: Cred) -> Errno {
        let found = self
            .place(&OpPath::plain(path.path.clone()), cred)
            .and_then(|place| self.search_place(&place, cred));
        found.err().unwrap_or(Errno::EISDIR)
    }

    /// `mkdir`: mode keeps the permission and sticky bits.
    pub(crate) fn op_mkdir(
        &mut self,
        path: &OpPath,
        mode: u32,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let nn = self.resolve_new(path, true, cred)?;
        self.make(nn, Kind::Dir(OrdMap::new()), mode & 0o1777, cred)
    }

    /// `mknod(S_IFIFO)`.
    pub(crate) fn op_mkfifo(
        &mut self,
        path: &OpPath,
        mode: u32,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let nn = self.resolve_new(path, false, cred)?;
        self.make(nn, Kind::Fifo, mode & 0o7777, cred)
    }

    /// `symlink`: an empty target is ENOENT, one of PATH_MAX or more
    /// ENAMETOOLONG (getname); the link is created as is (no copy-up of the
    /// target, overlayfs.rst). A target too long to live in a tmpfs inode
    /// needs a page: on a full sized upper ENOSPC, after the parent chain
    /// was copied up (dir.c: ovl_create_object).
    pub(crate) fn op_symlink(
        &mut self,
        target: &[u8],
        path: &OpPath,
        cred: Cred,
    ) -> Result<Value, Errno> {
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let nn = self.resolve_new(path, false, cred)?;
        self.make(nn, Kind::Symlink(Arc::new(target.to_vec())), 0o777, cred)
    }

    /// `link(old, new)`: copies up `old` (overlayfs.rst: "creating a hard
    /// link also requires copy up"; dir.c: ovl_link), then links its upper
    /// inode at `new`. Directories: EPERM.
    pub(crate) fn op_link(
        &mut self,
        old: &OpPath,
        new: &OpPath,
        cred: Cred,
    ) -> Result<Value, Errno> {
        // namei.c do_linkat: the old path is looked up in full first (not
        // following a final symlink; a trailing slash does), then the new
        // name's parent (filename_create).
        let op = self.place(old, cred)?;
        let Resolved::Found(mut ow) = self.lookup_at(&op, Follow::No, cred)? else {
            return Err(Errno::ENOENT);
        };
        let np = self.place(new, cred)?;
        let nn = self.new_name_at(&np, false, cred)?;
        let a = self.attr(ow.last()).clone();
        may_linkat(self.feat.sysctls, cred, &a)?;
        may_create(cred, self.attr(nn.dir.last()))?;
        may_link_to(&a)?;
        if a.is_dir() {
            return Err(Errno::EPERM);
        }
        self.copy_up(&mut ow, CopyUp::Meta)?;
        let ino = ow.last().upper.expect("copied up");
        // dir.c ovl_link -> ovl_set_link_redirect: a metacopy upper gets an
        // absolute redirect to its lower (ovl_set_redirect(samedir=false)
        // keeps an absolute one), so the new name finds the data too.
        if self.upper_inode(ino).ovl.metacopy {
            let ow = self.refresh(&ow);
            let current = self.upper_inode(ino).ovl.redirect.clone();
            if !current.is_some_and(|r| r.starts_with('/')) {
                self.hit(Rule::LinkMetacopyRedirect);
                self.upper_mut().get_mut(ino).ovl.redirect =
                    Some(super::rename::absolute_redirect(&ow));
            }
        }
        let mut nn = NewName {
            dir: self.refresh(&nn.dir),
            name: nn.name,
            neg: nn.neg,
        };
        self.create_object(&mut nn, NewObj::Link(ino))?;
        // dir.c ovl_link -> ovl_create_or_link(..., origin): linking a
        // file with a copy-up origin marks the new parent impure.
        if self.type_origin(|| ow.path(), ow.last()) {
            let pu = nn.dir.last().upper.expect("parent copied up");
            self.set_impure(pu);
        }
        // The new name is a fresh overlay inode whenever the linked inode is
        // hashed by a lower in this mount that a lookup of the new name does
        // not find (see `Model::fresh_links`), whichever of its names was
        // linked, a fresh one too: userxattr's in-memory lower, or the
        // lower found by name of a metacopy file whose data was copied up.
        // One hashed by its upper (a broken hard link) is found again.
        // A metacopy's new name finds the lower through the redirect the
        // link sets, whatever the origin.
        let metacopy = self.upper_inode(ino).ovl.metacopy;
        let in_memory = self
            .mem_lower
            .get(&ino)
            .filter(|&&r| !self.decodes_origin(r) && !metacopy);
        let kept = in_memory.or(self.kept_lower.get(&ino));
        let new_path = join_path(&nn.dir.path(), &nn.name);
        if kept.is_some_and(|&lower| self.hashed_by(ino, lower)) {
            self.hit(Rule::LinkFreshInode);
            self.fresh_links.insert(new_path);
        } else if self.found_by_name(ow.last()) {
            // Its first lookup decides (see `Model::pending_links`).
            self.pending_links.insert(new_path, ino);
        }
        self.index_nlink_delta(ino, 1);
        Ok(Value::Unit)
    }

    /// Adjusts the union link count of an indexed inode and its `nlink`
    /// xattr (inode.c: ovl_nlink_start/ovl_nlink_end).
    pub(crate) fn index_nlink_delta(&mut self, ino: Ino, delta: i64) {
        let Some(up) = self.upper.as_mut() else {
            return;
        };
        let Some(inode) = up.try_get_mut(ino) else {
            return;
        };
        let Some(n) = inode.union_nlink else { return };
        inode.union_nlink = Some((i64::from(n) + delta).max(0) as u32);
        self.update_index_nlink(ino);
    }

    /// Looks a walk's names up again after the layers changed.
    pub(crate) fn refresh(&self, w: &Walk) -> Walk {
        let mut out = Walk {
            frames: vec![w.frames[0].clone()],
        };
        out.frames[0].dentry = self.root_dentry();
        for f in &w.frames[1..] {
            let parent = &out.frames.last().expect("root").dentry;
            let d = self.lookup(parent, &f.name).unwrap_or_default();
            out.frames.push(crate::resolve::Frame {
                name: f.name.clone(),
                dentry: d,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn new_dirs_in_merged_parents_are_opaque_only_without_offline_changes() {
        let text = "lower\n  dir p 0755\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "mkdir p/n 0755"), "ok");
        assert!(upper(&m).contains("p/n dir 0755 0:0\n"));
        let mut r = model(&format!("profile redirect\n{text}"));
        assert_eq!(run(&mut r, "mkdir p/n 0755"), "ok");
        assert!(upper(&r).contains("p/n dir 0755 0:0 opaque=y"));
    }

    #[test]
    fn create_follows_dangling_symlinks_unless_excl() {
        let mut m = model("lower\n  symlink l \"t\"\n");
        assert_eq!(run(&mut m, "create l 0644 excl"), "EEXIST");
        assert_eq!(run(&mut m, "create l 0600"), "ok");
        assert_eq!(run(&mut m, "stat t"), "{file 0600 0:0 size=0 nlink=1}");
    }

    #[test]
    fn setgid_directories_pass_their_group_on() {
        let mut m = model("lower\n  dir g 2777\n  owner g 0 50\n");
        assert_eq!(run(&mut m, "as 1000:1000 mkdir g/d 0755"), "ok");
        assert_eq!(run(&mut m, "stat g/d"), "{dir 2755 1000:50 size=0 nlink=2}");
    }

    #[test]
    fn link_of_directory_is_eperm() {
        let mut m = model("lower\n  dir d 0755\n");
        assert_eq!(run(&mut m, "link d e"), "EPERM");
    }
}
