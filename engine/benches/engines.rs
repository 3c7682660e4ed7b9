//! Each engine backend's rate against the bare engine calls it makes
//! (issue "Real container engines": at least 0.8x), measured in one run
//! per engine: rounds alternate between the generated cases through the
//! backend with every check (`run_case_checked`, contract `layout`, export
//! on) and the same cases' engine calls alone (`engine_calls_only`: load,
//! create, commit, save, create, remove; for containerd import, prepare,
//! diff, import, prepare, remove; nothing mounted or judged). The report
//! gives each round's cases/s and the median ratio with its range.
//!
//! Needs root, `dockerd`, `podman` and `containerd` (private engines are
//! started), or `DOCKER_HOST` / `CONTAINER_HOST` / `CONTAINERD_ADDRESS`
//! naming running ones. `OVL_RATIO_ROUNDS` (default 5) sets the rounds,
//! `OVL_ENGINE_CASES` (default 30) the cases per timing, `OVL_ENGINES`
//! (default `docker,podman,containerd`) which engines.
//! Run: `cargo bench -p ovlcheck-engine --bench engines`.

use ovlcheck_case::{Case, Profile};
use ovlcheck_driver::{Backend, BackendOptions, DriverError};
use ovlcheck_engine::{ContainerdBackend, DockerBackend, PodmanBackend};
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

/// The rounds of one engine: `backend` with every check against
/// `bare`, its engine calls alone.
fn measure(
    backend: &dyn Backend,
    bare: &dyn Fn(&Case) -> Result<(), DriverError>,
    rounds: usize,
    n: usize,
) {
    let gen = GenConfig {
        profile: Profile::preset("default"),
        ..GenConfig::default()
    };
    let cases: Vec<Case> = (0u64..)
        .map(|i| case_at(&gen, 1, i))
        .filter_map(|c| adapted(backend, &c).ok())
        .take(n)
        .collect();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        // A divergent case (a known engine bug) still made every check up
        // to its divergence; they are counted, not timed apart.
        let mut divergent = 0;
        let checked = rate(&cases, |c| {
            let run = run_case_checked(backend, c, Contract::Layout, true)
                .unwrap_or_else(|e| panic!("{e:?}"));
            divergent += usize::from(run.divergence.is_some());
        });
        let alone = rate(&cases, |c| bare(c).unwrap_or_else(|e| panic!("{e}")));
        let r = checked / alone;
        println!(
            "{} round {round}: backend {checked:.2} cases/s ({divergent} divergent), engine calls alone {alone:.2} cases/s, ratio {r:.3}",
            backend.name()
        );
        ratios.push(r);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "{} backend / engine calls alone: median {:.3} (range {:.3}-{:.3}) over {rounds} rounds of {n} cases",
        backend.name(),
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
}

fn main() {
    let rounds = env_or("OVL_RATIO_ROUNDS", 5);
    let n = env_or("OVL_ENGINE_CASES", 30);
    let engines =
        std::env::var("OVL_ENGINES").unwrap_or_else(|_| "docker,podman,containerd".into());
    for engine in engines.split(',') {
        match engine {
            "docker" => {
                let b = DockerBackend::new(None, BackendOptions::default())
                    .unwrap_or_else(|e| panic!("docker backend: {e}"));
                measure(&b, &|c| b.engine_calls_only(c), rounds, n);
            }
            "podman" => {
                let b = PodmanBackend::new(None, BackendOptions::default())
                    .unwrap_or_else(|e| panic!("podman backend: {e}"));
                measure(&b, &|c| b.engine_calls_only(c), rounds, n);
            }
            "containerd" => {
                let b = ContainerdBackend::new(None, BackendOptions::default())
                    .unwrap_or_else(|e| panic!("containerd backend: {e}"));
                measure(&b, &|c| b.engine_calls_only(c), rounds, n);
            }
            other => panic!("OVL_ENGINES: unknown engine `{other}`"),
        }
    }
}
