//! Directory listings (overlayfs.rst: "readdir"; readdir.c).

use crate::features::InoMode;
use crate::fs::{Layer, LayerId};
use crate::lookup::Dentry;
use crate::names::{cmp_names, EntryName};
use crate::resolve::join_path;
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::Errno;

impl Model {
    /// ovl_dir_is_real: a directory that lies in one layer only and has no
    /// origin xattr is read straight from that layer, whiteouts included
    /// (inode.c: ovl_get_inode sets OVL_WHITEOUTS otherwise). The origin
    /// is the upper's, or the top lower's without an upper: a committed
    /// directory keeps the origin it had as an upper, which a lower
    /// directory of its name no longer answers after an offline change.
    pub(crate) fn dir_is_real(&self, d: &Dentry) -> bool {
        let layers = usize::from(d.upper.is_some()) + d.lowers.len();
        let origin = match (d.upper, d.lowers.first()) {
            (Some(u), _) => self.upper_inode(u).ovl.origin.is_some(),
            (None, Some(&l)) => self.lower_inode(l).ovl.origin.is_some(),
            (None, None) => false,
        };
        layers == 1 && !origin
    }

    /// ovl_dir_read_merged: every name of a merged directory, upper first
    /// then each lower; the first layer that has a name decides; `true`
    /// marks whiteouts (char 0/0, or xattr whiteouts in `opaque=x` lower
    /// dirs), which hide the name below and are not listed.
    /// Sorted by name.
    pub(crate) fn merged_entries(&self, d: &Dentry) -> Vec<Listed<'_>> {
        let mut out = Vec::new();
        if let Some(u) = d.upper {
            read_layer(self.layer(LayerId::Upper), u, false, &mut out);
        }
        for l in &d.lowers {
            let xw = d.xwhiteout_layers.contains(&(l.layer as usize));
            if xw {
                self.hit(Rule::ReaddirXwhiteouts);
            }
            read_layer(&self.lowers[l.layer as usize], l.ino, xw, &mut out);
        }
        // Stable: the topmost layer's entry of a name comes first and stays.
        out.sort_by(|a, b| cmp_names(a.name, b.name));
        out.dedup_by(|later, first| later.name == first.name);
        out
    }

    /// Whether upper directory `u` is listed by the mount's first walk
    /// before that walk's lookups mark it impure (ovl_fix_origin of a
    /// merged directory in it): its listing then computes no d_ino, so
    /// it keeps names a lookup would drop (an upper xattr whiteout).
    fn listed_before_marked(&self, u: u32) -> bool {
        let first_walk = !self.walked && self.snapshot.marked_impure.contains(&u);
        if first_walk {
            self.hit(Rule::ReaddirBeforeFixOrigin);
        }
        first_walk
    }

    /// What `getdents` returns for a directory, sorted, without `.`/`..`.
    pub(crate) fn readdir_names(&self, d: &Dentry) -> Result<Vec<String>, Errno> {
        let names = self.readdir_names_ref(d)?;
        Ok(names.into_iter().map(str::to_string).collect())
    }

    /// [`Model::readdir_names`], borrowed from the layers.
    pub(crate) fn readdir_names_ref(&self, d: &Dentry) -> Result<Vec<&str>, Errno> {
        if self.dir_is_real(d) {
            let (layer, ino) = match d.upper {
                Some(u) => (self.layer(LayerId::Upper), u),
                None => (&self.lowers[d.lowers[0].layer as usize], d.lowers[0].ino),
            };
            let entries = layer.get(ino).entries();
            if entries.is_some_and(|e| e.values().any(|c| layer.get(*c).is_whiteout())) {
                self.hit(Rule::ReaddirReal);
            }
            let names: Vec<&str> = entries
                .map(|e| e.keys().map(EntryName::as_str).collect())
                .unwrap_or_default();
            self.impure_real_lookups(d, &names)?;
            return Ok(names);
        }
        if usize::from(d.upper.is_some()) + d.lowers.len() > 1 {
            self.hit(Rule::ReaddirMerged);
        }
        let upper_entries = d.upper.and_then(|u| self.upper_inode(u).entries());
        let impure_now = d
            .upper
            .is_some_and(|u| self.upper_inode(u).ovl.impure && !self.listed_before_marked(u));
        // A listing an open fd keeps cached is reused: its entries' d_ino
        // were set, or left to look up, when it was made.
        let impure = match self.cached_listing_impure(d) {
            Some(then) if then != impure_now => {
                self.hit(Rule::FdReaddirCache);
                then
            }
            _ => impure_now,
        };
        Ok(self
            .merged_entries(d)
            .into_iter()
            .filter(|e| !e.whiteout)
            .filter(|e| {
                let from_upper = upper_entries.is_some_and(|u| u.contains_key(e.name));
                let looked_up = e.check_xwhiteout || self.calc_d_ino(from_upper, impure);
                let stale = looked_up && self.is_stale_entry(d, e.name);
                if stale {
                    self.hit(Rule::ReaddirStaleEntry);
                }
                !stale
            })
            .map(|e| e.name)
            .collect::<Vec<_>>())
    }

    /// readdir.c ovl_dir_read_impure: the listing of an impure directory
    /// with one layer, where d_ino is computed (on one filesystem, or with
    /// xino), looks every entry up first (ovl_cache_update), and a lookup
    /// that fails (not a negative one) fails the listing with its error,
    /// whatever the entries' order (observed on 6.18).
    fn impure_real_lookups(&self, d: &Dentry, names: &[&str]) -> Result<(), Errno> {
        let impure = d.upper.is_some_and(|u| self.upper_inode(u).ovl.impure);
        if !impure || self.feat.ino == InoMode::PseudoDev {
            return Ok(());
        }
        for name in names {
            match self.lookup(d, name) {
                Ok(_) | Err(Errno::ENOENT) => {}
                Err(e) => {
                    self.hit(Rule::ReaddirImpureLookupFails);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Whether listing directory `d` looks its upper entries up (to give
    /// them their d_ino): [`Model::impure_real_lookups`] for a real
    /// directory, [`Model::calc_d_ino`] for a merged one.
    pub(crate) fn listing_looks_up(&self, d: &Dentry) -> bool {
        let impure = d.upper.is_some_and(|u| self.upper_inode(u).ovl.impure);
        if self.dir_is_real(d) {
            impure && self.feat.ino != InoMode::PseudoDev
        } else {
            self.calc_d_ino(true, impure)
        }
    }

    /// readdir.c ovl_calc_d_ino: whether iterating a merged directory looks
    /// the entry up to compute its d_ino: always with xino, else for upper
    /// entries of an impure directory on one filesystem.
    fn calc_d_ino(&self, from_upper: bool, impure: bool) -> bool {
        match self.feat.ino {
            InoMode::Xino => true,
            InoMode::SameFs => from_upper && impure,
            InoMode::PseudoDev => false,
        }
    }

    /// readdir.c ovl_cache_update: an entry whose lookup is negative (an
    /// xattr whiteout outside an `opaque=x` directory) or fails (a
    /// metacopy file without data below: EIO) is stale and not listed
    /// (verified on 6.18 with xino=on, and in an impure directory; the
    /// kernel logs "failed to look up (NAME) for ino (ERRNO)").
    fn is_stale_entry(&self, d: &Dentry, name: &str) -> bool {
        self.lookup(d, name).map_or(true, |c| !c.is_positive())
    }

    /// readdir.c ovl_cache_get_impure: reading an impure directory that is
    /// read raw (see [`Model::dir_is_real`]) drops its `impure` xattr when
    /// no entry needs its d_ino translated, that is no entry is
    /// OVL_TYPE_ORIGIN ([`Model::hashed_lower`]; only with one st_dev:
    /// samefs or xino). A name made by `link` from a file known by a lower
    /// its fresh lookup does not find is looked up afresh without it (see
    /// `Model::fresh_links`), so it needs none. Returns the upper directory
    /// to clear.
    pub(crate) fn readdir_clears_impure(&self, path: &str, d: &Dentry) -> Option<u32> {
        let u = d.upper?;
        let up = self.layer(LayerId::Upper);
        let inode = up.get(u);
        if !inode.ovl.impure || !self.dir_is_real(d) || self.feat.ino == InoMode::PseudoDev {
            return None;
        }
        // `..` never keeps the flag: ovl_dir_read_impure translates no d_ino
        // of `.` or `..` (observed on 6.18: a pure upper dir under a merged
        // dir loses a stale impure on listing, whatever the options).
        let entries = inode.entries()?;
        // ovl_dir_read_impure looks every entry up (ovl_cache_update): one
        // that fails fails the listing, and nothing is cleared (found by
        // fuzz --profile userxattr --cases 6000 --seed 2, case 4298:
        // corpus/regressions/impure-kept-when-a-lookup-fails.ovl); one whose
        // overlay inode is hashed by a lower gets that lower's st_ino as its
        // d_ino, so the flag stays.
        for (name, _) in entries.iter() {
            match self.lookup(d, name) {
                Err(_) => return None,
                Ok(c) if c.is_positive() && self.type_origin(|| join_path(path, name), &c) => {
                    return None
                }
                Ok(_) => {}
            }
        }
        self.hit(Rule::ReaddirImpureCleared);
        Some(u)
    }

    /// ovl_check_empty_dir: true when the merged listing holds only
    /// whiteouts.
    pub(crate) fn merged_dir_is_empty(&self, d: &Dentry) -> bool {
        self.merged_entries(d).iter().all(|e| e.whiteout)
    }
}

/// One name of a merged listing, as the topmost layer that has it gives it.
pub(crate) struct Listed<'a> {
    pub name: &'a str,
    /// A whiteout: hides the name and is not listed.
    pub whiteout: bool,
    /// A regular file in an `opaque=x` lower directory: iterating looks
    /// it up, and does not list it if the lookup finds no object or fails
    /// (readdir.c: check_xwhiteout, ovl_cache_update).
    pub check_xwhiteout: bool,
}

fn read_layer<'a>(layer: &'a Layer, dir: u32, xwhiteouts: bool, out: &mut Vec<Listed<'a>>) {
    let parent = layer.get(dir);
    let Some(entries) = parent.entries() else {
        return;
    };
    for (name, ino) in entries.iter() {
        let inode = layer.get(*ino);
        out.push(Listed {
            name: name.as_str(),
            whiteout: (inode.is_whiteout() && !inode.listed)
                || (xwhiteouts && inode.is_xwhiteout()),
            check_xwhiteout: xwhiteouts && inode.is_reg(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn merged_listing_hides_whiteouts_once_per_name() {
        let text = "lower\n  dir d 0755\n  file d/a 0644 \"a\"\n  file d/b 0644 \"b\"\n\
                    lower\n  dir d 0755\n  whiteout d/b\n  file d/a 0644 \"a1\"\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "readdir d"), "[\"a\"]");
    }

    #[test]
    fn a_real_single_layer_dir_lists_its_raw_entries() {
        let mut m = model("lower\n  dir top 0755\nlower\n  dir d 0755\n  whiteout d/gone\n");
        assert_eq!(run(&mut m, "readdir d"), "[\"gone\"]");
        assert_eq!(run(&mut m, "stat d/gone"), "ENOENT");
    }
}
