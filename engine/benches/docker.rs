//! The docker backend's rate against the bare engine calls it makes
//! (issue "Real container engines": at least 0.8x), measured in one run:
//! rounds alternate between the generated cases through the backend with
//! every check (`run_case_checked`, contract `layout`, export on) and the
//! same cases' engine calls alone (`DockerBackend::engine_calls_only`: load,
//! create, commit, save, create, remove; nothing mounted or judged). The
//! report gives each round's cases/s and the median ratio with its range.
//!
//! Needs root and `dockerd` (a private engine is started), or
//! `DOCKER_HOST` naming a running one. `OVL_RATIO_ROUNDS` (default 5) sets
//! the rounds, `OVL_ENGINE_CASES` (default 40) the cases per timing.
//! Run: `cargo bench -p ovlcheck-engine --bench docker`.

use ovlcheck_case::{Case, Profile};
use ovlcheck_driver::{Backend, BackendOptions};
use ovlcheck_engine::DockerBackend;
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::gen::{case_at, GenConfig};
use ovlcheck_harness::runner::{adapted, run_case_checked};
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Cases/s of `f` over `cases`.
fn rate(cases: &[Case], mut f: impl FnMut(&Case)) -> f64 {
    let t = Instant::now();
    for c in cases {
        f(c);
    }
    cases.len() as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let rounds = env_or("OVL_RATIO_ROUNDS", 5);
    let n = env_or("OVL_ENGINE_CASES", 40);
    let backend = DockerBackend::new(None, BackendOptions::default())
        .unwrap_or_else(|e| panic!("docker backend: {e}"));
    let gen = GenConfig {
        profile: Profile::preset("default"),
        ..GenConfig::default()
    };
    let cases: Vec<Case> = (0u64..)
        .map(|i| case_at(&gen, 1, i))
        .filter_map(|c| adapted(&backend, &c).ok())
        .take(n)
        .collect();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let checked = rate(&cases, |c| {
            let run = run_case_checked(&backend, c, Contract::Layout, true)
                .unwrap_or_else(|e| panic!("{e:?}"));
            assert!(run.divergence.is_none(), "a divergence in the bench");
        });
        let bare = rate(&cases, |c| {
            backend
                .engine_calls_only(c)
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let r = checked / bare;
        println!(
            "round {round}: backend {checked:.2} cases/s, engine calls alone {bare:.2} cases/s, ratio {r:.3}"
        );
        ratios.push(r);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "docker backend / engine calls alone: median {:.3} (range {:.3}-{:.3}) over {rounds} rounds of {n} cases",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
    // Name the backend so that the figure says what it measured.
    println!(
        "backend: {}, store {}",
        backend.name(),
        backend.store_home().display()
    );
}
