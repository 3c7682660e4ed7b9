//! A bounded differential property test per profile against the kernel:
//! proptest drives the harness's case strategy (so a failure shrinks with
//! the harness's delta-debugging value tree) and every case goes through the
//! full runner (outcomes, merged, upper, after remount, after commit).

mod common;

use ovlcheck_case::profile::PRESETS;
use ovlcheck_case::Profile;
use ovlcheck_harness::gen::{CaseStrategy, GenConfig};
use ovlcheck_harness::{report, run_case, RunError};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, RngSeed, TestCaseError, TestRunner,
};

/// Cases per profile; `OVL_DIFF_CASES` raises it for a soak run.
fn cases() -> u32 {
    std::env::var("OVL_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn check_profile(name: &str) {
    let Some(kernel) = common::kernel(&format!("differential_{name}")) else {
        return;
    };
    let profile = Profile::preset(name).expect("preset");
    let strategy = CaseStrategy {
        config: GenConfig {
            max_ops: 16,
            ..GenConfig::default()
        },
        profile,
    };
    let config = Config {
        cases: cases(),
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x0b1c_u64.wrapping_add(name.len() as u64)),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |case| match run_case(&*kernel, &case) {
        Ok(run) => match run.divergence {
            None => Ok(()),
            Some(d) => Err(TestCaseError::fail(report::render(&d, "kernel"))),
        },
        Err(RunError::BadCase(m)) => Err(TestCaseError::fail(format!(
            "generator made an invalid case: {m}"
        ))),
        Err(RunError::Backend(e)) => Err(TestCaseError::fail(format!("backend failure: {e}"))),
    });
    if let Err(e) = result {
        panic!("profile {name}: {e}");
    }
}

macro_rules! per_profile {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { check_profile($name); })*
        #[test]
        fn every_preset_has_a_test() {
            let tested = [$($name),*];
            for p in PRESETS {
                assert!(tested.contains(&p.name), "no differential test for preset {}", p.name);
            }
        }
    };
}

per_profile! {
    differential_default => "default",
    differential_redirect => "redirect",
    differential_nofollow => "nofollow",
    differential_redirect_off => "redirect-off",
    differential_uuid_off => "uuid-off",
    differential_volatile => "volatile",
    differential_index => "index",
    differential_metacopy => "metacopy",
    differential_xino => "xino",
    differential_xino_auto => "xino-auto",
    differential_xdev => "xdev",
    differential_userxattr => "userxattr",
    differential_idmapped => "idmapped",
    differential_nested => "nested",
    differential_readonly => "readonly",
    differential_enospc => "enospc",
}
