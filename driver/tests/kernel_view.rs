//! The kernel view (`Session::kernel_view`, `CaseRun::kernel_view`): the
//! kernel's overlay mounted read-only over the layers a backend left. Run
//! here on the kernel mounter, whose layers the kernel reads as the commit
//! check's mount does.

mod common;
use common::*;
use ovlcheck_case::{Case, Entry, Errno, LayerSpec, NodeKind, Outcome, Profile, RelPath, View};
use ovlcheck_driver::mount::OVL_MAX_STACK;
use ovlcheck_driver::{Backend, PooledBackend, Wants};

const KERNEL_VIEW: Wants = Wants {
    kernel_view: true,
    export: false,
};

/// Whiteouts (a lower one, and one the steps make), an opaque directory
/// and a copied-up file, then a file made in the opaque directory.
const CASE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "q"
  dir ld 0755
  file ld/f 0644 "f"
  file a 0644 "hi"
  file c 0644 "c"
lower
  file b 0644 "top"
  whiteout a2
ops
  write c 0 "C"
  unlink a
  unlink ld/f
  rmdir ld
  mkdir ld 0700
  create ld/g 0644
  unlink d/x
"#;

/// The tree [`CASE`] leaves, as any mount of its layers must show it.
fn check_tree(v: &View) {
    assert_eq!(v.nodes["c"].data.as_deref(), Some(&b"C"[..]), "copied up");
    assert!(!v.nodes.contains_key("a"), "whited out by the steps");
    assert!(!v.nodes.contains_key("a2"), "whited out in a lower");
    assert!(!v.nodes.contains_key("d/x"));
    assert!(v.nodes.contains_key("ld/g"));
    assert!(!v.nodes.contains_key("ld/f"), "ld is opaque");
    assert_eq!(v.nodes["ld"].mode, 0o700);
}

fn with_profile(text: &str, preset: &str) -> Case {
    let mut c = case(text);
    c.profile = Profile::preset(preset).expect("preset");
    c
}

/// A whole case asking for the kernel view: the view equals the merged
/// view after the commit, which the same layers mounted by the kernel
/// gave; asked for nothing, there is none.
fn kernel_view_equals_after_commit(preset: &str) {
    let b = PooledBackend::kernel();
    let c = with_profile(CASE, preset);
    let run = ok(b.run(&c, KERNEL_VIEW));
    let after_commit = run.after_commit.clone().expect("the commit worked");
    check_tree(&after_commit);
    assert_eq!(run.kernel_view, Some(Ok(after_commit)), "profile {preset}");
    assert_eq!(ok(b.run(&c, Wants::default())).kernel_view, None);
}

#[test]
fn the_kernel_view_of_kernel_made_layers_is_the_view_after_commit() {
    if !kernel_available("kernel_view") {
        return;
    }
    kernel_view_equals_after_commit("default");
}

/// The same in a user-namespace worker: overlay's `user.overlay.*`
/// markers and a kernel mount inside the namespace.
#[test]
fn the_kernel_view_works_in_a_user_namespace_worker() {
    if !kernel_available("kernel_view_userxattr") {
        return;
    }
    kernel_view_equals_after_commit("userxattr");
}

/// Step by step, before any commit: the container layer as the top lower
/// shows what the read-write mount showed (labels count from each mount,
/// so the comparison is with the view right after a remount). Nothing is
/// mounted afterwards.
#[test]
fn a_session_kernel_view_reads_the_container_layer_as_a_lower() {
    if !kernel_available("kernel_view_session") {
        return;
    }
    for preset in ["default", "userxattr"] {
        let c = with_profile(CASE, preset);
        let mut s = ok(PooledBackend::kernel().start(&c));
        for st in &c.steps {
            ok(s.apply(st));
        }
        let up = ok(s.upper_view()).expect("an upper");
        assert_eq!(up.nodes["a"].kind, NodeKind::Whiteout);
        assert_eq!(ok(s.apply(&step("remount"))), Outcome::OK);
        let merged = ok(s.merged_view());
        check_tree(&merged);
        assert_eq!(ok(s.kernel_view()), Ok(merged), "profile {preset}");
        assert!(s.merged_view().is_err(), "nothing is mounted any more");
        ok(s.finish());
    }
}

/// A stack the kernel cannot mount read-only: after the commit there are
/// `OVL_MAX_STACK` lower layers below the container layer, one more than
/// the kernel takes without an upperdir. The refusal is the kernel view.
#[test]
fn a_stack_too_deep_for_the_kernel_is_refused_with_its_errno() {
    if !kernel_available("kernel_view_refused") {
        return;
    }
    let mut c = case("lower\n  file base 0644 \"bottom\"\nops\n");
    for i in 1..OVL_MAX_STACK - 1 {
        let e = Entry::File {
            path: RelPath::parse(&format!("f{i}")).unwrap(),
            mode: 0o644,
            data: vec![],
        };
        c.lowers.push(LayerSpec::new(vec![e]));
    }
    let run = ok(PooledBackend::kernel().run(&c, KERNEL_VIEW));
    assert!(run.commit.is_ok() && run.after_commit.is_some());
    assert_eq!(run.kernel_view, Some(Err(Errno::EINVAL)));
}
