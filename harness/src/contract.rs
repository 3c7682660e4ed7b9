//! Contracts: what an implementation promises, as a level of comparison.
//! Every check (each step's outcome, the merged view, the raw upper, the
//! merged views after a remount and after a commit, and for `layout` the
//! kernel's mount of the layers left behind) runs at every level; a level
//! only narrows which fields of a view are compared
//! (docs/architecture.md, "Contracts").

use ovlcheck_case::{Field, Node, Outcome, Value, View, Which};
use ovlcheck_driver::BackendKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// A level of comparison, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Contract {
    /// Each op's outcome and the merged tree as a program sees it: kind,
    /// mode, owner, size, data, symlink target, link count, `user.*`
    /// xattrs, mtime where the case determines it, and which names are
    /// the same file. Nothing of the raw upper layer.
    Posix,
    /// `posix`, plus the upper layer in the overlay on-disk format (entries,
    /// whiteouts, and the overlay xattrs a kernel mount reads to build the
    /// merged tree: opaque, redirect, metacopy, whiteout, whiteouts), plus
    /// the kernel's read-only mount of the layers left behind.
    Layout,
    /// Everything the kernel shows: all overlay-private xattrs (origin,
    /// impure, uuid, nlink, ...), inode identity across copy-up, st_dev
    /// classes and whose fsid `statfs` reports.
    Kernel,
}

/// Overlay xattrs a kernel mount reads to build the merged tree from a
/// layer (overlayfs.rst: whiteouts and opaque directories, redirect_dir,
/// metacopy; util.c: ovl_check_protattr for the inode flags of upper
/// inodes); the others serve inode numbers, the index and readdir.
const LAYOUT_OVERLAY_KEYS: [&str; 6] = [
    "opaque",
    "redirect",
    "metacopy",
    "whiteout",
    "whiteouts",
    "protattr",
];

impl Contract {
    pub const ALL: [Contract; 3] = [Contract::Posix, Contract::Layout, Contract::Kernel];

    pub fn name(self) -> &'static str {
        match self {
            Contract::Posix => "posix",
            Contract::Layout => "layout",
            Contract::Kernel => "kernel",
        }
    }

    pub fn from_name(s: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Whether two outcomes of one op agree at this level. Below `kernel`
    /// a `statfs` only has to work: whose fsid it reports follows the
    /// kernel's uuid handling, which no other implementation has (FUSE
    /// reports a zero fsid).
    pub fn same_outcome(self, a: &Outcome, b: &Outcome) -> bool {
        match (a, b) {
            (Outcome::Ok(Value::Fsid(_)), Outcome::Ok(Value::Fsid(_))) => {
                self != Contract::Kernel || a == b
            }
            _ => a == b,
        }
    }

    /// What a backend promises by default. The kernel is the reference.
    /// fuse-overlayfs documents its upper layer as the kernel's on-disk
    /// format (it can be mounted by either), so it is held to `layout`. An
    /// `exec` implementation promises only POSIX behaviour until its user
    /// says more with `--contract`.
    pub fn default_for(kind: BackendKind) -> Contract {
        match kind {
            // A guest kernel is the kernel too (docs/vm.md).
            BackendKind::Kernel | BackendKind::Vm | BackendKind::Model => Contract::Kernel,
            BackendKind::FuseOverlayfs => Contract::Layout,
            // An engine promises its image format: layers in the overlay
            // on-disk format and OCI changesets (docs/engines.md).
            BackendKind::Docker | BackendKind::Podman | BackendKind::Containerd => Contract::Layout,
            BackendKind::Exec => Contract::Posix,
        }
    }

    /// Whether the kernel view of the layers left behind is taken: only
    /// where it says something the commit check has not (a backend other
    /// than the kernel, at `layout` or above).
    pub fn wants_kernel_view(self, kind: BackendKind) -> bool {
        // An engine's layers are mounted by the kernel already.
        self >= Contract::Layout
            && !matches!(
                kind,
                BackendKind::Kernel | BackendKind::Vm | BackendKind::Model
            )
            && !kind.is_engine()
    }

    /// Whether the export check runs (docs/images.md): a changeset is made
    /// from the raw upper layer, which only `layout` and above compare.
    pub fn wants_export(self) -> bool {
        self >= Contract::Layout
    }

    /// Whether `field` of view `which` is compared under this contract.
    pub fn compares(self, which: Which, field: &Field) -> bool {
        let merged = which != Which::Upper;
        match self {
            Contract::Kernel => *field != Field::SameFile,
            Contract::Posix if !merged => false,
            Contract::Posix | Contract::Layout if merged => posix_field(field),
            Contract::Posix | Contract::Layout => match field {
                Field::Overlay(k) => LAYOUT_OVERLAY_KEYS.contains(&k.as_str()),
                Field::Ino | Field::SameFile | Field::Dev => false,
                _ => true,
            },
        }
    }

    /// Whether view `which` is compared at all (posix never looks at the
    /// raw upper layer).
    pub fn compares_view(self, which: Which) -> bool {
        !(self == Contract::Posix && which == Which::Upper)
    }

    /// The view with every field this contract does not compare cleared,
    /// and, where the contract compares which names are the same file
    /// rather than inode identity, each inode label replaced by the
    /// smallest path of the view that shares it (`same:P`).
    pub fn project(self, which: Which, view: &View) -> View {
        if self == Contract::Kernel {
            return view.clone();
        }
        if !self.compares_view(which) {
            return View::default();
        }
        let same = self
            .compares(which, &Field::SameFile)
            .then(|| same_file(view));
        let nodes = view
            .nodes
            .iter()
            .map(|(path, node)| {
                let mut n = self.project_node(which, node);
                n.ino = same
                    .as_ref()
                    .and_then(|s| node.ino.as_ref().and_then(|l| s.get(l)))
                    .map(|rep| format!("same:{rep}"));
                (path.clone(), n)
            })
            .collect();
        View { nodes }
    }

    fn project_node(self, which: Which, node: &Node) -> Node {
        let mut n = node.clone();
        n.dev = None;
        n.ino = None;
        n.overlay
            .retain(|k, _| self.compares(which, &Field::Overlay(k.clone())));
        n.xattrs
            .retain(|k, _| self.compares(which, &Field::Xattr(k.clone())));
        n
    }
}

fn posix_field(field: &Field) -> bool {
    !matches!(field, Field::Ino | Field::Dev | Field::Overlay(_))
}

/// For each inode label of a view, the smallest path that has it.
fn same_file(view: &View) -> BTreeMap<&String, &String> {
    let mut rep = BTreeMap::new();
    for (path, node) in &view.nodes {
        if let Some(label) = &node.ino {
            rep.entry(label).or_insert(path);
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovlcheck_case::{Errno, Fsid, NodeKind};

    #[test]
    fn only_the_kernel_contract_compares_whose_fsid() {
        let (own, zero) = (
            Outcome::Ok(Value::Fsid(Fsid::Own)),
            Outcome::Ok(Value::Fsid(Fsid::Zero)),
        );
        let enoent = Outcome::Err(Errno::ENOENT);
        assert!(!Contract::Kernel.same_outcome(&own, &zero));
        assert!(Contract::Kernel.same_outcome(&own, &own));
        for c in [Contract::Posix, Contract::Layout] {
            assert!(c.same_outcome(&own, &zero), "{c:?}");
            assert!(!c.same_outcome(&own, &enoent), "{c:?}");
            assert!(!c.same_outcome(&own, &Outcome::OK), "{c:?}");
        }
    }

    fn file(ino: &str) -> Node {
        let mut n = Node::new(NodeKind::File, 0o644, 0, 0);
        n.ino = Some(ino.into());
        n.dev = Some(ovlcheck_case::DevClass::Overlay);
        n.overlay.insert("origin".into(), "fh".into());
        n.overlay.insert("opaque".into(), "y".into());
        n.xattrs.insert("user.a".into(), b"1".to_vec());
        n
    }

    fn view(nodes: &[(&str, Node)]) -> View {
        View {
            nodes: nodes
                .iter()
                .map(|(p, n)| (p.to_string(), n.clone()))
                .collect(),
        }
    }

    /// Each level keeps what it promises and drops the rest.
    #[test]
    fn levels_narrow_the_fields() {
        let v = view(&[("a", file("=a")), ("b", file("=a")), ("c", file("+c"))]);
        assert_eq!(Contract::Kernel.project(Which::Merged, &v), v);
        let posix = Contract::Posix.project(Which::Merged, &v);
        let a = &posix.nodes["a"];
        assert_eq!((a.dev, a.overlay.len()), (None, 0));
        assert_eq!(a.xattrs.len(), 1, "user xattrs are POSIX");
        assert_eq!(a.ino.as_deref(), Some("same:a"));
        assert_eq!(posix.nodes["b"].ino.as_deref(), Some("same:a"));
        assert_eq!(posix.nodes["c"].ino.as_deref(), Some("same:c"));
        assert!(Contract::Posix.project(Which::Upper, &v).nodes.is_empty());
        let layout = Contract::Layout.project(Which::Upper, &v);
        let a = &layout.nodes["a"];
        assert_eq!(a.overlay.keys().collect::<Vec<_>>(), ["opaque"]);
        assert_eq!(a.ino, None);
    }

    /// Inode identity is kernel-only; which names are one file is POSIX:
    /// two backends that label inodes differently but link the same names
    /// agree under posix and not under kernel.
    #[test]
    fn same_file_is_a_partition_not_a_label() {
        let model = view(&[("a", file("=a")), ("b", file("=a"))]);
        let relabelled = view(&[("a", file("+b")), ("b", file("+b"))]);
        let split = view(&[("a", file("=a")), ("b", file("+b"))]);
        let p = |v: &View| Contract::Posix.project(Which::Merged, v);
        assert_eq!(p(&model), p(&relabelled));
        assert_ne!(p(&model), p(&split));
        let k = |v: &View| Contract::Kernel.project(Which::Merged, v);
        assert_ne!(k(&model), k(&relabelled));
    }

    #[test]
    fn defaults_and_names() {
        for c in Contract::ALL {
            assert_eq!(Contract::from_name(c.name()), Some(c));
        }
        assert_eq!(Contract::default_for(BackendKind::Kernel), Contract::Kernel);
        assert!(Contract::Layout.wants_kernel_view(BackendKind::FuseOverlayfs));
        assert!(!Contract::Posix.wants_kernel_view(BackendKind::FuseOverlayfs));
        assert!(!Contract::Kernel.wants_kernel_view(BackendKind::Kernel));
    }
}
