//! The runner's export check (docs/images.md): the changeset and the
//! applied image a backend's run brings back against the model's
//! predictions. Built from the model's own run, altered one field at a
//! time, so no mount is needed.

use ovlcheck_case::oci::DiffMethod;
use ovlcheck_case::{parse_case, Case, Signature};
use ovlcheck_driver::{CaseRun, Wants};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::runner::compare_run;
use ovlcheck_harness::{report, ModelBackend};
use ovlcheck_model::Model;

const CASE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "x"
  file f 0644 "f"
ops
  unlink f
  unlink d/x
  rmdir d
  mkdir d 0700
  create d/n 0644
"#;

fn case() -> Case {
    parse_case("export.ovl", CASE).unwrap()
}

fn run() -> CaseRun {
    let c = case();
    let wants = Wants {
        kernel_view: false,
        export: true,
    };
    ModelBackend::run_from(Model::new(&c).unwrap(), &c, wants).unwrap()
}

fn signature(run: &CaseRun) -> Option<String> {
    let c = case();
    let d = compare_run(Model::new(&c).unwrap(), &c, run, Contract::Kernel).divergence?;
    assert!(!report::render(&d, "test").is_empty());
    Some(d.signature().to_string())
}

#[test]
fn the_model_exports_natively_and_agrees_with_itself() {
    let r = run();
    let export = r.export.as_ref().expect("exported");
    assert_eq!(export.method, DiffMethod::Native);
    let names: Vec<&String> = export.changeset.as_ref().unwrap().nodes.keys().collect();
    assert_eq!(names, [".wh.f", "d", "d/.wh..wh..opq", "d/n"]);
    let c = case();
    let judged = compare_run(Model::new(&c).unwrap(), &c, &r, Contract::Kernel);
    assert_eq!(judged.divergence.map(|d| d.signature().to_string()), None);
    assert_eq!(judged.exported, Some(DiffMethod::Native));
}

#[test]
fn a_changed_entry_is_a_changeset_divergence() {
    let mut r = run();
    let export = r.export.as_mut().unwrap();
    let cs = export.changeset.as_mut().unwrap();
    cs.nodes.get_mut(".wh.f").unwrap().mode = 0o644;
    assert_eq!(signature(&r).as_deref(), Some("changeset view: mode"));
    let mut r = run();
    let cs = r.export.as_mut().unwrap().changeset.as_mut().unwrap();
    cs.nodes.remove("d/.wh..wh..opq");
    assert_eq!(
        signature(&r).as_deref(),
        Some("changeset view: missing on backend")
    );
}

#[test]
fn a_changed_applied_tree_is_a_merged_exported_divergence() {
    let mut r = run();
    let merged = r.export.as_mut().unwrap().merged.as_mut().unwrap();
    let mut back = merged.nodes["d/n"].clone();
    back.ino = Some("=d/x".into());
    merged.nodes.insert("d/x".into(), back);
    assert_eq!(
        signature(&r).as_deref(),
        Some("merged-exported view: extra on backend")
    );
}

#[test]
fn an_invalid_tar_is_a_divergence_of_its_own() {
    let mut r = run();
    let export = r.export.as_mut().unwrap();
    export.changeset = Err("duplicate entry `d/.wh..wh..opq`".into());
    export.merged = None;
    let sig = signature(&r);
    assert_eq!(sig.as_deref(), Some("changeset view: invalid tar"));
    assert_eq!(
        sig.unwrap().parse::<Signature>().unwrap(),
        Signature::InvalidChangeset
    );
}

#[test]
fn below_layout_no_export_is_asked() {
    let c = case();
    assert!(ovlcheck_harness::runner::wants_export(Contract::Layout, &c));
    assert!(!ovlcheck_harness::runner::wants_export(Contract::Posix, &c));
    let mut ro = c.clone();
    ro.profile = ovlcheck_case::Profile::preset("readonly").unwrap();
    assert!(!ovlcheck_harness::runner::wants_export(
        Contract::Kernel,
        &ro
    ));
}
