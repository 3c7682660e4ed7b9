//! The export (`Session::export`, `CaseRun::export`; docs/images.md): the
//! store's `Diff` of the container layer as an OCI layer tar
//! (`ovlcheck_driver::oci`), that tar read back as a changeset and applied
//! as a new layer, and the merged tree of the image it makes.

mod common;
use common::*;
use ovlcheck_case::oci::DiffMethod;
use ovlcheck_case::{Node, NodeKind, Profile, View};
use ovlcheck_driver::observe::raw_view;
use ovlcheck_driver::oci;
use ovlcheck_driver::sys::{self, Follow};
use ovlcheck_driver::{Backend, PooledBackend, Wants};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tar::EntryType;

const EXPORT: Wants = Wants {
    kernel_view: false,
    export: true,
};

const TRUSTED: &str = "trusted.overlay.";

/// The tar tests make whiteouts (`mknod`), set `trusted.*` xattrs and
/// chown: they need root. Without it they are skipped, loudly, unless
/// `OVL_REQUIRE_KERNEL=1`, which makes that a failure as for the mounts.
fn is_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("OVL_REQUIRE_KERNEL").as_deref() == Ok("1") {
        panic!("{test}: OVL_REQUIRE_KERNEL=1 but not root");
    }
    eprintln!("\n*** SKIP {test}: needs root (mknod, trusted.* xattrs, chown) ***\n");
    false
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn dir_fd(p: &Path) -> std::os::fd::OwnedFd {
    sys::openat(
        sys::CWD,
        p.as_os_str().as_bytes(),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &str) {
    sys::setxattr(&cpath(p), name.as_bytes(), value.as_bytes(), Follow::No).unwrap();
}

fn set_mtime(root: &Path, rel: &str, secs: i64) {
    sys::utimensat(
        dir_fd(root),
        rel.as_bytes(),
        secs,
        libc::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn write(root: &Path, rel: &str, data: &str, mode: u32, mtime: i64) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(root, rel, mtime);
}

fn mkdir(root: &Path, rel: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    std::fs::create_dir(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, from: &str, to: &str) {
    let d = dir_fd(root);
    sys::linkat(&d, from.as_bytes(), &d, to.as_bytes(), 0).unwrap();
}

/// A 120-character name: past the 100 bytes of a tar header's name field.
fn long_name() -> String {
    format!("long/{}", "n".repeat(120))
}

/// An upper directory as the kernel leaves one: two whiteouts that are one
/// inode, an opaque directory, a file with three names, an overlay-private
/// xattr beside ordinary ones, a symlink whose target is not canonical, a
/// fifo, a name too long for a header and an mtime before the epoch.
fn build_upper(up: &Path) {
    let d = dir_fd(up);
    sys::mknodat(
        &d,
        b"w1",
        sys::FileType::CharacterDevice,
        0,
        sys::makedev(0, 0),
    )
    .unwrap();
    sys::fchownat(&d, b"w1", 5, 6, libc::AT_SYMLINK_NOFOLLOW).unwrap();
    set_mtime(up, "w1", 100);
    link(up, "w1", "w2");
    mkdir(up, "o", 0o750);
    sys::fchownat(&d, b"o", 1, 2, 0).unwrap();
    set_xattr(&up.join("o"), "trusted.overlay.opaque", "y");
    set_xattr(&up.join("o"), "user.keep", "1");
    write(up, "o/f", "data", 0o640, 300);
    set_mtime(up, "o", 200);
    write(up, "h1", "hl", 0o644, 400);
    link(up, "h1", "h2");
    mkdir(up, "sub", 0o755);
    link(up, "h1", "sub/h3");
    sys::symlinkat(b"a//./b/", &d, b"s").unwrap();
    set_mtime(up, "s", 500);
    write(up, "x", "", 0o600, 600);
    set_xattr(&up.join("x"), "trusted.overlay.origin", "junk");
    set_xattr(&up.join("x"), "user.a", "1");
    set_xattr(&up.join("x"), "trusted.t", "2");
    sys::mknodat(&d, b"p", sys::FileType::Fifo, 0o600, 0).unwrap();
    set_mtime(up, "p", 700);
    mkdir(up, "long", 0o755);
    write(up, &long_name(), "L", 0o644, 800);
    write(up, "neg", "n", 0o644, -5);
}

/// `(name, type, link name, PAX xattr keys)` of every entry, in tar order.
fn entries(tar: &[u8]) -> Vec<(String, EntryType, String, Vec<String>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let keys = match e.pax_extensions().unwrap() {
                Some(records) => records
                    .map(|r| r.unwrap().key().unwrap().to_string())
                    .filter(|k| k.starts_with("SCHILY.xattr."))
                    .collect(),
                None => Vec::new(),
            };
            (name, e.header().entry_type(), link, keys)
        })
        .collect()
}

fn node(kind: NodeKind, mode: u32, uid: u32, gid: u32) -> Node {
    Node::new(kind, mode, uid, gid)
}

fn file(mode: u32, uid: u32, gid: u32, data: &str, mtime: i64) -> Node {
    let mut n = node(NodeKind::File, mode, uid, gid);
    n.size = data.len() as u64;
    n.data = Some(data.as_bytes().to_vec());
    n.mtime = Some(mtime);
    n
}

/// What `oci::read` must give for the tar of [`build_upper`]'s directory.
fn expected_changeset() -> View {
    let mut v = View::default();
    let mut put = |p: &str, n: Node| {
        v.nodes.insert(p.to_string(), n);
    };
    put(".wh.w1", file(0o600, 5, 6, "", 100));
    put(".wh.w2", file(0o600, 5, 6, "", 100));
    let mut o = node(NodeKind::Dir, 0o750, 1, 2);
    o.xattrs.insert("user.keep".into(), b"1".to_vec());
    put("o", o);
    put("o/.wh..wh..opq", file(0o750, 1, 2, "", 200));
    put("o/f", file(0o640, 0, 0, "data", 300));
    for name in ["h1", "h2", "sub/h3"] {
        let mut h = file(0o644, 0, 0, "hl", 400);
        h.ino = Some("h1".into());
        put(name, h);
    }
    put("sub", node(NodeKind::Dir, 0o755, 0, 0));
    let mut s = node(NodeKind::Symlink, 0o777, 0, 0);
    s.size = 7;
    s.target = Some(b"a//./b/".to_vec());
    s.mtime = Some(500);
    put("s", s);
    let mut x = file(0o600, 0, 0, "", 600);
    x.xattrs.insert("trusted.t".into(), b"2".to_vec());
    x.xattrs.insert("user.a".into(), b"1".to_vec());
    put("x", x);
    let mut p = node(NodeKind::Fifo, 0o600, 0, 0);
    p.mtime = Some(700);
    put("p", p);
    put("long", node(NodeKind::Dir, 0o755, 0, 0));
    put(&long_name(), file(0o644, 0, 0, "L", 800));
    put("neg", file(0o644, 0, 0, "n", -5));
    v
}

/// The walk that writes the native tar finds the markers that make it
/// wrong: the first redirect or metacopy met is named, and an upper
/// without one gives the tar `write_native` gives.
#[test]
fn the_native_tar_is_refused_for_an_upper_with_redirect_or_metacopy() {
    if !is_root("native_tar_markers") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    std::fs::create_dir(&up).unwrap();
    build_upper(&up);
    let plain = oci::write_native(&up, TRUSTED).unwrap();
    assert_eq!(oci::write_native_unmarked(&up, TRUSTED).unwrap(), Ok(plain));
    // `user.overlay.*` names are not markers when the prefix is trusted;
    // the first marker in walk order (name order, depth first) is named.
    set_xattr(&up.join("sub"), "user.overlay.redirect", "/x");
    assert!(oci::write_native_unmarked(&up, TRUSTED).unwrap().is_ok());
    set_xattr(&up.join("x"), "trusted.overlay.metacopy", "");
    assert_eq!(
        oci::write_native_unmarked(&up, TRUSTED).unwrap(),
        Err("the upper holds overlay.metacopy at /x".to_string())
    );
    set_xattr(&up.join("o"), "trusted.overlay.redirect", "/d");
    assert_eq!(
        oci::write_native_unmarked(&up, TRUSTED).unwrap(),
        Err("the upper holds overlay.redirect at /o".to_string())
    );
}

#[test]
fn the_native_tar_converts_whiteouts_opaque_dirs_and_hard_links() {
    if !is_root("native_tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("up");
    std::fs::create_dir(&up).unwrap();
    build_upper(&up);
    let tar = oci::write_native(&up, TRUSTED).unwrap();
    let got = entries(&tar);
    let find = |name: &str| {
        got.iter()
            .position(|e| e.0 == name)
            .unwrap_or_else(|| panic!("no entry {name:?} in {got:#?}"))
    };
    // Two whiteouts that are one inode: two regular entries, no link.
    for w in [".wh.w1", ".wh.w2"] {
        assert_eq!(got[find(w)].1, EntryType::Regular, "{w}");
    }
    // The directory, then its opaque marker; no overlay xattr in PAX.
    assert_eq!(got[find("o/")].1, EntryType::Directory);
    assert_eq!(got[find("o/") + 1].0, "o/.wh..wh..opq");
    assert_eq!(got[find("o/")].3, ["SCHILY.xattr.user.keep"]);
    // The first name in walk order is the file; the others link to it.
    assert_eq!(got[find("h1")].1, EntryType::Regular);
    for l in ["h2", "sub/h3"] {
        assert_eq!(
            (got[find(l)].1, got[find(l)].2.as_str()),
            (EntryType::Link, "h1")
        );
    }
    assert_eq!(
        got[find("x")].3,
        ["SCHILY.xattr.trusted.t", "SCHILY.xattr.user.a"]
    );
    assert_eq!(got[find("s")].2, "a//./b/", "the target as it is");
    assert!(
        got.iter().all(|e| !e.0.is_empty() && e.0 != "./"),
        "no root entry"
    );
    // Read back: the changeset representation of ovlcheck_case::oci.
    let view = oci::read(&tar).unwrap();
    let expected = expected_changeset();
    assert_eq!(
        view,
        expected,
        "{}",
        ovlcheck_case::view::render_diff(&expected.diff(&view))
    );
}

#[test]
fn apply_unpacks_a_native_tar_into_the_same_layer() {
    if !is_root("apply_native") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (up, layer) = (tmp.path().join("up"), tmp.path().join("layer"));
    std::fs::create_dir(&up).unwrap();
    std::fs::create_dir(&layer).unwrap();
    build_upper(&up);
    let tar = oci::write_native(&up, TRUSTED).unwrap();
    oci::apply(&tar, &layer, TRUSTED).unwrap();
    let mut want = raw_view(&up, TRUSTED, &[]).unwrap();
    let mut got = raw_view(&layer, TRUSTED, &[]).unwrap();
    // Not in the tar: the layer root, and the overlay-private origin.
    want.nodes.remove("");
    got.nodes.remove("");
    want.nodes.get_mut("x").unwrap().overlay.clear();
    // A whiteout is made, not unpacked: mknod and chown, no times
    // (go-archive's ConvertRead), so it has the time it was made at.
    for w in ["w1", "w2"] {
        want.nodes.get_mut(w).unwrap().mtime = None;
        got.nodes.get_mut(w).unwrap().mtime = None;
    }
    assert_eq!(
        got,
        want,
        "{}",
        ovlcheck_case::view::render_diff(&want.diff(&got))
    );
    assert_eq!(got.nodes["o"].overlay["opaque"], "y");
    assert_eq!(got.nodes["h1"].nlink, Some(3));
    // Directory mtimes are set once their entries are in.
    let o = std::fs::symlink_metadata(layer.join("o")).unwrap();
    assert_eq!(o.mtime(), 200);
}

/// A tar of raw headers: `(name, type, link name, data)`, names and link
/// names byte for byte (the tar crate's own setters refuse some of them).
fn raw_tar(list: &[(&str, EntryType, &str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in list {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_device_major(0).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn read_refuses_what_no_layer_may_hold() {
    use EntryType::{Directory, Link, Regular};
    let refused = |list: &[(&str, EntryType, &str, &str)], name: &str| {
        let e = oci::read(&raw_tar(list)).expect_err(name);
        assert!(e.contains(name), "{e:?} should name {name:?}");
    };
    refused(&[("a", Regular, "", "1"), ("a", Regular, "", "2")], "a");
    refused(&[("d/", Directory, "", ""), ("d", Directory, "", "")], "d");
    refused(&[("l", Link, "missing", "")], "l");
    refused(&[("l", Link, "f", ""), ("f", Regular, "", "")], "l");
    refused(&[("d/", Directory, "", ""), ("l", Link, "d", "")], "l");
    refused(&[("a/../b", Regular, "", "")], "a/../b");
    refused(&[("../b", Regular, "", "")], "../b");
    refused(&[("/etc/b", Regular, "", "")], "/etc/b");
    refused(&[("f", Regular, "", ""), ("l", Link, "../f", "")], "l");
    // What is fine: `./` prefixes, links to links, any order of groups.
    let v = oci::read(&raw_tar(&[
        ("./d/", Directory, "", ""),
        ("d/z", Regular, "", "z"),
        ("d/b", Link, "d/z", ""),
        ("a", Link, "d/b", ""),
    ]))
    .unwrap();
    let names: Vec<&str> = v.nodes.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "d", "d/b", "d/z"]);
    for n in ["a", "d/b", "d/z"] {
        assert_eq!(v.nodes[n].ino.as_deref(), Some("a"), "{n}");
        assert_eq!(v.nodes[n].data.as_deref(), Some(&b"z"[..]), "{n}");
    }
    assert_eq!(v.nodes["d"].mtime, None);
}

#[test]
fn apply_stays_beneath_the_layer() {
    use EntryType::{Directory, Link, Regular, Symlink};
    if !is_root("apply_beneath") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let fresh = |name: &str| {
        let p = tmp.path().join(name);
        std::fs::create_dir(&p).unwrap();
        p
    };
    let out = outside.to_str().unwrap();
    // Through a symlink the tar made: refused, nothing written outside.
    let e = oci::apply(
        &raw_tar(&[("s", Symlink, out, ""), ("s/x", Regular, "", "x")]),
        &fresh("l1"),
        TRUSTED,
    )
    .unwrap_err();
    assert!(e.to_string().contains("s/x"), "{e}");
    let e = oci::apply(
        &raw_tar(&[("s", Symlink, out, ""), ("s/.wh.x", Regular, "", "")]),
        &fresh("l2"),
        TRUSTED,
    )
    .unwrap_err();
    assert!(e.to_string().contains("s/.wh.x"), "{e}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    for bad in [
        raw_tar(&[("../x", Regular, "", "")]),
        raw_tar(&[("/x", Regular, "", "")]),
        raw_tar(&[("d/", Directory, "", ""), ("d/.wh.", Regular, "", "")]),
        raw_tar(&[("l", Link, "../x", "")]),
    ] {
        assert!(oci::apply(&bad, &fresh("l3"), TRUSTED).is_err());
        std::fs::remove_dir_all(tmp.path().join("l3")).unwrap();
    }
    // Missing parents are made 0755 0:0; a whiteout is a char 0/0 device.
    let l4 = fresh("l4");
    oci::apply(
        &raw_tar(&[
            ("a/b/.wh.gone", Regular, "", ""),
            ("a/b/f", Regular, "", "f"),
        ]),
        &l4,
        TRUSTED,
    )
    .unwrap();
    let v = raw_view(&l4, TRUSTED, &[]).unwrap();
    for d in ["a", "a/b"] {
        assert_eq!(v.nodes[d], node(NodeKind::Dir, 0o755, 0, 0), "{d}");
    }
    assert_eq!(v.nodes["a/b/gone"].kind, NodeKind::Whiteout);
    assert_eq!(v.nodes["a/b/f"].data.as_deref(), Some(&b"f"[..]));
}

fn with_profile(text: &str, preset: &str) -> ovlcheck_case::Case {
    let mut c = case(text);
    c.profile = Profile::preset(preset).expect("preset");
    c
}

fn export_of(text: &str, preset: &str) -> ovlcheck_driver::Export {
    let run = ok(PooledBackend::kernel().run(&with_profile(text, preset), EXPORT));
    run.export.expect("an export")
}

const IMAGE: &str = r#"
lower
  file a 0644 "a"
  file b 0644 "b"
  dir d 0755
  file d/x 0644 "x"
  dir dir1 0755
  file dir1/f 0644 "f"
"#;

#[test]
fn a_deleted_lower_file_is_a_whiteout_entry() {
    if !kernel_available("export_whiteout") {
        return;
    }
    for preset in ["default", "userxattr", "xdev", "enospc"] {
        let e = export_of(&format!("{IMAGE}ops\n  unlink a\n"), preset);
        assert_eq!(e.method, DiffMethod::Native, "{preset}");
        let names: Vec<&str> = e
            .changeset
            .as_ref()
            .unwrap()
            .nodes
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, [".wh.a"], "{preset}");
        let wh = &e.changeset.as_ref().unwrap().nodes[".wh.a"];
        assert_eq!((wh.kind, wh.mode, wh.size), (NodeKind::File, 0o600, 0));
        assert!(
            !e.merged.as_ref().unwrap().nodes.contains_key("a"),
            "{preset}"
        );
        assert_eq!(
            e.merged.as_ref().unwrap().nodes["b"].data.as_deref(),
            Some(&b"b"[..])
        );
    }
}

#[test]
fn a_recreated_directory_is_an_opaque_marker() {
    if !kernel_available("export_opaque") {
        return;
    }
    let ops = "ops\n  unlink d/x\n  rmdir d\n  mkdir d 0700\n";
    for preset in ["default", "userxattr"] {
        let e = export_of(&format!("{IMAGE}{ops}"), preset);
        assert_eq!(e.method, DiffMethod::Native, "{preset}");
        let names: Vec<&str> = e
            .changeset
            .as_ref()
            .unwrap()
            .nodes
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["d", "d/.wh..wh..opq"], "{preset}");
        assert_eq!(
            e.changeset.as_ref().unwrap().nodes["d"],
            node(NodeKind::Dir, 0o700, 0, 0)
        );
        let marker = &e.changeset.as_ref().unwrap().nodes["d/.wh..wh..opq"];
        assert_eq!((marker.kind, marker.mode), (NodeKind::File, 0o700));
        assert_eq!(e.merged.as_ref().unwrap().nodes["d"].mode, 0o700);
        assert!(
            !e.merged.as_ref().unwrap().nodes.contains_key("d/x"),
            "{preset}"
        );
    }
}

#[test]
fn with_redirect_dir_the_diff_is_naive() {
    if !kernel_available("export_naive") {
        return;
    }
    let e = export_of(&format!("{IMAGE}ops\n  rename dir1 dir2\n"), "redirect");
    assert_eq!(e.method, DiffMethod::Naive);
    let mut whiteout = file(0, 0, 0, "", 0);
    whiteout.mtime = Some(0);
    let mut expected = View::default();
    expected.nodes.insert(".wh.dir1".into(), whiteout);
    expected
        .nodes
        .insert("dir2".into(), node(NodeKind::Dir, 0o755, 0, 0));
    let layer_mtime = e.changeset.as_ref().unwrap().nodes["dir2/f"]
        .mtime
        .expect("a file's mtime");
    expected
        .nodes
        .insert("dir2/f".into(), file(0o644, 0, 0, "f", layer_mtime));
    assert_eq!(e.changeset, Ok(expected));
    assert!(!e.merged.as_ref().unwrap().nodes.contains_key("dir1"));
    assert_eq!(
        e.merged.as_ref().unwrap().nodes["dir2/f"].data.as_deref(),
        Some(&b"f"[..])
    );
}

#[test]
fn a_read_only_profile_has_no_export() {
    if !kernel_available("export_readonly") {
        return;
    }
    let run = ok(PooledBackend::kernel().run(&with_profile(IMAGE, "readonly"), EXPORT));
    assert!(run.after_remount.is_some());
    assert_eq!(run.export, None);
}

/// Ops whose views hold no time set by the clock, so that two runs of the
/// case give equal views.
const TIMELESS_OPS: &str = "ops\n  unlink a\n  chmod b 0600\n  rename dir1 dir2\n  mkdir e 0750\n";

#[test]
fn the_export_leaves_the_session_as_it_was() {
    if !kernel_available("export_leaves_session") {
        return;
    }
    for preset in ["default", "redirect", "xdev"] {
        let c = with_profile(&format!("{IMAGE}{TIMELESS_OPS}"), preset);
        let mut s = ok(PooledBackend::kernel().start(&c));
        for step in &c.steps {
            ok(s.apply(step));
        }
        let merged = ok(s.merged_view());
        let upper = ok(s.upper_view());
        let lowers = ok(s.lower_views());
        let e = ok(s.export()).expect("an export");
        // The image the tar makes shows the tree the session shows (inode
        // labels aside: each refers to its own mount).
        let unlabelled = |v: &View| {
            let mut v = v.clone();
            v.nodes.values_mut().for_each(|n| n.ino = None);
            v
        };
        assert_eq!(
            unlabelled(e.merged.as_ref().unwrap()),
            unlabelled(&merged),
            "{preset}"
        );
        assert_eq!(ok(s.merged_view()), merged, "{preset}");
        assert_eq!(ok(s.upper_view()), upper, "{preset}");
        assert_eq!(ok(s.lower_views()), lowers, "{preset}");
        // A second export sees the same layers.
        assert_eq!(ok(s.export()), Some(e), "{preset}");
        ok(s.finish());
        // A whole run observes the same with and without the export; the
        // two runs' whiteouts (`unlink a`) have the clock's mtime of each.
        let b = PooledBackend::kernel();
        let clockless = |mut run: ovlcheck_driver::CaseRun| {
            for n in run.upper.iter_mut().flat_map(|v| v.nodes.values_mut()) {
                if n.kind == ovlcheck_case::NodeKind::Whiteout {
                    n.mtime = None;
                }
            }
            run
        };
        let with = clockless(ok(b.run(&c, EXPORT)));
        let mut without = clockless(ok(b.run(&c, Wants::default())));
        assert!(with.export.is_some());
        without.export = with.export.clone();
        assert_eq!(with, without, "{preset}");
    }
}
