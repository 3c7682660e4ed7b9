//! Lookup of one name in a merged directory, following the kernel's
//! `ovl_lookup` (namei.c) step by step: the upper layer first, then the
//! parent's lower stack top to bottom; a non-directory, a whiteout or an
//! opaque directory stops the descent; directories merge; redirects change
//! the name looked up below (overlayfs.rst: "Directories", "whiteouts and
//! opaque directories", "Redirect dir").

use crate::fs::{Ino, Inode, LayerId, LowerRef};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::Errno;
use std::borrow::Cow;

/// What overlay's lookup found for one name (an `ovl_entry` plus the upper
/// dentry). Negative when nothing was found.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Dentry {
    /// The upper object: in the upper directory, or (index=on) an index
    /// entry for a lower hard link not yet linked into the upper dir.
    pub upper: Option<Ino>,
    /// False when `upper` is an index entry only.
    pub upper_alias: bool,
    /// Lower stack, topmost first. Directories: every merged lower dir. Non-
    /// directories: the object found by path and, for metacopy, the data.
    pub lowers: Stack,
    /// Copy-up origin of an upper non-directory (origin xattr).
    pub origin: Option<LowerRef>,
    /// Upper whiteout (negative) or upper opaque dir (ovl_dentry_is_opaque).
    pub opaque: bool,
    /// The upper redirect as read on lookup (ovl_dentry_get_redirect).
    pub redirect: Option<String>,
    pub is_dir: bool,
    /// Lower layers (by index) whose directory here is `opaque=x`.
    pub xwhiteout_layers: Vec<usize>,
    /// The overlay root (its lower stack is every lower root).
    pub root: bool,
    /// A metacopy file whose absolute redirect names no regular file in
    /// any data-only layer: its lookup succeeds, and the lazy lookup of its
    /// data fails (ENOENT) where data is needed: an open that is not
    /// O_PATH, a copy-up (namei.c: ovl_maybe_lookup_lowerdata).
    pub lowerdata_missing: bool,
}

/// A lower stack: inline up to [`Stack::INLINE`] entries (no allocation
/// per lookup), on the heap beyond.
#[derive(Clone)]
pub(crate) enum Stack {
    Inline(u8, [LowerRef; Stack::INLINE]),
    Heap(Vec<LowerRef>),
}

impl Stack {
    const INLINE: usize = 4;
    const EMPTY: LowerRef = LowerRef { layer: 0, ino: 0 };

    pub fn push(&mut self, r: LowerRef) {
        match self {
            Stack::Inline(n, a) if usize::from(*n) < Stack::INLINE => {
                a[usize::from(*n)] = r;
                *n += 1;
            }
            Stack::Inline(n, a) => {
                let mut v = a[..usize::from(*n)].to_vec();
                v.push(r);
                *self = Stack::Heap(v);
            }
            Stack::Heap(v) => v.push(r),
        }
    }

    pub fn truncate(&mut self, len: usize) {
        match self {
            Stack::Inline(n, _) => {
                if len < usize::from(*n) {
                    *n = len as u8;
                }
            }
            Stack::Heap(v) => v.truncate(len),
        }
    }
}

impl Default for Stack {
    fn default() -> Stack {
        Stack::Inline(0, [Stack::EMPTY; Stack::INLINE])
    }
}

impl std::ops::Deref for Stack {
    type Target = [LowerRef];
    fn deref(&self) -> &[LowerRef] {
        match self {
            Stack::Inline(n, a) => &a[..usize::from(*n)],
            Stack::Heap(v) => v,
        }
    }
}

impl PartialEq for Stack {
    fn eq(&self, other: &Stack) -> bool {
        **self == **other
    }
}

impl Eq for Stack {}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Stack {
    type Item = &'a LowerRef;
    type IntoIter = std::slice::Iter<'a, LowerRef>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Dentry {
    pub fn is_positive(&self) -> bool {
        self.upper.is_some() || !self.lowers.is_empty()
    }

    /// A negative dentry hiding something: an upper whiteout
    /// (ovl_dentry_is_whiteout).
    pub fn is_whiteout(&self) -> bool {
        !self.is_positive() && self.opaque
    }

    /// OVL_TYPE_MERGE for directories: upper with lowers, or several lowers
    /// (util.c: ovl_path_type).
    pub fn is_merge_dir(&self) -> bool {
        self.is_dir && (self.upper.is_some() && !self.lowers.is_empty() || self.lowers.len() > 1)
    }

    /// ovl_type_merge_or_lower.
    pub fn is_merge_or_lower(&self, m: &Model) -> bool {
        self.upper.is_none() || self.is_type_merge(m)
    }

    /// OVL_TYPE_MERGE: directories with layers below, or a metacopy upper
    /// (util.c: ovl_path_type).
    pub fn is_type_merge(&self, m: &Model) -> bool {
        match self.upper {
            Some(u) => !self.lowers.is_empty() && (self.is_dir || m.upper_inode(u).ovl.metacopy),
            None => self.lowers.len() > 1 && self.is_dir,
        }
    }
}

/// The name a lookup looks for: the dentry's own name, or the path a
/// redirect replaced it with.
enum LookupName<'a> {
    Single(&'a str),
    Path(Vec<String>),
}

impl LookupName<'_> {
    fn len(&self) -> usize {
        match self {
            LookupName::Single(_) => 1,
            LookupName::Path(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> &str {
        match self {
            LookupName::Single(s) => s,
            LookupName::Path(v) => &v[i],
        }
    }

    fn to_vec(&self) -> Vec<String> {
        match self {
            LookupName::Single(s) => vec![s.to_string()],
            LookupName::Path(v) => v.clone(),
        }
    }
}

/// ovl_lookup_data: the state of one lookup.
struct LookupData<'a> {
    /// The name looked up (one component, or an absolute redirect path).
    name: LookupName<'a>,
    absolute: bool,
    is_dir: bool,
    opaque: bool,
    stop: bool,
    last: bool,
    metacopy: bool,
    redirect: Option<String>,
    xwhiteouts: bool,
}

impl Model {
    /// The root dentry: upper root over every lower root (data-only
    /// layers are not merged).
    pub(crate) fn root_dentry(&self) -> Dentry {
        Dentry {
            upper: self.upper.as_ref().map(|u| u.root),
            upper_alias: self.upper.is_some(),
            lowers: {
                let mut s = Stack::default();
                for i in (self.data_layers..self.lowers.len()).rev() {
                    s.push(LowerRef {
                        layer: i as u32,
                        ino: self.lowers[i].root,
                    });
                }
                s
            },
            is_dir: true,
            root: true,
            ..Dentry::default()
        }
    }

    /// Lower roots of the regular layers below `layer` (all when
    /// `usize::MAX`), top first.
    fn root_stack_below(&self, layer: usize) -> Vec<LowerRef> {
        (self.data_layers..self.lowers.len().min(layer).max(self.data_layers))
            .rev()
            .map(|i| LowerRef {
                layer: i as u32,
                ino: self.lowers[i].root,
            })
            .collect()
    }

    /// ovl_lookup: looks `name` up in the merged directory `parent`.
    pub(crate) fn lookup(&self, parent: &Dentry, name: &str) -> Result<Dentry, Errno> {
        let mut out = Dentry::default();
        self.lookup_into(parent, name, &mut out).map(|()| out)
    }

    /// [`Model::lookup`] into `out`, which keeps what the lookup had found
    /// when it failed: ovl_fix_origin has acted on an upper directory and
    /// the first lower one by then ([`Model::fix_origins`]).
    pub(crate) fn lookup_into(
        &self,
        parent: &Dentry,
        name: &str,
        out: &mut Dentry,
    ) -> Result<(), Errno> {
        // namei.c: ovl_lookup reads redirects to follow them, and to reach
        // data-only layers (observed on 6.18: with data-only layers a
        // redirect is read where it would otherwise not be, and refused
        // under nofollow).
        let check_redirect = self.feat.follows_redirects() || self.data_layers > 0;
        let mut d = LookupData {
            name: LookupName::Single(name),
            absolute: false,
            is_dir: false,
            opaque: false,
            stop: false,
            // namei.c: ovl_lookup, `.last = check_redirect ? false :
            // !ovl_numlower(poe)`: without following, the upper's redirect
            // is not read when there is no lower layer to descend into.
            last: !check_redirect && parent.lowers.is_empty(),
            metacopy: false,
            redirect: None,
            xwhiteouts: false,
        };
        let mut poe: Cow<'_, [LowerRef]> = Cow::Borrowed(&parent.lowers);
        let mut poe_is_root = parent.root;
        let mut uppermetacopy = false;
        let mut metacopy_seen = false;
        if let (Some(_), Some(pu)) = (&self.upper, parent.upper) {
            out.upper = self.lookup_layer(LayerId::Upper, pu, &mut d)?;
            out.upper_alias = out.upper.is_some();
            if out.upper.is_some() && !d.is_dir {
                uppermetacopy = d.metacopy;
            }
            // Without metacopy=on a metacopy file is refused wherever it
            // is found, with or without data below (verified on 6.18;
            // before v6.15 see the EIO below).
            if uppermetacopy && !self.feat.metacopy && self.feat.metacopy_refused_alone {
                self.hit(Rule::LookupMetacopyRefused);
                return Err(Errno::EPERM);
            }
            if d.redirect.is_some() {
                out.redirect = d.redirect.clone();
                if d.absolute {
                    poe = Cow::Owned(self.root_stack_below(usize::MAX));
                    poe_is_root = true;
                }
            }
            out.opaque = d.opaque;
        }
        let mut i = 0;
        while !d.stop && i < poe.len() {
            // namei.c: ovl_lookup, "refusing to follow redirect": without
            // following, a redirect read in the upper or a lower layer fails
            // the lookup before the next layer is searched, whether or not
            // the target exists there (observed on 6.18).
            if d.redirect.is_some()
                && !self.feat.follows_redirects()
                && self.feat.redirect_refused_unread
            {
                self.hit(Rule::LookupRedirectNofollow);
                return Err(Errno::EPERM);
            }
            let lower = poe[i];
            i += 1;
            // namei.c: ovl_lookup. With data-only layers below, a name not
            // yet known to be a directory is never at the last layer: a
            // metacopy file's redirect must be read wherever it is found,
            // and so is a directory's there (observed on 6.18: a malformed
            // one is EINVAL, one under nofollow EPERM).
            if !check_redirect {
                d.last = i == poe.len();
            } else if d.is_dir || self.data_layers == 0 {
                d.last = lower.layer as usize == self.data_layers;
            }
            let Some(this) =
                self.lookup_layer(LayerId::Lower(lower.layer as usize), lower.ino, &mut d)?
            else {
                continue;
            };
            if (uppermetacopy || d.metacopy) && !self.feat.metacopy {
                if self.data_redirect_allowed(uppermetacopy, out, &d, lower) {
                    self.hit(Rule::LookupDataRedirectWithoutMetacopy);
                } else {
                    self.hit(Rule::LookupMetacopyRefused);
                    return Err(Errno::EPERM);
                }
            }
            metacopy_seen |= uppermetacopy || d.metacopy;
            let this = LowerRef {
                layer: lower.layer,
                ino: this,
            };
            if d.xwhiteouts {
                out.xwhiteout_layers.push(lower.layer as usize);
                d.xwhiteouts = false;
            }
            if !d.metacopy || out.lowers.is_empty() {
                if d.is_dir && (out.upper.is_some() || !out.lowers.is_empty()) {
                    self.hit(Rule::LookupMerge);
                }
                out.lowers.push(this);
            }
            if out.lowers.len() == 1 && self.fix_origin_fails(parent.upper, out.upper, this) {
                self.hit(Rule::LookupOriginUnmapped);
                return Err(Errno::EPERM);
            }
            // Before v6.15: refused once a layer had the target, which is
            // then the origin ovl_fix_origin stored.
            if d.redirect.is_some()
                && !self.feat.follows_redirects()
                && !self.feat.redirect_refused_unread
            {
                self.hit(Rule::RedirectRefusedWhenFoundBefore615);
                return Err(Errno::EPERM);
            }
            if d.stop {
                break;
            }
            if d.absolute && !poe_is_root {
                poe = Cow::Owned(self.root_stack_below(lower.layer as usize));
                poe_is_root = true;
                i = 0;
            }
        }
        // Defer lookup of lowerdata in data-only layers to first access:
        // here the model looks it up at once and keeps whether it failed.
        if d.metacopy && !out.lowers.is_empty() && self.data_layers > 0 && d.absolute {
            d.metacopy = false;
            self.hit(Rule::LookupDataOnly);
            match self.lookup_lowerdata(&d.name) {
                Some(data) => out.lowers.push(data),
                None => out.lowerdata_missing = true,
            }
        } else if self.data_layers > 0 && d.redirect.is_some() && !self.feat.follows_redirects() {
            // A redirect read at the last layer (only with data-only
            // layers below) is refused after the loop.
            self.hit(Rule::LookupRedirectNofollow);
            return Err(Errno::EPERM);
        }
        if d.metacopy || (uppermetacopy && out.lowers.is_empty()) {
            self.hit(if self.feat.metacopy {
                Rule::LookupMetacopyNoData
            } else {
                Rule::UpperMetacopyAloneEioBefore615
            });
            return Err(Errno::EIO);
        }
        if metacopy_seen {
            self.hit(Rule::LookupMetacopyData);
        }
        out.is_dir = d.is_dir;
        self.lookup_finish(out, &d)
    }

    /// Without metacopy=on, a metacopy file is followed only from the
    /// lowest regular layer, found there first, by an absolute redirect
    /// into the data-only layers (namei.c: ovl_lookup, "relax
    /// redirect/metacopy requirements for lower -> data redirect", v6.16;
    /// observed on 6.18: a metacopy in a higher lower layer, one without
    /// a redirect or with a relative one, and an upper metacopy are still
    /// EPERM).
    fn data_redirect_allowed(
        &self,
        uppermetacopy: bool,
        out: &Dentry,
        d: &LookupData,
        lower: LowerRef,
    ) -> bool {
        self.data_layers > 0
            && !uppermetacopy
            && d.metacopy
            && d.absolute
            && out.lowers.is_empty()
            && lower.layer as usize == self.data_layers
    }

    /// namei.c: ovl_lookup_data_layers: the data of a metacopy file at the
    /// absolute path `name`, in the first data-only layer (top first) where
    /// every component but the last is a directory and the last a regular
    /// file. Nothing else counts there: no whiteout, opaque directory,
    /// redirect or metacopy xattr (observed on 6.18: a symlink, a
    /// directory or a whiteout in a higher data layer is passed over).
    fn lookup_lowerdata(&self, name: &LookupName) -> Option<LowerRef> {
        (0..self.data_layers).rev().find_map(|i| {
            let layer = &self.lowers[i];
            let mut ino = layer.root;
            for k in 0..name.len() {
                if !layer.get(ino).is_dir() {
                    return None;
                }
                ino = layer.child(ino, name.get(k))?;
            }
            layer.get(ino).is_reg().then_some(LowerRef {
                layer: i as u32,
                ino,
            })
        })
    }

    /// namei.c: ovl_fix_origin on an upper directory over its first lower
    /// directory (`upper`, `first`) without an origin. Setting the origin
    /// on an upper with an id its idmapped mount does not map fails
    /// (may_write_xattr: EPERM), which ovl_set_origin_fh ignores, so every
    /// lookup tries again; marking the parent's upper (`parent`) impure
    /// then fails the same way where the parent has such an id too and is
    /// not impure yet, and that EPERM fails the lookup, every time
    /// (observed on 6.18). Where the origin can be set, only the first
    /// lookup can fail, and the walk at mount makes it ([`Model::mount`]).
    pub(crate) fn fix_origin_fails(
        &self,
        parent: Option<Ino>,
        upper: Option<Ino>,
        first: LowerRef,
    ) -> bool {
        let (Some(p), Some(u)) = (parent, upper) else {
            return false;
        };
        let (up, pu) = (self.upper_inode(u), self.upper_inode(p));
        up.is_dir()
            && up.ovl.origin.is_none()
            && !up.ids_mapped()
            && self.lower_inode(first).is_dir()
            && !pu.ids_mapped()
            && !pu.ovl.impure
    }

    /// Origin of an upper non-directory, and index=on aliases of lower hard
    /// links (namei.c: ovl_check_origin, ovl_lookup_index).
    fn lookup_finish(&self, out: &mut Dentry, d: &LookupData) -> Result<(), Errno> {
        if out.is_dir {
            return Ok(());
        }
        if let Some(u) = out.upper {
            if let Some(Some(o)) = self.upper_inode(u).ovl.origin {
                // An empty origin (an overlay as the lower), or a stale
                // one (its lower removed offline), is none.
                if self.empty_origin(o) || !self.lower_exists(o) {
                    self.hit(self.undecoded_origin_rule(o));
                } else {
                    out.origin = Some(o);
                }
            }
        } else if let Some(top) = out.lowers.first() {
            if let Some(ino) = self.index.get(top) {
                if self.index_alias_refused(*top, *ino, d) {
                    self.hit(Rule::LookupIndexRedirectRefused);
                    return Err(Errno::EPERM);
                }
                self.hit(Rule::LookupIndexAlias);
                out.upper = Some(*ino);
                out.upper_alias = false;
                out.origin = Some(*top);
            }
        }
        Ok(())
    }

    /// namei.c: ovl_lookup, a lower hard link found by its index entry
    /// (no name in the upper): the mount must follow what the lookup read
    /// below (`d.redirect`) and what the index entry holds, its redirect
    /// and metacopy xattrs (ovl_check_follow_redirect, v6.15), or the
    /// lookup fails with EPERM. Only a lookup made after the entry was
    /// indexed meets it, so a name the mount-time walk found (and cached)
    /// before a copy-up of another of its names made the entry is unaffected
    /// until the next mount (observed on 6.18: a metacopy file redirected
    /// into a data-only layer under `redirect_dir=nofollow index=on`,
    /// corpus/rules/116-index-alias-redirect-refused.ovl).
    fn index_alias_refused(&self, top: LowerRef, index: Ino, d: &LookupData) -> bool {
        let at_mount = self.snapshot.index.get(&top) == Some(&index);
        let entry = &self.upper_inode(index).ovl;
        let redirect = d.redirect.is_some() || entry.redirect.is_some();
        at_mount
            && (redirect && !self.feat.follows_redirects() || entry.metacopy && !self.feat.metacopy)
    }

    /// ovl_lookup_layer: looks `d.name` up under `base` in one layer; an
    /// absolute name is walked component by component from `base`.
    fn lookup_layer(
        &self,
        layer: LayerId,
        base: Ino,
        d: &mut LookupData,
    ) -> Result<Option<Ino>, Errno> {
        let mut base = base;
        let mut k = 0;
        loop {
            // Counting down from the end, since a redirect can change the prefix.
            let rem = d.name.len() - k - 1;
            let Some(this) = self.lookup_single(layer, base, k, rem == 0, d)? else {
                return Ok(None);
            };
            if rem == 0 || !self.layer(layer).get(this).is_dir() {
                return Ok(if rem == 0 { Some(this) } else { None });
            }
            base = this;
            k = d.name.len() - rem;
        }
    }

    /// ovl_lookup_single: one component in one layer.
    fn lookup_single(
        &self,
        layer: LayerId,
        base: Ino,
        pos: usize,
        last_element: bool,
        d: &mut LookupData,
    ) -> Result<Option<Ino>, Errno> {
        let l = self.layer(layer);
        let Some(this) = l.child(base, d.name.get(pos)) else {
            return Ok(None);
        };
        let inode = l.get(this);
        if inode.listed {
            // Nothing under the name (crate::nested).
            return Ok(None);
        }
        if inode.is_xwhiteout() && !inode.is_whiteout() {
            self.hit(match self.feat.xwhiteouts {
                true => Rule::LookupXwhiteout,
                false => Rule::NoXwhiteoutsBefore68,
            });
        } else if inode.is_whiteout() {
            self.hit(Rule::LookupWhiteout);
        }
        if self.is_whiteout_in(inode) {
            d.stop = true;
            d.opaque = true;
            return Ok(None);
        }
        if last_element && d.metacopy && !inode.is_reg() {
            d.stop = true;
            return Ok(None);
        }
        if !inode.is_dir() {
            if d.is_dir || !last_element {
                self.hit(Rule::LookupNonDirStops);
                d.stop = true;
                return Ok(None);
            }
            d.metacopy = inode.is_reg() && inode.ovl.metacopy;
            d.stop = !d.metacopy;
            if !d.metacopy || d.last {
                return Ok(Some(this));
            }
        } else {
            if last_element {
                d.is_dir = true;
            }
            if d.last {
                if let LayerId::Lower(i) = layer {
                    let r = LowerRef {
                        layer: i as u32,
                        ino: this,
                    };
                    d.xwhiteouts |= last_element && self.kept_xwhiteouts(r);
                }
                return Ok(Some(this));
            }
            let val = inode.ovl.opaque;
            if last_element && layer != LayerId::Upper && val == Some('x') && self.feat.xwhiteouts {
                d.xwhiteouts = true;
            } else if val == Some('y') {
                self.hit(Rule::LookupOpaque);
                d.stop = true;
                if last_element {
                    d.opaque = true;
                }
                return Ok(Some(this));
            }
        }
        if let Some(r) = &inode.ovl.redirect {
            self.hit(match (redirect_is_valid(r), r.starts_with('/')) {
                (false, _) => Rule::LookupRedirectInvalid,
                (true, true) => Rule::LookupRedirectAbsolute,
                (true, false) => Rule::LookupRedirectRelative,
            });
        }
        check_redirect(inode, d, pos)?;
        Ok(Some(this))
    }

    /// ovl_path_is_whiteout: a char 0/0 whiteout, or an xattr whiteout (an
    /// empty regular file with `overlay.whiteout`). Verified on 6.18: lookup
    /// honours xattr whiteouts in every layer, the upper included, whether
    /// or not the parent is marked `opaque=x`; only readdir needs the mark
    /// (readdir.rs). Before xwhiteouts ([`Features::xwhiteouts`]) such a
    /// file is an ordinary empty file, and `opaque=x` marks nothing (only
    /// `y` is opaque: ovl_check_dir_xattr reads one byte).
    ///
    /// [`Features::xwhiteouts`]: crate::features::Features
    pub(crate) fn is_whiteout_in(&self, inode: &Inode) -> bool {
        inode.is_whiteout() || (self.feat.xwhiteouts && inode.is_xwhiteout())
    }
}

/// ovl_check_redirect: a redirect replaces the name looked up below. A
/// relative redirect replaces the current component; an absolute one the
/// whole path and restarts the descent even below an opaque ancestor
/// (namei.c; fstests overlay/057). A malformed redirect fails with EINVAL
/// (ovl_get_redirect_xattr).
fn check_redirect(inode: &Inode, d: &mut LookupData, pos: usize) -> Result<(), Errno> {
    let Some(r) = &inode.ovl.redirect else {
        return Ok(());
    };
    if !redirect_is_valid(r) {
        return Err(Errno::EINVAL);
    }
    let current = d.name.to_vec();
    let post: Vec<String> = current[pos + 1..].to_vec();
    if let Some(abs) = r.strip_prefix('/') {
        d.absolute = true;
        d.stop = false;
        let mut name: Vec<String> = abs.split('/').map(str::to_string).collect();
        name.extend(post);
        d.name = LookupName::Path(name);
    } else {
        let mut name = current;
        name[pos] = r.clone();
        d.name = LookupName::Path(name);
    }
    d.redirect = Some(r.clone());
    Ok(())
}

/// A redirect is a single name, or `/` followed by non-empty components.
/// Whether a lookup that reads redirect `target` from a layer fails: a
/// malformed one (EINVAL), or any one on a mount that does not follow
/// redirects (EPERM).
pub fn redirect_fails(p: &ovlcheck_case::Profile, target: &str) -> bool {
    !crate::follows_redirects(p) || !redirect_is_valid(target)
}

pub(crate) fn redirect_is_valid(r: &str) -> bool {
    match r.strip_prefix('/') {
        Some(abs) => !abs.is_empty() && abs.split('/').all(|c| !c.is_empty()),
        None => !r.is_empty() && !r.contains('/'),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn non_directory_hides_lower_directory() {
        let mut m =
            model("lower\n  dir a 0755\n  file a/x 0644 \"x\"\nlower\n  file a 0644 \"f\"\n");
        assert_eq!(run(&mut m, "read a"), "\"f\"");
        assert_eq!(run(&mut m, "stat a/x"), "ENOTDIR");
    }

    #[test]
    fn directory_under_file_is_not_merged() {
        let mut m =
            model("lower\n  file d 0644 \"f\"\nlower\n  dir d 0755\n  file d/y 0644 \"y\"\n");
        assert_eq!(run(&mut m, "readdir d"), "[\"y\"]");
        assert_eq!(run(&mut m, "stat d"), "{dir 0755 0:0 size=0 nlink=2}");
    }

    #[test]
    fn whiteout_and_opaque_in_a_lower_layer() {
        let text = "lower\n  dir d 0755\n  file d/a 0644 \"a\"\n  file w 0644 \"w\"\n\
                    lower\n  dir d 0755\n  opaque d\n  whiteout w\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "readdir d"), "[]");
        assert_eq!(run(&mut m, "stat w"), "ENOENT");
    }

    /// Verified on 6.18: lookup hides xattr whiteouts anywhere.
    #[test]
    fn xwhiteout_hides_on_lookup_in_any_layer() {
        let text = "lower\n  dir d 0755\n  file d/x 0644 \"x\"\n  dir e 0755\n  file e/x 0644 \"x\"\n\
                    lower\n  dir d 0755\n  xwhiteouts d\n  xwhiteout d/x\n  dir e 0755\n  xwhiteout e/x\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "stat d/x"), "ENOENT");
        assert_eq!(run(&mut m, "read e/x"), "ENOENT");
        assert_eq!(run(&mut m, "readdir e"), "[\"x\"]");
    }

    #[test]
    fn relative_and_absolute_redirects() {
        let text = "lower\n  dir a 0755\n  file a/f 0644 \"f\"\n\
                    lower\n  dir b 0755\n  redirect b \"a\"\n  dir c 0755\n  dir c/d 0755\n  redirect c/d \"/a\"\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "read b/f"), "\"f\"");
        assert_eq!(run(&mut m, "read c/d/f"), "\"f\"");
    }

    /// Verified on 6.18: lstat of such a directory is EPERM.
    #[test]
    fn redirects_found_below_are_eperm_with_userxattr() {
        let text = "profile userxattr\nlower\n  dir a 0755\n  file a/f 0644 \"f\"\n\
                    lower\n  dir b 0755\n  redirect b \"a\"\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "readdir b"), "EPERM");
    }

    #[test]
    fn malformed_redirect_is_einval() {
        assert!(!super::redirect_is_valid("a/b"));
        assert!(!super::redirect_is_valid("/a//b"));
        assert!(super::redirect_is_valid("/a/b"));
        assert!(super::redirect_is_valid("a"));
    }
}
