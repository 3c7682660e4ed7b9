//! How views are compared. The model leaves a field `None` only where the
//! value is not determined by the case (an mtime set by the clock, the link
//! count of a whiteout the kernel shares); there the backend's value is not
//! compared. Every other field must be equal.

use ovlcheck_case::{Node, View, ViewDiff};

/// The backend's node with every field the model leaves open copied from
/// the model, so that only determined fields can differ.
fn masked(model: &Node, backend: &Node) -> Node {
    let mut b = backend.clone();
    if model.mtime.is_none() {
        b.mtime = None;
    }
    if model.nlink.is_none() {
        b.nlink = None;
    }
    b
}

/// Whether the backend's node equals the model's in every field the model
/// determines (the allocation-free form of `masked(model, backend) == *model`).
fn matches(model: &Node, backend: &Node) -> bool {
    let Node {
        kind,
        mode,
        uid,
        gid,
        size,
        data,
        target,
        nlink,
        mtime,
        xattrs,
        overlay,
        ino,
        dev,
        flags,
    } = model;
    *kind == backend.kind
        && *mode == backend.mode
        && *uid == backend.uid
        && *gid == backend.gid
        && *size == backend.size
        && (nlink.is_none() || *nlink == backend.nlink)
        && (mtime.is_none() || *mtime == backend.mtime)
        && *data == backend.data
        && *target == backend.target
        && *ino == backend.ino
        && *dev == backend.dev
        && *flags == backend.flags
        && *xattrs == backend.xattrs
        && *overlay == backend.overlay
}

/// Whether the views agree: the same paths, in one ordered pass, each node
/// [`matches`]. Nearly every comparison ends here, so it allocates nothing.
fn agree(model: &View, backend: &View) -> bool {
    agree_in_order(model.nodes.len(), model.nodes.iter(), backend)
}

/// Whether a view agrees, for the model's nodes as a list sorted by path (what
/// `Model::merged_nodes` gives): no map is built for a view that agrees.
pub fn agree_sorted(model: &[(String, Node)], backend: &View) -> bool {
    agree_in_order(model.len(), model.iter().map(|(p, n)| (p, n)), backend)
}

fn agree_in_order<'a>(
    len: usize,
    model: impl Iterator<Item = (&'a String, &'a Node)>,
    backend: &View,
) -> bool {
    len == backend.nodes.len()
        && model
            .zip(&backend.nodes)
            .all(|((mp, m), (bp, b))| mp == bp && matches(m, b))
}

/// Differences between the model's view (left) and the backend's (right).
pub fn compare_views(model: &View, backend: &View) -> Vec<ViewDiff> {
    if agree(model, backend) {
        return Vec::new();
    }
    let mut masked_backend = backend.clone();
    for (path, node) in masked_backend.nodes.iter_mut() {
        if let Some(m) = model.nodes.get(path) {
            *node = masked(m, node);
        }
    }
    model.diff(&masked_backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovlcheck_case::{DevClass, NodeKind};

    fn file() -> Node {
        let mut n = Node::new(NodeKind::File, 0o644, 0, 0);
        n.size = 1;
        n.data = Some(b"a".to_vec());
        n.nlink = Some(1);
        n.mtime = Some(5);
        n.ino = Some("=f".into());
        n.dev = Some(DevClass::Overlay);
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

    /// Every single-field change is a difference, on the fast path and in
    /// the diff; fields the model leaves open are not.
    #[test]
    fn the_fast_path_agrees_with_the_diff() {
        type Change = (&'static str, fn(&mut Node));
        let changes: Vec<Change> = vec![
            ("kind", |n| n.kind = NodeKind::Fifo),
            ("mode", |n| n.mode = 0o600),
            ("uid", |n| n.uid = 1),
            ("gid", |n| n.gid = 1),
            ("size", |n| n.size = 2),
            ("data", |n| n.data = Some(b"b".to_vec())),
            ("target", |n| n.target = Some(b"t".to_vec())),
            ("nlink", |n| n.nlink = Some(2)),
            ("mtime", |n| n.mtime = Some(6)),
            ("xattrs", |n| {
                n.xattrs.insert("user.a".into(), vec![]);
            }),
            ("overlay", |n| {
                n.overlay.insert("impure".into(), "y".into());
            }),
            ("ino", |n| n.ino = Some("+f".into())),
            ("dev", |n| n.dev = Some(DevClass::Other)),
        ];
        let model = view(&[("", Node::new(NodeKind::Dir, 0o755, 0, 0)), ("f", file())]);
        assert!(compare_views(&model, &model.clone()).is_empty());
        let sorted: Vec<(String, Node)> = model.nodes.clone().into_iter().collect();
        assert!(agree_sorted(&sorted, &model));
        assert!(!agree_sorted(&sorted[1..], &model));
        for (field, change) in changes {
            let mut backend = model.clone();
            change(backend.nodes.get_mut("f").unwrap());
            assert!(!agree(&model, &backend), "{field}");
            assert!(!agree_sorted(&sorted, &backend), "{field}");
            assert_eq!(compare_views(&model, &backend).len(), 1, "{field}");
        }
        let mut open = model.clone();
        let f = open.nodes.get_mut("f").unwrap();
        (f.mtime, f.nlink) = (None, None);
        assert!(compare_views(&open, &model).is_empty());
        let mut extra = model.clone();
        extra.nodes.insert("g".into(), file());
        assert_eq!(compare_views(&model, &extra).len(), 1);
        assert_eq!(compare_views(&extra, &model).len(), 1);
        let renamed = view(&[("", Node::new(NodeKind::Dir, 0o755, 0, 0)), ("g", file())]);
        assert_eq!(compare_views(&model, &renamed).len(), 2);
    }
}
