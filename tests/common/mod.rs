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

/// A campaign on a container engine (`args`: `--backend` and, where the
/// test has one, `--engine-socket`) reports the same with `--pack 8` as
/// with `--pack 1` (driver/src/pack.rs: many cases in one container),
/// and most of its supported cases share a container.
pub fn engine_pack_reports_as_alone(args: &[&str]) {
    let run = |pack: &str| {
        let mut all = vec![
            "fuzz",
            "--profile",
            "default",
            "--cases",
            "100",
            "--seed",
            "2",
            "--jobs",
            "2",
            "--max-reported",
            "0",
            "--json",
            "--pack",
            pack,
        ];
        all.extend_from_slice(args);
        let o = ovlcheck(&all);
        let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "--json output of {all:?}: {e}\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
        let obj = j.as_object_mut().expect("a JSON object");
        for timing in ["elapsed_s", "cases_per_s"] {
            obj.remove(timing);
        }
        let packed = obj.remove("packed").unwrap_or_default();
        (j, packed)
    };
    let (alone, _) = run("1");
    let (packed, shared) = run("8");
    assert_eq!(alone, packed, "the same report with --pack 8 as alone");
    let supported = alone["cases"].as_u64().unwrap() - alone["unsupported"].as_u64().unwrap();
    let cases = shared["cases"].as_u64().unwrap_or(0);
    assert!(
        cases * 2 >= supported,
        "most supported cases share a container: {shared} of {supported}"
    );
    // A case whose part of a pack diverges is run again alone, so the
    // reports agree even when packing breaks; few may (containerd's
    // differ failing on one case fails its pack's export).
    let again = shared["run_again_alone"].as_u64().unwrap_or(u64::MAX);
    assert!(
        again * 10 <= cases,
        "few packed cases are run again alone: {shared}"
    );
}
