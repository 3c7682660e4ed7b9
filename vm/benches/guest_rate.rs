//! The vm backend against a bare loop doing the same case in the same
//! guest (docs/vm.md, "Figures"). Every round boots both guests below and
//! then takes every timing in ten batches in turn, so that each figure of
//! a round sees the machine's drift alike:
//!
//! - **the bare loop**: a guest whose `/init` is this bench binary. As pid
//!   1 it does what the backend's guest does first (mounts proc, sysfs,
//!   devtmpfs and a tmpfs on `/tmp`, loads `overlay.ko`: `guest::setup`),
//!   says hello on its channel, then runs `raw::one_case` (the raw syscall
//!   work of `BASELINE_CASE`: no harness, no model, no checks) on the tmpfs
//!   as many times as the host asks, timed with the guest's monotonic
//!   clock: once without the lifecycle (the floor), once with the raw
//!   remount and commit checks (the raw bound). Then, to see where the
//!   harness's time goes, the backend's guest worker alone
//!   (`WorkerState::handle` of the request the backend sends for the case,
//!   then `settle`, as the backend's guest serves it) on the same clock,
//!   without the channel, and the same worker serving that request from
//!   the host on the channel, timed on the host: the difference is what
//!   the channel costs. It prints the figures on its console, answers
//!   them on the channel, and is killed when the host is done. Its boot is
//!   timed from qemu's start to the hello, which comes just before the
//!   loop;
//! - **the harness**: `VmBackend::new` with the release `ovlcheck` binary
//!   as the guest (image preparation and the first boot, timed, and the
//!   backend's own boot time), then the same case through
//!   `VmBackend::run_case` alone (the guest and the channel, no model),
//!   then through `ovlcheck_harness::run_case` on that one guest, every
//!   check of the backend's contract (views, remount, commit, export), the
//!   model on the host, timed on the host; then again without the export
//!   check (`fuzz --no-export`), which the raw bound has no counterpart of.
//!
//! The rounds alternate which guest boots first; each ratio is taken within
//! a round, and the report gives the median and the range over the rounds.
//! Last, one more bare guest times the worker's requests for the case one
//! by one (start, ops, views, remount, export, commit, end, settle).
//!
//! `BASELINE_CASE` has `setxattr a user.k`. A tmpfs before v6.6 has no
//! `user.*` xattrs, and the vm backend refuses a case using them on such a
//! guest (`adapt_case`); then both loops run the case without that op, and
//! the report says so.
//!
//! Run (the guest binary first, then the bench; qemu, no root needed):
//!
//! ```sh
//! cargo build --release --bin ovlcheck
//! OVL_VM_KERNEL=/boot/vmlinuz-6.1.0-57-amd64 cargo bench -p ovlcheck-vm --bench guest_rate
//! ```
//!
//! `OVL_RATIO_ROUNDS` (default 5) sets the rounds, `OVL_VM_CASES` (default
//! 100) the cases of each timing, `OVL_VM_GUEST` another `ovlcheck` binary
//! for the harness's guest (another build of it).

#[path = "../../harness/benches/raw/mod.rs"]
mod raw;

use ovlcheck_case::{parse_case, Case};
use ovlcheck_driver::proto::{self, Mounter, Request, Response, RunCase};
use ovlcheck_driver::worker::{WorkerState, WORKER_UMASK};
use ovlcheck_driver::{Backend, BackendKind, Wants};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::runner::run_case_checked;
use ovlcheck_harness::runner::{adapted, wants_export};
use ovlcheck_vm::guest::{self, Hello};
use ovlcheck_vm::image;
use ovlcheck_vm::machine::{BootSpec, Guest};
use ovlcheck_vm::{VmBackend, VmOptions};
use raw::{one_case_with, BASELINE_CASE};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// As in the `ovlcheck` binary, whose guest the harness runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cases each timing runs before it starts the clock, in both guests.
const WARM_UP: u32 = 5;
/// How long a guest may take to boot, and a bare timing to answer.
const PATIENCE: Duration = Duration::from_secs(600);
/// The op a tmpfs without `user.*` xattrs cannot run.
const USER_XATTR_OP: &str = "setxattr a user.k";

/// What the host asks the bare guest: one timing of `cases` cases, after
/// `warm_up` untimed ones.
#[derive(Debug, Serialize, Deserialize)]
struct BareRun {
    cases: u32,
    warm_up: u32,
    job: Job,
}

/// The work of one case in the bare guest.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    /// `raw::one_case_with`: the floor, or with `lifecycle` the raw bound.
    Raw { lifecycle: bool, user_xattr: bool },
    /// The backend's guest worker answering the request the backend sends
    /// for a case (`WorkerState::handle` and `settle`, as the guest's
    /// `serve` does), without the channel: where the harness's time in
    /// the guest goes.
    Worker(Box<RunCase>),
    /// The same worker serving requests from the host on the channel, as
    /// the backend's guest does: the guest answers this job at once, then
    /// serves `warm_up` + `cases` requests and takes jobs again. What
    /// the channel costs, in the same guest as the worker alone.
    Serve,
    /// The worker's requests for the case one by one (as a session sends
    /// them: start, the steps, the views, the remount, the export, the
    /// commit, the end, then `settle`), each timed: where its time goes.
    /// Answered with [`Steps`].
    Steps(Box<RunCase>),
}

/// The bare guest's answer to [`Job::Steps`]: milliseconds per case of
/// each kind of request, in the order first run.
type Steps = Vec<(String, f64)>;

/// The bare guest's answer: the loop's time on the guest's monotonic
/// clock, and the guest's uptime when it said hello.
#[derive(Debug, Serialize, Deserialize)]
struct BareTime {
    secs: f64,
    uptime: f64,
}

fn main() {
    if guest::is_guest() {
        bare_guest();
    }
    // `cargo test --all-targets` runs benches without `--bench`: this one
    // boots guests for minutes, so it runs only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(kernel) = std::env::var_os("OVL_VM_KERNEL").map(PathBuf::from) else {
        eprintln!(
            "guest_rate: set OVL_VM_KERNEL to a guest kernel (e.g. \
             /boot/vmlinuz-6.1.0-57-amd64); skipped"
        );
        return;
    };
    let rounds: usize = env_number("OVL_RATIO_ROUNDS", 5);
    let cases: u32 = env_number("OVL_VM_CASES", 100);
    let me = std::env::current_exe().expect("this bench's executable");
    // target/release/deps/guest_rate-HASH: the release binary is two up.
    let ovlcheck = std::env::var_os("OVL_VM_GUEST")
        .map(PathBuf::from)
        .or_else(|| {
            me.parent()
                .and_then(Path::parent)
                .map(|d| d.join("ovlcheck"))
        })
        .filter(|p| p.is_file())
        .unwrap_or_else(|| {
            eprintln!(
                "guest_rate: no release ovlcheck binary beside {} (or at $OVL_VM_GUEST): run \
                 `cargo build --release --bin ovlcheck` first",
                me.display()
            );
            std::process::exit(2)
        });
    let files = tempfile::Builder::new()
        .prefix("ovlcheck-guest-rate")
        .tempdir()
        .expect("a temporary directory");
    let t = Instant::now();
    let spec = bare_image(&kernel, &me, files.path());
    let bare_prep = t.elapsed();
    let opts = {
        let mut o = VmOptions::new(&kernel);
        o.guest_binary = Some(ovlcheck.clone());
        o
    };

    // Warm-up: both images read once, and whether the guest's tmpfs can
    // take the case's user xattr.
    let backend = VmBackend::new(opts.clone()).unwrap_or_else(|e| panic!("the guest boots: {e}"));
    eprintln!("{}", backend.describe());
    let full = parse_case("baseline", BASELINE_CASE).expect("parses");
    let user_xattr = backend.adapt_case(&full).is_ok();
    let text = if user_xattr {
        BASELINE_CASE.to_string()
    } else {
        BASELINE_CASE
            .lines()
            .filter(|l| !l.contains(USER_XATTR_OP))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let case = parse_case("baseline", &text).expect("parses");
    let case = adapted(&backend, &case).unwrap_or_else(|e| panic!("the guest runs the case: {e}"));
    // What the backend sends for the case: what the worker timing runs.
    let request = RunCase {
        case: backend.adapt_case(&case).expect("adapted already"),
        mounter: Mounter::Kernel,
        wants: Wants {
            kernel_view: Contract::default_for(BackendKind::Vm).wants_kernel_view(BackendKind::Vm),
            export: wants_export(Contract::default_for(BackendKind::Vm), &case),
        },
    };
    harness_rate(&backend, &case, WARM_UP, true);
    drop(backend);
    let work = Work {
        spec: &spec,
        opts: &opts,
        case: &case,
        request: &request,
        user_xattr,
    };
    round(&work, BATCHES, false);
    if !user_xattr {
        println!(
            "the guest's tmpfs has no user.* xattrs and the vm backend refuses the case's \
             `{USER_XATTR_OP}`: both loops run BASELINE_CASE without that op"
        );
    }
    println!(
        "{cases} cases a timing in {BATCHES} batches taken in turn, {rounds} rounds; guest binary \
         {}; bare image prepared in {:.2} s",
        ovlcheck.display(),
        bare_prep.as_secs_f64()
    );
    println!(
        "{:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "round",
        "b.boot",
        "b.up",
        "floor/s",
        "bound/s",
        "work/s",
        "serv/s",
        "h.new",
        "h.boot",
        "back/s",
        "case/s",
        "noexp/s",
        "first"
    );
    let mut seen = Vec::new();
    for r in 0..rounds {
        let harness_first = r % 2 == 1;
        let round = round(&work, cases, harness_first);
        println!(
            "{r:>5} {:>7.2} {:>7.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7.2} {:>7.2} {:>8.1} {:>8.1} {:>8.1} {:>8}",
            round.bare_boot,
            round.bare_uptime,
            round.floor,
            round.bound,
            round.worker,
            round.served,
            round.harness_new,
            round.harness_boot,
            round.backend,
            round.harness,
            round.no_export,
            if harness_first { "harness" } else { "bare" },
        );
        seen.push(round);
    }
    println!(
        "(cases/s, and s. b.boot: the bare guest, qemu's start to its hello; b.up: its uptime \
         then; work: the backend's guest worker alone, in the bare guest; serv: the same worker serving the host on the \
         channel; h.new: VmBackend::new, \
         image preparation and boot; h.boot: the backend's own boot time, qemu's start to the \
         hello; back: VmBackend::run_case alone, guest and channel, no model; case: the \
         harness, every check; noexp: the harness without the export check)\n"
    );
    let mut json = serde_json::Map::new();
    json.insert("rounds".into(), rounds.into());
    json.insert("cases".into(), cases.into());
    json.insert("user_xattr_op".into(), user_xattr.into());
    json.insert("bare_prep_s".into(), bare_prep.as_secs_f64().into());
    for (name, key, figure) in FIGURES {
        let (med, lo, hi) = spread(seen.iter().map(figure).collect());
        println!("{name}: median {med:.3} (range {lo:.3}-{hi:.3})");
        json.insert(
            key.into(),
            serde_json::json!({ "median": med, "min": lo, "max": hi }),
        );
    }
    let steps = worker_breakdown(&spec, cases, &request);
    let total: f64 = steps.iter().map(|(_, ms)| ms).sum();
    println!(
        "\na harness case's time in the guest's worker, request by request (ms, {cases} cases, \
         one more bare guest): {}; total {total:.1}",
        steps
            .iter()
            .map(|(n, ms)| format!("{n} {ms:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    json.insert(
        "worker_steps_ms".into(),
        steps
            .into_iter()
            .map(|(n, ms)| (n, ms.into()))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    println!("{}", serde_json::Value::Object(json));
}

/// `name`'s value as a number, or `default`.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bare loop's boot spec: the kernel as the backend boots it, and an
/// initramfs with this bench binary as `/init` (the backend's image
/// writer: the binary, its libraries, `overlay.ko`).
fn bare_image(kernel: &Path, me: &Path, dir: &Path) -> BootSpec {
    let k = image::prepare_kernel(kernel, dir).expect("the guest kernel");
    let modules = image::guest_modules(None, k.release.as_deref()).expect("overlay.ko");
    let initramfs = dir.join("bare.cpio");
    image::write_initramfs(&initramfs, me, &modules, None, dir)
        .expect("the bare guest's initramfs");
    BootSpec {
        qemu: PathBuf::from("qemu-system-x86_64"),
        kernel: k.boot,
        initramfs,
        memory_mib: VmOptions::new(kernel).memory_mib,
        accel: "tcg".into(),
        dir: dir.to_path_buf(),
    }
}

/// How many batches a round's timings are cut into, taken in turn: this
/// machine's speed drifts within seconds, and each figure of a round then
/// sees the same drift.
const BATCHES: u32 = 10;

/// The work one round compares.
struct Work<'a> {
    spec: &'a BootSpec,
    opts: &'a VmOptions,
    case: &'a Case,
    request: &'a RunCase,
    user_xattr: bool,
}

/// One round: a bare guest and the harness's backend booted (in the
/// order `harness_first` says, each boot timed), then every timing in
/// [`BATCHES`] batches taken in turn, `cases` cases each in all.
fn round(w: &Work, cases: u32, harness_first: bool) -> Round {
    let boot_bare = || {
        let t = Instant::now();
        let g = Guest::boot(w.spec, PATIENCE).unwrap_or_else(|e| panic!("the bare guest: {e}"));
        (t.elapsed().as_secs_f64(), g)
    };
    let boot_harness = || {
        let t = Instant::now();
        let b = VmBackend::new(w.opts.clone()).unwrap_or_else(|e| panic!("the guest boots: {e}"));
        (t.elapsed().as_secs_f64(), b)
    };
    let ((bare_boot, mut g), (harness_new, backend)) = if harness_first {
        let h = boot_harness();
        (boot_bare(), h)
    } else {
        let b = boot_bare();
        (b, boot_harness())
    };
    harness_rate(&backend, w.case, WARM_UP, true);
    let batches = BATCHES.min(cases);
    let per = cases / batches;
    let raw = |lifecycle| Job::Raw {
        lifecycle,
        user_xattr: w.user_xattr,
    };
    let mut secs = [0.0f64; 7];
    let mut uptime = f64::NAN;
    for b in 0..batches {
        let warm_up = if b == 0 { WARM_UP } else { 0 };
        let mut bare = |job: Job| {
            let req = BareRun {
                cases: per,
                warm_up,
                job,
            };
            let a: BareTime = g
                .exchange(&req, "bare loop", PATIENCE)
                .unwrap_or_else(|e| panic!("the bare loop: {e}"));
            uptime = a.uptime;
            a.secs
        };
        secs[0] += bare(raw(false));
        secs[1] += bare(raw(true));
        secs[2] += bare(Job::Worker(Box::new(w.request.clone())));
        bare(Job::Serve);
        secs[3] += served(&mut g, w.request, warm_up, per);
        let t = Instant::now();
        for _ in 0..per {
            backend
                .run_case(w.case, w.request.wants)
                .unwrap_or_else(|e| panic!("runs: {e}"));
        }
        secs[4] += t.elapsed().as_secs_f64();
        secs[5] += f64::from(per) / harness_rate(&backend, w.case, per, true);
        secs[6] += f64::from(per) / harness_rate(&backend, w.case, per, false);
    }
    let rate = |s: f64| f64::from(per * batches) / s;
    Round {
        bare_boot,
        bare_uptime: uptime,
        floor: rate(secs[0]),
        bound: rate(secs[1]),
        worker: rate(secs[2]),
        served: rate(secs[3]),
        harness_new,
        harness_boot: backend.boot_time().as_secs_f64(),
        backend: rate(secs[4]),
        harness: rate(secs[5]),
        no_export: rate(secs[6]),
    }
}

/// The bare guest's worker serving `warm_up` + `cases` of `request`
/// from the host on the channel (after [`Job::Serve`]): the seconds of
/// the last `cases`, on the host's clock.
fn served(g: &mut Guest, request: &RunCase, warm_up: u32, cases: u32) -> f64 {
    let req = Request::RunCase(Box::new(request.clone()));
    let mut call = || match g.call(&req, "a case", PATIENCE) {
        Ok(Response::CaseRun(_)) => {}
        other => panic!("the bare guest's worker: {other:?}"),
    };
    for _ in 0..warm_up {
        call();
    }
    let t = Instant::now();
    for _ in 0..cases {
        call();
    }
    t.elapsed().as_secs_f64()
}

/// A bare guest timing the worker's requests for `request`'s case one
/// by one ([`Job::Steps`]).
fn worker_breakdown(spec: &BootSpec, cases: u32, request: &RunCase) -> Steps {
    let mut g = Guest::boot(spec, PATIENCE).unwrap_or_else(|e| panic!("the bare guest: {e}"));
    let job = BareRun {
        cases,
        warm_up: WARM_UP,
        job: Job::Steps(Box::new(request.clone())),
    };
    g.exchange(&job, "the worker's requests", PATIENCE)
        .unwrap_or_else(|e| panic!("the worker's requests: {e}"))
}

/// Cases per second of `case` through the harness, every check (the
/// export check only when `export`); a divergence or a backend failure
/// fails the bench.
fn harness_rate(backend: &VmBackend, case: &Case, cases: u32, export: bool) -> f64 {
    let contract = Contract::default_for(BackendKind::Vm);
    let t = Instant::now();
    for _ in 0..cases {
        let run = run_case_checked(backend as &dyn Backend, case, contract, export)
            .unwrap_or_else(|e| panic!("runs: {e}"));
        if let Some(d) = run.divergence {
            panic!("the baseline case diverges on the guest: {d:#?}");
        }
    }
    f64::from(cases) / t.elapsed().as_secs_f64()
}

/// The guest side: this binary as the bare guest's init. Never returns.
fn bare_guest() -> ! {
    if let Err(e) = bare_loop() {
        eprintln!("bare guest: {e}");
    }
    guest::power_off()
}

/// Set-up as the backend's guest does it (no probe), a hello, then one
/// timing per request until the host hangs up (or kills the guest).
fn bare_loop() -> Result<(), String> {
    let loaded = guest::setup()?;
    let channel = guest::open_channel()?;
    let up = guest::uptime();
    eprintln!("bare guest: up {up} s, overlay module loaded: {loaded}");
    let hello = Hello {
        release: ovlcheck_driver::kernel_release(),
        overlay: Err("a bare loop's guest: the overlay is not probed".into()),
        channel: channel.kind,
    };
    guest::write_frame(&channel, &hello)?;
    let uptime = up.parse().unwrap_or(f64::NAN);
    let root = Path::new("/tmp/bare");
    std::fs::create_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    // The worker's directory and umask, as the backend's guest has them.
    let worker_root = PathBuf::from("/tmp/w");
    std::fs::create_dir(&worker_root).map_err(|e| format!("/tmp/w: {e}"))?;
    let mut worker = WorkerState::new(worker_root, false);
    while let Some(req) = proto::recv::<BareRun>(channel.file.as_fd())? {
        if let Job::Serve = req.job {
            guest::write_frame(&channel, &BareTime { secs: 0.0, uptime })?;
            let umask = ovlcheck_driver::sys::umask(WORKER_UMASK);
            for _ in 0..req.warm_up + req.cases {
                let Some(r) = proto::recv::<Request>(channel.file.as_fd())? else {
                    return Ok(());
                };
                guest::write_frame(&channel, &worker.handle(r))?;
                worker.settle();
            }
            ovlcheck_driver::sys::umask(umask);
            continue;
        }
        if let Job::Steps(run) = &req.job {
            let steps = worker_steps(&mut worker, run, req.cases);
            guest::write_frame(&channel, &steps)?;
            continue;
        }
        let mut one = || match &req.job {
            Job::Raw {
                lifecycle,
                user_xattr,
            } => {
                one_case_with(root, *lifecycle, *user_xattr);
            }
            Job::Serve | Job::Steps(_) => {}
            Job::Worker(run) => {
                let umask = ovlcheck_driver::sys::umask(WORKER_UMASK);
                match worker.handle(Request::RunCase(run.clone())) {
                    Response::CaseRun(_) => {}
                    other => panic!("the worker: {other:?}"),
                }
                worker.settle();
                ovlcheck_driver::sys::umask(umask);
            }
        };
        for _ in 0..req.warm_up {
            one();
        }
        let t = Instant::now();
        for _ in 0..req.cases {
            one();
        }
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "bare guest: {} cases of {:?}: {secs:.3} s, {:.1} cases/s",
            req.cases,
            match &req.job {
                Job::Raw { lifecycle, .. } =>
                    if *lifecycle {
                        "raw bound"
                    } else {
                        "floor"
                    },
                Job::Worker(_) => "worker",
                Job::Serve | Job::Steps(_) => unreachable!("answered above"),
            },
            f64::from(req.cases) / secs
        );
        guest::write_frame(&channel, &BareTime { secs, uptime })?;
    }
    Ok(())
}

/// [`Job::Steps`] in the guest: [`WARM_UP`] cases, then `cases` cases
/// timed request by request. A request that fails fails the bench.
fn worker_steps(worker: &mut WorkerState, run: &RunCase, cases: u32) -> Steps {
    use ovlcheck_case::{Op, Step};
    let umask = ovlcheck_driver::sys::umask(WORKER_UMASK);
    let mut steps: Steps = Vec::new();
    for i in 0..WARM_UP + cases {
        let mut time = |name: &str, req: Request| {
            let t = Instant::now();
            let answer = worker.handle(req);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if let Response::Failed(e) = answer {
                panic!("the worker's {name}: {e}");
            }
            match steps.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += ms,
                None => steps.push((name.to_string(), ms)),
            }
        };
        let case = run.case.clone();
        time(
            "start",
            Request::Start {
                case: Box::new(case.clone()),
                mounter: run.mounter.clone(),
            },
        );
        for step in &case.steps {
            time("ops", Request::Apply { step: step.clone() });
        }
        time("merged views", Request::MergedView);
        time("upper view", Request::UpperView);
        let remount = Step::new(Op::Remount);
        time("remount", Request::Apply { step: remount });
        time("merged views", Request::MergedView);
        if run.wants.export {
            time("export", Request::Export);
        }
        let commit = Step::new(Op::Commit);
        time("commit", Request::Apply { step: commit });
        time("merged views", Request::MergedView);
        time("end", Request::End);
        let t = Instant::now();
        worker.settle();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match steps.iter_mut().find(|(n, _)| n == "settle") {
            Some((_, total)) => *total += ms,
            None => steps.push(("settle".into(), ms)),
        }
        if i + 1 == WARM_UP {
            steps.iter_mut().for_each(|(_, total)| *total = 0.0);
        }
    }
    ovlcheck_driver::sys::umask(umask);
    steps
        .into_iter()
        .map(|(n, total)| (n, total / f64::from(cases.max(1))))
        .collect()
}

/// Median, minimum and maximum.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// One round's figures.
struct Round {
    /// Bare guest: qemu's start to its hello, s.
    bare_boot: f64,
    /// Its uptime at the hello, s.
    bare_uptime: f64,
    /// Bare floor and raw bound, cases/s.
    floor: f64,
    bound: f64,
    /// The backend's guest worker alone, in the bare guest, cases/s.
    worker: f64,
    /// The same worker serving the host on the channel, cases/s.
    served: f64,
    /// `VmBackend::new`, s.
    harness_new: f64,
    /// The backend's boot time (qemu's start to the hello), s.
    harness_boot: f64,
    /// `VmBackend::run_case` alone, cases/s.
    backend: f64,
    /// The harness, every check, cases/s.
    harness: f64,
    /// The harness without the export check, cases/s.
    no_export: f64,
}

/// A reported figure: its name, its key in the JSON line, and how a round
/// gives it.
type Figure = (&'static str, &'static str, fn(&Round) -> f64);

const FIGURES: [Figure; 19] = [
    ("bare guest boot, qemu to hello (s)", "bare_boot_s", |r| {
        r.bare_boot
    }),
    ("bare guest uptime at hello (s)", "bare_uptime_s", |r| {
        r.bare_uptime
    }),
    (
        "harness guest boot, qemu to hello (s; VmBackend::boot_time)",
        "harness_boot_s",
        |r| r.harness_boot,
    ),
    (
        "VmBackend::new, image preparation and boot (s)",
        "harness_new_s",
        |r| r.harness_new,
    ),
    (
        "boot: harness guest vs bare guest (x the bare guest's boot rate; target >= 0.5)",
        "boot_ratio",
        |r| r.bare_boot / r.harness_boot,
    ),
    ("bare floor (cases/s)", "floor_cps", |r| r.floor),
    (
        "bare raw bound, remount and commit (cases/s)",
        "bound_cps",
        |r| r.bound,
    ),
    ("harness, every check (cases/s)", "harness_cps", |r| {
        r.harness
    }),
    (
        "harness vs bare floor (x the floor's cases/s)",
        "harness_vs_floor",
        |r| r.harness / r.floor,
    ),
    (
        "harness vs bare raw bound (x the bound's cases/s; target >= 0.5)",
        "harness_vs_bound",
        |r| r.harness / r.bound,
    ),
    (
        "harness without the export check (fuzz --no-export; cases/s)",
        "no_export_cps",
        |r| r.no_export,
    ),
    (
        "harness without the export check vs bare raw bound (the checks the bound makes)",
        "no_export_vs_bound",
        |r| r.no_export / r.bound,
    ),
    (
        "bare raw bound vs bare floor (the best any harness can do)",
        "bound_vs_floor",
        |r| r.bound / r.floor,
    ),
    (
        "the backend's guest worker alone, in the bare guest (cases/s)",
        "worker_cps",
        |r| r.worker,
    ),
    (
        "VmBackend::run_case alone: guest and channel, no model (cases/s)",
        "backend_cps",
        |r| r.backend,
    ),
    (
        "a harness case's time in the guest's worker (ms)",
        "worker_ms",
        |r| 1e3 / r.worker,
    ),
    (
        "the same worker serving the host on the channel, in the bare guest (cases/s)",
        "served_cps",
        |r| r.served,
    ),
    (
        "... on the channel (ms; the worker serving the host less the worker alone, same guest)",
        "channel_ms",
        |r| 1e3 / r.served - 1e3 / r.worker,
    ),
    (
        "... on the host: model, comparison (ms; the harness less the backend alone)",
        "host_ms",
        |r| 1e3 / r.harness - 1e3 / r.backend,
    ),
];
