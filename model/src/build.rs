//! Building raw layers from layer specs, through `LayerSpec::objects()` so
//! the model and the driver read a case the same way.

use crate::fs::{Ino, Inode, Kind, Layer, UNMAPPED};
use imbl::OrdMap;
use ovlcheck_case::layer::{Object, ObjectKind, DEFAULT_MTIME};
use ovlcheck_case::{LayerSpec, Name};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The raw layer a spec describes. Layer roots are 0755 0:0.
pub(crate) fn layer_from_spec(spec: &LayerSpec) -> Result<Layer, String> {
    layer_from_spec_mapped(spec, &|_| false)
}

/// [`layer_from_spec`] of a layer on an idmapped mount: an owner or group
/// id for which `unmapped` holds is [`UNMAPPED`] (`Profile::unmapped`).
pub(crate) fn layer_from_spec_mapped(
    spec: &LayerSpec,
    unmapped: &dyn Fn(u32) -> bool,
) -> Result<Layer, String> {
    let objects = spec
        .objects()
        .map_err(|e| format!("entry {}: {}", e.entry, e.message))?;
    let mut layer = Layer::new();
    layer.get_mut(layer.root).mtime = Some(DEFAULT_MTIME);
    let mut by_path: BTreeMap<&[Name], Ino> = BTreeMap::new();
    for obj in &objects {
        let names = obj.path.names();
        let (parent, name) = names.split_at(names.len() - 1);
        let dir = if parent.is_empty() {
            layer.root
        } else {
            *by_path
                .get(parent)
                .ok_or_else(|| format!("{}: parent missing", obj.path))?
        };
        let ino = match &obj.kind {
            ObjectKind::Hardlink(existing) => *by_path
                .get(existing.names())
                .ok_or_else(|| format!("{}: hard link target missing", obj.path))?,
            _ => layer.alloc(inode_from_object(obj, unmapped)),
        };
        layer.link(dir, name[0].as_str(), ino);
        by_path.insert(names, ino);
    }
    Ok(layer)
}

fn inode_from_object(obj: &Object, unmapped: &dyn Fn(u32) -> bool) -> Inode {
    let kind = match &obj.kind {
        ObjectKind::Dir => Kind::Dir(OrdMap::new()),
        ObjectKind::File(d) => Kind::File(Arc::new(d.clone())),
        ObjectKind::Symlink(t) => Kind::Symlink(Arc::new(t.clone())),
        ObjectKind::Fifo => Kind::Fifo,
        ObjectKind::Whiteout => Kind::Whiteout,
        ObjectKind::Hardlink(_) => unreachable!("hard links share an inode"),
    };
    let id = |id: u32| if unmapped(id) { UNMAPPED } else { id };
    let mut inode = Inode::new(kind, obj.mode, id(obj.uid), id(obj.gid));
    inode.mtime = Some(obj.mtime);
    inode.xattrs = obj
        .xattrs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if obj.markers.escaped {
        inode.ovl.escaped = escaped_markers(&obj.markers);
        inode.flags = obj.flags;
        return inode;
    }
    inode.ovl.opaque = obj.markers.opaque;
    inode.ovl.redirect = obj.markers.redirect.clone();
    inode.ovl.whiteout = obj.markers.xwhiteout;
    inode.ovl.metacopy = obj.markers.metacopy;
    // A metacopy file a layer gives with data of its own takes that data's
    // pages on disk, which a metacopy made by copy-up (sparse) does not.
    if let (true, ObjectKind::File(d)) = (obj.markers.metacopy, &obj.kind) {
        let pages = (0..crate::space::file_pages(d.len() as u64, None)).collect();
        inode.pages = Some(Arc::new(pages));
    }
    inode.flags = obj.flags;
    inode
}

/// The markers of an escaped layer's object as the xattrs it holds,
/// `overlay.overlay.<name>`, by `<name>` (the key of
/// [`crate::fs::OvlXattrs::escaped`]): values as the driver writes them.
fn escaped_markers(m: &ovlcheck_case::layer::Markers) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(c) = m.opaque {
        out.insert("opaque".to_string(), c.to_string().into_bytes());
    }
    if let Some(r) = &m.redirect {
        out.insert("redirect".to_string(), r.clone().into_bytes());
    }
    if m.xwhiteout {
        out.insert("whiteout".to_string(), Vec::new());
    }
    if m.metacopy {
        out.insert("metacopy".to_string(), Vec::new());
    }
    out
}
