//! OCI changesets as layer entries ([`LayerFormat::Oci`]): the entries of an
//! image layer's tar, turned into the overlay entries an overlay2 store
//! leaves in the layer's `diff/` when it applies that tar (moby go-archive
//! archive_linux.go, `ConvertRead`; docs/images.md).
//!
//! [`LayerFormat::Oci`]: super::LayerFormat::Oci

use super::{check_layer_xattr_name, Entry, LayerError, IMPLIED_DIR_MODE};
use crate::oci::{opaque_name, whiteout_name, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::path::{Name, RelPath};
use crate::quote::word;
use std::collections::BTreeSet;

/// What a changeset entry's path names.
#[derive(PartialEq, Eq)]
enum Named {
    /// An ordinary file or directory.
    Plain,
    /// `D/.wh..wh..opq`: directory `D` is opaque.
    Opaque(RelPath),
    /// `D/.wh.NAME`: `D/NAME` of the lower layers is deleted.
    Whiteout(RelPath),
}

/// Reads `path` as a changeset names it (layer.md, "Whiteouts"). Refused: a
/// `.wh.` basename that names nothing to delete (nothing, `.` or `..` after
/// the prefix), and a `.wh.` name as a directory (the spec: no file or
/// directory of a filesystem can have a name beginning with `.wh.`).
fn named(path: &RelPath) -> Result<Named, String> {
    let Some((last, dirs)) = path.names().split_last() else {
        return Ok(Named::Plain);
    };
    if let Some(d) = dirs
        .iter()
        .find(|d| d.as_str().starts_with(WHITEOUT_PREFIX))
    {
        return Err(format!(
            "`{path}` lies under `{d}`, a whiteout name, which cannot be a directory"
        ));
    }
    let parent = RelPath::from_names(dirs.to_vec());
    if last.as_str() == OPAQUE_WHITEOUT {
        return Ok(Named::Opaque(parent));
    }
    let Some(deleted) = last.as_str().strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Named::Plain);
    };
    if matches!(deleted, "" | "." | "..") {
        return Err(format!(
            "invalid whiteout entry `{path}`: `{last}` names no file to delete"
        ));
    }
    let name = Name::new(deleted).map_err(|e| format!("invalid whiteout entry `{path}`: {e}"))?;
    Ok(Named::Whiteout(parent.join(&name)))
}

/// An overlay entry, or the opaque marker of a directory, which is placed
/// after every other entry.
enum Converted {
    Entry(Entry),
    Opaque(RelPath),
}

/// The overlay entries of an OCI changeset, each with the index of the
/// changeset entry it comes from (OCI image-spec layer.md, Whiteouts and
/// Opaque Whiteout):
/// - `file D/.wh..wh..opq MODE ""` makes directory `D` opaque ([`Entry::Opaque`],
///   placed last, as the opaque marker applies whatever its position); `D`
///   is created `dir D 0755` (owner 0:0) where the marker stands if no entry
///   of the layer creates it. The marker itself is no object;
/// - `file D/.wh.NAME MODE ""` is a whiteout at `D/NAME` ([`Entry::Whiteout`]);
/// - `owner` on a `.wh.NAME` path becomes the whiteout's owner (`ConvertRead`
///   chowns the whiteout device to the entry's uid and gid); `mtime` and
///   `xattr` on a marker path, and `owner` on an opaque marker, are dropped,
///   as nothing holds them;
/// - every other entry is kept as written.
///
/// A whiteout deletes only from lower layers, so a `.wh.x` and an `x` in
/// one layer are the same path created twice, an error of
/// [`LayerSpec::objects`](super::LayerSpec::objects). Errors here: a `.wh.`
/// entry that is not an empty regular file, a marker written twice, a
/// `.wh.` name that deletes nothing or stands as a directory, an opaque
/// marker in the layer root, a hard link to a marker, an attribute on a
/// marker no earlier entry writes, and the overlay marker entries
/// (`whiteout`, `opaque`, `xwhiteouts`, `xwhiteout`, `redirect`), which a
/// changeset cannot hold.
pub fn overlay_entries(entries: &[Entry]) -> Result<Vec<(usize, Entry)>, LayerError> {
    let mut converted = Vec::with_capacity(entries.len());
    // The marker paths written so far.
    let mut markers: BTreeSet<&RelPath> = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let c = convert(e, &mut markers).map_err(|message| LayerError { entry: i, message })?;
        if let Some(c) = c {
            converted.push((i, c));
        }
    }
    let mut created: BTreeSet<RelPath> = converted
        .iter()
        .filter_map(|(_, c)| match c {
            Converted::Entry(e) if creates(e) => Some(e.path().clone()),
            _ => None,
        })
        .collect();
    let mut out = Vec::with_capacity(converted.len());
    let mut opaque = Vec::new();
    for (i, c) in converted {
        match c {
            Converted::Entry(e) => out.push((i, e)),
            Converted::Opaque(dir) => {
                if created.insert(dir.clone()) {
                    let path = dir.clone();
                    out.push((
                        i,
                        Entry::Dir {
                            path,
                            mode: IMPLIED_DIR_MODE,
                        },
                    ));
                }
                opaque.push((i, Entry::Opaque { path: dir }));
            }
        }
    }
    out.extend(opaque);
    Ok(out)
}

/// Whether `e` creates an object (rather than annotating one).
fn creates(e: &Entry) -> bool {
    matches!(
        e,
        Entry::Dir { .. }
            | Entry::File { .. }
            | Entry::Symlink { .. }
            | Entry::Hardlink { .. }
            | Entry::Fifo { .. }
            | Entry::Whiteout { .. }
    )
}

/// One changeset entry; `None` when it is dropped.
fn convert<'a>(
    e: &'a Entry,
    markers: &mut BTreeSet<&'a RelPath>,
) -> Result<Option<Converted>, String> {
    let path = e.path();
    let overlay_only = |form: &str| {
        Err(format!(
            "an `oci` layer cannot hold overlay marker entries; {form}"
        ))
    };
    match e {
        Entry::Whiteout { .. } => {
            let name = whiteout_name(&path.to_string());
            return overlay_only(&format!("write the whiteout as `file {}`", example(&name)));
        }
        Entry::Opaque { .. } => {
            let name = opaque_name(&path.to_string());
            return overlay_only(&format!(
                "write the opaque marker as `file {}`",
                example(&name)
            ));
        }
        Entry::XwhiteoutDir { .. }
        | Entry::Xwhiteout { .. }
        | Entry::Redirect { .. }
        | Entry::Metacopy { .. } => {
            return overlay_only("xwhiteouts, xwhiteout, redirect and metacopy have no OCI form")
        }
        Entry::Attr { .. } => {
            return overlay_only("inode flags have no OCI form (a layer tar carries none)")
        }
        _ => {}
    }
    let what = named(path)?;
    match e {
        Entry::Owner { .. } | Entry::Mtime { .. } | Entry::Xattr { .. } => {
            if what == Named::Plain {
                return Ok(Some(Converted::Entry(e.clone())));
            }
            let attr = match e {
                Entry::Owner { .. } => "owner",
                Entry::Mtime { .. } => "mtime",
                _ => "xattr",
            };
            if !markers.contains(path) {
                return Err(format!(
                    "{attr} on `{path}`, which no earlier entry of this layer creates"
                ));
            }
            match (e, what) {
                (Entry::Owner { uid, gid, .. }, Named::Whiteout(deleted)) => {
                    Ok(Some(Converted::Entry(Entry::Owner {
                        path: deleted,
                        uid: *uid,
                        gid: *gid,
                    })))
                }
                (Entry::Xattr { name, .. }, _) => check_layer_xattr_name(name).map(|()| None),
                _ => Ok(None),
            }
        }
        _ => {
            if let Entry::Hardlink { existing, .. } = e {
                if named(existing)? != Named::Plain {
                    return Err(format!(
                        "hard link target `{existing}` is a whiteout marker, not a file"
                    ));
                }
            }
            let converted = match &what {
                Named::Plain => return Ok(Some(Converted::Entry(e.clone()))),
                Named::Whiteout(deleted) => Converted::Entry(Entry::Whiteout {
                    path: deleted.clone(),
                }),
                Named::Opaque(dir) if dir.is_root() => {
                    return Err(format!(
                        "`{path}` would make the layer root opaque, which a layer cannot hold"
                    ))
                }
                Named::Opaque(dir) => Converted::Opaque(dir.clone()),
            };
            if !matches!(e, Entry::File { data, .. } if data.is_empty()) {
                return Err(format!(
                    "whiteout entry `{path}` must be an empty regular file (`file {}`)",
                    example(&path.to_string())
                ));
            }
            if !markers.insert(path) {
                return Err(format!("`{path}` already exists in this layer"));
            }
            Ok(Some(converted))
        }
    }
}

/// `P 0644 ""`, the rest of a `file` entry that writes marker `path`.
fn example(path: &str) -> String {
    format!("{} 0644 \"\"", word(path))
}
