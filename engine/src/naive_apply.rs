//! Image layers an engine applies through its mount. Where Docker diffs
//! naively it also applies naively (moby overlay2 `ApplyDiff` falls back
//! to `NaiveDiffDriver.ApplyDiff`): each layer tar is unpacked into a
//! mount of the layers below (go-archive `UnpackLayer` with AUFS-style
//! whiteouts), not into the layer's directory. What the mount makes of it
//! is the layer the tar describes, except where the tar says more than a
//! mount can (docs/engines.md, "The naive differ"):
//!
//! - a whiteout of a name no layer below has: removing nothing makes no
//!   whiteout, so the layer lacks the one a directory read straight from
//!   it would list;
//! - an opaque directory: its marker removes the names the directory has
//!   below, one whiteout each, and the directory stays merged;
//! - a directory over a non-directory below: the removal leaves a
//!   whiteout, and a directory made over a whiteout is opaque.
//!
//! The model builds layers as the tar describes them, so a case with any
//! of these is not run on such an engine.

use ovlcheck_case::layer::{LayerSpec, ObjectKind};
use std::collections::BTreeMap;

/// Why a mount would not make image layers `image` (bottom first) as
/// their tars describe them; `None` when it would.
pub(crate) fn unlike_their_tars(image: &[LayerSpec]) -> Option<String> {
    // Each merged path of the layers so far, and whether it is a directory.
    let mut below: BTreeMap<String, bool> = BTreeMap::new();
    for (i, layer) in image.iter().enumerate() {
        let objects = layer.objects().ok()?;
        // This layer's paths: a directory or not, `None` for a whiteout.
        let mut above: Vec<(String, Option<bool>)> = Vec::new();
        for o in &objects {
            let path = o.path.as_string();
            let opaque = o.markers.opaque.is_some();
            let why = match &o.kind {
                ObjectKind::Whiteout if !below.contains_key(&path) => {
                    Some(format!("whiteout of `{path}`, a name no layer below has"))
                }
                ObjectKind::Dir if opaque => Some(format!("opaque directory `{path}`")),
                ObjectKind::Dir if below.get(&path) == Some(&false) => {
                    Some(format!("directory `{path}` over a non-directory below"))
                }
                _ => None,
            };
            if let Some(why) = why {
                return Some(format!(
                    "this engine applies image layers through its mount (naive ApplyDiff), and \
                     lower {i}'s {why} would not come out as its tar describes"
                ));
            }
            let kind = (o.kind != ObjectKind::Whiteout).then_some(o.kind == ObjectKind::Dir);
            above.push((path, kind));
        }
        for (path, kind) in above {
            let within = format!("{path}/");
            match kind {
                Some(true) if below.get(&path) == Some(&true) => {}
                _ => below.retain(|p, _| !p.starts_with(&within)),
            }
            match kind {
                Some(dir) => below.insert(path, dir),
                None => below.remove(&path),
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::unlike_their_tars;
    use ovlcheck_case::layer::LayerSpec;

    fn layers(text: &str) -> Vec<LayerSpec> {
        ovlcheck_case::parse_case("layers", text).unwrap().lowers
    }

    #[test]
    fn whiteouts_of_names_below_apply_as_written() {
        let l = layers("lower\n  file d/x 0644 \"x\"\nlower\n  whiteout d/x\n");
        assert_eq!(unlike_their_tars(&l), None);
    }

    #[test]
    fn a_whiteout_of_nothing_an_opaque_dir_and_a_dir_over_a_file_do_not() {
        for text in [
            "lower\n  dir d 0755\nlower\n  whiteout d/x\n",
            "lower\n  file d/x 0644 \"x\"\nlower\n  dir d 0755\n  opaque d\n",
            "lower\n  file d 0644 \"x\"\nlower\n  dir d 0755\n",
            // d/x went with d in the middle layer.
            "lower\n  file d/x 0644 \"x\"\nlower\n  whiteout d\nlower\n  whiteout d/x\n",
        ] {
            assert!(unlike_their_tars(&layers(text)).is_some(), "{text}");
        }
    }
}
