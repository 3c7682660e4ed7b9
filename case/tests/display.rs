//! Text renderings of outcomes, views and view diffs.

use ovlcheck_case::view::render_diff;
use ovlcheck_case::{DevClass, Errno, FileKind, Node, NodeKind, Outcome, StatInfo, Value, View};

#[test]
fn outcomes() {
    assert_eq!(Outcome::OK.to_string(), "ok");
    assert_eq!(Outcome::Err(Errno::ENOENT).to_string(), "ENOENT");
    assert_eq!(Outcome::Err(Errno::Other(200)).to_string(), "E200");
    assert_eq!(
        Outcome::Ok(Value::Bytes(b"a\"\n\xff".to_vec())).to_string(),
        r#""a\"\n\xff""#
    );
    assert_eq!(Value::Names(vec![]).to_string(), "[]");
    assert_eq!(
        Value::Names(vec!["a".into(), "b c".into()]).to_string(),
        r#"["a", "b c"]"#
    );
    let st = StatInfo {
        kind: FileKind::File,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 3,
        nlink: 1,
    };
    assert_eq!(
        Value::Stat(st).to_string(),
        "{file 0644 0:0 size=3 nlink=1}"
    );
}

fn sample() -> View {
    let mut v = View::default();
    v.nodes
        .insert(String::new(), Node::new(NodeKind::Dir, 0o755, 0, 0));
    let mut a = Node::new(NodeKind::File, 0o644, 0, 0);
    a.size = 2;
    a.data = Some(b"hi".to_vec());
    a.nlink = Some(1);
    a.mtime = Some(1_600_000_000);
    a.ino = Some("=a".into());
    a.dev = Some(DevClass::Overlay);
    a.xattrs.insert("user.k".into(), b"v".to_vec());
    v.nodes.insert("a".into(), a);
    let mut d = Node::new(NodeKind::Dir, 0o755, 0, 0);
    d.overlay.insert("opaque".into(), "y".into());
    d.overlay.insert("redirect".into(), "/x".into());
    v.nodes.insert("d".into(), d);
    v.nodes
        .insert("d/w".into(), Node::new(NodeKind::Whiteout, 0, 0, 0));
    let mut l = Node::new(NodeKind::Symlink, 0o777, 0, 0);
    l.size = 1;
    l.target = Some(b"t".to_vec());
    v.nodes.insert("l".into(), l);
    v.nodes
        .insert("a b".into(), Node::new(NodeKind::Char(1, 3), 0o600, 1, 2));
    v
}

#[test]
fn view_lines() {
    assert_eq!(
        sample().to_string(),
        "/ dir 0755 0:0\n\
         a file 0644 0:0 size=2 nlink=1 mtime=1600000000 ino==a dev=ovl user.k=\"v\" \"hi\"\n\
         \"a b\" char(1,3) 0600 1:2\n\
         d dir 0755 0:0 opaque=y redirect=/x\n\
         d/w whiteout\n\
         l symlink 0777 0:0 -> \"t\"\n"
    );
}

#[test]
fn view_diff() {
    let left = sample();
    let mut right = sample();
    assert!(left.diff(&right).is_empty());
    assert_eq!(render_diff(&left.diff(&right)), "");
    right.nodes.remove("d/w");
    right
        .nodes
        .insert("e".into(), Node::new(NodeKind::Fifo, 0o600, 0, 0));
    let a = right.nodes.get_mut("a").unwrap();
    a.mode = 0o600;
    a.data = Some(b"ho".to_vec());
    a.nlink = None;
    a.xattrs.clear();
    right.nodes.get_mut("d").unwrap().overlay.remove("opaque");
    let diffs = left.diff(&right);
    assert_eq!(diffs.len(), 4);
    assert_eq!(diffs[0].path(), "a");
    assert_eq!(
        render_diff(&diffs),
        "~ a mode: 0644 -> 0600\n\
         ~ a data: \"hi\" -> \"ho\"\n\
         ~ a nlink: 1 -> -\n\
         ~ a xattr[user.k]: \"v\" -> -\n\
         ~ d overlay[opaque]: y -> -\n\
         - d/w whiteout\n\
         + e fifo 0600 0:0\n"
    );
    match &diffs[0] {
        ovlcheck_case::ViewDiff::Changed { fields, .. } => {
            assert_eq!(fields, &["mode", "data", "nlink", "xattr[user.k]"])
        }
        d => panic!("{d:?}"),
    }
}
