//! Cases for a backend that is given its lower layers as an image and
//! makes the container layer itself: the container engines (docs/engines.md).
//! An engine loads each lower layer from an OCI layer tar, which carries
//! entries, whiteouts, opaque directories and ordinary xattrs but none of
//! the overlay's other markers (docs/images.md), and it starts every
//! container layer empty; a case that needs more is refused there with
//! the reason. Reshaping the generated case keeps a campaign on an engine
//! from spending most of its cases on refusals.

use ovlcheck_case::layer::{Entry, LayerFormat};
use ovlcheck_case::{Case, LayerSpec, Op};

/// Reshapes `case` into one an engine can be given: lower layers with only
/// what an OCI layer tar carries (an xattr whiteout becomes a whiteout; no
/// redirect, metacopy or `opaque=x` marks, inode flags or POSIX ACLs), an
/// empty container layer, no data-only layers and no `offline` steps (an
/// engine's image layers are its own to change).
pub(super) fn image_layers(case: &mut Case) {
    case.upper = None;
    case.data.clear();
    case.steps.retain(|s| !matches!(s.op, Op::Offline { .. }));
    for layer in &mut case.lowers {
        let image = image_layer(layer);
        if image.objects().is_ok() {
            *layer = image;
        }
    }
}

/// The entries of `layer` an OCI layer tar carries.
fn image_layer(layer: &LayerSpec) -> LayerSpec {
    let entries = layer
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Xwhiteout { path } => Some(Entry::Whiteout { path: path.clone() }),
            Entry::XwhiteoutDir { .. }
            | Entry::Redirect { .. }
            | Entry::Metacopy { .. }
            | Entry::Attr { .. } => None,
            Entry::Xattr { name, .. } if ovlcheck_case::acl::is_acl_name(name) => None,
            e => Some(e.clone()),
        })
        .collect();
    LayerSpec {
        entries,
        format: LayerFormat::Overlay,
    }
}
