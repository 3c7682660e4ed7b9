//! Canonical observations of a tree: the merged tree as users see it, or one
//! raw layer directory as it sits on disk. Ordered, hashable, serialisable
//! and diffable, so model and backend can be compared field by field.

use crate::iflags::InodeFlags;
use crate::quote::{quote, word};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

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
    /// A path an implementation listed or showed as a directory but could
    /// not stat, open or list, with the errno. The model predicts it only
    /// for a listed name whose lookup fails (a redirect under
    /// `redirect_dir=nofollow`); any other is a difference.
    Unreadable(crate::Errno),
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
    /// Ordinary xattrs: `user.*` and the POSIX ACLs in merged views
    /// ([`merged_xattr`]); every xattr that is not an overlay-private one
    /// in raw views. An ACL's value is its short text form (crate::acl).
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
    /// Inode flags (FS_IOC_GETFLAGS) of regular files and directories;
    /// none where the implementation has no such ioctl. Read as none from
    /// JSON that lacks it; always written (the worker protocol, postcard,
    /// has no optional fields).
    #[serde(default)]
    pub flags: InodeFlags,
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
            flags: InodeFlags::NONE,
        }
    }
}

/// A whole tree: path (`""` is the root) to node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct View {
    pub nodes: BTreeMap<String, Node>,
}

/// One difference between two views of the same tree.
#[allow(clippy::large_enum_variant)] // short-lived, only built for reports
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewDiff {
    /// Present on the left only.
    OnlyLeft { path: String, node: Node },
    /// Present on the right only.
    OnlyRight { path: String, node: Node },
    /// Present on both sides with different fields.
    Changed {
        path: String,
        left: Node,
        right: Node,
        fields: Vec<String>,
    },
}

impl NodeKind {
    /// The keyword of this kind in renderings: `dir`, `file`, `char(1,3)`...
    pub fn keyword(&self) -> String {
        match self {
            NodeKind::Dir => "dir".into(),
            NodeKind::File => "file".into(),
            NodeKind::Symlink => "symlink".into(),
            NodeKind::Fifo => "fifo".into(),
            NodeKind::Whiteout => "whiteout".into(),
            NodeKind::Char(maj, min) => format!("char({maj},{min})"),
            NodeKind::Other => "other".into(),
            NodeKind::Unreadable(e) => format!("unreadable({e})"),
        }
    }
}

impl fmt::Display for DevClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DevClass::Overlay => "ovl",
            DevClass::Other => "other",
        })
    }
}

/// How a view path is shown: `/` for the root, else as a token of the text
/// format (quoted when needed).
/// Whether a merged view shows the xattr `name`: the `user.*` ones and
/// the POSIX ACLs (crate::acl), which copy-up, chmod and creation change.
pub fn merged_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || std::str::from_utf8(name).is_ok_and(crate::acl::is_acl_name)
}

pub fn show_path(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        word(path)
    }
}

impl fmt::Display for Node {
    /// The fields of a node on one line, without its path, e.g.
    /// `file 0644 0:0 size=2 nlink=1 mtime=1600000000 ino==a dev=ovl "hi"`.
    /// Fields that are `None` are left out; a whiteout owned by 0:0 with
    /// mode 0 is just `whiteout`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.kind.keyword())?;
        let plain_whiteout =
            self.kind == NodeKind::Whiteout && self.mode == 0 && self.uid == 0 && self.gid == 0;
        if !plain_whiteout {
            write!(f, " {:04o} {}:{}", self.mode, self.uid, self.gid)?;
        }
        let show_size = match self.kind {
            NodeKind::File => true,
            NodeKind::Symlink => Some(self.size) != self.target.as_ref().map(|t| t.len() as u64),
            _ => self.size != 0,
        };
        if show_size {
            write!(f, " size={}", self.size)?;
        }
        if let Some(n) = self.nlink {
            write!(f, " nlink={n}")?;
        }
        if let Some(t) = self.mtime {
            write!(f, " mtime={t}")?;
        }
        if let Some(ino) = &self.ino {
            write!(f, " ino={}", word(ino))?;
        }
        if let Some(dev) = self.dev {
            write!(f, " dev={dev}")?;
        }
        if !self.flags.is_empty() {
            write!(f, " flags={}", self.flags)?;
        }
        for (k, v) in &self.overlay {
            write!(f, " {}={}", word(k), word(v))?;
        }
        for (k, v) in &self.xattrs {
            write!(f, " {}={}", word(k), quote(v))?;
        }
        if let Some(t) = &self.target {
            write!(f, " -> {}", quote(t))?;
        }
        if let Some(d) = &self.data {
            write!(f, " {}", quote(d))?;
        }
        Ok(())
    }
}

impl fmt::Display for View {
    /// One line per node, sorted by path, the root shown as `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, node) in &self.nodes {
            writeln!(f, "{} {node}", show_path(path))?;
        }
        Ok(())
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_bytes(v: Option<&Vec<u8>>) -> String {
    v.map_or_else(|| "-".to_string(), |v| quote(v))
}

/// The fields in which two nodes differ, with both sides rendered:
/// `(field, left, right)`. Map fields are compared per key
/// (`xattr[user.k]`, `overlay[redirect]`); a missing value shows as `-`.
pub fn node_field_diffs(l: &Node, r: &Node) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push((name.to_string(), a, b));
        }
    };
    field("kind", l.kind.keyword(), r.kind.keyword());
    field("mode", format!("{:04o}", l.mode), format!("{:04o}", r.mode));
    field("uid", l.uid.to_string(), r.uid.to_string());
    field("gid", l.gid.to_string(), r.gid.to_string());
    field("size", l.size.to_string(), r.size.to_string());
    field(
        "data",
        opt_bytes(l.data.as_ref()),
        opt_bytes(r.data.as_ref()),
    );
    field(
        "target",
        opt_bytes(l.target.as_ref()),
        opt_bytes(r.target.as_ref()),
    );
    field("nlink", opt(&l.nlink), opt(&r.nlink));
    field("mtime", opt(&l.mtime), opt(&r.mtime));
    field("ino", opt(&l.ino), opt(&r.ino));
    field("dev", opt(&l.dev), opt(&r.dev));
    field("flags", l.flags.to_string(), r.flags.to_string());
    let keys: BTreeSet<&String> = l.xattrs.keys().chain(r.xattrs.keys()).collect();
    for k in keys {
        field(
            &format!("xattr[{k}]"),
            opt_bytes(l.xattrs.get(k)),
            opt_bytes(r.xattrs.get(k)),
        );
    }
    let keys: BTreeSet<&String> = l.overlay.keys().chain(r.overlay.keys()).collect();
    for k in keys {
        field(
            &format!("overlay[{k}]"),
            opt(&l.overlay.get(k)),
            opt(&r.overlay.get(k)),
        );
    }
    out
}

impl View {
    /// The differences from `self` (left) to `other` (right), by path.
    pub fn diff(&self, other: &View) -> Vec<ViewDiff> {
        let paths: BTreeSet<&String> = self.nodes.keys().chain(other.nodes.keys()).collect();
        let mut out = Vec::new();
        for path in paths {
            match (self.nodes.get(path), other.nodes.get(path)) {
                (Some(l), None) => out.push(ViewDiff::OnlyLeft {
                    path: path.clone(),
                    node: l.clone(),
                }),
                (None, Some(r)) => out.push(ViewDiff::OnlyRight {
                    path: path.clone(),
                    node: r.clone(),
                }),
                (Some(l), Some(r)) if l != r => out.push(ViewDiff::Changed {
                    path: path.clone(),
                    left: l.clone(),
                    right: r.clone(),
                    fields: node_field_diffs(l, r).into_iter().map(|f| f.0).collect(),
                }),
                _ => {}
            }
        }
        out
    }
}

impl ViewDiff {
    /// The path this difference is at.
    pub fn path(&self) -> &str {
        match self {
            ViewDiff::OnlyLeft { path, .. }
            | ViewDiff::OnlyRight { path, .. }
            | ViewDiff::Changed { path, .. } => path,
        }
    }
}

impl fmt::Display for ViewDiff {
    /// `- path NODE`, `+ path NODE`, or one `~ path field: left -> right`
    /// line per differing field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewDiff::OnlyLeft { path, node } => write!(f, "- {} {node}", show_path(path)),
            ViewDiff::OnlyRight { path, node } => write!(f, "+ {} {node}", show_path(path)),
            ViewDiff::Changed {
                path, left, right, ..
            } => {
                for (i, (name, l, r)) in node_field_diffs(left, right).iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "~ {} {name}: {l} -> {r}", show_path(path))?;
                }
                Ok(())
            }
        }
    }
}

/// A tree diff as text, one line per difference (empty when equal).
pub fn render_diff(diffs: &[ViewDiff]) -> String {
    let mut s = String::new();
    for d in diffs {
        s.push_str(&d.to_string());
        s.push('\n');
    }
    s
}
