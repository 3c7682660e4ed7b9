//! The `containerd` backend (docs/engines.md, "containerd") on a private
//! containerd started in a scratch directory: a short campaign, the whole
//! corpus, and one test per behaviour of containerd's applier and walking
//! differ that the backend models. Without root or containerd every test
//! skips loudly; with `OVL_REQUIRE_KERNEL=1` it fails instead. Each test
//! stops its daemon, which leaves nothing mounted or running.

mod common;

use ovlcheck_case::layer::Entry;
use ovlcheck_case::oci::{DiffMethod, TarXattrs};
use ovlcheck_case::text::parse_case;
use ovlcheck_case::{Case, Errno, Outcome};
use ovlcheck_driver::{Backend, BackendOptions};
use ovlcheck_engine::ContainerdBackend;
use ovlcheck_model::Model;

const SCRATCH: &str = "/tmp/ovlcheck-containerd.";

/// A private containerd, or `None` after saying why loudly (a failure
/// under `OVL_REQUIRE_KERNEL=1`).
fn containerd(test: &str) -> Option<ContainerdBackend> {
    match ContainerdBackend::new(None, BackendOptions::default()) {
        Ok(b) => Some(b),
        Err(e) if common::kernel_required() => {
            panic!(
                "{test}: a private containerd is required (OVL_REQUIRE_KERNEL=1) but unusable: {e}"
            )
        }
        Err(e) => {
            eprintln!("\n*** SKIP {test}: no private containerd here: {e}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        }
    }
}

fn case(text: &str) -> Case {
    parse_case("test.ovl", text).expect("a valid case")
}

/// The model after `c`'s steps.
fn model_after(c: &Case) -> Model {
    let mut model = Model::new(c).unwrap();
    for step in &c.steps {
        model = model.step(step).1;
    }
    model
}

#[test]
fn campaign_of_30_cases_has_no_divergence() {
    let _serial = common::serial(); // a private daemon per test
    let Some(probe) = containerd("campaign_of_30_cases_has_no_divergence") else {
        return;
    };
    drop(probe);
    // A killed earlier run may have left mounts; only new ones are a leak.
    let before = common::mounted_under(SCRATCH);
    let out = common::ovlcheck(&[
        "fuzz",
        "--backend",
        "containerd",
        "--cases",
        "30",
        "--seed",
        "1",
        "--jobs",
        "1",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("fuzz: "))
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    assert!(
        summary.contains("fuzz: 30 cases")
            && summary.contains(" 0 divergent cases")
            && summary.contains(" 0 backend failures")
            && !summary.contains(" 0 exported"),
        "{text}"
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(common::mounted_under(SCRATCH), before);
}

/// Cases packed in one container (`--pack 8`) are judged as alone.
#[test]
fn packed_campaign_reports_what_its_cases_alone_report() {
    let _serial = common::serial(); // a private daemon per test
    let Some(probe) = containerd("packed_campaign_reports_what_its_cases_alone_report") else {
        return;
    };
    drop(probe);
    let before = common::mounted_under(SCRATCH);
    common::engine_pack_reports_as_alone(&["--backend", "containerd"]);
    assert_eq!(common::mounted_under(SCRATCH), before);
}

/// containerd's walking differ compares the parent image's tree with the
/// container's (continuity `sameFile`): a change of a `user.*` xattr
/// alone is no change, a new time on the same data is one, and an
/// unchanged name of a file linked to a new name is written as a hard
/// link. The model's walking changeset names the same entries; the naive
/// one (moby's rules) would not.
#[test]
fn the_walking_differ_is_modelled() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = containerd("the_walking_differ_is_modelled") else {
        return;
    };
    let c = b
        .adapt_case(&case(
            "lower\n  file x 0644 \"x\"\n  file t 0644 \"t\"\n  file l 0644 \"l\"\n  dir d 0755\n  file d/gone 0644 \"g\"\nops\n  setxattr x user.k \"v\" => ok\n  utimes t 1234567 => ok\n  link l d/l2 => ok\n  unlink d/gone => ok\n",
        ))
        .unwrap();
    let mut s = b.start(&c).unwrap();
    for step in &c.steps {
        assert!(s.apply(step).unwrap().is_ok(), "{step:?}");
    }
    let export = s.export().unwrap().expect("an engine exports");
    Box::new(s).finish().unwrap();
    assert_eq!(export.method, DiffMethod::Walking);
    assert_eq!(export.commit.differ, Some(DiffMethod::Walking));
    assert_eq!(export.commit.xattrs, TarXattrs::Capability);
    let seen: Vec<String> = export.changeset.unwrap().nodes.into_keys().collect();
    assert_eq!(seen, ["d", "d/.wh.gone", "d/l2", "l", "t"], "{seen:?}");
    let model = model_after(&c);
    let predicted = |m| -> Vec<String> {
        let v = model
            .changeset_by(Some(m), ovlcheck_case::oci::NaiveCompare::Content)
            .unwrap()
            .1;
        TarXattrs::Capability
            .written(v, &[])
            .nodes
            .into_keys()
            .collect()
    };
    assert_eq!(predicted(DiffMethod::Walking), seen);
    assert_ne!(predicted(DiffMethod::Naive), seen, "moby's rules differ");
}

/// containerd's applier drops `trusted.*` xattrs from layer tars and
/// applies the bottom layer without the overlay whiteout converter; the
/// backend tells the model so, and the store agrees.
#[test]
fn layers_are_as_the_applier_leaves_them() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = containerd("layers_are_as_the_applier_leaves_them") else {
        return;
    };
    let given = case(
        "lower\n  file f 0644 \"f\"\n  xattr f trusted.t \"tv\"\n  xattr f user.k \"v\"\n  whiteout w\n  dir o 0755\n  opaque o\nlower\n  whiteout f2\n  file g 0644 \"g\"\n  xattr g trusted.t \"tv\"\nops\n  getxattr f user.k => \"v\"\n",
    );
    let c = b.adapt_case(&given).unwrap();
    assert_eq!(b.adapt_case(&c).unwrap(), c, "idempotent");
    let bottom = &c.lowers[0].entries;
    assert!(!bottom
        .iter()
        .any(|e| matches!(e, Entry::Whiteout { .. } | Entry::Opaque { .. })));
    let xattrs = |i: usize| -> Vec<String> {
        c.lowers[i]
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Xattr { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(xattrs(0), ["user.k"]);
    assert!(xattrs(1).is_empty());
    assert!(
        c.lowers[1]
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Whiteout { .. })),
        "a layer with a parent keeps its whiteouts"
    );
    let mut s = b.start(&c).unwrap();
    let lowers = s.lower_views().unwrap();
    Box::new(s).finish().unwrap();
    let model = Model::new(&c).unwrap();
    let predicted: Vec<_> = (0..model.lower_count())
        .map(|i| model.lower_view(i))
        .collect();
    assert_eq!(lowers.len(), 2);
    for (i, (seen, want)) in lowers.iter().zip(&predicted).enumerate() {
        let diff = ovlcheck_harness::compare::compare_views(want, seen);
        assert!(diff.is_empty(), "lower {i}: {diff:?}");
    }
}

/// A whiteout over nothing in a directory only its layer has is listed by
/// the kernel and not found by a lookup; containerd's walking differ fails
/// on it (corpus/known-containerd). The export reports that as the
/// engine's invalid changeset and a commit step as EIO; the container
/// stays mounted.
#[test]
fn a_failed_diff_is_the_engines_answer() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = containerd("a_failed_diff_is_the_engines_answer") else {
        return;
    };
    let c = b
        .adapt_case(&case(
            "lower\nlower\n  whiteout b/d/b\nops\n  readdir b/d => [\"b\"]\n  commit\n",
        ))
        .unwrap();
    let mut s = b.start(&c).unwrap();
    assert_eq!(
        s.apply(&c.steps[0]).unwrap(),
        Model::new(&c).unwrap().step(&c.steps[0]).0
    );
    assert_eq!(s.apply(&c.steps[1]).unwrap(), Outcome::Err(Errno::EIO));
    assert!(s.merged_view().unwrap().nodes.contains_key("b/d"));
    let export = s.export().unwrap().expect("an engine exports");
    Box::new(s).finish().unwrap();
    let why = export.changeset.unwrap_err();
    assert!(
        why.contains("differ") && why.contains("no such file or directory"),
        "{why}"
    );
    assert!(export.merged.is_none());
}

/// The whole corpus on containerd: no new divergence, no backend failure,
/// and the known ones (corpus/known-containerd/README.md) show.
#[test]
fn corpus_on_containerd_shows_only_known_divergences() {
    let _serial = common::serial(); // a private daemon per test
    let Some(probe) = containerd("corpus_on_containerd_shows_only_known_divergences") else {
        return;
    };
    drop(probe);
    let before = common::mounted_under(SCRATCH);
    let corpus = common::corpus_dir();
    let out = common::ovlcheck(&[
        "replay",
        corpus.to_str().unwrap(),
        "--backend",
        "containerd",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(j["new_divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    assert!(j["known_divergences"].as_u64().unwrap() >= 1, "{j}");
    assert!(j["exported"].as_u64().unwrap() >= 100, "{j}");
    assert_eq!(common::mounted_under(SCRATCH), before);
}

/// A socket that does not exist is a one-line error and exit status 2.
#[test]
fn a_missing_socket_is_a_clear_error() {
    let out = common::ovlcheck(&[
        "fuzz",
        "--backend",
        "containerd",
        "--engine-socket",
        "/nonexistent/containerd.sock",
        "--cases",
        "1",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("no containerd socket at /nonexistent/containerd.sock"),
        "{text}"
    );
}
