//! A fuzzing campaign: case `i` of seed `S` is always the same case, so a
//! campaign is split across threads (`--jobs`) and machines (`--shard I/N`)
//! without changing a result. Phase 1 runs every case; phase 2 shrinks the
//! first divergence of each distinct signature, in case order. Both phases
//! are deterministic; only timings vary.

use crate::contract::Contract;
use crate::coverage::Coverage;
use crate::gen::{case_at, GenConfig};
use crate::known::KnownSet;
use crate::pool::map_in_order;
use crate::runner::{
    pack_groups, run_case_checked, run_pack_checked, Divergence, Packing, Run, RunError,
};
use crate::shrink::shrink;
use ovlcheck_case::oci::DiffMethod;
use ovlcheck_case::{Case, Profile, Signature};
use ovlcheck_driver::{Backend, DriverError};
use ovlcheck_model::RuleSet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `--shard I/N`: this machine runs the cases whose index is I modulo N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N` with `I < N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
        let index: u64 = i.parse().map_err(|_| format!("bad shard index `{i}`"))?;
        let count: u64 = n.parse().map_err(|_| format!("bad shard count `{n}`"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= I < N"));
        }
        Ok(Shard { index, count })
    }

    /// The case indices of this shard among `cases`.
    pub fn indices(self, cases: u64) -> Vec<u64> {
        (0..cases)
            .filter(|i| i % self.count == self.index)
            .collect()
    }
}

/// Everything a campaign needs besides the backend.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    pub seed: u64,
    pub cases: u64,
    pub gen: GenConfig,
    pub jobs: usize,
    pub shard: Shard,
    /// Most divergences to shrink and report (distinct signatures).
    pub max_reported: usize,
    /// Most candidate runs while shrinking one divergence.
    pub shrink_runs: usize,
    /// What is compared.
    pub contract: Contract,
    /// The backend's known divergences: reported apart, never shrunk.
    pub known: KnownSet,
    /// The export check runs (docs/images.md; `--no-export` turns it off).
    pub export: bool,
    /// Most cases of one profile run in one mount (`--pack N`,
    /// ovlcheck_driver::pack); 1 runs every case alone.
    pub pack: usize,
}

/// The result of one case of phase 1, as a campaign keeps it: a few bytes,
/// so a campaign of millions of cases runs in flat memory. Full divergences
/// are kept only for the first case of each signature ([`Campaign::first`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaseResult {
    pub index: u64,
    pub ops: u32,
    pub diverged: bool,
    /// The divergence is a known one ([`KnownSet`]).
    pub known: bool,
    /// The backend hung or died on this case (not a divergence).
    pub backend_failed: bool,
    /// The backend cannot run this case's profile (`--profile all` on an
    /// implementation without some option): not run.
    pub unsupported: bool,
    /// The export check ran and passed, with a changeset derived so.
    pub exported: Option<DiffMethod>,
    /// The model's rules the case reached ([`crate::coverage`]).
    pub rules: RuleSet,
    /// The case's profile, as an index into [`Campaign::profiles`].
    pub profile: u16,
    /// Whether it shared a mount (`--pack`).
    pub packing: Packing,
}

/// A shrunk divergence, ready to report and save.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Index of the case it was found in.
    pub index: u64,
    /// The divergence on the minimized case.
    pub divergence: Divergence,
    /// Steps and layer entries before and after shrinking.
    pub original_size: usize,
    pub shrink_runs: usize,
}

/// What a campaign produced.
#[derive(Debug, Default)]
pub struct Campaign {
    /// One compact result per case run, in case order (an interrupted
    /// campaign keeps the prefix of cases that all finished).
    pub results: Vec<CaseResult>,
    /// Per signature, the divergence of the lowest-numbered case.
    pub first: BTreeMap<Signature, First>,
    /// The first backend failures (index, message), lowest index first.
    pub failures: Vec<(u64, String)>,
    pub findings: Vec<Finding>,
    /// Set when SIGINT/SIGTERM stopped the campaign early.
    pub interrupted: bool,
    pub elapsed: Duration,
    /// The distinct profiles the cases ran with ([`CaseResult::profile`]).
    pub profiles: Vec<Profile>,
}

/// How many backend failure messages a campaign keeps.
const KEPT_FAILURES: usize = 5;

impl Campaign {
    pub fn cases(&self) -> usize {
        self.results.len()
    }

    pub fn ops(&self) -> usize {
        self.results.iter().map(|r| r.ops as usize).sum()
    }

    /// Cases whose export check ran and passed, and how many of them had a
    /// naive changeset.
    pub fn exported(&self) -> (usize, usize) {
        let methods = self.results.iter().filter_map(|r| r.exported);
        let (all, naive) = methods.fold((0, 0), |(a, n), m| {
            (a + 1, n + usize::from(m != DiffMethod::Native))
        });
        (all, naive)
    }

    pub fn divergent_cases(&self) -> usize {
        self.results.iter().filter(|r| r.diverged).count()
    }

    /// Divergent cases whose divergence is a known one.
    pub fn known_cases(&self) -> usize {
        self.results.iter().filter(|r| r.known).count()
    }

    /// Cases not run because the backend cannot run their profile.
    pub fn unsupported(&self) -> usize {
        self.results.iter().filter(|r| r.unsupported).count()
    }

    /// The known divergences met: signature, the known case it matched,
    /// and how many cases showed it, in the order first met.
    pub fn known(&self) -> Vec<KnownMatch> {
        self.ordered()
            .into_iter()
            .filter_map(|(s, f)| {
                f.known.as_ref().map(|case| KnownMatch {
                    signature: s.clone(),
                    case: case.display().to_string(),
                    cases: f.cases,
                })
            })
            .collect()
    }

    /// Distinct signatures not known.
    pub fn new_signatures(&self) -> Vec<Signature> {
        self.ordered()
            .into_iter()
            .filter(|(_, f)| f.known.is_none())
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn ordered(&self) -> Vec<(&Signature, &First)> {
        let mut v: Vec<(&Signature, &First)> = self.first.iter().collect();
        v.sort_by_key(|(_, f)| f.index);
        v
    }

    /// Cases that shared a mount, and of them the ones run again alone
    /// ([`Packing`]).
    pub fn packed(&self) -> (usize, usize) {
        let count = |f: fn(Packing) -> bool| self.results.iter().filter(|r| f(r.packing)).count();
        (
            count(|p| p != Packing::Alone),
            count(|p| p == Packing::RunAgainAlone),
        )
    }

    pub fn backend_failures(&self) -> usize {
        self.results.iter().filter(|r| r.backend_failed).count()
    }

    /// How many cases reached each of the model's rules, and which rules
    /// the cases' profiles can reach ([`crate::coverage`]).
    pub fn coverage(&self) -> Coverage {
        let mut c = Coverage::default();
        for r in self.results.iter().filter(|r| !r.unsupported) {
            c.add(&self.profiles[r.profile as usize], r.rules);
        }
        c
    }

    /// Every distinct divergence signature found, in the order of the case
    /// that first showed it (also those beyond `--max-reported`).
    pub fn signatures(&self) -> Vec<Signature> {
        self.ordered().into_iter().map(|(s, _)| s.clone()).collect()
    }
}

/// The first divergence of a signature in a campaign.
#[derive(Clone, Debug)]
pub struct First {
    /// The lowest case index that showed it.
    pub index: u64,
    pub divergence: Divergence,
    /// The known case it matches, if any.
    pub known: Option<PathBuf>,
    /// How many cases showed it.
    pub cases: usize,
}

/// A known divergence a campaign met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KnownMatch {
    pub signature: Signature,
    /// The known case file it matched.
    pub case: String,
    /// Cases that showed it.
    pub cases: usize,
}

/// A fatal campaign error: the environment cannot run the backend.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// What the workers of phase 1 share: the first divergence per signature
/// and the first failure messages (bounded, unlike per-case results).
#[derive(Default)]
struct Shared {
    first: BTreeMap<Signature, First>,
    failures: Vec<(u64, String)>,
    fatal: Option<Fatal>,
    profiles: Vec<Profile>,
}

impl Shared {
    /// The index of `p` in the campaign's profiles, added if new.
    fn profile_index(&mut self, p: &Profile) -> u16 {
        let i = match self.profiles.iter().position(|q| q == p) {
            Some(i) => i,
            None => {
                self.profiles.push(p.clone());
                self.profiles.len() - 1
            }
        };
        u16::try_from(i).expect("a campaign has few distinct profiles")
    }

    fn record(
        &mut self,
        index: u64,
        ops: usize,
        outcome: Result<Option<(Divergence, Option<PathBuf>)>, String>,
    ) -> CaseResult {
        let mut r = CaseResult {
            index,
            ops: ops as u32,
            diverged: matches!(outcome, Ok(Some(_))),
            backend_failed: outcome.is_err(),
            ..CaseResult::default()
        };
        match outcome {
            Ok(Some((d, known))) => {
                r.known = known.is_some();
                let sig = d.signature().clone();
                match self.first.get_mut(&sig) {
                    Some(f) => {
                        f.cases += 1;
                        // A signature known in one profile and met in one
                        // where it is not known is new: the new case wins.
                        let same_verdict = f.known.is_none() == known.is_none();
                        if (same_verdict && index < f.index)
                            || (f.known.is_some() && known.is_none())
                        {
                            (f.index, f.divergence, f.known) = (index, d, known);
                        }
                    }
                    None => {
                        let first = First {
                            index,
                            divergence: d,
                            known,
                            cases: 1,
                        };
                        self.first.insert(sig, first);
                    }
                }
            }
            Ok(None) => {}
            Err(msg) => {
                self.failures.push((index, msg));
                self.failures.sort();
                self.failures.truncate(KEPT_FAILURES);
            }
        }
        r
    }
}

/// Phase 1: runs cases `indices` with `jobs` threads. `progress` is called
/// after each case. Stops early when `stop` is set. With `opts.pack` above
/// 1 the cases go in windows, and a window's cases of one profile share
/// mounts ([`run_pack_checked`]); results are the same as alone.
pub fn run_indices(
    backend: &dyn Backend,
    opts: &FuzzOptions,
    indices: &[u64],
    stop: &AtomicBool,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Result<Campaign, Fatal> {
    let shared = Mutex::new(Shared::default());
    let windows: Vec<&[u64]> = indices.chunks(window(opts)).collect();
    let slots = map_in_order(opts.jobs, &windows, stop, |_, window| {
        let judged = run_window(backend, opts, window)
            .map_err(|f| {
                stop.store(true, Ordering::SeqCst);
                shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .fatal
                    .get_or_insert(f);
            })
            .ok()?;
        let mut results = Vec::with_capacity(window.len());
        for (index, judged) in window.iter().zip(judged) {
            let r = match judged {
                None => CaseResult {
                    index: *index,
                    unsupported: true,
                    ..CaseResult::default()
                },
                Some((profile, ((ops, exported, rules, o), packing))) => {
                    let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let mut r = sh.record(*index, ops, o);
                    r.exported = exported;
                    r.rules = rules;
                    r.profile = sh.profile_index(&profile);
                    r.packing = packing;
                    r
                }
            };
            progress(&r);
            results.push(r);
        }
        Some(results)
    });
    let sh = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = sh.fatal {
        return Err(f);
    }
    // An interrupted campaign keeps the prefix of cases that all finished, so
    // the summary describes an exact range of the case stream.
    let results: Vec<CaseResult> = slots
        .into_iter()
        .map_while(Option::flatten)
        .flatten()
        .collect();
    let end = results.last().map_or(0, |r| r.index + 1);
    let first = sh
        .first
        .into_iter()
        .filter(|(_, f)| f.index < end)
        .collect();
    let failures = sh.failures.into_iter().filter(|(i, _)| *i < end).collect();
    Ok(Campaign {
        results,
        first,
        failures,
        profiles: sh.profiles,
        ..Campaign::default()
    })
}

/// How many consecutive cases go in one window: 1 alone; with packs,
/// enough that cases that can share a mount (one profile, the same
/// remount and commit steps) mostly fill a pack: four packs' worth, for
/// each profile a campaign cycles through.
fn window(opts: &FuzzOptions) -> usize {
    let profiles = match (&opts.gen.profile, opts.gen.rotation.len()) {
        (Some(_), _) => 1,
        (None, 0) => ovlcheck_case::profile::PRESETS.len(),
        (None, n) => n,
    };
    match opts.pack {
        0 | 1 => 1,
        n => 4 * n * profiles,
    }
}

/// The cases `indices` of a window: each one's profile, outcome and how
/// it was run, `None` when the backend cannot run it. Cases that can
/// share a mount go in packs of up to `opts.pack` ([`pack_groups`]); the
/// others run alone.
fn run_window(
    backend: &dyn Backend,
    opts: &FuzzOptions,
    indices: &[u64],
) -> Result<Vec<Option<(Profile, Judged)>>, Fatal> {
    let cases: Vec<Option<Case>> = indices
        .iter()
        .map(|&i| backend.adapt_case(&case_at(&opts.gen, opts.seed, i)).ok())
        .collect();
    let present: Vec<Option<&Case>> = cases.iter().map(Option::as_ref).collect();
    let packs = pack_groups(&present, opts.pack);
    let mut out: Vec<Option<(Profile, Judged)>> = indices.iter().map(|_| None).collect();
    for pack in packs {
        let members: Vec<Case> = pack
            .iter()
            .map(|&at| cases[at].clone().expect("a case"))
            .collect();
        let at_index: Vec<u64> = pack.iter().map(|&at| indices[at]).collect();
        let judged = judge_pack(backend, &members, &at_index, opts)?;
        for ((at, case), j) in pack.into_iter().zip(members).zip(judged) {
            out[at] = Some((case.profile, j));
        }
    }
    Ok(out)
}

/// One case: steps run, how its export check's changeset was derived
/// (when it ran and passed), the model's rules it reached, and a
/// divergence (with the known case it matches) or a backend failure
/// message.
type CaseOutcome = (
    usize,
    Option<DiffMethod>,
    RuleSet,
    Result<Option<(Divergence, Option<PathBuf>)>, String>,
);

/// A case's outcome and how it was run.
type Judged = (CaseOutcome, Packing);

/// The cases of one pack (numbered `indices`), judged. A panic is a bug
/// in ovlcheck (model or harness), never a divergence: the cases are then
/// run alone, and the one that panics stops the campaign with its number.
fn judge_pack(
    backend: &dyn Backend,
    cases: &[Case],
    indices: &[u64],
    opts: &FuzzOptions,
) -> Result<Vec<Judged>, Fatal> {
    let alone = || {
        cases
            .iter()
            .zip(indices)
            .map(|(case, &index)| Ok((one_case(backend, case, index, opts)?, Packing::Alone)))
            .collect()
    };
    if cases.len() < 2 {
        return alone();
    }
    let runs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_pack_checked(backend, cases, opts.contract, opts.export)
    }));
    match runs {
        Ok(runs) => cases
            .iter()
            .zip(indices)
            .zip(runs)
            .map(|((case, &index), (run, packing))| {
                Ok((judged(backend, case, index, run, opts)?, packing))
            })
            .collect(),
        Err(_) => alone(),
    }
}

fn one_case(
    backend: &dyn Backend,
    case: &Case,
    index: u64,
    opts: &FuzzOptions,
) -> Result<CaseOutcome, Fatal> {
    // A panic is a bug in ovlcheck (model or harness), never a divergence:
    // stop with the case that shows it.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_case_checked(backend, case, opts.contract, opts.export)
    }))
    .map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let again = match opts.gen.generate_args(opts.seed, index) {
            Some(args) => format!(
                "; `ovlcheck generate {}` prints it again",
                shell_words(&args)
            ),
            None => String::new(),
        };
        Fatal(format!(
            "ovlcheck panicked on case #{index} ({msg}){again}; report it with the case:\n{}",
            ovlcheck_case::print_case(case)
        ))
    })?;
    judged(backend, case, index, run, opts)
}

/// `args` as a shell takes them: those with a space in single quotes (a
/// profile given by its options; no argument here holds a quote).
fn shell_words(args: &[String]) -> String {
    let word = |a: &String| match a.contains(' ') {
        true => format!("'{a}'"),
        false => a.clone(),
    };
    args.iter().map(word).collect::<Vec<_>>().join(" ")
}

/// The outcome of case `index`'s run.
fn judged(
    backend: &dyn Backend,
    case: &Case,
    index: u64,
    run: Result<Run, RunError>,
    opts: &FuzzOptions,
) -> Result<CaseOutcome, Fatal> {
    match run {
        Ok(run) => {
            let judged = run.divergence.map(|d| {
                let known = opts
                    .known
                    .matching_on(backend, (opts.contract, opts.export), &d)
                    .map(PathBuf::from);
                (d, known)
            });
            Ok((run.ops, run.exported, run.rules, Ok(judged)))
        }
        Err(RunError::Backend(DriverError::Environment(msg))) => Err(Fatal(msg)),
        Err(RunError::Backend(e)) => Ok((
            case.steps.len(),
            None,
            RuleSet::default(),
            Err(e.to_string()),
        )),
        // A generated case the model refuses is a generator bug: report it
        // loudly, as a fatal error, rather than skip it.
        Err(RunError::BadCase(msg)) => {
            Err(Fatal(format!("generated case {index} is invalid: {msg}")))
        }
    }
}

/// Size of a case for shrink statistics: steps plus layer entries.
pub fn case_size(case: &Case) -> usize {
    case.steps.len() + case.layer_entries().count()
}

/// Shrinks a divergent case to a minimal one with the same signature.
pub fn minimize(
    backend: &dyn Backend,
    (contract, export): (Contract, bool),
    found: &Divergence,
    index: u64,
    max_runs: usize,
) -> Finding {
    let signature = found.signature();
    // Shrinking must not be steered by outcomes observed on the bigger case.
    let original = found.case.unpinned();
    let mut runs = 0usize;
    let small = shrink(original.clone(), Duration::from_secs(600), |c| {
        if runs >= max_runs {
            return false;
        }
        runs += 1;
        matches!(run_case_checked(backend, c, contract, export),
            Ok(r) if r.divergence.as_ref().is_some_and(|d| d.signature() == signature))
    });
    let divergence = match run_case_checked(backend, &small, contract, export) {
        Ok(crate::runner::Run {
            divergence: Some(d),
            ..
        }) => d,
        _ => found.clone(),
    };
    Finding {
        index,
        divergence,
        original_size: case_size(&original),
        shrink_runs: runs,
    }
}

/// The first divergence of each new (not known) signature, lowest case
/// first, at most `max`.
fn new_firsts(first: &BTreeMap<Signature, First>, max: usize) -> Vec<(u64, &Divergence)> {
    let mut picked: Vec<(u64, &Divergence)> = first
        .values()
        .filter(|f| f.known.is_none())
        .map(|f| (f.index, &f.divergence))
        .collect();
    picked.sort_by_key(|(i, _)| *i);
    picked.truncate(max);
    picked
}

/// Phase 2: shrink the first divergence of each new signature, the
/// lowest-numbered cases first (known ones are not shrunk: their minimal
/// case is in the corpus).
pub fn findings(
    backend: &dyn Backend,
    first: &BTreeMap<Signature, First>,
    opts: &FuzzOptions,
    stop: &AtomicBool,
) -> Vec<Finding> {
    let picked = new_firsts(first, opts.max_reported);
    map_in_order(opts.jobs, &picked, stop, |_, (index, d)| {
        minimize(
            backend,
            (opts.contract, opts.export),
            d,
            *index,
            opts.shrink_runs,
        )
    })
    .into_iter()
    .flatten()
    .collect()
}

/// The first new divergences as they were found, lowest case first.
fn unshrunk(first: &BTreeMap<Signature, First>, max: usize) -> Vec<Finding> {
    new_firsts(first, max)
        .into_iter()
        .map(|(index, d)| Finding {
            index,
            divergence: d.clone(),
            original_size: case_size(&d.case),
            shrink_runs: 0,
        })
        .collect()
}

/// Runs a whole campaign: phase 1 and phase 2.
pub fn fuzz(
    backend: &dyn Backend,
    opts: &FuzzOptions,
    stop: &AtomicBool,
    progress: &(dyn Fn(&CaseResult) + Sync),
) -> Result<Campaign, Fatal> {
    let start = Instant::now();
    let indices = opts.shard.indices(opts.cases);
    let mut c = run_indices(backend, opts, &indices, stop, progress)?;
    c.interrupted = c.results.len() < indices.len();
    c.findings = if c.interrupted {
        // Stopped by a signal: keep every divergence found, unshrunk.
        unshrunk(&c.first, opts.max_reported)
    } else {
        findings(backend, &c.first, opts, stop)
    };
    c.elapsed = start.elapsed();
    Ok(c)
}
