//! Layers written as OCI changesets (`lower oci`): the header, the
//! conversion of `.wh.` entries into overlay entries, and their objects.

use ovlcheck_case::layer::oci::overlay_entries;
use ovlcheck_case::layer::{Entry, LayerFormat, ObjectKind};
use ovlcheck_case::{parse_case, print_case, Case, LayerSpec, RelPath};

#[track_caller]
fn case(text: &str) -> Case {
    parse_case("t.ovl", text).unwrap_or_else(|e| panic!("{e}"))
}

/// The single lower layer of `lower FORMAT` followed by `body`.
#[track_caller]
fn layer(format: &str, body: &str) -> LayerSpec {
    let c = case(&format!("lower {format}\n{body}\nops\n"));
    c.lowers.into_iter().next().unwrap()
}

fn path(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

/// The converted entries as `INDEX ENTRY` lines, in the case format.
fn converted(spec: &LayerSpec) -> Vec<String> {
    let overlay = |e: &Entry| {
        let c = Case {
            lowers: vec![LayerSpec::new(vec![e.clone()])],
            ..Case::default()
        };
        let text = print_case(&c);
        text.lines().nth(1).unwrap().trim().to_string()
    };
    overlay_entries(&spec.entries)
        .unwrap_or_else(|e| panic!("entry {}: {}", e.entry, e.message))
        .iter()
        .map(|(i, e)| format!("{i} {}", overlay(e)))
        .collect()
}

#[test]
fn header_word_sets_the_format_and_round_trips() {
    let text = "lower\n  dir a 0755\nlower oci\n  file a/.wh.b 0644 \"\"\nupper oci\n  \
                file .wh.a 0600 \"\"\nops\n  readdir .\n";
    let c = case(text);
    assert_eq!(c.lowers[0].format, LayerFormat::Overlay);
    assert_eq!(c.lowers[1].format, LayerFormat::Oci);
    assert_eq!(c.upper.as_ref().unwrap().format, LayerFormat::Oci);
    // The entries are kept as written; only objects() converts them.
    assert!(
        matches!(&c.lowers[1].entries[0], Entry::File { path: p, .. } if *p == path("a/.wh.b"))
    );
    assert_eq!(print_case(&c), text);
    assert_eq!(case(&print_case(&c)), c);
    // Comments may follow the word; an overlay layer prints no word.
    let c = case("lower oci # pasted\nlower # plain\nops\n");
    assert_eq!(print_case(&c), "lower oci\nlower\nops\n");
}

#[test]
fn json_without_a_format_is_an_overlay_layer() {
    let c = case("lower\n  dir a 0755\nlower oci\n  file .wh.a 0644 \"\"\nops\n");
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.contains(r#""format":"Oci""#), "{json}");
    assert_eq!(serde_json::from_str::<Case>(&json).unwrap(), c);
    let plain = serde_json::to_string(&c.lowers[0])
        .unwrap()
        .replace(r#","format":"Overlay""#, "");
    assert_eq!(plain, r#"{"entries":[{"Dir":{"path":["a"],"mode":493}}]}"#);
    let back: LayerSpec = serde_json::from_str(&plain).unwrap();
    assert_eq!(back, c.lowers[0]);
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_entries() {
    let spec = layer(
        "oci",
        "  dir d 0700\n  file d/.wh..wh..opq 0644 \"\"\n  file d/f 0644 \"x\"\n  \
         file .wh.gone 0644 \"\"\n  file e/.wh.x 0600 \"\"\n  symlink l \"t\"",
    );
    assert_eq!(
        converted(&spec),
        [
            "0 dir d 0700",
            "2 file d/f 0644 \"x\"",
            "3 whiteout gone",
            "4 whiteout e/x",
            "5 symlink l \"t\"",
            "1 opaque d",
        ]
    );
}

#[test]
fn an_opaque_marker_creates_its_directory_where_no_entry_does() {
    // No entry creates `d`: it is created where the marker stands.
    let spec = layer("oci", "  file d/.wh..wh..opq 0600 \"\"\n  owner d 1 2");
    assert_eq!(
        converted(&spec),
        ["0 dir d 0755", "1 owner d 1 2", "0 opaque d"]
    );
    let objs = spec.objects().unwrap();
    assert_eq!(objs.len(), 1);
    assert_eq!(
        (objs[0].kind.clone(), objs[0].mode, objs[0].uid, objs[0].gid),
        (ObjectKind::Dir, 0o755, 1, 2)
    );
    assert_eq!(objs[0].markers.opaque, Some('y'));
    // A later `dir` creates it: the marker applies to that directory,
    // whatever its position (layer.md, "Opaque Whiteout").
    let spec = layer("oci", "  file d/.wh..wh..opq 0644 \"\"\n  dir d 0711");
    assert_eq!(converted(&spec), ["1 dir d 0711", "0 opaque d"]);
    let objs = spec.objects().unwrap();
    assert_eq!((objs[0].mode, objs[0].markers.opaque), (0o711, Some('y')));
    // A directory implied by a deeper entry is created by the marker, with
    // the same mode and owner an implied directory gets.
    let spec = layer(
        "oci",
        "  file a/b/f 0644 \"\"\n  file a/b/.wh..wh..opq 0644 \"\"",
    );
    assert_eq!(
        converted(&spec),
        ["0 file a/b/f 0644 \"\"", "1 dir a/b 0755", "1 opaque a/b"]
    );
}

#[test]
fn attributes_on_markers() {
    let spec = layer(
        "oci",
        "  file .wh.w 0644 \"\"\n  owner .wh.w 1000 100\n  mtime .wh.w 5\n  \
         xattr .wh.w user.k \"v\"\n  file d/.wh..wh..opq 0644 \"\"\n  owner d/.wh..wh..opq 7 7\n  \
         mtime d/.wh..wh..opq 9\n  mtime d 3",
    );
    assert_eq!(
        converted(&spec),
        [
            "0 whiteout w",
            "1 owner w 1000 100",
            "4 dir d 0755",
            "7 mtime d 3",
            "4 opaque d",
        ]
    );
    let objs = spec.objects().unwrap();
    let w = objs.iter().find(|o| o.path == path("w")).unwrap();
    assert_eq!(
        (w.kind.clone(), w.uid, w.gid, w.mtime),
        (
            ObjectKind::Whiteout,
            1000,
            100,
            ovlcheck_case::layer::DEFAULT_MTIME
        )
    );
    assert!(w.xattrs.is_empty());
    let d = objs.iter().find(|o| o.path == path("d")).unwrap();
    assert_eq!((d.uid, d.gid, d.mtime), (0, 0, 3));
}

#[test]
fn an_oci_layer_resolves_like_the_overlay_layer_it_stands_for() {
    let oci = layer(
        "oci",
        "  dir a 0750\n  file a/.wh..wh..opq 0644 \"\"\n  file a/keep 0640 \"k\"\n  \
         file a/.wh.old 0644 \"\"\n  owner a/.wh.old 3 4\n  file .wh.top 0644 \"\"\n  \
         hardlink a/link a/keep\n  fifo p 0600\n  xattr a user.k \"v\"",
    );
    let overlay = layer(
        "",
        "  dir a 0750\n  file a/keep 0640 \"k\"\n  whiteout a/old\n  owner a/old 3 4\n  \
         whiteout top\n  hardlink a/link a/keep\n  fifo p 0600\n  xattr a user.k \"v\"\n  opaque a",
    );
    assert_eq!(oci.objects().unwrap(), overlay.objects().unwrap());
}

#[test]
fn marker_like_names_that_are_not_markers_stay_ordinary() {
    // Only the basename's prefix counts; `.wh..wh.X` other than the opaque
    // marker is the whiteout of `.wh.X`, as an overlay2 store applies it.
    let spec = layer(
        "oci",
        "  file a.wh.b 0644 \"\"\n  file x/.wh 0644 \"\"\n  file .wh..wh.plnk 0644 \"\"",
    );
    assert_eq!(
        converted(&spec),
        [
            "0 file a.wh.b 0644 \"\"",
            "1 file x/.wh 0644 \"\"",
            "2 whiteout .wh.plnk",
        ]
    );
    // In an overlay layer a `.wh.` name is an ordinary file.
    let spec = layer("", "  file .wh.a 0644 \"\"");
    assert_eq!(
        spec.objects().unwrap()[0].kind,
        ObjectKind::File(Vec::new())
    );
}

#[test]
fn conversion_errors_name_the_entry() {
    let err = |entries: Vec<Entry>| {
        overlay_entries(&entries)
            .err()
            .map(|e| (e.entry, e.message))
    };
    let file = |p: &str, data: &[u8]| Entry::File {
        path: path(p),
        mode: 0o644,
        data: data.to_vec(),
    };
    let (i, m) = err(vec![file("a", b"x"), file("d/.wh.w", b"not empty")]).unwrap();
    assert_eq!(i, 1);
    assert!(m.contains("must be an empty regular file"), "{m}");
    let (i, m) = err(vec![file(".wh.a", b""), file(".wh.a", b"")]).unwrap();
    assert_eq!(i, 1);
    assert!(m.contains("`.wh.a` already exists"), "{m}");
    let (i, m) = err(vec![Entry::Redirect {
        path: path("d"),
        target: "x".into(),
    }])
    .unwrap();
    assert_eq!(i, 0);
    assert!(m.contains("no OCI form"), "{m}");
    assert!(err(vec![file("d/.wh.w", b""), file("e", b"")]).is_none());
    // A `.wh.x` and an `x` in one layer: the same path created twice.
    let spec = LayerSpec {
        entries: vec![file("x", b""), file(".wh.x", b"")],
        format: LayerFormat::Oci,
    };
    let e = spec.objects().unwrap_err();
    assert_eq!(e.entry, 1);
    assert!(e.message.contains("`x` already exists"), "{}", e.message);
}
