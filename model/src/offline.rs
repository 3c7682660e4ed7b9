//! Offline changes to a lower layer (overlayfs.rst: "Changes to underlying
//! filesystems"): while the overlay is unmounted an entry of a lower
//! layer's directory is removed or replaced, and the overlay is mounted
//! again. The document allows such changes where none of metacopy, index,
//! xino and redirect_dir=on has been used (overlayfs.h:
//! ovl_allow_offline_changes) and leaves the result undefined elsewhere.
//! The model runs them where they are allowed, and with index=on, where
//! the kernel's mount-time checks of the index decide what a change to a
//! copied-up lower hard link does (`crate::index`, observed on 6.18; the
//! case fstests overlay/042 tests); it refuses them with metacopy,
//! redirect_dir=on or xino=on.
//!
//! What follows is the mount's own: the merged tree shows the layers as
//! they are now, and an upper object whose `origin` names a lower inode
//! that is gone has no origin any more (namei.c: ovl_check_origin ignores
//! ESTALE), so its st_ino is the upper's ([`Model::decodes_origin`]).

use crate::fs::{Ino, Inode, Kind, Layer};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::layer::DEFAULT_MTIME;
use ovlcheck_case::{Errno, OfflineChange};
use std::sync::Arc;

/// Whether a mount of profile `p` takes offline changes to its lower
/// layers (`offline` steps): a case generator makes them only there.
pub fn offline_changes(p: &ovlcheck_case::Profile) -> bool {
    crate::features::Features::from_profile(p).offline_changes()
}

impl crate::features::Features {
    /// Whether this mount takes offline changes to its lower layers.
    pub(crate) fn offline_changes(&self) -> bool {
        refusal(self).is_none()
    }
}

/// Why a mount with features `f` takes no offline changes to its lower
/// layers, if it takes none.
fn refusal(f: &crate::features::Features) -> Option<&'static str> {
    if f.offline_undefined {
        Some(
            "offline changes to a lower layer are undefined once metacopy, xino=on or \
             redirect_dir=on has been used (overlayfs.rst: Changes to underlying filesystems)",
        )
    } else if f.nested {
        Some("offline changes to the layers of an inner overlay (lower=overlay) are not modelled")
    } else if f.idmapped {
        Some("offline changes to idmapped layers are not modelled")
    } else if f.volatile {
        Some("offline changes to the lower layers of a volatile mount are not modelled")
    } else {
        None
    }
}

/// Why the offline changes of `case` (a mount with features `f`) are not
/// modelled, if it has any: the mount's refusal, or inode flags in its
/// lower layers, which refuse a removal part-way through a tree and give a
/// new file flags of its directory.
pub(crate) fn case_refusal(
    case: &ovlcheck_case::Case,
    f: &crate::features::Features,
) -> Option<&'static str> {
    let offline = case
        .steps
        .iter()
        .any(|s| matches!(s.op, ovlcheck_case::Op::Offline { .. }));
    if !offline {
        return None;
    }
    let flags = case
        .lowers
        .iter()
        .flat_map(|l| &l.entries)
        .any(|e| matches!(e, ovlcheck_case::Entry::Attr { .. }));
    refusal(f).or_else(|| {
        flags.then_some("offline changes to lower layers with inode flags are not modelled")
    })
}

impl Model {
    /// `offline LAYER CHANGE`: every fd closed, the overlay unmounted,
    /// `change` made in lower layer `layer` (the case's numbering), the
    /// overlay mounted again. A change the layer's directory refuses
    /// (ENOENT, ENOTDIR, EISDIR) leaves it as it was.
    pub(crate) fn offline(&self, layer: usize, change: &OfflineChange) -> Result<Model, Errno> {
        let mut m = self.clone();
        m.close_all_fds();
        let lowers = Arc::make_mut(&mut m.lowers);
        let target = &mut lowers[self.data_layers + layer];
        let mut changed = target.clone();
        apply(self, &mut changed, change)?;
        *target = changed;
        self.hit(Rule::OfflineChange);
        Ok(m.remount())
    }

    /// Whether lower inode `r` is still in its layer (an offline change
    /// may have removed it).
    pub(crate) fn lower_exists(&self, r: crate::fs::LowerRef) -> bool {
        self.lowers[r.layer as usize].contains(r.ino)
    }
}

/// Makes `change` in `layer`, as `rm -r` or a new file would; a new file
/// takes its directory's default ACL (posix_acl_create), as any new file
/// on the layer's filesystem does.
fn apply(m: &Model, layer: &mut Layer, change: &OfflineChange) -> Result<(), Errno> {
    let names = change.path().names();
    let (last, parents) = names.split_last().ok_or(Errno::EINVAL)?;
    let mut dir: Ino = layer.root;
    for n in parents {
        dir = match layer.child(dir, n.as_str()) {
            Some(c) if layer.get(c).is_dir() => c,
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::ENOENT),
        };
    }
    let name = last.as_str();
    let existing = layer.child(dir, name);
    match change {
        OfflineChange::Remove(_) => {
            existing.ok_or(Errno::ENOENT)?;
            layer.unlink(dir, name);
        }
        OfflineChange::File { mode, data, .. } => {
            if existing.is_some_and(|c| layer.get(c).is_dir()) {
                return Err(Errno::EISDIR);
            }
            if existing.is_some() {
                layer.unlink(dir, name);
            }
            let mut inode = Inode::new(Kind::File(Arc::new(data.clone())), *mode, 0, 0);
            inode.mtime = Some(DEFAULT_MTIME);
            m.inherit_acls(layer.get(dir), &mut inode);
            let ino = layer.alloc(inode);
            layer.link(dir, name, ino);
        }
    }
    Ok(())
}
