//! OCI layer changesets (docs/images.md; the OCI image spec's layer.md,
//! "Representing Changes" and "Whiteouts"): the tar an image layer is
//! made of, with `.wh.NAME` entries for deletions and `.wh..wh..opq` for
//! opaque directories.
//!
//! A changeset is carried as a [`View`] keyed by tar entry name (no `./`
//! prefix, no trailing `/`), so the model's prediction and the entries a
//! store wrote compare like any other view:
//! - whiteouts and opaque markers are regular empty files with their
//!   `.wh.` names (layer.md, "Whiteouts": "the whiteout file is a regular
//!   file in the archive");
//! - hard links: every name of a group of two or more entries has `ino` set
//!   to the group's smallest name (the entry a tar writer walking in name
//!   order writes first, which the others link to); other entries have no
//!   `ino`;
//! - directories have no `mtime`; `nlink`, `dev` and `overlay` are unset.
//!
//! Entry order is normalized to name order: a tar's own order only has to
//! put each hard link's target first (layer.md, "Hardlinks"), which the
//! reader checks, and whiteouts apply to lower layers whatever their
//! position (layer.md, "Opaque Whiteout").
//!
//! Which changeset a store writes is chosen by [`diff_method`]; the naive
//! one is made of [`naive_changes`].

use crate::layer::{Entry, LayerFormat, LayerSpec};
use crate::path::RelPath;
use crate::profile::{Profile, RedirectDir};
use crate::view::{Node, NodeKind, View};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The prefix of a whiteout entry's basename (layer.md, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The basename of an opaque whiteout entry (layer.md, "Opaque Whiteout").
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How a store derives a container layer's changeset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffMethod {
    /// From the upper directory alone (moby overlay2 `Diff`: a tar of
    /// `diff/` with the overlay whiteout converter).
    Native,
    /// By comparing the merged trees of the parent image and the container
    /// (moby `NaiveDiffDriver`: `ChangesDirs` then `ExportChanges`).
    Naive,
    /// By walking the merged trees of the parent image and the container
    /// side by side (containerd's `walking` differ: continuity
    /// `fs.Changes`, then archive `ChangeWriter`): [`walking_changes`].
    Walking,
}

impl DiffMethod {
    pub fn name(self) -> &'static str {
        match self {
            DiffMethod::Native => "native",
            DiffMethod::Naive => "naive",
            DiffMethod::Walking => "walking",
        }
    }
}

impl fmt::Display for DiffMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which xattrs a store's `Diff` writes into a layer tar (layer.md,
/// "Extended Attributes", leaves it to the implementation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TarXattrs {
    /// Every xattr but the overlay-private ones (ovlcheck's own store, as
    /// containerd's archive package writes them).
    #[default]
    All,
    /// `security.capability` alone: moby's archive package reads no other
    /// xattr into a tar header (`ReadSecurityXattrToTarHeader`), so Docker
    /// commits drop every `user.*` xattr (docs/engines.md).
    Capability,
    /// `security.capability` and every `user.*` xattr but `user.overlay.*`:
    /// containers/storage's archive package (pkg/archive `addTarFile`:
    /// `ReadSecurityXattrToTarHeader`, then `readUserXattrToTarHeader`),
    /// so podman commits keep user xattrs (docs/engines.md, "podman"). That
    /// package also writes an opaque directory's marker only where a lower
    /// layer has the directory ([`TarXattrs::written`]).
    CapabilityAndUser,
}

impl TarXattrs {
    /// `changeset` with the xattrs this store leaves behind removed.
    pub fn carried(self, mut changeset: View) -> View {
        let keep: fn(&str) -> bool = match self {
            TarXattrs::All => return changeset,
            TarXattrs::Capability => |k| k == "security.capability",
            TarXattrs::CapabilityAndUser => |k| {
                k == "security.capability"
                    || (k.starts_with("user.") && !k.starts_with("user.overlay."))
            },
        };
        for node in changeset.nodes.values_mut() {
            node.xattrs.retain(|k, _| keep(k));
        }
        changeset
    }
}

/// How a commit that goes through a layer tar (an engine's `Diff`, then its
/// `ApplyDiff` of the tar as a new image layer) makes the new stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TarCommit {
    /// Which xattrs the tar carries.
    pub xattrs: TarXattrs,
    /// Whether the top lower layer is Docker's `-init` layer, which every
    /// container gets above its image: a container of the committed image
    /// gets a fresh one, made over the committed image (moby daemon
    /// `create`, initlayer `Setup`; docs/engines.md).
    pub init_layer: bool,
    /// The engine's differ when it always uses one (containerd's
    /// `walking`); `None`: the store's own choice ([`diff_method`]).
    pub differ: Option<DiffMethod>,
    /// How its naive differ, where it uses one, tells a changed path.
    pub naive: NaiveCompare,
}

/// How a naive differ decides that a path in both merged trees changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NaiveCompare {
    /// By content ([`differs`]): ovlcheck's own store, whose export check
    /// must not depend on when the clock ticked.
    #[default]
    Content,
    /// By times and sizes, as moby's `ChangesDirs` does
    /// ([`differs_by_times`]): Docker's overlay2 where it diffs naively.
    Times,
}

impl TarXattrs {
    /// Whether [`TarXattrs::written`] reads the lower layers.
    pub fn reads_lowers(self) -> bool {
        self == TarXattrs::CapabilityAndUser
    }

    /// `changeset` as this store's archive package writes it over the raw
    /// lower layers `lowers` (bottom first): [`TarXattrs::carried`], and
    /// for containers/storage (pkg/archive archive_linux.go,
    /// `overlayWhiteoutConverter.ConvertWrite`) an opaque directory's
    /// `.wh..wh..opq` only where, looking from the top lower down, a layer
    /// has the directory before any layer has it or a parent of it as a
    /// whiteout: a directory no lower layer holds hides nothing.
    pub fn written(self, changeset: View, lowers: &[View]) -> View {
        let mut c = self.carried(changeset);
        if self.reads_lowers() {
            c.nodes.retain(|path, _| {
                let Some(dir) = path.strip_suffix(OPAQUE_WHITEOUT) else {
                    return true;
                };
                opaque_marker_written(dir.trim_end_matches('/'), lowers)
            });
        }
        c
    }
}

/// containers/storage's test for writing directory `dir`'s opaque marker
/// ([`TarXattrs::written`]).
fn opaque_marker_written(dir: &str, lowers: &[View]) -> bool {
    let whiteout = |layer: &View, p: &str| {
        layer
            .nodes
            .get(p)
            .is_some_and(|n| n.kind == NodeKind::Whiteout)
    };
    for layer in lowers.iter().rev() {
        if layer.nodes.contains_key(dir) {
            return !whiteout(layer, dir);
        }
        let mut p = dir;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if whiteout(layer, parent) {
                return false;
            }
            p = parent;
        }
    }
    false
}

/// Why the upper directory alone cannot give the layer's changeset, given
/// the mount options and the raw upper `upper` (overlay xattrs by short
/// name, as raw views carry them); `None` when it can.
///
/// - redirect_dir=on: a renamed directory's lower contents stay under the
///   old name in a lower layer, and the upper holds only a redirect to it
///   (moby overlay2 check.go, `doesSupportNativeDiff`, refuses native diff
///   when a rename sets `overlay.redirect`);
/// - metacopy=on: a metadata-only copy-up has no data in the upper (moby
///   check.go, `usingMetacopy`);
/// - an upper that already holds either marker (a case's own upper).
pub fn native_blocker(profile: &Profile, upper: &View) -> Option<String> {
    mount_native_blocker(profile).or_else(|| {
        upper.nodes.iter().find_map(|(path, n)| {
            NATIVE_BLOCKING_MARKERS
                .iter()
                .find(|k| n.overlay.contains_key(**k))
                .map(|k| upper_marker_blocker(k, path))
        })
    })
}

/// The overlay markers (xattr names less the prefix) whose presence in an
/// upper makes its native diff wrong ([`native_blocker`]).
pub const NATIVE_BLOCKING_MARKERS: [&str; 2] = ["redirect", "metacopy"];

/// [`native_blocker`]'s reason for marker `key` at upper path `path`.
pub fn upper_marker_blocker(key: &str, path: &str) -> String {
    format!("the upper holds overlay.{key} at /{path}")
}

/// The part of [`native_blocker`] that the mount options decide alone,
/// before anything is written: a store checks it first and then the upper
/// itself as it writes the native tar.
pub fn mount_native_blocker(profile: &Profile) -> Option<String> {
    if profile.metacopy {
        return Some("metacopy=on: copied-up files may hold no data in the upper".into());
    }
    if profile.redirect_dir == RedirectDir::On {
        return Some(
            "redirect_dir=on: a renamed directory's lower contents are not in the upper".into(),
        );
    }
    None
}

/// [`DiffMethod::Naive`] where [`native_blocker`] says native cannot be
/// right, else [`DiffMethod::Native`].
pub fn diff_method(profile: &Profile, upper: &View) -> DiffMethod {
    match native_blocker(profile, upper) {
        Some(_) => DiffMethod::Naive,
        None => DiffMethod::Native,
    }
}

/// Why a case's container layer is not exported (docs/images.md); `None`
/// when it is. A read-only overlay has no container layer; a store whose
/// one small filesystem holds every layer (`upper_size` with the lowers on
/// the same filesystem) may lack room for the exported layer, and how much
/// an export takes there is not modelled.
pub fn export_blocker(profile: &Profile) -> Option<&'static str> {
    if profile.readonly {
        return Some("read-only: no container layer");
    }
    if profile.upper_size.is_some() && profile.lower_fs == crate::profile::LowerFs::Same {
        return Some("the whole store is on one small tmpfs: the exported layer may not fit");
    }
    None
}

/// A change between two merged trees (moby go-archive changes.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    Add,
    Modify,
    Delete,
}

/// One changed path of [`naive_changes`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Change {
    /// Merged path (`""` is the root, never a change).
    pub path: String,
    pub kind: ChangeKind,
}

/// The changes from merged tree `before` (the parent image) to `after`
/// (the container), in path order, as moby's `ChangesDirs` finds them
/// (go-archive changes.go, `addChanges`):
/// - a path only in `after` is added, and so is everything below it;
/// - a path in both is modified when it differs ([`differs`]);
/// - a path only in `before` is deleted when its parent is a directory in
///   both trees (everything below a deleted or replaced directory goes with
///   it, unlisted);
/// - a directory (not the root) with a change below it that is not itself
///   added or modified is listed as modified, "to properly save and
///   restore filesystem permissions" (changes.go).
///
/// The root is never listed: overlay2's tar of a layer skips the source
/// directory itself (go-archive archive.go, `IncludeSourceDir`). Nor is a
/// *phantom*, a name a merged directory lists whose lookup finds nothing
/// (a whiteout read straight from a layer, which a merged view shows as a
/// whiteout node): there is no object to write, in either tree.
pub fn naive_changes(before: &View, after: &View) -> Vec<Change> {
    tree_changes(before, after, &|_, old, new| differs(old, new), false)
}

/// [`naive_changes`] as moby's `ChangesDirs` finds them, with a path in
/// both trees modified when [`differs_by_times`] says so. `reset` names
/// the paths of `after` whose mtime the clock set after the image was
/// made, where both views leave the time open.
pub fn naive_changes_by_times(
    before: &View,
    after: &View,
    reset: &BTreeSet<String>,
) -> Vec<Change> {
    timed_changes(before, after, reset, differs_by_times, false)
}

/// The changes from merged tree `before` (the parent image) to `after`
/// (the container) as containerd's walking differ finds them (continuity
/// fs/diff.go, `doubleWalkDiff`): the paths of [`naive_changes`], a path
/// in both trees modified when [`walking_differs`] says so. The parents
/// the tar writer adds (containerd archive `ChangeWriter.includeParents`)
/// are the directories `naive_changes` lists as modified. Besides, every
/// other name of a file with an added or modified name is listed as
/// modified: `ChangeWriter.HandleChange` writes an unchanged name of a
/// multiply linked file as a hard link once another name of its inode is
/// written, before or after it (equal `ino` labels are one inode).
///
/// `reset` names the paths of `after` whose mtime the clock set after the
/// image was made, where both views leave the time open.
pub fn walking_changes(before: &View, after: &View, reset: &BTreeSet<String>) -> Vec<Change> {
    timed_changes(before, after, reset, walking_differs, true)
}

/// [`tree_changes`] with `differs` told whether the clock set a path's
/// time again (`reset`).
fn timed_changes(
    before: &View,
    after: &View,
    reset: &BTreeSet<String>,
    differs: fn(&Node, &Node, bool) -> bool,
    links: bool,
) -> Vec<Change> {
    tree_changes(
        before,
        after,
        &|path, old, new| differs(old, new, reset.contains(path)),
        links,
    )
}

/// [`naive_changes`] with `differs` deciding whether a path in both trees
/// changed, and with every name of a written file listed when `links`.
fn tree_changes(
    before: &View,
    after: &View,
    differs: &dyn Fn(&str, &Node, &Node) -> bool,
    links: bool,
) -> Vec<Change> {
    let real = |v: &View| View {
        nodes: v
            .nodes
            .iter()
            .filter(|(_, n)| n.kind != NodeKind::Whiteout)
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect(),
    };
    let (before, after) = (&real(before), &real(after));
    let is_dir = |v: &View, p: &str| v.nodes.get(p).is_some_and(|n| n.kind == NodeKind::Dir);
    let mut changed: std::collections::BTreeMap<&str, ChangeKind> = Default::default();
    for (path, node) in &after.nodes {
        if path.is_empty() {
            continue;
        }
        match before.nodes.get(path) {
            None => {
                changed.insert(path, ChangeKind::Add);
            }
            Some(old) if differs(path, old, node) => {
                changed.insert(path, ChangeKind::Modify);
            }
            Some(_) => {}
        }
    }
    for path in before.nodes.keys() {
        if path.is_empty() || after.nodes.contains_key(path) {
            continue;
        }
        let parent = parent_of(path);
        if is_dir(after, parent) && is_dir(before, parent) {
            changed.insert(path, ChangeKind::Delete);
        }
    }
    if links {
        let written: BTreeSet<&String> = changed
            .iter()
            .filter(|(_, k)| **k != ChangeKind::Delete)
            .filter_map(|(p, _)| after.nodes.get(*p)?.ino.as_ref())
            .collect();
        for (path, node) in &after.nodes {
            if node.ino.as_ref().is_some_and(|l| written.contains(l)) {
                changed.entry(path).or_insert(ChangeKind::Modify);
            }
        }
    }
    let mut parents: Vec<&str> = Vec::new();
    for path in changed.keys() {
        let mut p = parent_of(path);
        while !p.is_empty() && !changed.contains_key(p) {
            parents.push(p);
            p = parent_of(p);
        }
    }
    for p in parents {
        changed.insert(p, ChangeKind::Modify);
    }
    changed
        .into_iter()
        .map(|(path, kind)| Change {
            path: path.to_string(),
            kind,
        })
        .collect()
}

/// Whether a differ that compares merged trees reads xattr `name`: what a
/// merged tree shows ([`crate::view::merged_xattr`]) and the file
/// capability, which go-archive's `ChangesDirs` compares (`addChanges`)
/// and its tar writer copies (`ReadSecurityXattrToTarHeader`).
pub fn diff_xattr(name: &[u8]) -> bool {
    crate::view::merged_xattr(name) || name == crate::layer::CAPABILITY_XATTR.as_bytes()
}

/// Whether a path of both trees changed, for [`naive_changes`] (ovlcheck's
/// own store, [`NaiveCompare::Content`]): moby's `statDifferent` (kind and
/// mode, owner, device numbers; size for non-directories) and the xattrs
/// (of trees read with [`diff_xattr`], so the file capability as
/// `addChanges` compares it), plus a file's data and a symlink's target.
/// The mtime is not a change signal here: a time set by the clock cannot
/// be predicted and repeats within a clock tick (moby#9874 is the same
/// problem for directories), so content is compared instead and a change
/// of times alone is not exported.
pub fn differs(old: &Node, new: &Node) -> bool {
    old.kind != new.kind
        || old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.xattrs != new.xattrs
        || (new.kind != NodeKind::Dir
            && (old.size != new.size || old.data != new.data || old.target != new.target))
}

/// Whether a path of both trees changed, for [`walking_changes`]:
/// continuity's `sameFile` (fs/path.go). Kind, permission bits, owner and
/// device numbers (`compareSysStat`), then `security.capability` alone of
/// the xattrs (`compareCapabilities`); for a non-directory also the size
/// and the mtime's seconds, and where both times have no nanoseconds (a
/// case's times never have them, the clock's always do) the data or the
/// symlink target. A time a view leaves open is the clock's: it differs
/// from any time a case gives, and from an open time of the image when
/// `reset` (the clock set it again since); two open times that are one
/// (copied up unchanged) compare equal.
pub fn walking_differs(old: &Node, new: &Node, reset: bool) -> bool {
    if stat_differs(old, new) {
        return true;
    }
    new.kind != NodeKind::Dir
        && (!same_time(old, new, reset)
            || old.size != new.size
            || old.data != new.data
            || old.target != new.target)
}

/// Whether a path of both trees changed, for [`naive_changes_by_times`]:
/// go-archive's `addChanges`, which compares `statDifferent` (kind and
/// mode, owner, device numbers; for a non-directory the size and the
/// mtime by `sameFsTime`) and `security.capability`, and no data. A time
/// a view leaves open is the clock's, as for [`walking_differs`]. An
/// open time of the image came through the store's tar, which keeps its
/// seconds alone (go-archive `FileInfoHeader`), and `sameFsTime` calls a
/// time of the same second equal to it: the engine backends let the
/// clock pass into the next second after each commit, so a time the
/// clock sets again is never of that second.
pub fn differs_by_times(old: &Node, new: &Node, reset: bool) -> bool {
    stat_differs(old, new)
        || (new.kind != NodeKind::Dir && (!same_time(old, new, reset) || old.size != new.size))
}

/// Kind (a device's with its numbers), permission bits, owner and the file
/// capability: what both tree differs compare on
/// every path (continuity `compareSysStat` and `compareCapabilities`,
/// go-archive `statDifferent` and `addChanges`).
fn stat_differs(old: &Node, new: &Node) -> bool {
    const CAPABILITY: &str = "security.capability";
    old.kind != new.kind
        || old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.xattrs.get(CAPABILITY) != new.xattrs.get(CAPABILITY)
}

/// Whether two non-directories have one mtime: equal where the views give
/// both; a time a view leaves open is the clock's, which no time a case
/// gives equals, and two open times are one unless `reset` (the clock set
/// the newer again).
fn same_time(old: &Node, new: &Node, reset: bool) -> bool {
    match (old.mtime, new.mtime) {
        (Some(a), Some(b)) => a == b,
        (None, None) => !reset,
        _ => false,
    }
}

/// The entry name of the whiteout for merged path `path` (layer.md,
/// "Whiteouts": the prefix plus the basename, in the same directory).
pub fn whiteout_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{WHITEOUT_PREFIX}{base}"),
        None => format!("{WHITEOUT_PREFIX}{path}"),
    }
}

/// The entry name of the opaque marker of directory `dir`.
pub fn opaque_name(dir: &str) -> String {
    if dir.is_empty() {
        OPAQUE_WHITEOUT.to_string()
    } else {
        format!("{dir}/{OPAQUE_WHITEOUT}")
    }
}

/// `path`'s parent (`""` for a top-level name).
pub fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

/// A marker entry (whiteout or opaque whiteout): a regular empty file.
pub fn marker_node(mode: u32, uid: u32, gid: u32) -> Node {
    let mut n = Node::new(NodeKind::File, mode, uid, gid);
    n.data = Some(Vec::new());
    n
}

/// Whether an entry name's basename marks a whiteout or an opaque
/// directory.
pub fn is_marker(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .unwrap_or(name)
        .starts_with(WHITEOUT_PREFIX)
}

/// The entries of a changeset as an `oci` layer of a case (a [`LayerSpec`]
/// in [`LayerFormat::Oci`]): what applying its tar makes of a new layer
/// directory, read with the OCI whiteout rules like any `lower oci`
/// layer. Each name of a hard-link group after the group's label is a
/// `hardlink` to it; attributes follow as `owner`, `mtime` (where known,
/// and not for a marker) and `xattr` lines. Char devices other than
/// whiteouts have no entry kind and are left out (ovlcheck's cases cannot
/// make them).
pub fn layer_spec(changeset: &View) -> LayerSpec {
    let mut entries = Vec::new();
    for (name, node) in &changeset.nodes {
        let Ok(path) = RelPath::parse(name) else {
            continue;
        };
        let link = node.ino.as_ref().filter(|l| *l != name);
        let object = match (node.kind, link) {
            (NodeKind::File | NodeKind::Symlink | NodeKind::Fifo, Some(first)) => {
                match RelPath::parse(first) {
                    Ok(existing) => {
                        entries.push(Entry::Hardlink { path, existing });
                        continue;
                    }
                    Err(_) => continue,
                }
            }
            (NodeKind::Dir, _) => Entry::Dir {
                path: path.clone(),
                mode: node.mode,
            },
            (NodeKind::File, None) => Entry::File {
                path: path.clone(),
                mode: node.mode,
                data: node.data.clone().unwrap_or_default(),
            },
            (NodeKind::Symlink, _) => Entry::Symlink {
                path: path.clone(),
                target: node.target.clone().unwrap_or_default(),
            },
            (NodeKind::Fifo, _) => Entry::Fifo {
                path: path.clone(),
                mode: node.mode,
            },
            _ => continue,
        };
        entries.push(object);
        if node.uid != 0 || node.gid != 0 {
            entries.push(Entry::Owner {
                path: path.clone(),
                uid: node.uid,
                gid: node.gid,
            });
        }
        // A marker holds no time (the OCI reader drops it): left out, so
        // that a layer read twice gives one spec whenever it was written.
        if let Some(secs) = node.mtime.filter(|_| !is_marker(name)) {
            entries.push(Entry::Mtime {
                path: path.clone(),
                secs,
            });
        }
        for (name, value) in &node.xattrs {
            entries.push(Entry::Xattr {
                path: path.clone(),
                name: name.clone(),
                value: value.clone(),
            });
        }
    }
    LayerSpec {
        format: LayerFormat::Oci,
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, mode: u32, data: &str) -> Node {
        let mut n = Node::new(kind, mode, 0, 0);
        if kind == NodeKind::File {
            n.size = data.len() as u64;
            n.data = Some(data.as_bytes().to_vec());
        }
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

    /// continuity `sameFile`: times and data count, `user.*` xattrs do
    /// not; an open time is equal to the image's only when no op set it.
    #[test]
    fn walking_differs_by_times_and_data_not_user_xattrs() {
        let mut f = node(NodeKind::File, 0o644, "x");
        f.mtime = Some(100);
        let mut xattr = f.clone();
        xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        assert!(!walking_differs(&f, &xattr, false));
        assert!(differs(&f, &xattr), "ovlcheck's own store sees it");
        let mut later = f.clone();
        later.mtime = Some(101);
        assert!(walking_differs(&f, &later, false));
        assert!(
            !differs(&f, &later),
            "ovlcheck's own store compares data instead"
        );
        let mut data = f.clone();
        data.data = Some(b"y".to_vec());
        assert!(walking_differs(&f, &data, false));
        let (mut open_a, mut open_b) = (f.clone(), f.clone());
        (open_a.mtime, open_b.mtime) = (None, None);
        assert!(!walking_differs(&open_a, &open_b, false));
        assert!(walking_differs(&open_a, &open_b, true));
        assert!(walking_differs(&f, &open_b, false));
        let dir = node(NodeKind::Dir, 0o755, "");
        let mut dir_xattr = dir.clone();
        dir_xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        assert!(!walking_differs(&dir, &dir_xattr, true));
    }

    /// go-archive `addChanges`: times, sizes and the capability count;
    /// data and `user.*` xattrs do not; an open time is equal to the
    /// image's only when no op set it.
    #[test]
    fn differs_by_times_compares_times_sizes_and_capabilities() {
        let mut f = node(NodeKind::File, 0o644, "x");
        f.mtime = Some(100);
        let mut xattr = f.clone();
        xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        assert!(!differs_by_times(&f, &xattr, false));
        let mut caps = f.clone();
        caps.xattrs
            .insert("security.capability".into(), b"c".to_vec());
        assert!(differs_by_times(&f, &caps, false));
        let mut data = f.clone();
        data.data = Some(b"y".to_vec());
        assert!(!differs_by_times(&f, &data, false));
        let mut bigger = data.clone();
        bigger.size = 2;
        assert!(differs_by_times(&f, &bigger, false));
        let mut later = f.clone();
        later.mtime = Some(101);
        assert!(differs_by_times(&f, &later, false));
        let (mut open_a, mut open_b) = (f.clone(), f.clone());
        (open_a.mtime, open_b.mtime) = (None, None);
        assert!(!differs_by_times(&open_a, &open_b, false));
        assert!(differs_by_times(&open_a, &open_b, true));
        let dir = node(NodeKind::Dir, 0o755, "");
        let mut dir_xattr = dir.clone();
        dir_xattr.xattrs.insert("user.k".into(), b"v".to_vec());
        assert!(!differs_by_times(&dir, &dir_xattr, true));
    }

    /// A marker's time is left out of a layer spec: nothing holds it, and
    /// a layer read twice must give one spec.
    #[test]
    fn layer_spec_gives_markers_no_time() {
        let mut marker = marker_node(0o755, 0, 0);
        marker.mtime = Some(1_796_600_596);
        let mut file = node(NodeKind::File, 0o644, "x");
        file.mtime = Some(1_600_000_000);
        let spec = layer_spec(&view(&[
            ("d", node(NodeKind::Dir, 0o755, "")),
            ("d/.wh..wh..opq", marker),
            ("d/f", file),
        ]));
        let times: Vec<String> = spec
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Mtime { .. }))
            .map(|e| e.path().as_string())
            .collect();
        assert_eq!(times, ["d/f"]);
    }

    /// Every name of a written file is listed; an unchanged file with two
    /// names stays out.
    #[test]
    fn walking_changes_list_every_name_of_a_written_file() {
        let dir = || node(NodeKind::Dir, 0o755, "");
        let file = |data: &str, ino: &str| {
            let mut n = node(NodeKind::File, 0o644, data);
            n.mtime = Some(100);
            n.ino = Some(ino.into());
            n
        };
        let before = view(&[
            ("", dir()),
            ("d", dir()),
            ("d/a", file("a", "=d/a")),
            ("e", dir()),
            ("e/k", file("k", "=e/k")),
            ("e/k2", file("k", "=e/k")),
        ]);
        let after = view(&[
            ("", dir()),
            ("d", dir()),
            ("d/a", file("a", "=d/a")),
            ("d/b", file("a", "=d/a")),
            ("e", dir()),
            ("e/k", file("k", "=e/k")),
            ("e/k2", file("k", "=e/k")),
        ]);
        let paths = |c: Vec<Change>| c.into_iter().map(|c| c.path).collect::<Vec<_>>();
        let none = Default::default();
        assert_eq!(
            paths(walking_changes(&before, &after, &none)),
            ["d", "d/a", "d/b"]
        );
        assert_eq!(paths(naive_changes(&before, &after)), ["d", "d/b"]);
    }

    #[test]
    fn containers_storage_writes_opaque_markers_over_lower_directories_only() {
        let dir = || node(NodeKind::Dir, 0o755, "");
        let marker = || node(NodeKind::File, 0o755, "");
        let mut file = node(NodeKind::File, 0o644, "x");
        file.xattrs.insert("user.k".into(), b"v".to_vec());
        file.xattrs.insert("trusted.t".into(), b"t".to_vec());
        let changeset = view(&[
            ("new", dir()),
            ("new/.wh..wh..opq", marker()),
            ("old", dir()),
            ("old/.wh..wh..opq", marker()),
            ("gone/sub", dir()),
            ("gone/sub/.wh..wh..opq", marker()),
            ("f", file),
        ]);
        let bottom = view(&[("old", dir()), ("gone", dir()), ("gone/sub", dir())]);
        // The upper lower whites out `gone`: its old `sub` is not
        // inherited, so the marker hides nothing.
        let top = view(&[("gone", node(NodeKind::Whiteout, 0, ""))]);
        let lowers = [bottom, top];
        let kept = TarXattrs::CapabilityAndUser.written(changeset.clone(), &lowers);
        let keys: Vec<&str> = kept.nodes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["f", "gone/sub", "new", "old", "old/.wh..wh..opq"]);
        let xattrs: Vec<&String> = kept.nodes["f"].xattrs.keys().collect();
        assert_eq!(xattrs, ["user.k"]);
        let docker = TarXattrs::Capability.written(changeset.clone(), &lowers);
        assert_eq!(docker.nodes.len(), changeset.nodes.len());
        assert!(docker.nodes["f"].xattrs.is_empty());
        assert!(!TarXattrs::Capability.reads_lowers());
    }

    fn listing(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{:?} {}", c.kind, c.path))
            .collect()
    }

    #[test]
    fn naive_changes_follow_moby_changes_dirs() {
        let dir = |m| node(NodeKind::Dir, m, "");
        let file = |d| node(NodeKind::File, 0o644, d);
        let before = view(&[
            ("", dir(0o755)),
            ("a", dir(0o755)),
            ("a/b", dir(0o755)),
            ("a/b/f", file("x")),
            ("a/keep", file("k")),
            ("gone", dir(0o700)),
            ("gone/deep", file("d")),
            ("swap", dir(0o755)),
            ("swap/x", file("x")),
        ]);
        let mut touched = file("k");
        touched.mtime = Some(5);
        let after = view(&[
            ("", dir(0o700)),
            ("a", dir(0o755)),
            ("a/b", dir(0o755)),
            ("a/b/f", file("y")),
            ("a/keep", touched),
            ("new", dir(0o755)),
            ("new/n", file("n")),
            ("swap", file("now a file")),
        ]);
        assert_eq!(
            listing(&naive_changes(&before, &after)),
            [
                "Modify a",
                "Modify a/b",
                "Modify a/b/f",
                "Delete gone",
                "Add new",
                "Add new/n",
                "Modify swap",
            ]
        );
    }

    #[test]
    fn marker_names() {
        assert_eq!(whiteout_name("a/b"), "a/.wh.b");
        assert_eq!(whiteout_name("b"), ".wh.b");
        assert_eq!(opaque_name("d/e"), "d/e/.wh..wh..opq");
        assert!(is_marker("d/.wh..wh..opq") && is_marker(".wh.x") && !is_marker("a.wh.x"));
    }
}
