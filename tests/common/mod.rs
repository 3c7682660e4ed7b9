//! Shared helpers of the conformance suite.
#![allow(dead_code)]

pub mod dockerd;

use ovlcheck_driver::Backend;
use std::path::PathBuf;

/// Serializes the tests of one test binary that take it: those whose
/// backends must not see another test's daemon or mounts, or whose
/// outcomes depend on the load beside them.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when `OVL_REQUIRE_KERNEL=1`: kernel tests must run, not skip.
pub fn kernel_required() -> bool {
    std::env::var("OVL_REQUIRE_KERNEL").is_ok_and(|v| v == "1")
}

/// The kernel backend, or `None` after a loud SKIP message. With
/// `OVL_REQUIRE_KERNEL=1` an unusable kernel fails the test instead.
pub fn kernel(test: &str) -> Option<Box<dyn Backend>> {
    match ovlcheck_driver::check_environment(ovlcheck_driver::BackendKind::Kernel)
        .and_then(|()| ovlcheck_driver::backend_by_name("kernel", &Default::default()))
    {
        Ok(b) => Some(b),
        Err(e) if kernel_required() => panic!(
            "{test}: the kernel backend is required (OVL_REQUIRE_KERNEL=1) but unusable: {e}"
        ),
        Err(e) => {
            eprintln!("\n*** SKIP {test}: kernel overlay unusable here: {e}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        }
    }
}

/// The repository's corpus folder.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The fuse-overlayfs backend, or `None` after a loud SKIP message. With
/// `OVL_REQUIRE_KERNEL=1` an unusable fuse-overlayfs fails the test.
pub fn fuse_overlayfs(test: &str) -> Option<Box<dyn Backend>> {
    let kind = ovlcheck_driver::BackendKind::FuseOverlayfs;
    match ovlcheck_driver::check_environment(kind)
        .and_then(|()| ovlcheck_driver::backend_by_name("fuse-overlayfs", &Default::default()))
    {
        Ok(b) => Some(b),
        Err(e) if kernel_required() => {
            panic!("{test}: fuse-overlayfs is required (OVL_REQUIRE_KERNEL=1) but unusable: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIP {test}: fuse-overlayfs unusable here: {e}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        }
    }
}

/// Runs the `ovlcheck` binary of this build with `args`.
pub fn ovlcheck(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args(args)
        .output()
        .expect("runs ovlcheck")
}

/// The mount points at or below a path starting with `prefix`, from
/// /proc/self/mountinfo (the engine tests' leak checks).
pub fn mounted_under(prefix: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_string)
        .collect()
}
