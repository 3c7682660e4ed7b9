//! The performance ratios of docs/performance.md, each measured in one run: this VM's speed
//! drifts by up to 15% over minutes, so figures taken minutes apart cannot
//! be divided. Every round runs, back to back:
//!
//! - the raw floor (`raw::one_case`), the floor with the raw remount
//!   and commit checks (`lifecycle`), and that with the raw export check
//!   too (`raw::one_case_exported`), on one thread;
//! - the floor, and the floor with the checks, in two processes at once
//!   (how far the kernel itself scales that work);
//! - the same case through the harness on the kernel backend, every check,
//!   on one thread, then on two (as `--jobs 2` runs cases);
//! - the same case through the harness without the export check (`fuzz
//!   --no-export`; docs/images.md), which the raw bound has no counterpart
//!   of;
//! - a slice of the `fuzz` campaign (generated cases, all profiles) with
//!   `--jobs 1`, then the same slice with `--jobs 2`, then with `--jobs 1`
//!   and no export check;
//! - a longer slice of the same campaign on the model backend with `--jobs
//!   2` (no mount: the generator, the model and the comparison);
//! - the baseline case through the harness in packs of [`PACK`] cases per
//!   mount (`replay --pack`, every check still made), and a slice of a
//!   `fuzz --profile default` campaign with `--jobs 1`, alone and with
//!   `--pack` [`PACK`] (docs/performance.md, "Packing");
//! - the raw bound [`PACK`] cases per mount (`raw::pack_of_cases`), without
//!   and with the raw export check: the third target's yardsticks.
//!
//! Each ratio is taken within a round; the report gives the median and the
//! range over the rounds, the performance targets first (docs/
//! performance.md). `OVL_RATIO_ROUNDS` (default 9) sets the rounds.
//!
//! Needs root (mounts); runs in a private mount namespace on its own tmpfs.
//! Run: `cargo bench -p ovlcheck-harness --bench ratios`.

mod raw;

use ovlcheck_case::Profile;
use ovlcheck_case::{parse_case, Case};
use ovlcheck_harness::campaign::{run_indices, FuzzOptions, Shard};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::gen::GenConfig;
use ovlcheck_harness::pool::map_in_order;
use ovlcheck_harness::run_case;
use ovlcheck_harness::runner::{run_case_checked, run_pack_checked, Packing};
use raw::{one_case, one_case_exported, pack_of_cases, scratch, BASELINE_CASE};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The argument that makes this binary a raw child.
const CHILD_ARG: &str = "--raw-child";
/// With [`CHILD_ARG`]: the child does the raw checks too.
const LIFECYCLE_ARG: &str = "--lifecycle";
/// Raw and harness cases per timing.
const CASES: u32 = 150;
/// Generated cases per campaign slice.
const SLICE: u64 = 600;
/// Generated cases per campaign slice on the model backend, which runs
/// them some hundred times faster.
const MODEL_SLICE: u64 = 30_000;
/// Cases per mount of the packed figures (`--pack`).
const PACK: usize = 16;

/// Mean time of one case of the raw bound [`PACK`] cases per mount,
/// with or without the raw export check.
fn raw_packed(root: &std::path::Path, export: bool) -> Duration {
    per_call(CASES / PACK as u32, || {
        pack_of_cases(root, PACK, export);
    }) / PACK as u32
}

/// Mean time of one call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

/// Mean time per case of the raw floor (with `lifecycle`, the floor plus
/// the raw checks) run by two processes at once, each in its own mount
/// namespace, as ovlcheck's workers are: the longer child's loop time
/// divided by all the cases.
fn raw_in_two_processes(lifecycle: bool) -> Duration {
    let me = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&me)
                .arg(CHILD_ARG)
                .args(lifecycle.then_some(LIFECYCLE_ARG))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a raw child")
        })
        .collect();
    let longest = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("raw child");
            assert!(out.status.success(), "raw child failed");
            let secs: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("raw child prints its time");
            secs
        })
        .fold(0.0, f64::max);
    Duration::from_secs_f64(longest) / (2 * CASES)
}

/// The child side of [`raw_in_two_processes`]: its own namespace and
/// tmpfs, a short warm-up, then `CASES` raw cases; prints the seconds.
fn raw_child(lifecycle: bool) {
    let root = scratch();
    for _ in 0..10 {
        one_case(&root, lifecycle);
    }
    let t = Instant::now();
    for _ in 0..CASES {
        one_case(&root, lifecycle);
    }
    println!("{}", t.elapsed().as_secs_f64());
}

/// Mean time per case of `case` run through the harness by two threads at
/// once, placed as `fuzz --jobs 2` places them (the campaign's own pool).
fn case_in_two_threads(backend: &dyn ovlcheck_driver::Backend, case: &Case) -> Duration {
    let items: Vec<u32> = (0..2 * CASES).collect();
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let done = map_in_order(2, &items, &stop, |_, _| {
        run_case(backend, case).expect("runs");
    });
    assert!(done.iter().all(Option::is_some), "every case ran");
    t.elapsed() / (2 * CASES)
}

/// Cases per second of campaign cases `first..first + SLICE` (with the
/// export check when `export`).
fn campaign_rate(
    backend: &dyn ovlcheck_driver::Backend,
    first: u64,
    jobs: usize,
    export: bool,
) -> f64 {
    slice_rate(backend, first..first + SLICE, jobs, export)
}

/// Cases per second of cases `first..first + SLICE` of a `fuzz --profile
/// default --jobs 1` campaign, `pack` cases per mount.
fn default_rate(backend: &dyn ovlcheck_driver::Backend, first: u64, pack: usize) -> f64 {
    let gen = GenConfig {
        profile: Some(Profile::default()),
        ..GenConfig::default()
    };
    rate(backend, first..first + SLICE, 1, true, gen, pack)
}

/// Mean time per case of `case` run through the harness [`PACK`] at a
/// time in one mount, as `replay --pack` runs it; every case shares one.
fn case_packed(backend: &dyn ovlcheck_driver::Backend, case: &Case) -> Duration {
    let cases = vec![case.clone(); PACK];
    let packs = CASES as usize / PACK;
    let t = Instant::now();
    for _ in 0..packs {
        for (run, packing) in run_pack_checked(backend, &cases, Contract::Kernel, true) {
            run.expect("runs");
            assert_eq!(packing, Packing::Packed, "the baseline case shares a mount");
        }
    }
    t.elapsed() / (packs * PACK) as u32
}

/// Cases per second of the campaign's cases `slice`.
fn slice_rate(
    backend: &dyn ovlcheck_driver::Backend,
    slice: std::ops::Range<u64>,
    jobs: usize,
    export: bool,
) -> f64 {
    rate(backend, slice, jobs, export, GenConfig::default(), 1)
}

/// Cases per second of the cases `slice` of a campaign made by `gen`,
/// `pack` cases per mount.
fn rate(
    backend: &dyn ovlcheck_driver::Backend,
    slice: std::ops::Range<u64>,
    jobs: usize,
    export: bool,
    gen: GenConfig,
    pack: usize,
) -> f64 {
    let n = slice.end - slice.start;
    let opts = FuzzOptions {
        seed: 1,
        cases: slice.end,
        gen,
        jobs,
        shard: Shard::ALL,
        max_reported: 0,
        shrink_runs: 0,
        contract: ovlcheck_harness::contract::Contract::Kernel,
        known: Default::default(),
        export,
        pack,
    };
    let indices: Vec<u64> = slice.collect();
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let c = run_indices(backend, &opts, &indices, &stop, &|_| {}).expect("campaign runs");
    assert_eq!(c.cases(), n as usize, "every case ran");
    n as f64 / t.elapsed().as_secs_f64()
}

/// Median, minimum and maximum.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("ratios bench needs root (mount); skipped");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::args().any(|a| a == CHILD_ARG) {
        raw_child(std::env::args().any(|a| a == LIFECYCLE_ARG));
        return;
    }
    let rounds: usize = std::env::var("OVL_RATIO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let root = scratch();
    let kernel = ovlcheck_driver::backend_by_name("kernel", &Default::default()).expect("kernel");
    let model = ovlcheck_harness::model_backend::ModelBackend;
    ovlcheck_driver::check_environment(ovlcheck_driver::BackendKind::Kernel)
        .expect("kernel backend usable");
    let case = parse_case("baseline", BASELINE_CASE).expect("parses");
    // Warm-up: pooled workers started, caches filled.
    for _ in 0..50 {
        one_case(&root, true);
        run_case(&*kernel, &case).expect("runs");
    }
    println!(
        "{:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}",
        "round",
        "floor",
        "bound",
        "boundx",
        "floor2",
        "bound2",
        "case",
        "case2",
        "noexp",
        "j1 c/s",
        "j2 c/s",
        "model/s",
        "packed",
        "d1 c/s",
        "dP c/s",
        "rawpk",
        "rawpkx"
    );
    let mut rounds_seen = Vec::new();
    for r in 0..rounds {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let first = r as u64 * SLICE;
        let round = Round {
            floor: us(per_call(CASES, || {
                one_case(&root, false);
            })),
            bound: us(per_call(CASES, || {
                one_case(&root, true);
            })),
            bound_export: us(per_call(CASES, || {
                one_case_exported(&root);
            })),
            floor2: us(raw_in_two_processes(false)),
            bound2: us(raw_in_two_processes(true)),
            case: us(per_call(CASES, || {
                run_case(&*kernel, &case).expect("runs");
            })),
            case2: us(case_in_two_threads(&*kernel, &case)),
            case_no_export: us(per_call(CASES, || {
                run_case_checked(&*kernel, &case, Contract::Kernel, false).expect("runs");
            })),
            j1: campaign_rate(&*kernel, first, 1, true),
            j2: campaign_rate(&*kernel, first, 2, true),
            j1_no_export: campaign_rate(&*kernel, first, 1, false),
            model2: slice_rate(
                &model,
                r as u64 * MODEL_SLICE..(r as u64 + 1) * MODEL_SLICE,
                2,
                true,
            ),
            packed: us(case_packed(&*kernel, &case)),
            default1: default_rate(&*kernel, first, 1),
            default_packed: default_rate(&*kernel, first, PACK),
            raw_packed: us(raw_packed(&root, false)),
            raw_packed_export: us(raw_packed(&root, true)),
        };
        println!(
            "{r:>5} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>7.0} {:>7.0} {:>8.0} {:>8.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0}",
            round.floor,
            round.bound,
            round.bound_export,
            round.floor2,
            round.bound2,
            round.case,
            round.case2,
            round.case_no_export,
            round.j1,
            round.j2,
            round.model2,
            round.packed,
            round.default1,
            round.default_packed,
            round.raw_packed,
            round.raw_packed_export
        );
        rounds_seen.push(round);
    }
    println!(
        "(µs per case; boundx: the bound with the raw export check; floor2, bound2, case2: two \
         at once; noexp: the case without the export check; rawpk, rawpkx: the bound, and \
         the bound with the export check, 16 cases per mount; cases/s of campaign slices)\n"
    );
    for (name, ratio) in RATIOS {
        let (med, lo, hi) = spread(rounds_seen.iter().map(ratio).collect());
        println!("{name}: median {med:.2} (range {lo:.2}-{hi:.2})");
    }
}

/// One round's figures: µs per case, and campaign cases per second.
struct Round {
    floor: f64,
    bound: f64,
    /// The bound with the raw export check (`raw::one_case_exported`).
    bound_export: f64,
    floor2: f64,
    bound2: f64,
    case: f64,
    case2: f64,
    j1: f64,
    j2: f64,
    /// `--jobs 1` without the export check (docs/images.md).
    j1_no_export: f64,
    /// The harness case without the export check, µs.
    case_no_export: f64,
    /// `--backend model --jobs 2`, cases/s.
    model2: f64,
    /// The harness case [`PACK`] per mount, µs.
    packed: f64,
    /// `fuzz --profile default --jobs 1`, cases/s, alone and [`PACK`] per
    /// mount.
    default1: f64,
    default_packed: f64,
    /// The raw bound [`PACK`] per mount (`raw::pack_of_cases`), µs per
    /// case, without and with the raw export check.
    raw_packed: f64,
    raw_packed_export: f64,
}

/// A reported figure: its name, and how a round gives it.
type Figure = (&'static str, fn(&Round) -> f64);

/// What the bench reports, each a figure of one round: the performance
/// targets first (docs/performance.md, "Targets").
const RATIOS: [Figure; 22] = [
    (
        "1. harness case vs raw bound (x the bound's cases/s; target >= 0.95)",
        |r| r.bound / r.case,
    ),
    (
        "1. the same without the export check, which the bound lacks (x the bound's cases/s)",
        |r| r.bound / r.case_no_export,
    ),
    (
        "1. the harness case vs the raw bound with the raw export check (x its cases/s)",
        |r| r.bound_export / r.case,
    ),
    (
        "2. harness on 2 threads vs the raw bound in 2 processes (x the bound's scaling; \
         target >= 0.9)",
        |r| (r.case / r.case2) / (r.bound / r.bound2),
    ),
    (
        "3. harness case, 16 per mount, vs raw bound (x the bound's cases/s; target >= 1.5)",
        |r| r.bound / r.packed,
    ),
    (
        "3. fuzz --profile default --jobs 1 --pack 16 vs --pack 1 (x; target >= 1.4)",
        |r| r.default_packed / r.default1,
    ),
    (
        "3. raw bound, 16 per mount, vs raw bound (x the bound's cases/s; the target's own \
         measurement)",
        |r| r.bound / r.raw_packed,
    ),
    (
        "3. raw bound with the export check, 16 per mount, vs raw bound (x the bound's \
         cases/s: what a harness making the export check can reach)",
        |r| r.bound / r.raw_packed_export,
    ),
    (
        "3. harness case, 16 per mount, vs the raw bound with the export check 16 per mount \
         (x its cases/s)",
        |r| r.raw_packed_export / r.packed,
    ),
    (
        "4. fuzz --backend model --jobs 2 vs raw bound (x the bound's cases/s; target >= 80)",
        |r| r.model2 * r.bound / 1e6,
    ),
    (
        "raw bound with the export check vs without (x the bound's cases/s)",
        |r| r.bound / r.bound_export,
    ),
    ("harness case vs raw floor (x the floor's cases/s)", |r| {
        r.floor / r.case
    }),
    (
        "raw floor + checks vs raw floor (the best any harness can do)",
        |r| r.floor / r.bound,
    ),
    ("raw floor in 2 processes (x 1 process's cases/s)", |r| {
        r.floor / r.floor2
    }),
    (
        "raw floor + checks in 2 processes (x 1 process's cases/s)",
        |r| r.bound / r.bound2,
    ),
    ("harness case on 2 threads (x 1 thread's cases/s)", |r| {
        r.case / r.case2
    }),
    ("fuzz --jobs 2 vs --jobs 1", |r| r.j2 / r.j1),
    ("fuzz --jobs 1 cases/s", |r| r.j1),
    (
        "fuzz --jobs 1 with the export check vs without (x; may not halve)",
        |r| r.j1 / r.j1_no_export,
    ),
    ("fuzz --jobs 2 cases/s", |r| r.j2),
    ("fuzz --backend model --jobs 2 cases/s", |r| r.model2),
    ("fuzz --profile default --jobs 1 --pack 16 cases/s", |r| {
        r.default_packed
    }),
];
