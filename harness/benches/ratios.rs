//! Issue 5's kernel ratios, each measured in one run: this VM's speed
//! drifts by up to 15% over minutes, so figures taken minutes apart cannot
//! be divided. Every round runs, back to back:
//!
//! - the raw floor (`raw::one_case`), and the floor with the raw remount
//!   and commit checks (`lifecycle`), on one thread;
//! - the floor in two processes at once (how far the kernel itself scales);
//! - the same case through the harness on the kernel backend, every check;
//! - a slice of the `fuzz` campaign (generated cases, all profiles) with
//!   `--jobs 1`, then the same slice with `--jobs 2`.
//!
//! Each ratio is taken within a round; the report gives the median and the
//! range over the rounds. `OVL_RATIO_ROUNDS` (default 9) sets the rounds.
//!
//! Needs root (mounts); runs in a private mount namespace on its own tmpfs.
//! Run: `cargo bench -p ovlcheck-harness --bench ratios`.

mod raw;

use ovlcheck_case::parse_case;
use ovlcheck_harness::campaign::{run_indices, FuzzOptions, Shard};
use ovlcheck_harness::gen::GenConfig;
use ovlcheck_harness::run_case;
use raw::{one_case, scratch, BASELINE_CASE};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The argument that makes this binary a raw child.
const CHILD_ARG: &str = "--raw-child";
/// Raw and harness cases per timing.
const CASES: u32 = 150;
/// Generated cases per campaign slice.
const SLICE: u64 = 600;

/// Mean time of one call of `f`, over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

/// Mean time per case of the raw floor run by two processes at once, each
/// in its own mount namespace, as ovlcheck's two workers are: the longer
/// child's loop time divided by all the cases.
fn floor_in_two_processes() -> Duration {
    let me = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&me)
                .arg(CHILD_ARG)
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

/// The child side of [`floor_in_two_processes`]: its own namespace and
/// tmpfs, a short warm-up, then `CASES` raw cases; prints the seconds.
fn raw_child() {
    let root = scratch();
    for _ in 0..10 {
        one_case(&root, false);
    }
    let t = Instant::now();
    for _ in 0..CASES {
        one_case(&root, false);
    }
    println!("{}", t.elapsed().as_secs_f64());
}

/// Cases per second of campaign cases `first..first + SLICE`.
fn campaign_rate(backend: &dyn ovlcheck_driver::Backend, first: u64, jobs: usize) -> f64 {
    let opts = FuzzOptions {
        seed: 1,
        cases: first + SLICE,
        gen: GenConfig::default(),
        jobs,
        shard: Shard::ALL,
        max_reported: 0,
        shrink_runs: 0,
    };
    let indices: Vec<u64> = (first..first + SLICE).collect();
    let stop = AtomicBool::new(false);
    let t = Instant::now();
    let c = run_indices(backend, &opts, &indices, &stop, &|_| {}).expect("campaign runs");
    assert_eq!(c.cases(), SLICE as usize, "every case ran");
    SLICE as f64 / t.elapsed().as_secs_f64()
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
        raw_child();
        return;
    }
    let rounds: usize = std::env::var("OVL_RATIO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let root = scratch();
    let kernel = ovlcheck_driver::backend_by_name("kernel", &Default::default()).expect("kernel");
    ovlcheck_driver::check_environment(ovlcheck_driver::BackendKind::Kernel)
        .expect("kernel backend usable");
    let case = parse_case("baseline", BASELINE_CASE).expect("parses");
    // Warm-up: pooled workers started, caches filled.
    for _ in 0..50 {
        one_case(&root, true);
        run_case(&*kernel, &case).expect("runs");
    }
    let mut cols: [Vec<f64>; 6] = Default::default();
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>6}",
        "round",
        "floor us",
        "bound us",
        "2proc us",
        "case us",
        "x floor",
        "x bound",
        "j1 c/s",
        "j2 c/s",
        "j2/j1"
    );
    for r in 0..rounds {
        let floor = per_call(CASES, || {
            one_case(&root, false);
        });
        let bound = per_call(CASES, || {
            one_case(&root, true);
        });
        let two = floor_in_two_processes();
        let case_time = per_call(CASES, || {
            run_case(&*kernel, &case).expect("runs");
        });
        let first = r as u64 * SLICE;
        let j1 = campaign_rate(&*kernel, first, 1);
        let j2 = campaign_rate(&*kernel, first, 2);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let row = [
            us(floor) / us(case_time),
            us(bound) / us(case_time),
            us(floor) / us(two),
            j2 / j1,
            j1,
            j2,
        ];
        println!(
            "{r:>5} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>9.0} {:>9.0} {:>6.2}",
            us(floor),
            us(bound),
            us(two),
            us(case_time),
            row[0],
            row[1],
            j1,
            j2,
            row[3]
        );
        for (c, v) in cols.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let names = [
        "harness case vs raw floor (x the floor's cases/s; target >= 0.5)",
        "harness case vs raw floor + checks (x the bound's cases/s)",
        "raw floor in 2 processes (x 1 process's cases/s)",
        "fuzz --jobs 2 vs --jobs 1 (target >= 1.7)",
        "fuzz --jobs 1 cases/s",
        "fuzz --jobs 2 cases/s",
    ];
    println!();
    for (name, c) in names.iter().zip(cols) {
        let (med, lo, hi) = spread(c);
        println!("{name}: median {med:.2} (range {lo:.2}-{hi:.2})");
    }
}
