//! Helpers shared by the driver's integration tests.
#![allow(dead_code)]

use ovlcheck_case::{parse_case, Case, Op, Outcome, Step};
use ovlcheck_driver::{check_environment, BackendKind, DriverError};

/// True when the kernel backend can run here. Otherwise prints a loud SKIP
/// (and panics when `OVL_REQUIRE_KERNEL=1`).
pub fn kernel_available(test: &str) -> bool {
    available(test, BackendKind::Kernel)
}

/// Like [`kernel_available`] for any backend kind.
pub fn available(test: &str, kind: BackendKind) -> bool {
    match check_environment(kind) {
        Ok(()) => true,
        Err(e) => {
            // OVL_REQUIRE_KERNEL=1 makes a missing kernel overlay fatal;
            // OVL_REQUIRE_FUSE=1 does the same for fuse-overlayfs.
            let var = if kind == BackendKind::FuseOverlayfs {
                "OVL_REQUIRE_FUSE"
            } else {
                "OVL_REQUIRE_KERNEL"
            };
            if std::env::var(var).as_deref() == Ok("1") {
                panic!(
                    "{test}: OVL_REQUIRE_KERNEL=1 but the {} backend cannot run: {e}",
                    kind.name()
                );
            }
            eprintln!(
                "\n*** SKIP {test}: the {} backend cannot run here: {e} ***\n",
                kind.name()
            );
            false
        }
    }
}

/// Parses a case text (panics with the parse error).
pub fn case(text: &str) -> Case {
    parse_case("test.ovl", text).unwrap_or_else(|e| panic!("{e}"))
}

/// The ops of a one-section case text (`ops` only).
pub fn ops(text: &str) -> Vec<Op> {
    case(&format!("lower\nops\n{text}"))
        .steps
        .into_iter()
        .map(|s| s.op)
        .collect()
}

/// One op step parsed from its text form.
pub fn step(text: &str) -> Step {
    case(&format!("lower\nops\n  {text}")).steps.remove(0)
}

/// Shorthand for an error outcome.
pub fn err(name: &str) -> Outcome {
    Outcome::Err(ovlcheck_case::Errno::from_name(name).expect("errno name"))
}

/// Unwraps a driver result with a readable panic.
pub fn ok<T>(r: Result<T, DriverError>) -> T {
    r.unwrap_or_else(|e| panic!("driver error: {e}"))
}
