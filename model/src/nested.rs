//! An overlay as the lower layer of another (`lower=overlay`;
//! overlayfs.rst: "Nesting overlayfs mounts"). The case's lower layers are
//! an inner, read-only overlay of their own, and the case's mount has that
//! overlay as its only lower layer. The outer mount sees it as any other
//! filesystem: the inner's merged tree, without the inner's whiteouts,
//! markers or private xattrs, with the inner's inode numbers (one inode for
//! a lower hard link) and link counts (1 for a directory the inner merges).
//! What changes in the outer mount itself (no file handles: no index, an
//! empty `origin`, xino=auto off) is in [`crate::features::Features`].

use crate::fs::{Ident, Ino, Inode, Kind, Layer, LowerRef};
use crate::lookup::Dentry;
use crate::{Model, ModelError};
use imbl::OrdMap;
use ovlcheck_case::{Case, LayerSpec};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The outer mount's one lower layer for `case`: the merged tree of the
/// inner overlay of its lower layers.
pub(crate) fn lower_layer(case: &Case) -> Result<Layer, ModelError> {
    let inner = Model::new(&inner_case(case))?;
    merged_layer(&inner).map_err(|message| ModelError::Layer { layer: 0, message })
}

/// The inner overlay as a case: the case's lower layers, read-only, with
/// the inner profile ([`ovlcheck_case::Profile::inner_overlay`]). A
/// read-only model mounts the container layer as the top lower, so the
/// top lower layer is given as that; below a single lower layer goes an
/// empty one, as the driver mounts it (overlay needs two lower layers
/// without an upper).
fn inner_case(case: &Case) -> Case {
    let mut lowers = case.lowers.clone();
    let top = lowers.pop();
    if lowers.is_empty() {
        lowers.push(LayerSpec::default());
    }
    Case {
        profile: case.profile.inner_overlay(),
        known: Vec::new(),
        data: Vec::new(),
        lowers,
        upper: top,
        steps: Vec::new(),
    }
}

/// The merged tree of `inner` as a layer: what a walk of the inner mount
/// reads. A name the inner lists but finds nothing under (a whiteout in a
/// directory it reads from one layer) is a [`Inode::listed`] whiteout,
/// which the outer mount lists too, whether it reads the directory
/// straight or merges it (its merged listing checks only char devices
/// for whiteouts, and this one is whatever the inner's layer holds; it
/// finds nothing under it: observed on 6.18); a name whose lookup fails
/// otherwise is refused.
fn merged_layer(inner: &Model) -> Result<Layer, String> {
    let layer = RefCell::new(Layer::new());
    let by_path: RefCell<BTreeMap<String, Ino>> = RefCell::new(BTreeMap::new());
    let mut by_ident: BTreeMap<Ident, Ino> = BTreeMap::new();
    let error: RefCell<Option<String>> = RefCell::new(None);
    // Links `path` into its parent, which the walk (parents first) made.
    let link = |path: &str, ino: Ino| {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = by_path.borrow().get(parent).copied();
        match dir {
            Some(dir) => layer.borrow_mut().link(dir, name, ino),
            None => *error.borrow_mut() = Some(format!("{path}: parent missing")),
        }
        by_path.borrow_mut().insert(path.to_string(), ino);
    };
    inner.walk_merged(
        &mut |path: &str, d: &Dentry| {
            if path.is_empty() {
                let root = layer.borrow().root;
                *layer.borrow_mut().get_mut(root) = inode_of(inner, d);
                by_path.borrow_mut().insert(String::new(), root);
                return;
            }
            let shared = (!d.is_dir).then(|| inner.ident(path, d));
            let ino = match shared.and_then(|id| by_ident.get(&id).copied()) {
                Some(ino) => ino,
                None => {
                    let ino = layer.borrow_mut().alloc(inode_of(inner, d));
                    if let Some(id) = shared {
                        by_ident.insert(id, ino);
                    }
                    ino
                }
            };
            link(path, ino);
        },
        &mut |path: &str, errno| match errno {
            None => {
                let mut phantom = Inode::new(Kind::Whiteout, 0, 0, 0);
                phantom.listed = true;
                let ino = layer.borrow_mut().alloc(phantom);
                link(path, ino);
            }
            Some(e) => {
                error.borrow_mut().get_or_insert_with(|| {
                    format!("the inner overlay cannot look up {path} ({e}): not modelled")
                });
            }
        },
    );
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(layer.into_inner()),
    }
}

/// The inode the inner overlay shows for `d`: its attributes, data and
/// visible xattrs, its inode flags, and the link count it reports.
fn inode_of(inner: &Model, d: &Dentry) -> Inode {
    let a = inner.attr(d);
    let kind = match &a.kind {
        Kind::Dir(_) => Kind::Dir(OrdMap::new()),
        Kind::File(_) => Kind::File(inner.file_data(d)),
        other => other.clone(),
    };
    let mut inode = Inode::new(kind, a.mode, a.uid, a.gid);
    inode.mtime = a.mtime;
    inode.clock_here = a.clock_here;
    // Its ordinary xattrs; the escaped ones are the outer's to read below.
    let private = inner.private_prefix();
    inode.xattrs = a
        .xattrs
        .iter()
        .filter(|(k, _)| !k.starts_with(private))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Before v6.7 the inner hides them as its own private names.
    if inner.feat.escaped_xattrs {
        for (k, v) in &a.ovl.escaped {
            unescape(inner, &mut inode, k, v);
        }
    }
    inode.flags = a.flags;
    inode.nlink = Some(inner.overlay_nlink(d));
    inode
}

/// An escaped xattr of the inner's inode (`overlay.overlay.<k>` on disk),
/// which the inner shows as `overlay.<k>`: to the outer mount that is its
/// own xattr, a marker it acts on where it knows the name (overlayfs.rst:
/// "Nesting overlayfs mounts": opaque, redirect, metacopy, an xattr
/// whiteout), an escaped one where `k` is escaped again, else a private
/// name it hides.
fn unescape(inner: &Model, inode: &mut Inode, k: &str, v: &[u8]) {
    let o = &mut inode.ovl;
    match (k, v) {
        ("opaque", b"y") => o.opaque = Some('y'),
        ("opaque", b"x") => o.opaque = Some('x'),
        ("redirect", _) => o.redirect = Some(String::from_utf8_lossy(v).into_owned()),
        ("metacopy", _) => o.metacopy = true,
        ("whiteout", _) => o.whiteout = true,
        _ => match k.strip_prefix("overlay.") {
            Some(again) => {
                o.escaped.insert(again.to_string(), v.to_vec());
            }
            None => {
                inode
                    .xattrs
                    .insert(format!("{}{k}", inner.private_prefix()), v.to_vec());
            }
        },
    }
}

impl Model {
    /// Whether a lookup decodes an `origin` that points into lower `r`'s
    /// layer ([`crate::features::Features::origin_decoded`]). Not into an
    /// overlay as the lower, which encodes no file handle: copy-up writes
    /// an empty `origin` (copy_up.c: ovl_set_origin_fh). The layers a
    /// commit stacks above it are the store's filesystem's, whose handles
    /// are decoded (observed on 6.18). Nor an origin whose lower inode an
    /// offline change removed (`crate::offline`): the handle is stale.
    pub(crate) fn decodes_origin(&self, r: LowerRef) -> bool {
        self.feat.origin_decoded && !self.empty_origin(r) && self.lower_exists(r)
    }

    /// The rule that decides an `origin` into lower `r` is not decoded.
    pub(crate) fn undecoded_origin_rule(&self, r: LowerRef) -> crate::rules::Rule {
        use crate::rules::Rule;
        if !self.lower_exists(r) {
            Rule::OfflineStaleOrigin
        } else if self.empty_origin(r) {
            Rule::NestedNoOrigin
        } else {
            Rule::UserxattrNoOrigin
        }
    }

    /// Whether the `origin` of an object copied up from lower `r` is
    /// empty: `r` is in an overlay as the lower. A lookup then finds no
    /// origin at all (namei.c: ovl_get_fh of an empty xattr).
    pub(crate) fn empty_origin(&self, r: LowerRef) -> bool {
        self.feat.nested && r.layer as usize == self.data_layers
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{merged, model};

    #[test]
    fn the_lower_is_the_inner_merged_tree() {
        let m = model(
            "profile nested\nlower\n  file a 0644 \"a\"\n  hardlink b a\n  dir d 0755\n  file d/x 0644 \"x\"\nlower\n  whiteout b\n  dir d 0755\n  file d/y 0644 \"y\"\nops\n",
        );
        let v = merged(&m);
        assert!(v.contains("a file 0644 0:0 size=1 nlink=2"), "{v}");
        assert!(!v.contains("\nb "), "{v}");
        assert!(v.contains("d/x file") && v.contains("d/y file"), "{v}");
        assert_eq!(m.lowers.len(), 1);
    }

    #[test]
    fn escaped_markers_are_the_outer_mounts() {
        let m = model(
            "profile nested\ndata\n  file o/a 0644 \"data\"\nlower\n  file d/w 0644 \"w\"\n\
             lower escaped\n  file f 0644 \"self\"\n  metacopy f\n  redirect f \"/o/a\"\n  \
             dir d 0755\n  xwhiteouts d\n  xwhiteout d/w\nops\n",
        );
        // The data-only layer, then the inner overlay as the one regular lower.
        assert_eq!((m.lowers.len(), m.data_layers), (2, 1));
        let inner = &m.lowers[1];
        let f = inner.get(inner.child(inner.root, "f").unwrap());
        assert!(f.ovl.metacopy && f.ovl.redirect.as_deref() == Some("/o/a"));
        assert!(f.ovl.escaped.is_empty() && f.xattrs.is_empty());
        let v = merged(&m);
        assert!(v.contains("f file 0644 0:0 size=4 nlink=1"), "{v}");
        assert!(v.contains("\"data\""), "{v}");
        // Read from its one layer, d lists the xattr whiteout, which a
        // lookup misses.
        assert!(v.contains("d/w whiteout"), "{v}");
    }
}
