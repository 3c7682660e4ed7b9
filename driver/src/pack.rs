//! Several cases in one overlay mount (`--pack N`, docs/performance.md,
//! "Packing"). Most of a case's cost on the kernel is its mounts: the
//! mount, the remount check, the commit check, each with an unmount that
//! waits for RCU grace periods, and the teardown of its scratch. Cases of
//! one profile can share them: case `i` of a pack lives in the directory
//! [`case_dir`]`(i)` of every layer (the upper included), its steps run
//! beneath that directory (`openat2` `RESOLVE_IN_ROOT`, so absolute symlink
//! targets and `..` stop there, as they stop at a mount root), and every
//! view of the pack is cut back into one view per case ([`split_view`]).
//!
//! The case directory stands for the mount root: like the root it is a
//! directory of every layer, upper included, so it is never copied up,
//! and it has the attributes a layer's root has in the store (mode 0755,
//! owned by root, no xattrs). A case with fewer layers than the pack
//! finds only its directory, empty, in the layers above its own. What
//! differs from a mount of its own is named by [`unpackable`], and such
//! cases run alone; the harness confirms every packed divergence alone
//! before it reports it.

use ovlcheck_case::layer::oci::overlay_entries;
use ovlcheck_case::layer::LayerFormat;
use ovlcheck_case::{Case, Entry, LayerSpec, Name, Op, Profile, RelPath, View};

/// Most cases in one pack.
pub const MAX_PACK: usize = 64;

/// The directory of case `index` of a pack: in every layer, the upper
/// included, and the root its steps resolve beneath.
pub fn case_dir(index: usize) -> String {
    format!("pack{index}")
}

/// Why `case` cannot share a mount with other cases, or `None` when it
/// can.
pub fn unpackable(case: &Case) -> Option<&'static str> {
    if let Some(why) = unpackable_profile(&case.profile) {
        return Some(why);
    }
    if !case.data.is_empty() && redirect_above_a_lower(case) {
        // corpus/known-kernel/metacopy-redirect-past-lower-dir-eio.ovl
        return Some(
            "a directory on an absolute redirect's path in a lower layer turns the kernel's \
             data-only lookup off, and a pack's case directory is one",
        );
    }
    if case
        .lowers
        .iter()
        .any(|l| l.format == ovlcheck_case::layer::LayerFormat::Escaped)
    {
        return Some("an escaped layer, whose markers a pack's shared layer cannot keep apart");
    }
    if case.steps.iter().any(|s| changes_root(&s.op)) {
        return Some("chattr of the mount root, whose flags a remount drops");
    }
    None
}

/// Whether a layer with lower layers below it (a lower but the bottom
/// one, or the upper) has an absolute redirect: its lookup goes on below
/// by the redirect's path, through the case directory every layer of a
/// pack has.
fn redirect_above_a_lower(case: &Case) -> bool {
    case.lowers
        .iter()
        .skip(1)
        .chain(&case.upper)
        .flat_map(|l| &l.entries)
        .any(|e| matches!(e, Entry::Redirect { target, .. } if target.starts_with('/')))
}

/// Whether packable cases `a` and `b` can share a mount: one profile, as
/// many data-only layers (a mount with them follows a metacopy file's
/// absolute redirect into them only, one without follows it in the lower
/// layers), and lifecycle steps of the same kinds in the same order,
/// which the pack makes once for all its cases when each has run its
/// steps before them ([`lifecycle_kinds`]; at an `offline` step, each
/// case's own change beneath its directory, then one mount).
pub fn compatible(a: &Case, b: &Case) -> bool {
    a.profile == b.profile
        && a.data.len() == b.data.len()
        && lifecycle_kinds(a).eq(lifecycle_kinds(b))
}

/// The kinds of `case`'s lifecycle steps (remount, commit, offline), in
/// order.
pub fn lifecycle_kinds(case: &Case) -> impl Iterator<Item = std::mem::Discriminant<Op>> + '_ {
    case.steps
        .iter()
        .map(|s| &s.op)
        .filter(|op| op.is_lifecycle())
        .map(std::mem::discriminant)
}

/// Whether `op` sets inode flags of the root itself: the kernel reads no
/// `protattr` of the mount root when it mounts, so after a remount the
/// root shows none, where a case directory, looked up, shows them.
fn changes_root(op: &Op) -> bool {
    matches!(op, Op::Chattr { .. }) && op.paths().iter().any(|p| p.is_root())
}

/// Why no case of `profile` can share a mount, or `None`.
pub fn unpackable_profile(profile: &Profile) -> Option<&'static str> {
    if profile.upper_size.is_some() {
        return Some("the space of a sized upper layer is shared by every case of the mount");
    }
    None
}

/// The pack of `cases` (every one [`unpackable`] says `None` of, each
/// [`compatible`] with the others) as one case: each layer holds every case's
/// [`case_dir`] and, beneath it, the entries of that case's layer of the
/// same height (layers are aligned at the bottom); absolute redirects are
/// moved into the case's directory. The pack has no steps: they run
/// case by case beneath each case's directory.
pub fn combine(cases: &[Case]) -> Result<Case, String> {
    let first = cases.first().ok_or("an empty pack")?;
    if cases.iter().any(|c| !compatible(c, first)) {
        return Err("a pack mixes cases that cannot share a mount".into());
    }
    let height = |f: fn(&Case) -> usize| cases.iter().map(f).max().unwrap_or(0);
    let data = (0..height(|c| c.data.len()))
        .map(|j| layer(cases, |c| c.data.get(j)))
        .collect::<Result<_, _>>()?;
    let lowers = (0..height(|c| c.lowers.len()))
        .map(|j| layer(cases, |c| c.lowers.get(j)))
        .collect::<Result<_, _>>()?;
    let upper = match first.profile.readonly {
        true => None,
        false => Some(layer(cases, |c| c.upper.as_ref())?),
    };
    Ok(Case {
        profile: first.profile.clone(),
        known: Vec::new(),
        data,
        lowers,
        upper,
        steps: Vec::new(),
    })
}

/// A layer holding only the directories of a pack of `cases` cases, as
/// a store makes a layer's root: what a commit's fresh container layer
/// gets, so that each case's root has a new upper directory, as a mount
/// root has after a commit.
pub fn dirs_layer(cases: usize) -> LayerSpec {
    LayerSpec {
        entries: (0..cases)
            .map(|i| Entry::Dir {
                path: dir_path(i),
                mode: 0o755,
            })
            .collect(),
        format: LayerFormat::Overlay,
    }
}

/// One layer of a pack: every case's directory, then each case's own
/// layer (`pick`) beneath it.
fn layer<'c>(
    cases: &'c [Case],
    pick: impl Fn(&'c Case) -> Option<&'c LayerSpec>,
) -> Result<LayerSpec, String> {
    let mut entries = dirs_layer(cases.len()).entries;
    for (i, case) in cases.iter().enumerate() {
        let Some(spec) = pick(case) else { continue };
        let own: Vec<Entry> = match spec.format {
            LayerFormat::Overlay | LayerFormat::Escaped => spec.entries.clone(),
            LayerFormat::Oci => overlay_entries(&spec.entries)
                .map_err(|e| format!("layer entry {}: {}", e.entry, e.message))?
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
        };
        entries.extend(own.into_iter().map(|e| moved(e, i)));
    }
    Ok(LayerSpec {
        entries,
        format: LayerFormat::Overlay,
    })
}

/// [`case_dir`] as a path.
fn dir_path(index: usize) -> RelPath {
    let name = Name::new(&case_dir(index)).expect("a pack directory is a valid name");
    RelPath::from_names(vec![name])
}

/// `path` beneath case `index`'s directory.
fn beneath(index: usize, path: &RelPath) -> RelPath {
    let mut names = dir_path(index).names().to_vec();
    names.extend_from_slice(path.names());
    RelPath::from_names(names)
}

/// A layer entry of case `index` moved beneath its directory.
fn moved(e: Entry, index: usize) -> Entry {
    let at = |p: &RelPath| beneath(index, p);
    match e {
        Entry::Dir { path, mode } => Entry::Dir {
            path: at(&path),
            mode,
        },
        Entry::File { path, mode, data } => Entry::File {
            path: at(&path),
            mode,
            data,
        },
        Entry::Symlink { path, target } => Entry::Symlink {
            path: at(&path),
            target,
        },
        Entry::Hardlink { path, existing } => Entry::Hardlink {
            path: at(&path),
            existing: at(&existing),
        },
        Entry::Fifo { path, mode } => Entry::Fifo {
            path: at(&path),
            mode,
        },
        Entry::Whiteout { path } => Entry::Whiteout { path: at(&path) },
        Entry::Opaque { path } => Entry::Opaque { path: at(&path) },
        Entry::XwhiteoutDir { path } => Entry::XwhiteoutDir { path: at(&path) },
        Entry::Xwhiteout { path } => Entry::Xwhiteout { path: at(&path) },
        // An absolute redirect, well-formed or not, starts at the case's
        // directory: the kernel's verdict on its form (namei.c:
        // ovl_get_redirect_xattr, no empty component) is unchanged.
        Entry::Redirect { path, target } => Entry::Redirect {
            path: at(&path),
            target: match target.starts_with('/') {
                true => format!("/{}{target}", case_dir(index)),
                false => target,
            },
        },
        Entry::Metacopy { path } => Entry::Metacopy { path: at(&path) },
        Entry::Xattr { path, name, value } => Entry::Xattr {
            path: at(&path),
            name,
            value,
        },
        Entry::Owner { path, uid, gid } => Entry::Owner {
            path: at(&path),
            uid,
            gid,
        },
        Entry::Mtime { path, secs } => Entry::Mtime {
            path: at(&path),
            secs,
        },
        Entry::Attr { path, flags } => Entry::Attr {
            path: at(&path),
            flags,
        },
    }
}

/// The overlay-private xattrs the kernel gives the upper layer's root
/// itself when it mounts (super.c: `ovl_init_uuid_xattr`, and with
/// index=on `ovl_verify_origin` of the upper root), which a case directory
/// of a pack never gets, and the origin a case directory gets as a
/// merge directory, which the root never does. A case's root in a raw
/// view takes them from the pack's root.
pub const MOUNT_ROOT_XATTRS: [&str; 2] = ["uuid", "origin"];

/// Case `index`'s part of a view of the pack: the nodes beneath its
/// directory, that directory as the root (with the pack root's
/// [`MOUNT_ROOT_XATTRS`]), with the inode labels and absolute redirects
/// that named paths of the pack naming the case's own paths again.
pub fn split_view(view: &View, index: usize) -> View {
    let dir = case_dir(index);
    let inner = format!("{dir}/");
    let strip = |p: &str| -> Option<String> {
        if p == dir {
            Some(String::new())
        } else {
            p.strip_prefix(&inner).map(str::to_string)
        }
    };
    let mut out = View::default();
    for (path, node) in &view.nodes {
        let Some(own) = strip(path) else { continue };
        let mut node = node.clone();
        if let Some(label) = &node.ino {
            let (mark, p) = label.split_at(label.len().min(1));
            if let Some(p) = strip(p) {
                node.ino = Some(format!("{mark}{p}"));
            }
        }
        if let Some(r) = node.overlay.get_mut("redirect") {
            if let Some(p) = r.strip_prefix('/').and_then(strip) {
                *r = format!("/{p}");
            }
        }
        if own.is_empty() {
            let root = view.nodes.get("");
            for key in MOUNT_ROOT_XATTRS {
                match root.and_then(|r| r.overlay.get(key)) {
                    Some(v) => node.overlay.insert(key.to_string(), v.clone()),
                    None => node.overlay.remove(key),
                };
            }
        }
        out.nodes.insert(own, node);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovlcheck_case::{Node, NodeKind};

    fn case(text: &str) -> Case {
        ovlcheck_case::parse_case("test", text).expect("test case parses")
    }

    #[test]
    fn layers_are_aligned_at_the_bottom_and_entries_moved() {
        let a = case("lower\n  file f 0644 \"a\"\nlower\n  dir d 0755\n  redirect d \"/x/y\"\n");
        let b = case("lower\n  file f 0600 \"b\"\n  hardlink h f\n");
        let pack = combine(&[a, b]).expect("combines");
        assert_eq!(pack.lowers.len(), 2);
        let text = |l: &LayerSpec| {
            l.entries
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let paths = |l: &LayerSpec| -> Vec<String> {
            l.entries.iter().map(|e| e.path().as_string()).collect()
        };
        assert_eq!(
            paths(&pack.lowers[0]),
            ["pack0", "pack1", "pack0/f", "pack1/f", "pack1/h"]
        );
        assert_eq!(
            paths(&pack.lowers[1]),
            ["pack0", "pack1", "pack0/d", "pack0/d"]
        );
        assert!(text(&pack.lowers[1]).contains("\"/pack0/x/y\""));
        let upper = pack.upper.expect("a writable profile has an upper");
        assert_eq!(upper.entries.len(), 2, "only the two case directories");
    }

    #[test]
    fn a_view_is_cut_back_to_each_case() {
        let mut v = View::default();
        let dir = Node::new(NodeKind::Dir, 0o755, 0, 0);
        let mut file = Node::new(NodeKind::File, 0o644, 0, 0);
        file.ino = Some("=pack1/a".into());
        let mut moved = dir.clone();
        moved.overlay.insert("redirect".into(), "/pack1/d".into());
        let mut root = dir.clone();
        root.overlay.insert("uuid".into(), "uuid".into());
        v.nodes.insert(String::new(), root);
        let mut merge_dir = dir.clone();
        merge_dir.overlay.insert("origin".into(), "fh".into());
        merge_dir.overlay.insert("impure".into(), "y".into());
        v.nodes.insert("pack0".into(), merge_dir);
        v.nodes.insert("pack1".into(), dir.clone());
        v.nodes.insert("pack1/a".into(), file.clone());
        v.nodes.insert("pack1/e".into(), moved);
        v.nodes.insert("pack10/a".into(), file);
        let one = split_view(&v, 1);
        let names: Vec<&str> = one.nodes.keys().map(String::as_str).collect();
        assert_eq!(names, ["", "a", "e"]);
        assert_eq!(one.nodes["a"].ino.as_deref(), Some("=a"));
        assert_eq!(one.nodes["e"].overlay["redirect"], "/d");
        let zero = split_view(&v, 0);
        assert_eq!(zero.nodes.len(), 1);
        let overlay: Vec<(&str, &str)> = zero.nodes[""]
            .overlay
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(overlay, [("impure", "y"), ("uuid", "uuid")]);
    }

    #[test]
    fn what_can_share_a_mount() {
        let plain = case("lower\n  file f 0644 \"a\"\nops\n  read f\n  remount\n  stat f\n");
        let same = case("lower\nops\n  create g 0644\n  remount\n");
        let other = case("lower\nops\n  commit\n");
        assert_eq!(unpackable(&plain), None);
        assert!(compatible(&plain, &same), "the same lifecycle steps");
        assert!(!compatible(&plain, &other), "other lifecycle steps");
        let root_flags = case("lower\nops\n  chattr . a\n");
        assert!(unpackable(&root_flags).is_some());
        let root_mode = case("lower\nops\n  chmod . 0700\n");
        assert_eq!(
            unpackable(&root_mode),
            None,
            "a commit gives the root a new upper"
        );
        let bottom = "profile metacopy\ndata\n  file ab/d 0644 \"d\"\nlower\n  file f 0600 \"x\"\n  metacopy f\n  redirect f \"/ab/d\"\n";
        assert_eq!(
            unpackable(&case(bottom)),
            None,
            "nothing below the bottom layer"
        );
        let above =
            format!("{bottom}lower\n  file g 0600 \"x\"\n  metacopy g\n  redirect g \"/ab/d\"\n");
        assert!(
            unpackable(&case(&above)).is_some(),
            "known-kernel/metacopy-redirect-past-lower-dir-eio"
        );
        let sized = case("profile enospc\nlower\n");
        assert!(unpackable(&sized).is_some());
        let offline = case("lower\n  file f 0644 \"a\"\nops\n  offline 0 remove f\n  stat f\n");
        let other_change = case("lower\nlower\nops\n  offline 1 file g 0644 \"b\"\n");
        assert_eq!(unpackable(&offline), None);
        assert!(
            compatible(&offline, &other_change),
            "each case makes its own offline change"
        );
        assert!(
            !compatible(&offline, &plain),
            "an offline step is not a remount"
        );
    }

    #[test]
    fn any_absolute_redirect_starts_at_the_case_directory() {
        let c =
            case("lower\n  dir d 0755\n  redirect d \"/\"\n  dir e 0755\n  redirect e \"e2\"\n");
        let pack = combine(&[c.clone(), c]).expect("combines");
        let targets: Vec<String> = pack.lowers[0]
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Redirect { target, .. } => Some(target.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(targets, ["/pack0/", "e2", "/pack1/", "e2"]);
    }
}
