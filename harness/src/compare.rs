//! How views are compared. The model leaves a field `None` only where the
//! value is not determined by the case (an mtime set by the clock, the link
//! count of a whiteout the kernel shares); there the backend's value is not
//! compared. Every other field must be equal.

use ovlcheck_case::{Node, View, ViewDiff};
use serde::Serialize;

/// Which view a comparison was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Which {
    /// The merged tree after the case's steps.
    Merged,
    /// The raw upper layer after the case's steps.
    Upper,
    /// The merged tree after a remount.
    AfterRemount,
    /// The merged tree after a commit (upper became a lower layer).
    AfterCommit,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::Merged => "merged",
            Which::Upper => "upper",
            Which::AfterRemount => "merged-after-remount",
            Which::AfterCommit => "merged-after-commit",
        }
    }
}

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

/// Differences between the model's view (left) and the backend's (right).
pub fn compare_views(model: &View, backend: &View) -> Vec<ViewDiff> {
    let mut masked_backend = backend.clone();
    for (path, node) in masked_backend.nodes.iter_mut() {
        if let Some(m) = model.nodes.get(path) {
            *node = masked(m, node);
        }
    }
    model.diff(&masked_backend)
}
