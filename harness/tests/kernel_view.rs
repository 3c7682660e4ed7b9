//! The runner's last check: the kernel view a backend's run brings back
//! (the kernel's overlay over the layers the backend left) against the
//! merged tree the model predicts after the commit. Built from the model's
//! own run, so no mount is needed.

use ovlcheck_case::Which;
use ovlcheck_case::{parse_case, Case, Errno, View};
use ovlcheck_driver::{Backend, BackendKind, CaseRun, Wants};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::runner::compare_run;
use ovlcheck_harness::{report, run_case, Check, ModelBackend};
use ovlcheck_model::Model;

const CASE: &str = r#"
lower
  dir ld 0755
  file ld/f 0644 "f"
  file a 0644 "hi"
  file c 0644 "c"
ops
  write c 0 "C"
  unlink a
  unlink ld/f
  rmdir ld
  mkdir ld 0700
"#;

fn case() -> Case {
    parse_case("kernel-view.ovl", CASE).unwrap()
}

/// The model's own run of [`CASE`], with `kernel_view` as the backend's.
fn run_with(kernel_view: Option<Result<View, Errno>>) -> CaseRun {
    let c = case();
    let mut run = ModelBackend::run_from(Model::new(&c).unwrap(), &c, Wants::default()).unwrap();
    assert_eq!(run.kernel_view, None, "the model backend does not ask");
    run.kernel_view = kernel_view;
    run
}

fn compare(run: &CaseRun) -> Option<ovlcheck_harness::Divergence> {
    let c = case();
    compare_run(Model::new(&c).unwrap(), &c, run, Contract::Layout).divergence
}

#[test]
fn the_model_backend_is_known_by_its_kind() {
    assert_eq!(ModelBackend.kind(), BackendKind::Model);
    assert_eq!(ModelBackend.name(), "model");
    let run = run_case(&ModelBackend, &case()).unwrap();
    assert!(run.divergence.is_none());
}

#[test]
fn a_kernel_view_equal_to_the_tree_after_commit_agrees() {
    let after_commit = run_with(None).after_commit.expect("commit worked");
    assert!(compare(&run_with(Some(Ok(after_commit)))).is_none());
    assert!(compare(&run_with(None)).is_none(), "nothing to compare");
}

/// A step-by-step model session predicts the kernel view as its merged
/// view: right after the commit, the tree after the commit.
#[test]
fn the_model_session_predicts_the_tree_after_commit() {
    let c = case();
    let mut s = ModelBackend.start(&c).unwrap();
    let wants = Wants {
        kernel_view: true,
        export: false,
    };
    let run = CaseRun::collect(&mut *s, &c, wants).unwrap();
    assert_eq!(run.kernel_view, Some(Ok(run.after_commit.clone().unwrap())));
    assert!(compare(&run).is_none());
}

#[test]
fn a_kernel_view_that_differs_is_a_kernel_view_divergence() {
    let mut seen = run_with(None).after_commit.unwrap();
    // The kernel does not take `ld` as opaque: the lower file shows again.
    let lower_file = seen.nodes["c"].clone();
    seen.nodes.insert("ld/f".into(), lower_file);
    let d = compare(&run_with(Some(Ok(seen)))).expect("a divergence");
    assert_eq!(
        d.check,
        Check::View {
            which: Which::Kernel
        }
    );
    assert!(
        d.signature().to_string().starts_with("kernel view: "),
        "{}",
        d.signature()
    );
    let (_, _, diff) = d.views.as_ref().expect("the views");
    assert!(!diff.is_empty());
    assert!(report::render(&d, "fuse-overlayfs").contains("kernel view differs"));
}

#[test]
fn a_kernel_that_refuses_the_layers_is_a_divergence_with_its_errno() {
    let d = compare(&run_with(Some(Err(Errno::EINVAL)))).expect("a divergence");
    assert_eq!(
        d.check,
        Check::KernelMount {
            errno: Errno::EINVAL
        }
    );
    assert_eq!(d.signature().to_string(), "kernel view: mount EINVAL");
    assert!(d.views.is_none());
}
