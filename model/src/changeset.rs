//! Layer changesets: what a store's `Diff` makes of the container layer
//! and what its `ApplyDiff` makes of that (docs/images.md). The
//! representation, a [`View`] keyed by tar entry name, is
//! `ovlcheck_case::oci`'s.
//!
//! Rules, each a function below:
//! - [`native_entries`]: the upper directory as overlay2 tars it
//!   (`whiteout_entry`, `opaque_marker`, `hard_link_groups`);
//! - [`naive_entries`]: the difference of the merged trees before and after
//!   (`ovlcheck_case::oci::naive_changes`, or `naive_changes_by_times`
//!   for an engine's store; deletions as whiteouts);
//! - [`Model::exported`]: the changeset applied as a new image layer
//!   (`clock_times`), mounted with a fresh container layer.

use crate::build;
use crate::features::RedirectMode;
use crate::fs::{seen_id, Ino, Kind, Layer};
use crate::resolve::push_name;
use crate::Model;
use imbl::OrdMap;
use ovlcheck_case::layer::CAPABILITY_XATTR;
use ovlcheck_case::oci::{self, ChangeKind, DiffMethod, NaiveCompare};
use ovlcheck_case::{Node, NodeKind, Profile, RedirectDir, View};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl Model {
    /// The changeset a store's `Diff` writes for the container layer now,
    /// and how it is derived ([`oci::diff_method`]); `None` for a
    /// read-only overlay, which has no container layer.
    pub fn changeset(&self) -> Option<(DiffMethod, View)> {
        self.changeset_by(None, NaiveCompare::Content)
    }

    /// [`Model::changeset`] as `differ` derives it when given (an engine
    /// that always uses one differ, [`oci::TarCommit::differ`]), a naive
    /// differ comparing as `naive` says ([`oci::TarCommit::naive`]).
    pub fn changeset_by(
        &self,
        differ: Option<DiffMethod>,
        naive: NaiveCompare,
    ) -> Option<(DiffMethod, View)> {
        let upper = self.upper.as_ref()?;
        let mount = Profile {
            redirect_dir: if self.feat.redirect == RedirectMode::On {
                RedirectDir::On
            } else {
                RedirectDir::Follow
            },
            metacopy: self.feat.metacopy,
            ..Profile::default()
        };
        let method = match differ {
            Some(m) => m,
            None => oci::diff_method(&mount, &self.upper_view()?),
        };
        let entries = match method {
            DiffMethod::Native => native_entries(upper),
            DiffMethod::Naive => {
                let (image, container) = self.diff_trees();
                let reset = match naive {
                    NaiveCompare::Content => BTreeSet::new(),
                    NaiveCompare::Times => self.clock_set_in_upper(),
                };
                naive_entries(&image, &container, naive, &reset)
            }
            DiffMethod::Walking => {
                let (image, container) = self.diff_trees();
                walking_entries(&image, &container, &self.clock_set_in_upper())
            }
        };
        Some((method, entries))
    }

    /// The image's and the container's merged trees as a naive or walking
    /// differ reads them: both differs compare the file capabilities too
    /// (go-archive `addChanges`, continuity's `sameFile`), so both trees
    /// carry them, and the entries, taken from the container's tree, have
    /// theirs.
    fn diff_trees(&self) -> (View, View) {
        let image = self.image();
        (
            image.with_capabilities(image.merged_view()),
            self.with_capabilities(self.merged_view()),
        )
    }

    /// Merged tree `entries` with the file capability of each file:
    /// besides the `user.*` xattrs and ACLs a merged tree shows, a naive or
    /// walking differ reads `security.capability` of every file it compares
    /// and puts in the tar (go-archive `ReadSecurityXattrToTarHeader`;
    /// containerd's walking differ copies every xattr) (`oci::diff_xattr`).
    fn with_capabilities(&self, mut entries: View) -> View {
        self.walk_merged(
            &mut |path: &str, d: &crate::lookup::Dentry| {
                let caps = self.attr(d).xattrs.get(CAPABILITY_XATTR);
                if let (Some(v), Some(n)) = (caps, entries.nodes.get_mut(path)) {
                    if n.kind == NodeKind::File {
                        n.xattrs.insert(CAPABILITY_XATTR.to_string(), v.clone());
                    }
                }
            },
            &mut |_, _| {},
        );
        entries
    }

    /// The merged paths whose object is in the container layer with an
    /// mtime an op there set: later than any time the image holds.
    fn clock_set_in_upper(&self) -> BTreeSet<String> {
        let mut paths = BTreeSet::new();
        self.walk_merged(
            &mut |path: &str, d: &crate::lookup::Dentry| {
                if let Some(u) = d.upper {
                    let inode = self.upper_inode(u);
                    if inode.mtime.is_none() && inode.clock_here {
                        paths.insert(path.to_string());
                    }
                }
            },
            &mut |_, _| {},
        );
        paths
    }

    /// The image alone: the lower layers under an empty container layer
    /// (what a naive or walking differ mounts as the parent).
    fn image(&self) -> Model {
        let mut image = self.clone();
        image.upper = Some(Layer::new());
        image.index = OrdMap::new();
        image.mount();
        image
    }

    /// The overlay after `changeset` is applied as a new image layer on the
    /// same lower layers and mounted with a fresh container layer (what
    /// `docker commit` then `docker run` mounts when the commit goes through
    /// the layer tar). The layer is built from the changeset's OCI entries
    /// (`ovlcheck_case::oci::layer_spec`), read with the OCI whiteout rules
    /// like a case's `lower oci` layer.
    pub fn exported(&self, changeset: &View) -> Result<Model, String> {
        self.exported_beneath(changeset, false)
    }

    /// [`Model::exported`] where the store is Docker's (`init_layer`): a
    /// container of the committed image gets a fresh `-init` layer made
    /// over it (`Model::with_docker_init`, model/src/init_layer.rs) in place
    /// of the case's.
    pub fn exported_beneath(&self, changeset: &View, init_layer: bool) -> Result<Model, String> {
        let mut layer = build::layer_from_spec(&oci::layer_spec(changeset))?;
        clock_times(&mut layer, changeset);
        let mut m = self.clone();
        // A new mount: the driver closed every fd before the commit's
        // unmount (module `fds`).
        m.close_all_fds();
        let lowers = Arc::make_mut(&mut m.lowers);
        if init_layer && lowers.pop().is_none() {
            return Err("no -init layer below the container layer".into());
        }
        lowers.push(layer);
        m.upper = Some(Layer::new());
        m.index = OrdMap::new();
        m.mount();
        Ok(match init_layer {
            true => m.with_docker_init(),
            false => m,
        })
    }
}

/// The native changeset of upper layer `upper` (moby overlay2 `Diff`: a
/// tar of `diff/` through go-archive's overlay whiteout converter). The
/// layer root is not an entry (go-archive `IncludeSourceDir` off).
/// Overlay-private xattrs stay behind; ordinary ones travel as PAX records.
pub(crate) fn native_entries(upper: &Layer) -> View {
    let groups = hard_link_groups(upper);
    let mut nodes = BTreeMap::new();
    let mut path = String::new();
    native_rec(upper, upper.root, &mut path, &groups, &mut nodes);
    View { nodes }
}

fn native_rec(
    upper: &Layer,
    dir: Ino,
    path: &mut String,
    groups: &BTreeMap<Ino, String>,
    nodes: &mut BTreeMap<String, Node>,
) {
    let Some(entries) = upper.get(dir).entries() else {
        return;
    };
    for (name, &ino) in entries.iter() {
        let len = path.len();
        push_name(path, name);
        let inode = upper.get(ino);
        match &inode.kind {
            Kind::Whiteout => {
                let (name, node) = whiteout_entry(path, seen_id(inode.uid), seen_id(inode.gid));
                nodes.insert(name, node);
            }
            Kind::Dir(_) => {
                nodes.insert(path.clone(), plain_node(inode));
                if inode.ovl.opaque == Some('y') {
                    let (name, node) =
                        opaque_marker(path, inode.mode, seen_id(inode.uid), seen_id(inode.gid));
                    nodes.insert(name, node);
                }
                native_rec(upper, ino, path, groups, nodes);
            }
            _ => {
                let mut n = plain_node(inode);
                n.ino = groups.get(&ino).cloned();
                nodes.insert(path.clone(), n);
            }
        }
        path.truncate(len);
    }
}

/// go-archive `ConvertWrite`: a char 0/0 device `NAME` is written as a
/// regular empty file `.wh.NAME`, mode 0600, with the device's owner. Its
/// time is the clock's (the model does not know it).
fn whiteout_entry(path: &str, uid: u32, gid: u32) -> (String, Node) {
    (oci::whiteout_name(path), oci::marker_node(0o600, uid, gid))
}

/// go-archive `ConvertWrite`: a directory with `overlay.opaque` = "y" is
/// written without that xattr, followed by `DIR/.wh..wh..opq`, a regular
/// empty file with the directory's permission bits (`& 0777`) and owner.
fn opaque_marker(dir: &str, mode: u32, uid: u32, gid: u32) -> (String, Node) {
    (
        oci::opaque_name(dir),
        oci::marker_node(mode & 0o777, uid, gid),
    )
}

/// Hard links inside the layer (OCI layer.md, "Hardlinks"): each inode
/// with two or more names in the layer, labelled with its smallest path.
/// Whiteouts are never grouped: the kernel may share one inode among them,
/// but each is its own `.wh.` entry.
fn hard_link_groups(layer: &Layer) -> BTreeMap<Ino, String> {
    let mut names: BTreeMap<Ino, Vec<String>> = BTreeMap::new();
    fn rec(layer: &Layer, dir: Ino, path: &mut String, names: &mut BTreeMap<Ino, Vec<String>>) {
        let Some(entries) = layer.get(dir).entries() else {
            return;
        };
        for (name, &ino) in entries.iter() {
            let len = path.len();
            push_name(path, name);
            let inode = layer.get(ino);
            if inode.is_dir() {
                rec(layer, ino, path, names);
            } else if !inode.is_whiteout() {
                names.entry(ino).or_default().push(path.clone());
            }
            path.truncate(len);
        }
    }
    rec(layer, layer.root, &mut String::new(), &mut names);
    names
        .into_iter()
        .filter(|(_, paths)| paths.len() > 1)
        .filter_map(|(ino, paths)| paths.into_iter().min().map(|p| (ino, p)))
        .collect()
}

/// An object's entry: kind, mode, owner, ordinary xattrs, contents and
/// (non-directories) mtime.
fn plain_node(inode: &crate::fs::Inode) -> Node {
    let kind = match inode.kind {
        Kind::Dir(_) => NodeKind::Dir,
        Kind::File(_) => NodeKind::File,
        Kind::Symlink(_) => NodeKind::Symlink,
        Kind::Fifo => NodeKind::Fifo,
        Kind::Whiteout => NodeKind::Whiteout,
    };
    let mut n = Node::new(kind, inode.mode, seen_id(inode.uid), seen_id(inode.gid));
    n.xattrs = inode
        .xattrs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match &inode.kind {
        Kind::File(d) => {
            n.size = d.len() as u64;
            n.data = Some(d.to_vec());
        }
        Kind::Symlink(t) => {
            n.size = t.len() as u64;
            n.target = Some(t.to_vec());
        }
        _ => {}
    }
    if !inode.is_dir() {
        n.mtime = inode.mtime;
    }
    n
}

/// The naive changeset from merged tree `before` (the image) to `after`
/// (the container) (moby `NaiveDiffDriver.Diff`: `ChangesDirs`, then
/// `ExportChanges`): a deletion is a whiteout entry with mode 0 and owner
/// 0:0; an addition or modification is the merged object in full. Merged
/// paths that are one file (equal `ino` labels) are hard links when two or
/// more of them are entries. A path in both trees is compared as
/// `compare` says ([`NaiveCompare`]; `reset` as for
/// [`oci::naive_changes_by_times`]).
pub(crate) fn naive_entries(
    before: &View,
    after: &View,
    compare: NaiveCompare,
    reset: &BTreeSet<String>,
) -> View {
    let changes = match compare {
        NaiveCompare::Content => oci::naive_changes(before, after),
        NaiveCompare::Times => oci::naive_changes_by_times(before, after, reset),
    };
    tree_entries(after, changes)
}

/// The walking changeset from merged tree `before` (the image) to `after`
/// (the container) (containerd's `walking` differ: continuity
/// `fs.Changes`, then archive `ChangeWriter`): the entries of
/// [`oci::walking_changes`] as [`naive_entries`] writes them.
pub(crate) fn walking_entries(before: &View, after: &View, reset: &BTreeSet<String>) -> View {
    tree_entries(after, oci::walking_changes(before, after, reset))
}

/// The changeset entries of `changes` to merged tree `after`.
fn tree_entries(after: &View, changes: Vec<oci::Change>) -> View {
    let mut nodes = BTreeMap::new();
    let mut labels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in changes {
        if change.kind == ChangeKind::Delete {
            nodes.insert(oci::whiteout_name(&change.path), oci::marker_node(0, 0, 0));
            continue;
        }
        let mut n = after.nodes[&change.path].clone();
        if let Some(label) = n.ino.take() {
            labels.entry(label).or_default().push(change.path.clone());
        }
        (n.nlink, n.dev) = (None, None);
        n.overlay.clear();
        // A layer tar carries no inode flags.
        n.flags = ovlcheck_case::InodeFlags::NONE;
        nodes.insert(change.path, n);
    }
    for paths in labels.into_values().filter(|p| p.len() > 1) {
        let first = paths.iter().min().cloned();
        for p in paths {
            if let Some(n) = nodes.get_mut(&p) {
                n.ino = first.clone();
            }
        }
    }
    View { nodes }
}

/// The times of an applied layer: an entry's mtime is the tar header's,
/// which the model knows only where the case set it; where the clock set
/// it the built object's time is left open (`None`), as in every view.
fn clock_times(layer: &mut Layer, changeset: &View) {
    for (name, node) in &changeset.nodes {
        if node.mtime.is_some() || node.kind == NodeKind::Dir || oci::is_marker(name) {
            continue;
        }
        let mut ino = layer.root;
        for part in name.split('/') {
            match layer.child(ino, part) {
                Some(c) => ino = c,
                None => break,
            }
        }
        let inode = layer.get_mut(ino);
        inode.mtime = None;
        inode.clock_here = false;
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};
    use ovlcheck_case::oci::{DiffMethod, NaiveCompare};

    fn listing(v: &ovlcheck_case::View) -> String {
        v.to_string()
    }

    /// The entry names of `m`'s changeset by differ `method`.
    fn entries(m: &crate::Model, method: DiffMethod) -> Vec<String> {
        let (_, cs) = m.changeset_by(Some(method), NaiveCompare::Content).unwrap();
        cs.nodes.into_keys().collect()
    }

    /// The entry names of `m`'s changeset by containerd's walking differ.
    fn walking(m: &crate::Model) -> Vec<String> {
        entries(m, DiffMethod::Walking)
    }

    #[test]
    fn native_changeset_writes_whiteouts_and_opaque_markers() {
        let mut m = model(
            "lower\n  dir d 0750\n  file d/x 0644 \"x\"\n  file f 0644 \"f\"\n  file g 0644 \"g\"\n",
        );
        for op in [
            "unlink f",
            "rmdir d",
            "unlink d/x",
            "rmdir d",
            "mkdir d 0700",
            "link g h",
        ] {
            run(&mut m, op);
        }
        let (method, cs) = m.changeset().unwrap();
        assert_eq!(method.name(), "native");
        let text = listing(&cs);
        assert!(text.contains(".wh.f file 0600 0:0 size=0 \"\""), "{text}");
        assert!(text.contains("d dir 0700 0:0\n"), "{text}");
        assert!(
            text.contains("d/.wh..wh..opq file 0700 0:0 size=0 \"\""),
            "{text}"
        );
        assert!(
            text.contains("g file 0644 0:0 size=1 mtime=1600000000 ino=g"),
            "{text}"
        );
        assert!(
            text.contains("h file 0644 0:0 size=1 mtime=1600000000 ino=g"),
            "{text}"
        );
        let exported = m.exported(&cs).unwrap();
        let merged = exported.merged_view().to_string();
        assert!(
            !merged.contains("\nf ") && !merged.contains("d/x"),
            "{merged}"
        );
    }

    /// A file whose time came with a committed layer's tar is not changed
    /// by its copy-up; a truncation after it sets the clock again, which
    /// containerd's walking differ sees (found by `fuzz --backend
    /// containerd --seed 21`: corpus/regressions/walking-differ-clock-set-again-after-commit.ovl).
    #[test]
    fn a_time_set_again_after_a_commit_is_a_walking_change() {
        let mut m = model("lower\n  file a/a 0755 \"\"\n");
        assert_eq!(run(&mut m, "open a/a rdwr trunc"), "ok");
        assert_eq!(walking(&m), ["a", "a/a"]);
        let (_, cs) = m
            .changeset_by(Some(DiffMethod::Walking), NaiveCompare::Content)
            .unwrap();
        let mut m = m.exported(&cs).unwrap();
        assert_eq!(run(&mut m, "chmod a/a 0755"), "ok");
        assert!(walking(&m).is_empty(), "a copy-up keeps the tar's time");
        assert_eq!(run(&mut m, "open a/a rdwr trunc"), "ok");
        assert_eq!(walking(&m), ["a", "a/a"]);
    }

    /// A container of the committed image is a new mount: no fd of the
    /// old one is open in it (found by `fuzz --backend containerd --pack 8
    /// --max-ops 40 --seed 22`, case 463: an fd whose file was copied up,
    /// written after a commit, reached an upper inode the new container
    /// layer does not have: corpus/regressions/tar-commit-closes-fds.ovl).
    #[test]
    fn a_commit_through_a_tar_leaves_no_fd_open() {
        let mut m = model("lower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "open f rdwr as g"), "ok");
        assert_eq!(run(&mut m, "chmod f 0600"), "ok");
        let (_, cs) = m.changeset().unwrap();
        let mut m = m.exported(&cs).unwrap();
        assert_eq!(run(&mut m, "fwrite g \"x\""), "EBADF");
        assert_eq!(run(&mut m, "read f"), "\"f\"");
    }

    /// A chown, even to the same owner, drops a file's capability
    /// (`kill_priv`), which containerd's walking differ (continuity
    /// `compareCapabilities`) and moby's naive one (go-archive
    /// `addChanges`) compare: the file is written (found by `fuzz --backend
    /// containerd --seed 24`:
    /// corpus/regressions/walking-differ-capability-dropped.ovl;
    /// corpus/changesets/13-file-capability.ovl).
    #[test]
    fn a_dropped_capability_is_a_change_to_both_tree_differs() {
        for method in [DiffMethod::Walking, DiffMethod::Naive] {
            let mut m = model(concat!(
                "lower\n  file d/b 0000 \"x\"\n",
                "  xattr d/b security.capability ",
                "\"\\x01\\x00\\x00\\x02\\x00\\x04\\x00\\x00\\x00\\x00\\x00\\x00",
                "\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\"\n",
            ));
            assert_eq!(run(&mut m, "chmod d/b 0000"), "ok");
            assert!(
                entries(&m, method).is_empty(),
                "{method}: a chmod keeps the capability"
            );
            assert_eq!(run(&mut m, "chown d/b 0 0"), "ok");
            assert_eq!(entries(&m, method), ["d", "d/b"], "{method}");
        }
    }

    /// The entry names of `m`'s naive changeset comparing as `compare`.
    fn naive(m: &crate::Model, compare: NaiveCompare) -> Vec<String> {
        let (_, cs) = m.changeset_by(Some(DiffMethod::Naive), compare).unwrap();
        cs.nodes.into_keys().collect()
    }

    /// moby's `ChangesDirs` compares times and sizes, the capability
    /// alone of the xattrs, and no data: a new time alone is a change, a
    /// new `user.*` xattr alone is none, and a write that keeps the size
    /// and puts the old time back is none (found by `fuzz --backend docker`
    /// on a host whose overlay turns redirect_dir on:
    /// corpus/docker/naive-diff-compares-times.ovl). ovlcheck's own store
    /// compares content.
    #[test]
    fn naive_changesets_by_times_and_by_content() {
        use NaiveCompare::{Content, Times};
        let mut m = model(concat!(
            "profile redirect\nlower\n  file a 0644 \"a\"\n  file b 0644 \"b\"\n",
            "  file c 0644 \"c\"\n  mtime c 1600000000\n",
        ));
        assert_eq!(run(&mut m, "setxattr a user.x \"1\""), "ok");
        assert_eq!(run(&mut m, "utimes b 1234567890"), "ok");
        assert_eq!(run(&mut m, "write c 0 \"C\""), "ok");
        assert_eq!(run(&mut m, "utimes c 1600000000"), "ok");
        assert_eq!(naive(&m, Times), ["b"]);
        assert_eq!(naive(&m, Content), ["a", "c"]);
        assert_eq!(run(&mut m, "truncate c 2"), "ok");
        assert_eq!(naive(&m, Times), ["b", "c"], "a clock time and a new size");
    }

    #[test]
    fn naive_changeset_with_redirects_lists_a_renamed_directory_in_full() {
        let mut m = model("profile redirect\nlower\n  dir a 0755\n  file a/x 0644 \"x\"\n");
        assert_eq!(run(&mut m, "rename a b"), "ok");
        let (method, cs) = m.changeset().unwrap();
        assert_eq!(method.name(), "naive");
        let text = listing(&cs);
        assert!(text.contains(".wh.a file 0000 0:0 size=0 \"\""), "{text}");
        assert!(text.contains("b dir 0755 0:0"), "{text}");
        assert!(text.contains("b/x file 0644 0:0 size=1"), "{text}");
    }
}
