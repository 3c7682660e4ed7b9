//! Copy-up (overlayfs.rst: "Non-directories", "Metadata only copy up";
//! copy_up.c). Parents are copied first, directories without their
//! contents; each copy gets the lower object's data, mode, owner, mtime and
//! ordinary xattrs (never overlay-private ones), and an `origin` xattr; the
//! upper parent is marked `impure`. On a sized upper an object's copy-up
//! may fail with ENOSPC, after its ancestors were copied up and its parent
//! marked impure (module `space`).

use crate::fs::{Ino, Inode, Kind, LowerRef};
use crate::lookup::Dentry;
use crate::resolve::Walk;
use crate::rules::Rule;
use crate::space;
use crate::Model;
use imbl::OrdMap;
use ovlcheck_case::{Errno, InodeFlags};
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the triggering op needs copied (copy_up.c: ovl_copy_up_flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CopyUp {
    /// Metadata changes (chmod, chown, utimes, xattrs, link, rename): a
    /// regular file is copied metadata-only when metacopy=on
    /// (ovl_need_meta_copy_up).
    Meta,
    /// Open for write, truncate, write: the data too.
    Data,
    /// Open with O_TRUNC: the data is copied with size 0
    /// (`if (flags & O_TRUNC) ctx.stat.size = 0`).
    Trunc,
}

impl Model {
    /// ovl_copy_up_flags: copies up every ancestor of the walk's last
    /// object that has no upper yet, top-down, then the object itself, and
    /// updates the walk's dentries. Each copy-up is atomic (built in the
    /// work dir, then moved into place), so ENOSPC leaves the copied-up
    /// ancestors and no trace of the failing object.
    pub(crate) fn copy_up(&mut self, walk: &mut Walk, how: CopyUp) -> Result<(), Errno> {
        // ovl_copy_up_flags: the lazy lookup of the data comes first, even
        // for an object already copied up (observed on 6.18: chmod of an
        // upper metacopy whose data is missing is ENOENT).
        self.verify_lowerdata(walk.last())?;
        for i in 1..walk.frames.len() {
            let is_last = i + 1 == walk.frames.len();
            let parent_upper = walk.frames[i - 1].dentry.upper.expect("parent copied up");
            let frame = &walk.frames[i];
            let needs = frame.dentry.upper.is_none() || !frame.dentry.upper_alias;
            let how_here = if is_last { how } else { CopyUp::Meta };
            if needs {
                let name = std::mem::take(&mut walk.frames[i].name);
                let before = std::mem::take(&mut walk.frames[i].dentry);
                let copied = self.copy_up_one(parent_upper, &name, &before, how_here);
                let frame = &mut walk.frames[i];
                frame.name = name;
                match copied {
                    Ok(d) => {
                        frame.dentry = d;
                        let path = walk.frames[1..=i]
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join("/");
                        let after = walk.frames[i].dentry.clone();
                        self.held_copied_up(&path, &before, &after);
                    }
                    Err(e) => {
                        frame.dentry = before;
                        return Err(e);
                    }
                }
            } else if is_last && how != CopyUp::Meta {
                self.copy_up_data(&mut walk.frames[i].dentry, how)?;
            }
        }
        Ok(())
    }

    /// ovl_verify_lowerdata: ENOENT for a metacopy file whose data the
    /// lazy lookup in the data-only layers does not find.
    pub(crate) fn verify_lowerdata(&self, d: &Dentry) -> Result<(), Errno> {
        if d.lowerdata_missing {
            self.hit(Rule::LowerdataMissing);
            return Err(Errno::ENOENT);
        }
        Ok(())
    }

    /// Copies up the parent chain of a walk (the walk itself is a
    /// directory that will receive an entry). Directories take no space;
    /// only one with an unmapped owner fails (EOVERFLOW).
    pub(crate) fn copy_up_dir(&mut self, walk: &mut Walk) -> Result<(), Errno> {
        self.copy_up(walk, CopyUp::Meta)
    }

    /// ovl_copy_fileattr, for regular files and directories that have
    /// flags: immutable and append-only go to `protattr` (the upper inode
    /// could not otherwise be linked in or marked), noatime to the upper
    /// inode, no-dump nowhere (observed on 6.18: docs/semantics.md §1.17).
    fn copy_fileattr(&self, src: &Inode, upper: &mut Inode) {
        if !(src.is_dir() || src.is_reg()) || src.flags.is_empty() {
            return;
        }
        self.hit(Rule::CopyUpFileattr);
        let prot = src.flags.intersection(InodeFlags::PROTECTED);
        upper.ovl.protattr = prot;
        upper.prot = prot;
        upper.flags = src.flags.intersection(InodeFlags::COPIED);
    }

    /// ovl_copy_up_one for one object whose parent is already upper.
    fn copy_up_one(
        &mut self,
        parent_upper: Ino,
        name: &str,
        d: &Dentry,
        how: CopyUp,
    ) -> Result<Dentry, Errno> {
        if let Some(r) = d.lowers.first() {
            // ovl_copy_up_one: the lower's owner must map (4f11ada10d0a).
            if !self.lower_inode(*r).ids_mapped() {
                self.hit(Rule::CopyUpUnmapped);
                return Err(Errno::EOVERFLOW);
            }
        }
        // ovl_do_copy_up, ovl_link_up: the parent is marked impure first,
        // which an upper parent with an unmapped id refuses (EPERM).
        let parent = self.upper_inode(parent_upper);
        if !parent.ids_mapped() && !parent.ovl.impure {
            self.hit(Rule::CopyUpUnmapped);
            return Err(Errno::EPERM);
        }
        let mut out = d.clone();
        if let (Some(u), false) = (d.upper, d.upper_alias) {
            // index=on: link the index entry up (copy_up.c: ovl_link_up).
            self.hit(Rule::CopyUpIndex);
            self.upper_mut().link(parent_upper, name, u);
            self.set_impure(parent_upper);
            out.upper_alias = true;
            self.update_index_nlink(u);
            if how != CopyUp::Meta {
                self.copy_up_data(&mut out, how)?;
            }
            return Ok(out);
        }
        let src_ref = d.lowers[0];
        let src = self.lower_inode(src_ref).clone();
        let lower_nlink = self.lowers[src_ref.layer as usize].nlink(src_ref.ino);
        let indexed = self.feat.index && !src.is_dir() && lower_nlink > 1;
        let metacopy = self.feat.metacopy && src.is_reg() && how == CopyUp::Meta;
        let mut inode = Inode::new(Kind::Fifo, src.mode, src.uid, src.gid);
        inode.mtime = src.mtime;
        inode.clock_here = src.clock_here;
        inode.xattrs = src.xattrs.clone();
        // Escaped overlay xattrs are not private: they are copied up
        // (overlayfs.h: ovl_is_private_xattr excludes ovl_is_escaped_xattr).
        // Before v6.7 every overlay name is private, and none is.
        if self.feat.escaped_xattrs {
            inode.ovl.escaped = src.ovl.escaped.clone();
        }
        inode.kind = match &src.kind {
            Kind::Dir(_) => Kind::Dir(OrdMap::new()),
            Kind::File(_) if how == CopyUp::Trunc => Kind::File(Arc::new(Vec::new())),
            Kind::File(own) if metacopy => Kind::File(Arc::new(vec![0; own.len()])),
            // Shared until the first write (Arc::make_mut copies then).
            Kind::File(own) => Kind::File(self.copied_data(d, vec![0; own.len()])),
            other => other.clone(),
        };
        inode.ovl.metacopy = metacopy;
        self.copy_fileattr(&src, &mut inode);
        self.hit(match &src.kind {
            Kind::Dir(_) => Rule::CopyUpDir,
            Kind::File(_) if how == CopyUp::Trunc => Rule::CopyUpTrunc,
            _ if metacopy => Rule::CopyUpMeta,
            _ => Rule::CopyUpData,
        });
        // userxattr: `user.overlay.origin` cannot be set on a symlink or a
        // special file (xattr_permission allows user.* only on regular
        // files and directories), so those get no origin (verified on 6.18).
        let xattr_ok = !self.feat.user_xattr_ns || src.is_dir() || src.is_reg();
        if xattr_ok && (src.is_dir() || lower_nlink == 1 || indexed) {
            inode.ovl.origin = Some(Some(src_ref));
            if !self.empty_origin(src_ref) {
                out.origin = Some(src_ref);
            }
        } else if lower_nlink > 1 && !src.is_dir() {
            self.hit(Rule::CopyUpBrokenHardLink);
        }
        // ovl_do_copy_up marks the parent impure before the copy (not when
        // the copy goes to the index dir first), which fails as a whole.
        let space = if metacopy {
            // A metacopy has its size and no data (ovl_set_size).
            Ok(Some(Arc::new(BTreeSet::new())))
        } else if src.is_reg() && how != CopyUp::Trunc {
            let free = self.free_pages();
            // The copy goes to a temp file, removed on failure.
            match self.lower_data_inode(d) {
                Some(data) => space::copy_up_pages(data, space::file_len(&src), free, None)
                    .map_err(|_| Errno::ENOSPC),
                None => Ok(None),
            }
        } else {
            self.reserve(space::inode_pages(&inode)).map(|()| None)
        };
        match space {
            Ok(pages) => inode.pages = pages,
            Err(e) => {
                self.hit(Rule::CopyUpNoSpace);
                if !indexed {
                    self.set_impure(parent_upper);
                }
                return Err(e);
            }
        }
        let ino = self.upper_mut().alloc(inode);
        self.upper_mut().link(parent_upper, name, ino);
        self.hit(Rule::CopyUpImpure);
        self.set_impure(parent_upper);
        // userxattr: a fresh lookup in the user namespace does not take the
        // origin xattr as its lower, so only the copied-up dentry, cached
        // since before the copy-up, keeps its lower (see `Model::known_origin`).
        if !self.decodes_origin(src_ref) && lower_nlink == 1 {
            self.mem_lower.insert(ino, src_ref);
        }
        if indexed {
            self.hit(Rule::CopyUpIndex);
            let inode = self.upper_mut().get_mut(ino);
            inode.index_link = true;
            inode.union_nlink = Some(lower_nlink);
            self.index.insert(src_ref, ino);
            self.update_index_nlink(ino);
        }
        out.upper = Some(ino);
        out.upper_alias = true;
        if !metacopy && !src.is_dir() {
            out.lowers.truncate(1);
        }
        Ok(out)
    }

    /// Completes a metacopy: copies the data and drops the `metacopy`
    /// xattr (copy_up.c: ovl_copy_up_meta_inode_data); with O_TRUNC the
    /// data is empty. The times are not restored afterwards. The data is
    /// copied into the upper file in place, so on a sized upper without
    /// room for it the copy fails with ENOSPC having written the pages that
    /// fit, and the file stays a metacopy whose mtime the writes set
    /// (verified on 6.18, also when no page fits).
    fn copy_up_data(&mut self, d: &mut Dentry, how: CopyUp) -> Result<(), Errno> {
        let Some(u) = d.upper else { return Ok(()) };
        if !self.upper_inode(u).ovl.metacopy {
            return Ok(());
        }
        self.hit(Rule::CopyUpMetacopyData);
        let (data, pages) = if how == CopyUp::Trunc {
            (Vec::new(), None)
        } else {
            // ovl_copy_up_meta_inode_data copies as many bytes as the first
            // lower stats (ovl_copy_up_one: vfs_getattr of the lower path),
            // up to the end of the data, into the upper file in place: the
            // metacopy's own bytes past them stay, and the file grows to
            // hold them (observed on 6.18:
            // corpus/regressions/metacopy-data-copy-up-size.ovl).
            let free = self.free_pages();
            let have = self.upper_inode(u).pages.clone();
            let size = d
                .lowers
                .first()
                .map_or(0, |r| space::file_len(self.lower_inode(*r)));
            let wrote = match self.lower_data_inode(d) {
                Some(src) => match space::copy_up_pages(src, size, free, have.as_ref()) {
                    Ok(pages) => pages,
                    Err(space::NoSpace(written)) => {
                        self.hit(Rule::CopyUpNoSpace);
                        self.keep_partial_data(d, u, written);
                        return Err(Errno::ENOSPC);
                    }
                },
                None => None,
            };
            let mut own = match &self.upper_inode(u).kind {
                Kind::File(own) => own.to_vec(),
                _ => Vec::new(),
            };
            let lower = self.file_data(d);
            let copied = lower.len().min(size as usize);
            if own.len() != lower.len() {
                self.hit(Rule::StatMetacopySize);
            }
            let own_len = own.len() as u64;
            if own.len() < copied {
                own.resize(copied, 0);
            }
            own[..copied].copy_from_slice(&lower[..copied]);
            let len = own.len() as u64;
            let pages =
                space::merged_pages(own_len, have.as_ref(), copied as u64, wrote.as_ref(), len);
            (own, pages)
        };
        let inode = self.upper_mut().get_mut(u);
        inode.kind = Kind::File(Arc::new(data));
        inode.pages = pages;
        inode.ovl.metacopy = false;
        // The data is written into the upper file after its times were set
        // (verified on 6.18: mtime comes from the clock).
        inode.touch();
        d.lowers.truncate(1);
        if let (None, Some(&lower)) = (d.origin, d.lowers.first()) {
            self.kept_lower.insert(u, lower);
        }
        self.pending_links_turn_fresh(u);
        Ok(())
    }

    /// What a data copy-up of metacopy upper `u` that ran out of space
    /// leaves: the pages `written` hold the lower data, the rest of the
    /// file stays a hole, and the writes set the mtime.
    fn keep_partial_data(&mut self, d: &Dentry, u: Ino, written: BTreeSet<u64>) {
        let lower = self.file_data(d);
        let inode = self.upper_mut().get_mut(u);
        if let Kind::File(data) = &mut inode.kind {
            let data = Arc::make_mut(data);
            for n in &written {
                let start = (n * space::PAGE) as usize;
                let end = (start + space::PAGE as usize)
                    .min(lower.len())
                    .min(data.len());
                data[start..end].copy_from_slice(&lower[start..end]);
            }
        }
        let mut pages = inode.pages.as_deref().cloned().unwrap_or_default();
        pages.extend(written);
        inode.pages = Some(Arc::new(pages));
        inode.touch();
    }

    /// OVL_TYPE_ORIGIN (util.c: ovl_path_type) of the object at merged
    /// path `path()`: see [`Model::hashed_lower`]. `path` is built only
    /// when some name is fresh.
    pub(crate) fn type_origin(&self, path: impl FnOnce() -> String, d: &Dentry) -> bool {
        self.hashed_lower(path, d).is_some()
    }

    /// The lower that the overlay inode of upper object `d` (at merged path
    /// `path()`) holds and is hashed by (OVL_CONST_INO, inode.c:
    /// ovl_hash_bylower), which makes it OVL_TYPE_ORIGIN (util.c:
    /// ovl_path_type) and gives it that lower's st_ino (inode.c:
    /// ovl_getattr). Its lower is the top of the stack its lookup found
    /// (a merged directory's first lower, an upper metacopy file's lower
    /// found by name or by its redirect), else the one its overlay inode
    /// kept in this mount ([`Model::kept_lower`], and, through
    /// [`Model::known_origin`], userxattr's in-memory lower or the origin
    /// xattr); a name made by `link` from such a file is a fresh overlay
    /// inode without one ([`Model::fresh_links`]). Hashed by it unless it
    /// is a non-directory whose lower is a hard link that copy-up broke
    /// (index=off).
    pub(crate) fn hashed_lower(
        &self,
        path: impl FnOnce() -> String,
        d: &Dentry,
    ) -> Option<LowerRef> {
        let u = d.upper?;
        // Built only when some name is fresh.
        let path = || {
            if self.fresh_links.is_empty() {
                String::new()
            } else {
                path()
            }
        };
        let lower = match (d.lowers.first(), self.kept_lower.get(&u)) {
            (Some(&top), _) => {
                if !d.is_dir && d.origin.is_none() {
                    self.hit(Rule::StatMetacopyByName);
                }
                Some(top)
            }
            (None, Some(&kept)) => {
                if self.fresh_links.contains(&path()) {
                    None
                } else {
                    self.hit(Rule::MetacopyDataKeepsLower);
                    Some(kept)
                }
            }
            (None, None) => self.known_origin(&path(), u, d.origin),
        }?;
        (d.is_dir || self.hashed_by(u, lower)).then_some(lower)
    }

    /// Whether upper metacopy object `d` holds the lower it found by name
    /// (no `origin` xattr) and is hashed by it: a link of it is looked up
    /// through the absolute redirect the link sets while its data is below
    /// ([`Model::pending_links`]).
    pub(crate) fn found_by_name(&self, d: &Dentry) -> bool {
        let Some(u) = d.upper else {
            return false;
        };
        let metacopy = self.upper_inode(u).ovl.metacopy;
        match (d.origin, d.lowers.first()) {
            (None, Some(&lower)) => metacopy && !d.is_dir && self.hashed_by(u, lower),
            _ => false,
        }
    }

    /// The data copy-up of upper `u`: the names linked from it and not
    /// looked up since are fresh links now, since their first lookup finds
    /// a plain upper file ([`Model::pending_links`]).
    fn pending_links_turn_fresh(&mut self, u: Ino) {
        let names: Vec<String> = self
            .pending_links
            .iter()
            .filter(|(_, &i)| i == u)
            .map(|(p, _)| p.clone())
            .collect();
        for p in names {
            self.hit(Rule::LinkLookedUpAfterCopyUp);
            self.pending_links.remove(&p);
            self.fresh_links.insert(p);
        }
    }

    /// The lookups of the names `paths` (and of every directory on them)
    /// decide the overlay inode of the pending links among them
    /// ([`Model::pending_links`]): they join the inode they were linked
    /// from.
    pub(crate) fn look_up_pending(&mut self, paths: &[String]) {
        if self.pending_links.is_empty() {
            return;
        }
        let looked_up = |p: &str| {
            paths
                .iter()
                .any(|q| q == p || q.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
        };
        let joined: Vec<String> = self
            .pending_links
            .keys()
            .filter(|p| looked_up(p))
            .cloned()
            .collect();
        for p in joined {
            self.pending_links.remove(&p);
        }
    }

    /// inode.c: ovl_hash_bylower for upper non-directory `u` whose overlay
    /// inode holds `lower`: hashed by it when indexed or when it is not a
    /// hard link that copy-up broke.
    pub(crate) fn hashed_by(&self, u: Ino, lower: LowerRef) -> bool {
        self.upper_inode(u).union_nlink.is_some()
            || self.lowers[lower.layer as usize].nlink(lower.ino) == 1
    }

    /// ovl_set_impure on an upper directory.
    pub(crate) fn set_impure(&mut self, dir: Ino) {
        self.upper_mut().get_mut(dir).ovl.impure = true;
    }

    /// The lower inode holding the data a copy-up copies (as
    /// [`Model::file_data`] picks it).
    fn lower_data_inode(&self, d: &Dentry) -> Option<&Inode> {
        let r = match d.lowers.first() {
            Some(top) if self.lower_inode(*top).ovl.metacopy || d.upper.is_some() => {
                d.lowers.last()
            }
            other => other,
        }?;
        Some(self.lower_inode(*r))
    }

    /// The data a merged regular file reads: the upper's unless it is a
    /// metacopy, else the lower data (the bottom of the lower stack).
    pub(crate) fn file_data(&self, d: &Dentry) -> Arc<Vec<u8>> {
        if let Some(u) = d.upper {
            let inode = self.upper_inode(u);
            if !inode.ovl.metacopy {
                if let Kind::File(data) = &inode.kind {
                    return data.clone();
                }
            }
        }
        let data_ref: Option<&LowerRef> = match d.lowers.first() {
            Some(top) if self.lower_inode(*top).ovl.metacopy || d.upper.is_some() => {
                d.lowers.last()
            }
            other => other,
        };
        match data_ref.map(|r| &self.lower_inode(*r).kind) {
            Some(Kind::File(data)) => data.clone(),
            _ => Arc::new(Vec::new()),
        }
    }

    /// st_size of a merged regular file: the size of the inode that holds
    /// its metadata (the upper, or the top lower), which for a metacopy
    /// file need not be its data's (inode.c: ovl_getattr takes the size
    /// from the metadata inode; reads, and lseek to the end of an fd
    /// opened for reading, use the data file's).
    pub(crate) fn file_size(&self, d: &Dentry) -> u64 {
        let a = self.attr(d);
        let Kind::File(own) = &a.kind else { return 0 };
        if a.ovl.metacopy && own.len() != self.file_data(d).len() {
            self.hit(Rule::StatMetacopySize);
        }
        own.len() as u64
    }

    /// What a data copy-up leaves in the upper file `into`: its bytes,
    /// overwritten from the start by the data, as far as either goes
    /// (copy_up.c: ovl_copy_up_file copies st_size bytes, the size of the
    /// file copied up, and stops at the end of the data). A copy into a
    /// new file has the size ovl_set_size gives it and zeros; the data
    /// copy-up of a metacopy upper writes into the file in place, so
    /// bytes of its own past the data stay.
    fn copied_data(&self, d: &Dentry, mut into: Vec<u8>) -> Arc<Vec<u8>> {
        let data = self.file_data(d);
        if data.len() == into.len() {
            return data;
        }
        self.hit(Rule::StatMetacopySize);
        let n = data.len().min(into.len());
        into[..n].copy_from_slice(&data[..n]);
        Arc::new(into)
    }

    /// Rewrites the `nlink` xattr of an indexed upper inode: `U` and the
    /// difference between the union link count and the real one
    /// (inode.c: ovl_set_nlink_upper).
    pub(crate) fn update_index_nlink(&mut self, ino: Ino) {
        let real = i64::from(self.layer(crate::fs::LayerId::Upper).nlink(ino));
        let inode = self.upper_mut().get_mut(ino);
        let union = i64::from(inode.union_nlink.unwrap_or(0));
        inode.ovl.nlink = Some(format!("U{:+}", union - real));
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn parents_first_without_contents_and_impure() {
        let mut m = model(
            "lower\n  dir a 0711\n  dir a/b 0755\n  file a/b/f 0644 \"f\"\n  file a/g 0644 \"g\"\n",
        );
        assert_eq!(run(&mut m, "write a/b/f 0 \"F\""), "ok");
        let u = upper(&m);
        assert!(u.contains("a dir 0711 0:0 impure=y origin=fh"), "{u}");
        assert!(u.contains("a/b dir 0755 0:0 impure=y origin=fh"), "{u}");
        assert!(
            u.contains("a/b/f file 0644 0:0 size=1 nlink=1 origin=fh \"F\""),
            "{u}"
        );
        assert!(!u.contains("a/g"), "{u}");
    }

    #[test]
    fn copy_keeps_mode_owner_mtime_xattrs() {
        let mut m = model(
            "lower\n  file f 0640 \"data\"\n  owner f 3 4\n  mtime f 77\n  xattr f user.k \"v\"\n",
        );
        assert_eq!(run(&mut m, "open f rdwr"), "ok");
        assert!(upper(&m)
            .contains("f file 0640 3:4 size=4 nlink=1 mtime=77 origin=fh user.k=\"v\" \"data\""));
    }

    #[test]
    fn o_trunc_copies_size_zero() {
        let mut m = model("lower\n  file f 0644 \"data\"\n");
        assert_eq!(run(&mut m, "open f trunc"), "ok");
        assert!(upper(&m).contains("f file 0644 0:0 size=0 nlink=1 origin=fh \"\""));
    }

    #[test]
    fn broken_lower_hard_link_gets_no_origin() {
        let mut m = model("lower\n  file a 0644 \"x\"\n  hardlink b a\n");
        assert_eq!(run(&mut m, "chmod a 0600"), "ok");
        let u = upper(&m);
        assert!(
            u.contains("a file 0600 0:0 size=1 nlink=1 mtime=1600000000 \"x\""),
            "{u}"
        );
    }

    #[test]
    fn metacopy_copies_metadata_then_data() {
        let mut m = model("profile metacopy\nlower\n  file f 0644 \"abc\"\n");
        assert_eq!(run(&mut m, "chmod f 0600"), "ok");
        assert!(upper(&m).contains("metacopy=\"\""));
        assert_eq!(run(&mut m, "read f"), "\"abc\"");
        assert_eq!(run(&mut m, "write f 0 \"X\""), "ok");
        assert!(!upper(&m).contains("metacopy"));
        assert_eq!(run(&mut m, "read f"), "\"Xbc\"");
    }
}
