//! The fuse-overlayfs and exec backends, and backend selection.

mod common;
use common::*;
use ovlcheck_case::{NodeKind, Outcome, Value};
use ovlcheck_driver::{
    backend_by_name, Backend, BackendKind, BackendOptions, DriverError, PooledBackend, Session,
    Wants,
};

const KERNEL_VIEW: Wants = Wants {
    kernel_view: true,
    export: false,
};

const IMAGE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "q"
  file a 0644 "hi"
  dir pub 0777
lower
  file b 0644 "top"
ops
"#;

fn exercise(s: &mut Box<dyn Session>) {
    assert_eq!(
        ok(s.apply(&step("read a"))),
        Outcome::Ok(Value::Bytes(b"hi".to_vec()))
    );
    assert_eq!(
        ok(s.apply(&step("read b"))),
        Outcome::Ok(Value::Bytes(b"top".to_vec()))
    );
    assert_eq!(ok(s.apply(&step("unlink a"))), Outcome::OK);
    assert_eq!(ok(s.apply(&step("rmdir d"))), err("ENOTEMPTY"));
    assert_eq!(ok(s.apply(&step("write d/x 0 \"Q\""))), Outcome::OK);
    assert_eq!(
        ok(s.apply(&step("as 1000:1000 create pub/mine 0600"))),
        Outcome::OK
    );
    assert_eq!(
        ok(s.apply(&step("as 1000:1000 create d/no 0600"))),
        err("EACCES")
    );
    let up = ok(s.upper_view()).unwrap();
    assert_eq!(up.nodes["a"].kind, NodeKind::Whiteout);
    assert_eq!(up.nodes["d/x"].data.as_deref(), Some(&b"Q"[..]));
    assert_eq!(up.nodes["pub/mine"].uid, 1000);
    let m = ok(s.merged_view());
    assert!(!m.nodes.contains_key("a"));
    assert_eq!(ok(s.apply(&step("remount"))), Outcome::OK);
    assert_eq!(
        ok(s.apply(&step("read d/x"))),
        Outcome::Ok(Value::Bytes(b"Q".to_vec()))
    );
    assert_eq!(ok(s.apply(&step("commit"))), Outcome::OK);
    assert_eq!(ok(s.apply(&step("read a"))), err("ENOENT"));
    assert_eq!(ok(s.lower_views()).len(), 3);
}

#[test]
fn fuse_overlayfs_backend() {
    if !available("fuse_overlayfs_backend", BackendKind::FuseOverlayfs) {
        return;
    }
    let b = PooledBackend::fuse_overlayfs();
    assert_eq!(b.name(), "fuse-overlayfs");
    let mut s = ok(b.start(&case(IMAGE)));
    exercise(&mut s);
    ok(s.finish());
    // The pooled worker serves a second session.
    let s = ok(b.start(&case(IMAGE)));
    ok(s.finish());
}

fn exec_backend() -> PooledBackend {
    PooledBackend::exec(
        "mount -t overlay overlay -o lowerdir={lowerdir},upperdir={upperdir},workdir={workdir},{options} {target}".into(),
        "umount {target}".into(),
    )
}

#[test]
fn exec_backend_with_mount_t_overlay() {
    if !kernel_available("exec_backend") || !available("exec_backend", BackendKind::Exec) {
        return;
    }
    let b = exec_backend();
    assert_eq!(b.name(), "exec");
    let mut s = ok(b.start(&case(IMAGE)));
    exercise(&mut s);
    ok(s.finish());
}

/// Asked for, the kernel view comes back: the exec backend mounting the
/// kernel's own overlay leaves layers the kernel reads as its commit check
/// did.
#[test]
fn helper_backends_come_with_the_kernel_view() {
    if !kernel_available("exec_kernel_view") || !available("exec_kernel_view", BackendKind::Exec) {
        return;
    }
    let b = exec_backend();
    let c = case(&format!(
        "{IMAGE}  unlink a\n  write d/x 0 \"Q\"\n  create pub/n 0644\n"
    ));
    let run = ok(b.run_case(&c, KERNEL_VIEW));
    let after_commit = run.after_commit.expect("the commit worked");
    assert!(!after_commit.nodes.contains_key("a"));
    assert_eq!(after_commit.nodes["d/x"].data.as_deref(), Some(&b"Q"[..]));
    assert_eq!(run.kernel_view, Some(Ok(after_commit)));
}

#[test]
fn exec_backend_reports_a_failing_mount_command() {
    if !kernel_available("exec_failure") {
        return;
    }
    let b = PooledBackend::exec("echo no such overlay >&2; exit 3".into(), "true".into());
    match b.start(&case(IMAGE)) {
        Err(DriverError::Io(m)) => assert!(m.contains("no such overlay"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn backends_by_name() {
    let opts = BackendOptions::default();
    assert_eq!(ok(backend_by_name("kernel", &opts)).name(), "kernel");
    assert_eq!(
        ok(backend_by_name("kernel", &opts)).kind(),
        BackendKind::Kernel
    );
    assert_eq!(
        ok(backend_by_name("fuse-overlayfs", &opts)).name(),
        "fuse-overlayfs"
    );
    assert_eq!(
        ok(backend_by_name("fuse-overlayfs", &opts)).kind(),
        BackendKind::FuseOverlayfs
    );
    assert!(matches!(
        backend_by_name("exec", &opts),
        Err(DriverError::Environment(_))
    ));
    let with = BackendOptions {
        mount_template: Some("m".into()),
        umount_template: Some("u".into()),
        ..opts.clone()
    };
    assert_eq!(ok(backend_by_name("exec", &with)).name(), "exec");
    assert_eq!(ok(backend_by_name("exec", &with)).kind(), BackendKind::Exec);
    assert!(matches!(
        backend_by_name("zfs", &opts),
        Err(DriverError::Environment(_))
    ));
    // The model is a kind the harness implements; the driver has no
    // backend of it and nothing to check for it.
    assert_eq!(BackendKind::from_name("model"), Some(BackendKind::Model));
    assert_eq!(BackendKind::Model.name(), "model");
    assert!(matches!(
        backend_by_name("model", &opts),
        Err(DriverError::Environment(_))
    ));
    assert_eq!(
        ovlcheck_driver::check_environment(BackendKind::Model),
        Ok(())
    );
    assert!(!ovlcheck_driver::kernel_release().is_empty());
}

#[test]
fn a_killed_fuse_daemon_is_a_dead_backend() {
    if !available("killed_fuse_daemon", BackendKind::FuseOverlayfs) {
        return;
    }
    let b = PooledBackend::fuse_overlayfs();
    let mut s = ok(b.start_session(&case(IMAGE)));
    let w = s.worker_pid();
    let kids: Vec<i32> = std::fs::read_to_string(format!("/proc/{w}/task/{w}/children"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(kids.len(), 1, "one fuse-overlayfs daemon");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    match s.apply(&step("read a")) {
        Err(DriverError::Died(m)) => assert!(m.contains("fuse-overlayfs"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mv = s.merged_view();
    assert!(matches!(mv, Err(DriverError::Died(_))), "{mv:?}");
    let _ = Box::new(s).finish();
    // The campaign goes on.
    let mut s2 = ok(b.start(&case(IMAGE)));
    assert_eq!(
        ok(s2.apply(&step("read a"))),
        Outcome::Ok(Value::Bytes(b"hi".to_vec()))
    );
    ok(s2.finish());
}
