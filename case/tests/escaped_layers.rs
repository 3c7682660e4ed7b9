//! Layers written escaped (`lower escaped`): the header, and the objects'
//! markers flagged escaped for the model, the driver and the reproducer.

use ovlcheck_case::layer::LayerFormat;
use ovlcheck_case::{parse_case, print_case};

#[test]
fn the_header_round_trips_and_flags_every_object() {
    let text = "lower\n  file f 0644 \"f\"\nlower escaped\n  dir d 0755\n  opaque d\n  \
                file m 0644 \"m\"\n  metacopy m\n  redirect m \"/o/m\"\n  file plain 0644 \"\"\nops\n";
    let c = parse_case("t.ovl", text).unwrap();
    assert_eq!(c.lowers[0].format, LayerFormat::Overlay);
    assert_eq!(c.lowers[1].format, LayerFormat::Escaped);
    assert_eq!(print_case(&c), text);
    let objects = c.lowers[1].objects().unwrap();
    assert!(objects.iter().all(|o| o.markers.escaped));
    let m = objects.iter().find(|o| o.path.as_string() == "m").unwrap();
    assert!(m.markers.metacopy);
    assert_eq!(m.markers.redirect.as_deref(), Some("/o/m"));
    assert!(c.lowers[0]
        .objects()
        .unwrap()
        .iter()
        .all(|o| !o.markers.escaped));
}

#[test]
fn escaped_markers_are_not_the_mounting_overlays() {
    let plain = parse_case("t.ovl", "lower\n  dir d 0755\n  opaque d\nops\n").unwrap();
    assert_eq!(plain.marking_entries().count(), 2);
    let escaped = parse_case(
        "t.ovl",
        "lower escaped\n  file m 0644 \"m\"\n  metacopy m\n  dir d 0755\n  opaque d\nops\n",
    )
    .unwrap();
    assert_eq!(escaped.layer_entries().count(), 4);
    assert_eq!(escaped.marking_entries().count(), 2);
}
