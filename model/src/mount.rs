//! Mount-time work and the lifecycle ops (`remount`, `commit`).

use crate::fs::{Ident, Ino, Layer, LowerRef};
use crate::lookup::Dentry;
use crate::resolve::push_name;
use crate::rules::Rule;
use crate::Model;
use imbl::OrdMap;
use ovlcheck_case::InodeFlags;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The layers as mounted, and the inode snapshot taken from them on first
/// need: the smallest merged path each non-directory had at mount.
#[derive(Debug, Default)]
pub(crate) struct MountSnapshot {
    lowers: Arc<Vec<Layer>>,
    upper: Option<Layer>,
    /// The index as mounted: its entries are the ones the mount's first
    /// lookups met ([`Model::index_alias_refused`]).
    pub(crate) index: OrdMap<LowerRef, Ino>,
    /// Merged directories whose first lookup, the mount-time walk's, failed
    /// ([`Model::fix_origins`]): that walk saw nothing below them.
    pub(crate) unwalked: Vec<String>,
    /// Upper directories the mount's first lookups marked impure, a merged
    /// directory below them getting its origin (ovl_fix_origin): the walk
    /// that makes those lookups lists each of them before (module `readdir`).
    pub(crate) marked_impure: Vec<Ino>,
    /// Directories of the lowest regular layer marked `opaque=x` whose
    /// mount-time lookup took them as holding xattr whiteouts
    /// ([`Model::kept_xwhiteouts`]).
    pub(crate) xwhiteout_dirs: Vec<LowerRef>,
    pub(crate) map: OnceLock<BTreeMap<Ident, String>>,
}

impl Model {
    /// Mounts the current layers: marks a fresh upper root (uuid, and the
    /// index origin), fixes missing origins of merged directories as the
    /// first lookup does, and takes the inode snapshot for `View::ino`.
    pub(crate) fn mount(&mut self) {
        let index = self.feat.index;
        let uuid = self.feat.uuid_xattr;
        if let Some(upper) = self.upper.as_mut() {
            let root = upper.root;
            let r = upper.get_mut(root);
            // super.c: ovl_init_uuid_xattr (uuid=auto on a new upper).
            r.ovl.uuid |= uuid;
            // super.c: ovl_verify_origin of the upper root with index=on.
            if index && r.ovl.origin.is_none() {
                r.ovl.origin = Some(None);
            }
            // The root inode is made without ovl_check_protattr (observed
            // on 6.18): its `protattr` counts for nothing once mounted again.
            r.prot = InodeFlags::NONE;
        }
        if self.upper.is_some() {
            self.hit(match (uuid, self.feat.uuid_off) {
                (true, _) => Rule::UuidXattr,
                (false, true) => Rule::UuidOff,
                (false, false) => Rule::NoUuidXattrBefore66,
            });
        }
        self.check_index();
        self.walked = false;
        let (unwalked, marked_impure) = self.fix_origins();
        self.mem_lower = OrdMap::new();
        self.kept_lower = OrdMap::new();
        self.fresh_links = imbl::OrdSet::new();
        self.pending_links = OrdMap::new();
        self.snapshot = Arc::new(MountSnapshot {
            lowers: self.lowers.clone(),
            upper: self.upper.clone(),
            index: self.index.clone(),
            unwalked,
            marked_impure,
            xwhiteout_dirs: Vec::new(),
            map: OnceLock::new(),
        });
        // The walk's copy of the model is gone by now: the snapshot just
        // made is this model's alone.
        let xwhiteout_dirs = self.first_xwhiteout_dirs();
        Arc::get_mut(&mut self.snapshot)
            .expect("the snapshot this mount made is not shared")
            .xwhiteout_dirs = xwhiteout_dirs;
    }

    /// namei.c: ovl_lookup_single. With data-only layers, the first
    /// lookup of a directory not in the upper layer reads `opaque=x` even
    /// in the lowest regular layer (`d->last` is not set while the name is
    /// not known to be a directory), and the dentry keeps that mark
    /// (ovl_dentry_set_xwhiteouts) until the mount ends: a later copy-up
    /// of the directory leaves its merged listing hiding the xattr
    /// whiteouts, where a fresh lookup, which finds the upper directory
    /// first, would not take the mark (observed on 6.18,
    /// corpus/rules/117-nested-escaped-markers.ovl). The mount-time walk
    /// makes those first lookups: the directories it marked.
    fn first_xwhiteout_dirs(&self) -> Vec<LowerRef> {
        let bottom = self.data_layers;
        let marked = self.data_layers > 0
            && self.feat.xwhiteouts
            && self.lowers.get(bottom).is_some_and(|l| {
                l.inodes
                    .values()
                    .any(|i| i.is_dir() && i.ovl.opaque == Some('x'))
            });
        if !marked {
            return Vec::new();
        }
        // The walk decides nothing a case observes: its rules are not logged.
        let quiet = Model {
            rules: Default::default(),
            ..self.clone()
        };
        let mut out = Vec::new();
        quiet.walk_merged(
            &mut |_, d| {
                if d.xwhiteout_layers.contains(&bottom) {
                    out.extend(d.lowers.iter().filter(|r| r.layer as usize == bottom));
                }
            },
            &mut |_, _| {},
        );
        out
    }

    /// Whether lower directory `r` keeps the xattr-whiteouts mark its
    /// mount-time lookup gave its dentry ([`Model::first_xwhiteout_dirs`]).
    pub(crate) fn kept_xwhiteouts(&self, r: LowerRef) -> bool {
        self.snapshot.xwhiteout_dirs.contains(&r)
    }

    /// The mount-time snapshot, taken on first need from the layers as
    /// they were mounted.
    pub(crate) fn snapshot_map(&self) -> &BTreeMap<Ident, String> {
        let s = &self.snapshot;
        s.map.get_or_init(|| {
            let m = Model {
                feat: self.feat,
                lowers: s.lowers.clone(),
                data_layers: self.data_layers,
                upper: s.upper.clone(),
                index: s.index.clone(),
                snapshot: Arc::new(MountSnapshot::default()),
                mem_lower: OrdMap::new(),
                kept_lower: OrdMap::new(),
                fresh_links: imbl::OrdSet::new(),
                pending_links: OrdMap::new(),
                fds: Default::default(),
                walked: false,
                // The snapshot walk decides nothing a case observes.
                rules: Default::default(),
            };
            m.take_snapshot(&s.unwalked)
        })
    }

    /// Whether the raw state is still the one mounted (so a walk of the
    /// merged tree now is the snapshot walk). The snapshot holds clones of
    /// the mounted maps, so any later change made them diverge.
    pub(crate) fn is_mount_state(&self) -> bool {
        let s = &self.snapshot;
        self.mem_lower.is_empty()
            && self.kept_lower.is_empty()
            && self.fresh_links.is_empty()
            && self.pending_links.is_empty()
            && self.index.ptr_eq(&s.index)
            && self.lowers.len() == s.lowers.len()
            && self
                .lowers
                .iter()
                .zip(s.lowers.iter())
                .all(|(a, b)| a.same_state(b))
            && match (&self.upper, &s.upper) {
                (Some(a), Some(b)) => a.same_state(b),
                (None, None) => true,
                _ => false,
            }
    }

    /// namei.c: ovl_fix_origin. The first lookup of a merged directory whose
    /// upper has no origin stores the topmost lower dir as origin and marks
    /// the upper parent impure, as soon as it finds that lower dir: a
    /// lookup that then fails in a layer below (a malformed or refused
    /// redirect) has stored it too (observed on 6.18). The model does this
    /// for every merged directory at mount, as a walk of the merged tree
    /// would. Returns the directories whose first lookup failed: where the
    /// parent's upper refuses its impure mark (an unmapped id,
    /// docs/semantics.md §1.16), the lookup that sets the origin fails,
    /// and only later ones find it set.
    fn fix_origins(&mut self) -> (Vec<String>, Vec<Ino>) {
        let Some(upper) = &self.upper else {
            return Default::default();
        };
        let candidate = upper
            .inodes
            .iter()
            .any(|(ino, i)| *ino != upper.root && i.is_dir() && i.ovl.origin.is_none());
        if !candidate {
            return Default::default();
        }
        let mut fixes: Vec<(String, Ino, Option<Ino>, LowerRef)> = Vec::new();
        self.walk_merged_dirs(&mut |path: &str, parent: Option<&Dentry>, d: &Dentry| {
            if let (Some(u), Some(first)) = (d.upper, d.lowers.first()) {
                if self.upper_inode(u).is_dir() && self.lower_inode(*first).is_dir() {
                    fixes.push((path.to_string(), u, parent.and_then(|p| p.upper), *first));
                }
            }
        });
        let mut unwalked = Vec::new();
        let mut marked = Vec::new();
        for (path, u, parent, first) in fixes {
            let is_root = u == self.upper_mut().root;
            let inode = self.upper_mut().get_mut(u);
            if is_root || inode.ovl.origin.is_some() {
                continue;
            }
            // An upper with an id its idmapped mount does not map keeps no
            // origin, and a parent with such an id no impure mark: both
            // xattrs are refused (EPERM, docs/semantics.md §1.16).
            if inode.ids_mapped() {
                inode.ovl.origin = Some(Some(first));
                self.hit(Rule::FixOrigin);
            } else {
                self.hit(Rule::LookupOriginUnmapped);
            }
            match parent {
                Some(p) if self.upper_inode(p).ids_mapped() => {
                    if !self.upper_inode(p).ovl.impure {
                        marked.push(p);
                    }
                    self.set_impure(p);
                }
                Some(p) if !self.upper_inode(p).ovl.impure => unwalked.push(path),
                _ => {}
            }
        }
        (unwalked, marked)
    }

    /// Visits every merged directory (and its parent), and what the
    /// lookup of a name found before it failed: an upper directory over
    /// the first lower one ([`Model::lookup_into`]).
    pub(crate) fn walk_merged_dirs(&self, f: &mut dyn FnMut(&str, Option<&Dentry>, &Dentry)) {
        fn rec(
            m: &Model,
            path: &mut String,
            parent: Option<&Dentry>,
            d: &Dentry,
            f: &mut dyn FnMut(&str, Option<&Dentry>, &Dentry),
        ) {
            f(path, parent, d);
            let len = path.len();
            // Every name a listing looks up, the ones it then leaves out
            // as stale included (readdir.c: ovl_cache_update looks them up).
            let names = m.merged_entries(d).into_iter().filter(|e| !e.whiteout);
            for name in names.map(|e| e.name) {
                let mut c = Dentry::default();
                let found = m.lookup_into(d, name, &mut c);
                push_name(path, name);
                match found {
                    Ok(()) if c.is_positive() && c.is_dir => rec(m, path, Some(d), &c, f),
                    Ok(()) => {}
                    Err(_) => f(path, Some(d), &c),
                }
                path.truncate(len);
            }
        }
        rec(self, &mut String::new(), None, &self.root_dentry(), f);
    }

    /// `remount`: the same layers, a new mount.
    pub(crate) fn remount(&self) -> Model {
        let mut m = self.clone();
        m.mount();
        m
    }

    /// `commit`: the upper (markers kept as on disk) becomes the top lower
    /// layer and a fresh empty upper is mounted; the index goes with the
    /// old work dir.
    pub(crate) fn commit(&self) -> Model {
        let mut m = self.clone();
        if let Some(mut upper) = m.upper.take() {
            self.hit(Rule::Commit);
            // The old work dir, index included, stays on disk: index
            // links still count in st_nlink of the committed layer.
            let indexed: Vec<Ino> = m.index.values().copied().collect();
            for ino in indexed {
                if let Some(inode) = upper.try_get_mut(ino) {
                    inode.union_nlink = None;
                }
            }
            // A lower inode's `protattr` counts for nothing (util.c:
            // ovl_check_protattr runs for upper inodes only).
            let protected: Vec<Ino> = upper
                .inodes
                .iter()
                .filter(|(_, i)| !i.prot.is_empty())
                .map(|(ino, _)| *ino)
                .collect();
            if !protected.is_empty() {
                self.hit(Rule::ProtattrBelow);
            }
            for ino in protected {
                upper.get_mut(ino).prot = InodeFlags::NONE;
            }
            Arc::make_mut(&mut m.lowers).push(upper);
            m.upper = Some(Layer::new());
        } else {
            // Read-only: the container layer becomes an image layer and a
            // new empty container layer goes on top (what the driver does).
            Arc::make_mut(&mut m.lowers).push(Layer::new());
        }
        m.index = OrdMap::new();
        m.mount();
        m
    }

    /// Each non-directory's identity, by the smallest merged path that has it.
    pub(crate) fn take_snapshot(&self, unwalked: &[String]) -> BTreeMap<Ident, String> {
        let mut snap: BTreeMap<Ident, String> = BTreeMap::new();
        let below = |path: &str| {
            unwalked.iter().any(|dir| {
                path.strip_prefix(dir.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        self.walk_merged(
            &mut |path: &str, d: &Dentry| {
                if !d.is_dir && !below(path) {
                    let id = self.ident(path, d);
                    match snap.get(&id) {
                        Some(p) if p.as_str() <= path => {}
                        _ => {
                            snap.insert(id, path.to_string());
                        }
                    }
                }
            },
            &mut |_, _| {},
        );
        snap
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn commit_moves_the_upper_below_and_mounts_a_fresh_one() {
        let mut m = model("lower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "unlink f"), "ok");
        assert_eq!(run(&mut m, "commit"), "ok");
        assert_eq!(m.lower_count(), 2);
        assert_eq!(upper(&m), "/ dir 0755 0:0 uuid=uuid\n");
        assert!(m.lower_view(1).to_string().contains("f whiteout"));
        assert_eq!(run(&mut m, "stat f"), "ENOENT");
    }

    #[test]
    fn mount_fixes_missing_origin_of_merged_upper_dirs() {
        let m = model("lower\n  dir d 0755\nupper\n  dir d 0755\n");
        assert!(upper(&m).contains("d dir 0755 0:0 origin=fh"));
        assert!(upper(&m).starts_with("/ dir 0755 0:0 impure=y uuid=uuid"));
    }
}
