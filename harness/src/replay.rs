//! Replaying case files (the corpus) against a backend, each judged against
//! what it is known to show on that backend ([`crate::known::verdict`]).

use crate::contract::Contract;
use crate::corpus::{self, LoadError};
use crate::coverage::Coverage;
use crate::known::{verdict, Verdict};
use crate::pool::map_in_order;
use crate::runner::{pack_groups, run_pack_checked, Divergence, Packing, Run, RunError};
use ovlcheck_case::oci::DiffMethod;
use ovlcheck_case::{Case, Profile};
use ovlcheck_driver::{Backend, DriverError};
use ovlcheck_model::RuleSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one case file gave.
#[derive(Debug)]
pub enum Replayed {
    /// Run and judged.
    Judged {
        verdict: Verdict,
        divergence: Option<Box<Divergence>>,
    },
    /// The backend cannot run the case's profile (the reason).
    Unsupported(String),
    /// The backend hung or died.
    Failed(String),
}

/// A replay of many case files, in path order.
#[derive(Debug, Default)]
pub struct Replay {
    pub cases: Vec<(PathBuf, Replayed)>,
    /// Steps run.
    pub ops: usize,
    /// Cases whose export check ran and passed, and of them the ones with
    /// a naive changeset.
    pub exported: (usize, usize),
    /// The model's rules the judged cases reached ([`crate::coverage`]).
    pub coverage: Coverage,
    /// Runs that shared a mount (`--pack`), and of them the ones run again
    /// alone ([`Packing`]).
    pub packed: (usize, usize),
    /// `--pack`: most runs per mount.
    pub pack: usize,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl Replay {
    /// Cases with the given verdict.
    pub fn count(&self, v: Verdict) -> usize {
        self.judged().filter(|(_, j, _)| *j == v).count()
    }

    /// Every judged case: path, verdict, divergence.
    pub fn judged(&self) -> impl Iterator<Item = (&PathBuf, Verdict, Option<&Divergence>)> {
        self.cases.iter().filter_map(|(p, r)| match r {
            Replayed::Judged {
                verdict,
                divergence,
            } => Some((p, *verdict, divergence.as_deref())),
            _ => None,
        })
    }

    pub fn failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|(_, r)| matches!(r, Replayed::Failed(_)))
            .count()
    }

    pub fn unsupported(&self) -> usize {
        self.cases
            .iter()
            .filter(|(_, r)| matches!(r, Replayed::Unsupported(_)))
            .count()
    }
}

/// Why a replay could not be made at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A case file could not be read or parsed (nothing was run).
    #[error("{0}")]
    Load(#[from] LoadError),
    /// A case the model refuses.
    #[error("{path}: {message}")]
    BadCase { path: String, message: String },
    /// The environment cannot run the backend.
    #[error("{0}")]
    Environment(String),
}

/// How a replay runs its cases.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    pub contract: Contract,
    /// Runs of each case (more than one hammers a case for a divergence
    /// that depends on timing).
    pub repeat: usize,
    /// Threads running cases at once.
    pub jobs: usize,
    /// Most consecutive runs of one profile that share a mount (`--pack`,
    /// ovlcheck_driver::pack); 1 runs each alone.
    pub pack: usize,
}

/// Loads every `.ovl` file under `paths` (all of them, before anything
/// runs), then runs each `opts.repeat` times on `backend`, on `opts.jobs`
/// threads. The runs are reported in file order, each file's runs together,
/// whatever the number of threads.
pub fn replay(
    backend: &dyn Backend,
    paths: &[PathBuf],
    opts: ReplayOptions,
    stop: &AtomicBool,
) -> Result<Replay, ReplayError> {
    let start = Instant::now();
    let files = corpus::collect(paths)?;
    let cases = files
        .iter()
        .map(|f| corpus::load_case(f).map(|c| (f.clone(), c)))
        .collect::<Result<Vec<(PathBuf, Case)>, LoadError>>()?;
    let runs: Vec<&(PathBuf, Case)> = cases
        .iter()
        .flat_map(|c| std::iter::repeat_n(c, opts.repeat.max(1)))
        .collect();
    let windows: Vec<&[&(PathBuf, Case)]> = runs.chunks(opts.pack.max(1)).collect();
    let done = map_in_order(opts.jobs, &windows, stop, |_, window| {
        let r = replay_window(backend, window, opts.contract, opts.pack);
        if r.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        r
    });
    let mut out = Replay {
        pack: opts.pack,
        ..Replay::default()
    };
    let mut ran_all = Vec::with_capacity(runs.len());
    for result in done {
        let Some(result) = result else {
            out.interrupted = true;
            break;
        };
        ran_all.extend(result?);
    }
    for (run, ran) in runs.iter().zip(ran_all) {
        out.ops += ran.ops;
        out.packed.0 += usize::from(ran.packing != Packing::Alone);
        out.packed.1 += usize::from(ran.packing == Packing::RunAgainAlone);
        if let Some(m) = ran.exported {
            out.exported.0 += 1;
            out.exported.1 += usize::from(m != DiffMethod::Native);
        }
        if let (Replayed::Judged { .. }, Some(p)) = (&ran.replayed, &ran.profile) {
            out.coverage.add(p, ran.rules);
        }
        out.cases.push((run.0.clone(), ran.replayed));
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// One run of one case file: steps run, how its export check's changeset
/// was derived, the profile it ran with and the rules it reached, and its
/// result.
struct Ran {
    ops: usize,
    exported: Option<DiffMethod>,
    profile: Option<Profile>,
    rules: RuleSet,
    replayed: Replayed,
    packing: Packing,
}

impl Ran {
    fn without_judgement(ops: usize, replayed: Replayed) -> Ran {
        Ran {
            ops,
            exported: None,
            profile: None,
            rules: RuleSet::default(),
            replayed,
            packing: Packing::Alone,
        }
    }
}

/// Consecutive runs of case files: those of one profile share mounts, up
/// to `pack` at a time ([`run_pack_checked`]).
fn replay_window(
    backend: &dyn Backend,
    window: &[&(PathBuf, Case)],
    contract: Contract,
    pack: usize,
) -> Result<Vec<Ran>, ReplayError> {
    let adapted: Vec<Result<Case, String>> = window
        .iter()
        .map(|(_, case)| crate::runner::adapted(backend, case))
        .collect();
    let present: Vec<Option<&Case>> = adapted.iter().map(|a| a.as_ref().ok()).collect();
    let mut ran: Vec<Option<Ran>> = adapted
        .iter()
        .map(|a| {
            a.as_ref()
                .err()
                .map(|why| Ran::without_judgement(0, Replayed::Unsupported(why.clone())))
        })
        .collect();
    for group in pack_groups(&present, pack) {
        let cases: Vec<Case> = group
            .iter()
            .filter_map(|&at| present[at].cloned())
            .collect();
        let runs = run_pack_checked(backend, &cases, contract, true);
        for ((at, case), (run, packing)) in group.into_iter().zip(cases).zip(runs) {
            let mut judged = judge(backend.name(), &window[at].0, case, run)?;
            judged.packing = packing;
            ran[at] = Some(judged);
        }
    }
    Ok(ran
        .into_iter()
        .map(|r| r.expect("every run is judged"))
        .collect())
}

/// One run of one case file, judged against what it is known to show.
fn judge(
    backend: &str,
    path: &std::path::Path,
    case: Case,
    run: Result<Run, RunError>,
) -> Result<Ran, ReplayError> {
    match run {
        Ok(run) => {
            let v = verdict(&case, backend, run.divergence.as_ref());
            let replayed = Replayed::Judged {
                verdict: v,
                divergence: run.divergence.map(Box::new),
            };
            Ok(Ran {
                ops: run.ops,
                exported: run.exported,
                profile: Some(case.profile),
                rules: run.rules,
                replayed,
                packing: Packing::Alone,
            })
        }
        Err(RunError::Backend(DriverError::Environment(m))) => Err(ReplayError::Environment(m)),
        Err(RunError::BadCase(message)) => Err(ReplayError::BadCase {
            path: path.display().to_string(),
            message,
        }),
        Err(RunError::Backend(e)) => Ok(Ran::without_judgement(
            case.steps.len(),
            Replayed::Failed(e.to_string()),
        )),
    }
}
