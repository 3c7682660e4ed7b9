//! Layer specifications: what one layer directory (a lower `diff/`, or the
//! initial upper) holds, written as a list of entries. Overlay markers are
//! entries of their own (`whiteout`, `opaque`, `redirect`, ...) so that one
//! case means the same thing with `trusted.overlay.*` and with
//! `user.overlay.*` (userxattr): the model and the driver pick the namespace
//! from the profile.
//!
//! A layer may instead be written as an OCI changeset ([`LayerFormat::Oci`]),
//! the entries of an image layer's tar with `.wh.` names for deletions; it
//! is turned into overlay entries before it is resolved (module [`oci`]).

mod objects;
pub mod oci;

pub use objects::check_acl_value;
pub use objects::CAPABILITY_XATTR;
pub(crate) use objects::{check_capability_value, check_layer_xattr_name};

use crate::iflags::InodeFlags;
use crate::path::RelPath;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// mtime (seconds since the epoch) of layer objects that do not say `mtime`.
pub const DEFAULT_MTIME: i64 = 1_600_000_000;
/// Mode of directories that are implied by a deeper entry.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// One line of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entry {
    /// `dir P MODE`
    Dir { path: RelPath, mode: u32 },
    /// `file P MODE "DATA"`
    File {
        path: RelPath,
        mode: u32,
        data: Vec<u8>,
    },
    /// `symlink P "TARGET"` (target is free-form: absolute and `..` allowed)
    Symlink { path: RelPath, target: Vec<u8> },
    /// `hardlink P EXISTING`: another name for an earlier file of this layer
    Hardlink { path: RelPath, existing: RelPath },
    /// `fifo P MODE`
    Fifo { path: RelPath, mode: u32 },
    /// `whiteout P`: a char 0/0 device (overlayfs.rst: whiteouts)
    Whiteout { path: RelPath },
    /// `opaque P`: `overlay.opaque="y"` on directory P
    Opaque { path: RelPath },
    /// `xwhiteouts P`: `overlay.opaque="x"` on directory P, which may hold
    /// xattr whiteouts (overlayfs.rst: whiteouts and opaque directories, v6.8 format)
    XwhiteoutDir { path: RelPath },
    /// `xwhiteout P`: an empty regular file with `overlay.whiteout`, only
    /// honoured inside an `xwhiteouts` directory
    Xwhiteout { path: RelPath },
    /// `redirect P "TARGET"`: `overlay.redirect` on directory P, relative
    /// (a name) or absolute (`/a/b`)
    Redirect { path: RelPath, target: String },
    /// `metacopy P`: `overlay.metacopy` on regular file P of this layer,
    /// whose data then lies in a layer below (overlayfs.rst: "Metadata
    /// only copy up")
    Metacopy { path: RelPath },
    /// `xattr P NAME "VALUE"`: an ordinary (non-overlay) xattr
    Xattr {
        path: RelPath,
        name: String,
        value: Vec<u8>,
    },
    /// `owner P UID GID`
    Owner { path: RelPath, uid: u32, gid: u32 },
    /// `mtime P SECS`
    Mtime { path: RelPath, secs: i64 },
    /// `attr P FLAGS`: inode flags (`chattr`) on regular file or directory
    /// P, e.g. `ia` (crate::iflags)
    Attr { path: RelPath, flags: InodeFlags },
}

impl Entry {
    /// The path this entry creates or annotates.
    pub fn path(&self) -> &RelPath {
        match self {
            Entry::Dir { path, .. }
            | Entry::File { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::Hardlink { path, .. }
            | Entry::Fifo { path, .. }
            | Entry::Whiteout { path }
            | Entry::Opaque { path }
            | Entry::XwhiteoutDir { path }
            | Entry::Xwhiteout { path }
            | Entry::Redirect { path, .. }
            | Entry::Metacopy { path }
            | Entry::Xattr { path, .. }
            | Entry::Owner { path, .. }
            | Entry::Mtime { path, .. }
            | Entry::Attr { path, .. } => path,
        }
    }
}

/// How a layer's entries spell deletions and opaque directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LayerFormat {
    /// The overlay on-disk format: the marker entries (`whiteout`,
    /// `opaque`, ...) are what the layer directory holds.
    #[default]
    Overlay,
    /// An OCI changeset as an image layer's tar lists it (`lower oci`):
    /// empty `.wh.NAME` and `.wh..wh..opq` files mark deletions and opaque
    /// directories, so a layer can be pasted from a real image
    /// ([`oci::overlay_entries`]).
    Oci,
    /// The overlay format one level down (`lower escaped`): every marker is
    /// written escaped, as `overlay.overlay.*`, so the overlay that mounts
    /// this layer shows it as `overlay.*` and leaves it to an overlay
    /// mounted over that one (overlayfs.rst: "Nesting overlayfs mounts"; a
    /// composefs image stored on an overlay). A char 0/0 whiteout cannot be
    /// escaped: such a layer writes deletions as xattr whiteouts.
    Escaped,
}

/// The entries of one layer, in the order written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct LayerSpec {
    pub entries: Vec<Entry>,
    /// Read as [`LayerFormat::Overlay`] from JSON that lacks it. Always
    /// written: the driver's worker protocol (postcard) has no optional
    /// fields.
    #[serde(default)]
    pub format: LayerFormat,
}

/// What kind of object a layer path is, after reading its entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    Dir,
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Fifo,
    /// char 0/0
    Whiteout,
    /// Another name of the file at this path (created earlier in the list).
    Hardlink(RelPath),
}

/// Overlay markers on one object, independent of the xattr namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Markers {
    /// `Some('y')` opaque, `Some('x')` may hold xattr whiteouts.
    pub opaque: Option<char>,
    pub redirect: Option<String>,
    /// `overlay.whiteout` on an empty regular file.
    pub xwhiteout: bool,
    /// `overlay.metacopy` on a regular file: its data is below.
    pub metacopy: bool,
    /// Written escaped, as `overlay.overlay.*` ([`LayerFormat::Escaped`]):
    /// markers for the overlay mounted over the one that mounts this layer.
    #[serde(default)]
    pub escaped: bool,
}

impl Markers {
    /// The name of marker `short` (`opaque`, `redirect`, ...) after the
    /// overlay namespace prefix: `overlay.<short>` when escaped.
    pub fn short_name(&self, short: &str) -> String {
        match self.escaped {
            true => format!("overlay.{short}"),
            false => short.to_string(),
        }
    }
}

/// One object to create in a layer directory, fully resolved: implied parent
/// directories made explicit, attributes folded in. Both the model and the
/// driver read layers through [`LayerSpec::objects`], so they cannot read a
/// case differently.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Object {
    pub path: RelPath,
    pub kind: ObjectKind,
    /// Permission bits (07777). 0 for whiteouts; for symlinks 0o777.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Ordinary xattrs (never overlay-private ones).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub markers: Markers,
    /// Inode flags, set after everything else (an immutable directory
    /// takes no new entries).
    pub flags: InodeFlags,
}

/// A layer spec that does not describe a tree; `entry` is the index of the
/// offending entry in [`LayerSpec::entries`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LayerError {
    pub entry: usize,
    pub message: String,
}

impl LayerSpec {
    /// An overlay-format layer of `entries`.
    pub fn new(entries: Vec<Entry>) -> LayerSpec {
        LayerSpec {
            entries,
            format: LayerFormat::Overlay,
        }
    }

    /// Resolves the entries into objects in creation order (parents before
    /// children, hard link targets before links). Implied parent directories
    /// get mode 0755, owner 0:0. Errors: a path created twice, a parent that
    /// is not a directory, a hard link to a missing or non-regular file, an
    /// attribute on a path no entry created, a marker on the wrong kind; in
    /// an OCI layer also what [`oci::overlay_entries`] refuses. An error's
    /// `entry` always indexes [`LayerSpec::entries`] as written.
    pub fn objects(&self) -> Result<Vec<Object>, LayerError> {
        match self.format {
            LayerFormat::Overlay => objects::objects(self.entries.iter().enumerate()),
            LayerFormat::Escaped => objects::escaped_objects(&self.entries),
            LayerFormat::Oci => {
                let entries = oci::overlay_entries(&self.entries)?;
                objects::objects(entries.iter().map(|(i, e)| (*i, e)))
            }
        }
    }
}
