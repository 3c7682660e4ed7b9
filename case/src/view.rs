//! Canonical observations of a tree: the merged tree as users see it, or one
//! raw layer directory as it sits on disk. Ordered, hashable, serialisable
//! and diffable, so model and backend can be compared field by field.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The type of a node, with raw-layer kinds (whiteouts) included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
    Fifo,
    /// A char 0/0 device in a raw layer (overlayfs.rst: whiteouts).
    Whiteout,
    /// Any other character device, with its device numbers.
    Char(u32, u32),
    Other,
}

/// Whether a merged non-directory reports the overlay's own st_dev or
/// another one (a per-filesystem pseudo device when layers are on different
/// filesystems without xino; overlayfs.rst: inode properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DevClass {
    /// Same st_dev as the overlay root.
    Overlay,
    /// A different st_dev.
    Other,
}

/// One path of a view.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    pub kind: NodeKind,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files and symlinks; 0 otherwise.
    pub size: u64,
    /// Contents of a regular file.
    pub data: Option<Vec<u8>>,
    /// Target of a symlink.
    pub target: Option<Vec<u8>>,
    /// Link count of non-directories; `None` where it is not observed
    /// (directories, and whiteouts in raw layers, which the kernel hard-links
    /// to one shared inode).
    pub nlink: Option<u32>,
    /// mtime in seconds of non-directories; `None` where it is not compared
    /// (directories, and times set by the clock).
    pub mtime: Option<i64>,
    /// Ordinary xattrs: `user.*` in merged views; every xattr that is not an
    /// overlay-private one in raw views.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Raw views only: overlay-private xattrs by short name (`opaque`,
    /// `redirect`, `origin`, `metacopy`, `impure`, `nlink`, `whiteout`,
    /// `uuid`, ...). Binary values (file handles, uuids) are normalised to a
    /// fixed word so views do not depend on the machine.
    pub overlay: BTreeMap<String, String>,
    /// Merged views only, non-directories: the inode's identity label. `=P`:
    /// the inode that merged path P (the smallest such path) had when the
    /// current mount was made; `+P`: an inode made after the mount, P the
    /// smallest current path that has it. Equal labels mean a shared inode.
    pub ino: Option<String>,
    /// Merged views only, non-directories.
    pub dev: Option<DevClass>,
}

impl Node {
    /// A node of this kind with every optional field unset.
    pub fn new(kind: NodeKind, mode: u32, uid: u32, gid: u32) -> Node {
        Node {
            kind,
            mode,
            uid,
            gid,
            size: 0,
            data: None,
            target: None,
            nlink: None,
            mtime: None,
            xattrs: BTreeMap::new(),
            overlay: BTreeMap::new(),
            ino: None,
            dev: None,
        }
    }
}

/// A whole tree: path (`""` is the root) to node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct View {
    pub nodes: BTreeMap<String, Node>,
}

/// One difference between two views of the same tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewDiff {
    /// Present on the left only.
    OnlyLeft { path: String, node: Node },
    /// Present on the right only.
    OnlyRight { path: String, node: Node },
    /// Present on both sides with different fields.
    Changed { path: String, left: Node, right: Node, fields: Vec<String> },
}
