//! `LayerSpec::objects`: implied parents, defaults, folded attributes.

use ovlcheck_case::layer::{ObjectKind, DEFAULT_MTIME, IMPLIED_DIR_MODE};
use ovlcheck_case::{parse_case, LayerSpec};

fn layer(body: &str) -> LayerSpec {
    let c = parse_case("t", &format!("lower\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
    c.lowers.into_iter().next().unwrap()
}

#[test]
fn implied_parents_and_defaults() {
    let objs = layer("file a/b/c 0640 \"x\"\nsymlink l \"/t\"\nwhiteout a/w\nfifo f 0600")
        .objects()
        .unwrap();
    let paths: Vec<String> = objs.iter().map(|o| o.path.to_string()).collect();
    assert_eq!(paths, ["a", "a/b", "a/b/c", "l", "a/w", "f"]);
    assert_eq!(objs[0].kind, ObjectKind::Dir);
    assert_eq!(
        (objs[0].mode, objs[0].uid, objs[0].gid),
        (IMPLIED_DIR_MODE, 0, 0)
    );
    assert!(objs.iter().all(|o| o.mtime == DEFAULT_MTIME));
    assert_eq!(objs[2].kind, ObjectKind::File(b"x".to_vec()));
    assert_eq!(objs[2].mode, 0o640);
    assert_eq!(
        (objs[3].kind.clone(), objs[3].mode),
        (ObjectKind::Symlink(b"/t".to_vec()), 0o777)
    );
    assert_eq!(
        (objs[4].kind.clone(), objs[4].mode),
        (ObjectKind::Whiteout, 0)
    );
    assert_eq!(
        (objs[5].kind.clone(), objs[5].mode),
        (ObjectKind::Fifo, 0o600)
    );
}

#[test]
fn explicit_dir_after_implied_keeps_creation_order() {
    let objs = layer("file d/f 0644 \"\"\ndir d 0700\nowner d 5 6")
        .objects()
        .unwrap();
    assert_eq!(objs.len(), 2);
    assert_eq!(objs[0].path.to_string(), "d");
    assert_eq!((objs[0].mode, objs[0].uid, objs[0].gid), (0o700, 5, 6));
}

#[test]
fn attributes_and_markers_fold_in() {
    let objs = layer(
        "dir d 0755\nopaque d\nredirect d \"/x/y\"\ndir e 0755\nxwhiteouts e\nxwhiteout e/w\n\
         file f 0644 \"\"\nxattr f user.k \"v\"\nxattr f trusted.t \"\\x00\"\nmtime f -3\nowner f 1 2",
    )
    .objects()
    .unwrap();
    let d = &objs[0];
    assert_eq!(d.markers.opaque, Some('y'));
    assert_eq!(d.markers.redirect.as_deref(), Some("/x/y"));
    let e = &objs[1];
    assert_eq!(e.markers.opaque, Some('x'));
    let w = &objs[2];
    assert_eq!(
        (w.kind.clone(), w.mode, w.markers.xwhiteout),
        (ObjectKind::File(vec![]), 0, true)
    );
    let f = &objs[3];
    assert_eq!(f.xattrs.get("user.k").map(Vec::as_slice), Some(&b"v"[..]));
    assert_eq!(
        f.xattrs.get("trusted.t").map(Vec::as_slice),
        Some(&b"\0"[..])
    );
    assert_eq!((f.mtime, f.uid, f.gid), (-3, 1, 2));
}

#[test]
fn hard_links_share_the_inode() {
    let objs = layer(
        "file f 0600 \"data\"\nhardlink g f\nhardlink h g\nowner h 7 8\nxattr g user.a \"1\"\nmtime f 5",
    )
    .objects()
    .unwrap();
    assert_eq!(objs.len(), 3);
    for o in &objs {
        assert_eq!(
            (o.mode, o.uid, o.gid, o.mtime),
            (0o600, 7, 8, 5),
            "{}",
            o.path
        );
        assert_eq!(o.xattrs.len(), 1);
    }
    // Links always name the original file, never another link.
    assert_eq!(objs[1].kind, ObjectKind::Hardlink("f".parse_path()));
    assert_eq!(objs[2].kind, ObjectKind::Hardlink("f".parse_path()));
}

trait ParsePath {
    fn parse_path(&self) -> ovlcheck_case::RelPath;
}

impl ParsePath for str {
    fn parse_path(&self) -> ovlcheck_case::RelPath {
        ovlcheck_case::RelPath::parse(self).unwrap()
    }
}

#[test]
fn error_names_the_entry_index() {
    use ovlcheck_case::layer::Entry;
    let p = |s: &str| s.parse_path();
    let spec = LayerSpec::new(vec![
        Entry::Dir {
            path: p("a"),
            mode: 0o755,
        },
        Entry::Opaque { path: p("b") },
    ]);
    let e = spec.objects().unwrap_err();
    assert_eq!(e.entry, 1);
    assert!(e.message.contains("opaque on `b`"), "{}", e.message);
    let spec = LayerSpec::new(vec![Entry::Dir {
        path: p("a"),
        mode: 0o10000,
    }]);
    assert!(spec.objects().unwrap_err().message.contains("out of range"));
    let spec = LayerSpec::new(vec![Entry::Xattr {
        path: p("a"),
        name: "trusted.overlay.opaque".into(),
        value: vec![],
    }]);
    assert!(spec
        .objects()
        .unwrap_err()
        .message
        .contains("overlay-private"));
    let spec = LayerSpec::new(vec![Entry::Whiteout {
        path: ovlcheck_case::RelPath::root(),
    }]);
    assert!(spec.objects().unwrap_err().message.contains("layer root"));
}
