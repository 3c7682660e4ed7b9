//! Raw layers: one directory tree as it sits on disk (a lower `diff/` or the
//! upper dir), stored as a persistent map of inodes. Directory entries refer
//! to inodes by number, so hard links are shared inodes, and cloning a layer
//! is O(1) (imbl).

use crate::names::EntryName;
use imbl::OrdMap;
use ovlcheck_case::acl::Acl;
use ovlcheck_case::InodeFlags;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// An inode number inside one layer.
pub(crate) type Ino = u32;

/// Which layer an object lives in: lower `i` (0 is the bottom), or the upper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum LayerId {
    Lower(usize),
    Upper,
}

/// A lower object (the target of an `origin` xattr, or a lower stack entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LowerRef {
    /// The lower's index (`u32`, not `usize`: lower stacks are copied on
    /// every lookup, and overlay takes at most 500 lowers).
    pub layer: u32,
    pub ino: Ino,
}

/// The identity of an overlay inode as `st_ino` shows it: a lower inode
/// (lower-only objects, and copied-up ones whose st_ino follows their
/// origin), or an upper inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ident {
    Lower { layer: usize, ino: u32 },
    Upper(u32),
}

/// A directory's entries by name.
pub(crate) type Entries = OrdMap<EntryName, Ino>;

/// The type and payload of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Entries by name.
    Dir(Entries),
    File(Arc<Vec<u8>>),
    Symlink(Arc<Vec<u8>>),
    Fifo,
    /// A char 0/0 device (overlayfs.rst: whiteouts and opaque directories).
    Whiteout,
}

/// Overlay-private xattrs (`trusted.overlay.*` or `user.overlay.*`), kept as
/// structured fields (overlayfs.rst; util.c: ovl_xattr_table).
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub(crate) struct OvlXattrs {
    /// `opaque`: `'y'` opaque, `'x'` holds xattr whiteouts.
    pub opaque: Option<char>,
    pub redirect: Option<String>,
    /// `origin`: the lower object this was copied up from. `Some(None)` is
    /// the origin of the upper root with index=on (the lower root's fh).
    pub origin: Option<Option<LowerRef>>,
    pub impure: bool,
    pub metacopy: bool,
    /// `nlink` of an indexed upper inode, e.g. `"U+0"`.
    pub nlink: Option<String>,
    /// `whiteout`: an xattr whiteout (xwhiteout).
    pub whiteout: bool,
    pub uuid: bool,
    /// Escaped `overlay.overlay.*` xattrs set through the overlay (v6.7+).
    pub escaped: std::collections::BTreeMap<String, Vec<u8>>,
    /// `protattr`: the immutable and append-only flags of an upper inode,
    /// which the upper inode itself does not carry (copy_up.c:
    /// ovl_copy_fileattr; inode.c: ovl_fileattr_set).
    pub protattr: InodeFlags,
}

/// The owner or group of an inode whose id the layer's idmapped mount does
/// not map (the kernel's `INVALID_UID`/`INVALID_GID`): nobody is that
/// owner, and no capability covers the inode (docs/semantics.md §1.16).
pub(crate) const UNMAPPED: u32 = u32::MAX;

/// The id stat and the views show for `id`: the overflow id for
/// [`UNMAPPED`] (from_kuid_munged).
pub(crate) fn seen_id(id: u32) -> u32 {
    if id == UNMAPPED {
        ovlcheck_case::profile::OVERFLOW_ID
    } else {
        id
    }
}

/// One inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inode {
    pub kind: Kind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `None` when the clock set it.
    pub mtime: Option<i64>,
    /// With `mtime` `None`: whether an op in this layer set it, rather than
    /// a layer tar bringing a clock time of an earlier commit
    /// (`changeset::clock_times`). Only a walking differ tells them apart
    /// (`oci::walking_differs`).
    pub clock_here: bool,
    /// Ordinary xattrs.
    pub xattrs: OrdMap<String, Vec<u8>>,
    pub ovl: OvlXattrs,
    /// Directory entries referring to this inode (non-directories).
    pub links: u32,
    /// An extra link from the index dir (index=on), counted in `st_nlink`.
    pub index_link: bool,
    /// The union link count overlay keeps for an indexed inode (index=on).
    pub union_nlink: Option<u32>,
    /// A regular file with holes: the indexes of the tmpfs pages that hold
    /// its data. `None`: every page up to its size (see `space`).
    pub pages: Option<Arc<std::collections::BTreeSet<u64>>>,
    /// Open fds that hold this inode (module `fds`): it stays while held,
    /// linked or not, as an unlinked open file does.
    pub open: u32,
    /// The real inode's flags (`chattr`).
    pub flags: InodeFlags,
    /// The `protattr` flags overlay honours: an upper inode's (util.c:
    /// ovl_check_protattr at inode setup); a lower inode's `protattr`
    /// counts for nothing.
    pub prot: InodeFlags,
    /// The link count the layer's filesystem reports where it is not the
    /// count of the layer's own entries: an inode of an overlay as the
    /// lower layer (`crate::nested`), such as a directory it merges (1).
    pub nlink: Option<u32>,
    /// A whiteout that the layer's filesystem lists as an ordinary entry
    /// (not as a char 0/0 device overlay recognises): a name an overlay as
    /// the lower layer lists but finds nothing under (`crate::nested`). A
    /// lookup finds nothing; a merged listing shows the name.
    pub listed: bool,
}

impl Inode {
    /// Whether both ids are mapped (the kernel's `!HAS_UNMAPPED_ID`):
    /// only then may a capability stand in for the owner.
    pub fn ids_mapped(&self) -> bool {
        self.uid != UNMAPPED && self.gid != UNMAPPED
    }

    /// The POSIX ACL kept in the xattr `name` (ovlcheck_case::acl), in
    /// the short text form every ACL xattr of the model holds.
    pub fn acl(&self, name: &str) -> Option<Acl> {
        let text = std::str::from_utf8(self.xattrs.get(name)?).ok()?;
        Acl::parse(text).ok()
    }

    /// Keeps `acl` in the xattr `name`, or none.
    pub fn set_acl(&mut self, name: &str, acl: Option<&Acl>) {
        match acl {
            Some(a) => self
                .xattrs
                .insert(name.to_string(), a.to_string().into_bytes()),
            None => self.xattrs.remove(name),
        };
    }

    pub fn new(kind: Kind, mode: u32, uid: u32, gid: u32) -> Inode {
        Inode {
            kind,
            mode,
            uid,
            gid,
            mtime: None,
            clock_here: true,
            xattrs: OrdMap::new(),
            ovl: OvlXattrs::default(),
            links: 0,
            index_link: false,
            union_nlink: None,
            pages: None,
            open: 0,
            flags: InodeFlags::NONE,
            prot: InodeFlags::NONE,
            nlink: None,
            listed: false,
        }
    }

    /// The clock sets the mtime now, in this layer (file_update_time, or
    /// `utimes` to now): open in views, and later than any time the image
    /// holds, so a walking differ sees a change even where the inode was
    /// copied up from a layer whose tar brought a clock time
    /// ([`Inode::clock_here`]).
    pub fn touch(&mut self) {
        self.mtime = None;
        self.clock_here = true;
    }

    /// The flags the overlay inode has (inode.c: ovl_copyflags of the real
    /// inode, merged with an upper inode's `protattr`), which the VFS
    /// checks.
    pub fn seen_flags(&self) -> InodeFlags {
        self.flags.union(self.prot)
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    pub fn is_whiteout(&self) -> bool {
        matches!(self.kind, Kind::Whiteout)
    }

    pub fn is_reg(&self) -> bool {
        matches!(self.kind, Kind::File(_))
    }

    /// An xattr whiteout candidate: an empty regular file with
    /// `overlay.whiteout` (util.c: ovl_path_check_xwhiteout_xattr).
    pub fn is_xwhiteout(&self) -> bool {
        matches!(&self.kind, Kind::File(d) if d.is_empty()) && self.ovl.whiteout
    }

    pub fn entries(&self) -> Option<&Entries> {
        match &self.kind {
            Kind::Dir(e) => Some(e),
            _ => None,
        }
    }
}

/// Hashes an inode number with one multiplication: inode numbers are
/// small and dense, and a lookup by number is the model's hottest path.
/// Fixed (no random state), so nothing depends on a per-run seed.
#[derive(Default, Clone, Copy)]
pub(crate) struct InoHasher(u64);

impl Hasher for InoHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A layer's inodes by number: a persistent hash map (O(1) clone). Its
/// iteration order is not the numbers' order; nothing observable iterates
/// it in order.
pub(crate) type InodeMap = imbl::GenericHashMap<
    Ino,
    Arc<Inode>,
    BuildHasherDefault<InoHasher>,
    imbl::shared_ptr::DefaultSharedPtr,
>;

/// One layer directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layer {
    pub inodes: InodeMap,
    pub root: Ino,
    pub next: Ino,
}

impl Layer {
    /// An empty layer: a root directory 0755 0:0.
    pub fn new() -> Layer {
        let mut inodes = InodeMap::default();
        inodes.insert(
            0,
            Arc::new(Inode::new(Kind::Dir(OrdMap::new()), 0o755, 0, 0)),
        );
        Layer {
            inodes,
            root: 0,
            next: 1,
        }
    }

    /// Same inodes by sharing (O(1); false negatives possible).
    pub fn same_state(&self, other: &Layer) -> bool {
        self.root == other.root && self.inodes.ptr_eq(&other.inodes)
    }

    /// Whether inode `ino` is (still) in the layer.
    pub fn contains(&self, ino: Ino) -> bool {
        self.inodes.contains_key(&ino)
    }

    pub fn get(&self, ino: Ino) -> &Inode {
        &self.inodes[&ino]
    }

    pub fn get_mut(&mut self, ino: Ino) -> &mut Inode {
        Arc::make_mut(self.inodes.get_mut(&ino).expect("inode exists"))
    }

    /// The inode `ino`, mutable, if it exists.
    pub fn try_get_mut(&mut self, ino: Ino) -> Option<&mut Inode> {
        self.inodes.get_mut(&ino).map(Arc::make_mut)
    }

    /// The entry `name` of directory `dir`.
    pub fn child(&self, dir: Ino, name: &str) -> Option<Ino> {
        self.get(dir).entries()?.get(name).copied()
    }

    /// Allocates a new inode, not yet linked anywhere.
    pub fn alloc(&mut self, inode: Inode) -> Ino {
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(ino, Arc::new(inode));
        ino
    }

    /// Adds entry `name` -> `ino` to `dir` (replacing nothing).
    pub fn link(&mut self, dir: Ino, name: &str, ino: Ino) {
        if let Kind::Dir(e) = &mut self.get_mut(dir).kind {
            e.insert(EntryName::new(name), ino);
        }
        self.get_mut(ino).links += 1;
    }

    /// Points entry `name` of `dir` at `ino` without link accounting (one
    /// half of a rename or exchange).
    pub fn set_entry(&mut self, dir: Ino, name: &str, ino: Ino) {
        if let Kind::Dir(e) = &mut self.get_mut(dir).kind {
            e.insert(EntryName::new(name), ino);
        }
    }

    /// Removes entry `name` of `dir` without link accounting.
    pub fn take_entry(&mut self, dir: Ino, name: &str) -> Option<Ino> {
        match &mut self.get_mut(dir).kind {
            Kind::Dir(e) => e.remove(name),
            _ => None,
        }
    }

    /// Removes entry `name` from `dir`, freeing the inode (and a directory's
    /// whole subtree) when its last link goes.
    pub fn unlink(&mut self, dir: Ino, name: &str) -> Option<Ino> {
        let ino = match &mut self.get_mut(dir).kind {
            Kind::Dir(e) => e.remove(name)?,
            _ => return None,
        };
        self.drop_link(ino);
        Some(ino)
    }

    fn drop_link(&mut self, ino: Ino) {
        let inode = self.get_mut(ino);
        inode.links = inode.links.saturating_sub(1);
        if inode.links > 0 || inode.index_link || inode.open > 0 {
            return;
        }
        if let Some(inode) = self.inodes.remove(&ino) {
            if let Kind::Dir(e) = &inode.kind {
                for (_, child) in e.iter() {
                    self.drop_link(*child);
                }
            }
        }
    }

    /// The index entry that links `ino` was removed (`crate::index`): the
    /// inode goes when no name links it and no fd holds it.
    pub fn unlink_index(&mut self, ino: Ino) {
        let inode = self.get_mut(ino);
        inode.index_link = false;
        if inode.links == 0 && inode.open == 0 {
            inode.links = 1;
            self.drop_link(ino);
        }
    }

    /// An fd holds `ino` (module `fds`).
    pub fn hold(&mut self, ino: Ino) {
        self.get_mut(ino).open += 1;
    }

    /// An fd on `ino` was closed: the inode goes when nothing links or
    /// holds it any more.
    pub fn release(&mut self, ino: Ino) {
        let root = self.root;
        let Some(inode) = self.try_get_mut(ino) else {
            return;
        };
        inode.open = inode.open.saturating_sub(1);
        if inode.open == 0 && inode.links == 0 && !inode.index_link && ino != root {
            // drop_link of an unlinked inode: counts stay at 0, the inode
            // and a directory's subtree go.
            inode.links = 1;
            self.drop_link(ino);
        }
    }

    /// Number of subdirectories of `dir` (for a real directory's nlink).
    pub fn subdir_count(&self, dir: Ino) -> u32 {
        self.get(dir)
            .entries()
            .map(|e| e.values().filter(|i| self.get(**i).is_dir()).count() as u32)
            .unwrap_or(0)
    }

    /// `st_nlink` of the real inode.
    pub fn nlink(&self, ino: Ino) -> u32 {
        let inode = self.get(ino);
        if let Some(n) = inode.nlink {
            return n;
        }
        if inode.is_dir() {
            2 + self.subdir_count(ino)
        } else {
            inode.links + u32::from(inode.index_link)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_str() {
        let mut e = Entries::new();
        for n in ["b", "a", "a.b", "a/x", "long-name-of-more-than-16-bytes"] {
            e.insert(EntryName::new(n), n.len() as Ino);
        }
        let keys: Vec<&str> = e.keys().map(EntryName::as_str).collect();
        assert_eq!(
            keys,
            ["a", "a.b", "a/x", "b", "long-name-of-more-than-16-bytes"]
        );
        assert_eq!(e.get("a/x"), Some(&3));
        assert_eq!(e.get("long-name-of-more-than-16-bytes"), Some(&31));
        assert_eq!(e.get("c"), None);
    }
}
