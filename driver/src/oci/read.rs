//! A layer tar's entries as a changeset [`View`] (the representation of
//! [`ovlcheck_case::oci`]).

use super::{entry_path, Pax};
use ovlcheck_case::{Node, NodeKind, View};
use std::collections::HashMap;
use std::io::Read;
use tar::EntryType;

/// The entries of layer tar `tar`, keyed by entry name (no `./`, no
/// trailing `/`):
///
/// - nodes as a raw view fills them (kind, permission bits, owner; size
///   and data of files, data cut at [`crate::exec::READ_LIMIT`]; size and
///   target of symlinks; `Char(major, minor)` for character devices,
///   `Other` for block devices); `mtime` for all but directories; the
///   `SCHILY.xattr.*` PAX records as xattrs;
/// - a link entry has its target's node, and every name of a group of
///   links has `ino` set to the group's smallest name.
///
/// `Err` names the entry that makes the tar no valid layer: a name that is
/// absolute, has a `..` (or an empty or `.`) component or names the layer
/// root; a name met twice (layer.md: "MUST NOT include duplicate
/// entries"); a link whose target is no earlier entry, or a directory
/// (layer.md, "Hardlinks"); an entry kind a layer cannot hold.
pub fn read(tar: &[u8]) -> Result<View, String> {
    let mut view = View::default();
    // Entry name -> the first name of its link group (the regular entry
    // the links point at, directly or through another link).
    let mut group_of: HashMap<String, String> = HashMap::new();
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| format!("tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("tar: {e}"))?;
        let raw = entry.path_bytes().into_owned();
        let show = String::from_utf8_lossy(&raw).into_owned();
        let bad = |why: &str| format!("entry {show:?}: {why}");
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let name = String::from_utf8_lossy(entry_path(&raw)?).into_owned();
        if view.nodes.contains_key(&name) {
            return Err(bad("duplicate name"));
        }
        let pax = Pax::of(&mut entry).map_err(|e| bad(&e.to_string()))?;
        let h = entry.header();
        let field = |r: std::io::Result<u64>| r.map_err(|e| bad(&e.to_string()));
        let id = |v: u64| u32::try_from(v).map_err(|_| bad("owner id out of range"));
        let mode = field(h.mode().map(u64::from))? as u32 & 0o7777;
        let (uid, gid) = (id(field(h.uid())?)?, id(field(h.gid())?)?);
        let mtime = pax.mtime(h).map_err(|e| bad(&e.to_string()))?;
        let device = || -> Result<(u32, u32), String> {
            let major = h.device_major().map_err(|e| bad(&e.to_string()))?;
            let minor = h.device_minor().map_err(|e| bad(&e.to_string()))?;
            Ok((major.unwrap_or(0), minor.unwrap_or(0)))
        };
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut node = match kind {
            EntryType::Link => {
                let target = link.ok_or_else(|| bad("link without a target"))?;
                let target = String::from_utf8_lossy(entry_path(&target)?).into_owned();
                let Some(node) = view.nodes.get(&target) else {
                    return Err(bad(&format!("link to {target:?}, not an earlier entry")));
                };
                if node.kind == NodeKind::Dir {
                    return Err(bad(&format!("link to directory {target:?}")));
                }
                let first = group_of.get(&target).cloned().unwrap_or(target);
                let node = node.clone();
                group_of.insert(name.clone(), first.clone());
                group_of.entry(first.clone()).or_insert(first);
                view.nodes.insert(name, node);
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                let mut n = Node::new(NodeKind::File, mode, uid, gid);
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(&format!("data: {e}")))?;
                n.size = data.len() as u64;
                data.truncate(crate::exec::READ_LIMIT);
                n.data = Some(data);
                n
            }
            EntryType::Directory => Node::new(NodeKind::Dir, mode, uid, gid),
            EntryType::Symlink => {
                let target = link.ok_or_else(|| bad("symlink without a target"))?;
                let mut n = Node::new(NodeKind::Symlink, mode, uid, gid);
                n.size = target.len() as u64;
                n.target = Some(target);
                n
            }
            EntryType::Char => {
                let (major, minor) = device()?;
                Node::new(NodeKind::Char(major, minor), mode, uid, gid)
            }
            EntryType::Block => Node::new(NodeKind::Other, mode, uid, gid),
            EntryType::Fifo => Node::new(NodeKind::Fifo, mode, uid, gid),
            other => return Err(bad(&format!("entry type {:?}", other.as_byte() as char))),
        };
        if node.kind != NodeKind::Dir {
            node.mtime = Some(mtime);
        }
        node.xattrs = pax
            .xattrs
            .into_iter()
            .map(|(k, v)| {
                let v = ovlcheck_case::acl::from_kernel(&k, v);
                (String::from_utf8_lossy(&k).into_owned(), v)
            })
            .collect();
        view.nodes.insert(name, node);
    }
    // Label every group with its smallest name.
    let mut smallest: HashMap<&str, &str> = HashMap::new();
    for (name, first) in &group_of {
        let s = smallest.entry(first.as_str()).or_insert(name.as_str());
        if name.as_str() < *s {
            *s = name.as_str();
        }
    }
    let labels: Vec<(String, String)> = group_of
        .iter()
        .map(|(name, first)| (name.clone(), smallest[first.as_str()].to_string()))
        .collect();
    for (name, label) in labels {
        if let Some(n) = view.nodes.get_mut(&name) {
            n.ino = Some(label);
        }
    }
    Ok(view)
}
