//! The index at mount time (index=on; overlayfs.rst: "Index"). A mount
//! checks the index directory before any lookup (readdir.c:
//! ovl_indexdir_cleanup, namei.c: ovl_verify_index): an entry of a
//! non-directory that no upper name links any more (st_nlink 1) is removed
//! when its origin no longer decodes (stale) or when its union link count
//! is 0 (orphan). The union link count of an indexed inode is then what
//! inode.c's ovl_get_nlink reads at its first lookup: the upper inode's
//! real count plus the difference in its `nlink` xattr, or the real count
//! alone where the lower inode has one link left. Both only change
//! something after an offline change to a lower layer (`crate::offline`):
//! otherwise every entry keeps a name or a count, and the count is the
//! one the xattr was written from.

use crate::fs::{Ino, LayerId, LowerRef};
use crate::rules::Rule;
use crate::Model;

/// Whether a mount of profile `p` has an index: index=on, and an upper
/// layer on which the kernel keeps it (not userxattr, not an overlay as
/// the lower layer: `Features::from_profile`).
pub fn index_on(p: &ovlcheck_case::Profile) -> bool {
    crate::features::Features::from_profile(p).index
}

impl Model {
    /// The mount's checks of the index: orphan and stale entries removed,
    /// then each indexed inode's union link count read again.
    pub(crate) fn check_index(&mut self) {
        if !self.feat.index || self.upper.is_none() {
            return;
        }
        let entries: Vec<(LowerRef, Ino)> = self.index.iter().map(|(o, u)| (*o, *u)).collect();
        for (origin, ino) in entries {
            let real = self.layer(LayerId::Upper).nlink(ino);
            let lower = self
                .lower_exists(origin)
                .then(|| self.lowers[origin.layer as usize].nlink(origin.ino));
            let orphan = real == 1 && lower.is_none_or(|n| self.get_nlink(ino, n, real, 0) == 0);
            if orphan {
                self.hit(Rule::IndexCleanup);
                self.index.remove(&origin);
                self.upper_mut().get_mut(ino).union_nlink = None;
                self.upper_mut().unlink_index(ino);
                continue;
            }
            if lower == Some(1) {
                self.hit(Rule::IndexNlinkFallback);
            }
            // A stale origin: the upper names are upper files of their own
            // (no lower, so no index lookup), counted as the real inode.
            let union = lower.map(|n| self.get_nlink(ino, n, real, real));
            if self.upper_inode(ino).union_nlink != union {
                self.upper_mut().get_mut(ino).union_nlink = union;
            }
        }
    }

    /// inode.c: ovl_get_nlink: the union link count of indexed upper inode
    /// `ino` (real count `real`) over a lower inode with `lower` links:
    /// `fallback` where the lower has one link or the count read is not
    /// positive, else the `nlink` xattr's base (`U`: the upper's real
    /// count) plus its difference.
    fn get_nlink(&self, ino: Ino, lower: u32, real: u32, fallback: u32) -> u32 {
        if lower == 1 {
            return fallback;
        }
        let xattr = self.upper_inode(ino).ovl.nlink.as_deref();
        let count = xattr.and_then(|x| {
            let (base, diff) = x.split_at(1);
            let base = match base {
                "U" => real,
                "L" => lower,
                _ => return None,
            };
            Some(i64::from(base) + diff.parse::<i64>().ok()?)
        });
        match count {
            Some(n) if n > 0 => n as u32,
            _ => fallback,
        }
    }
}
