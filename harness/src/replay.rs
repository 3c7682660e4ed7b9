//! Replaying case files (the corpus) against a backend, each judged against
//! what it is known to show on that backend ([`crate::known::verdict`]).

use crate::contract::Contract;
use crate::corpus::{self, LoadError};
use crate::known::{verdict, Verdict};
use crate::runner::{run_case_under, Divergence, RunError};
use ovlcheck_case::Case;
use ovlcheck_driver::{Backend, DriverError};
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

/// Loads every `.ovl` file under `paths` (all of them, before anything
/// runs), then runs each on `backend` under `contract`.
pub fn replay(
    backend: &dyn Backend,
    paths: &[PathBuf],
    contract: Contract,
    stop: &AtomicBool,
    progress: &dyn Fn(&PathBuf, &Replayed),
) -> Result<Replay, ReplayError> {
    let start = Instant::now();
    let files = corpus::collect(paths)?;
    let cases = files
        .iter()
        .map(|f| corpus::load_case(f).map(|c| (f.clone(), c)))
        .collect::<Result<Vec<(PathBuf, Case)>, LoadError>>()?;
    let mut out = Replay::default();
    for (path, case) in cases {
        if stop.load(Ordering::SeqCst) {
            out.interrupted = true;
            break;
        }
        let (ops, r) = replay_one(backend, &path, case, contract)?;
        out.ops += ops;
        progress(&path, &r);
        out.cases.push((path, r));
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

fn replay_one(
    backend: &dyn Backend,
    path: &std::path::Path,
    mut case: Case,
    contract: Contract,
) -> Result<(usize, Replayed), ReplayError> {
    match backend.adapt_profile(&case.profile) {
        Err(why) => return Ok((0, Replayed::Unsupported(why))),
        // Outcomes pinned under the profile the case was written for say
        // nothing of the one the backend runs.
        Ok(p) if p != case.profile => {
            case = case.unpinned();
            case.profile = p;
        }
        Ok(_) => {}
    }
    match run_case_under(backend, &case, contract) {
        Ok(run) => {
            let v = verdict(&case, backend.name(), run.divergence.as_ref());
            let r = Replayed::Judged {
                verdict: v,
                divergence: run.divergence.map(Box::new),
            };
            Ok((run.ops, r))
        }
        Err(RunError::Backend(DriverError::Environment(m))) => Err(ReplayError::Environment(m)),
        Err(RunError::BadCase(message)) => Err(ReplayError::BadCase {
            path: path.display().to_string(),
            message,
        }),
        Err(RunError::Backend(e)) => Ok((case.steps.len(), Replayed::Failed(e.to_string()))),
    }
}
