//! The `--json` summary: one JSON object, printed as the last stdout line.
//! Everything but `elapsed_s` and `cases_per_s` is a function of the command
//! line, so two runs with the same seed print the same object otherwise.

use serde::Serialize;

/// The machine-readable result of a command (docs/architecture.md, "The
/// CLI"). Divergences are counted as new or known
/// ([`crate::known::KnownSet`]): only new ones make the exit status 1,
/// unless `--strict`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub command: String,
    pub backend: String,
    /// The contract compared under (`posix`, `layout`, `kernel`).
    pub contract: String,
    pub profile: String,
    /// `fuzz`: the distinct profiles its cases ran with (as a case's
    /// `profile` line gives them), sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    pub seed: Option<u64>,
    /// Cases (or sequences) run.
    pub cases: usize,
    /// Steps executed.
    pub ops: usize,
    /// Cases in which model and backend diverged.
    pub divergences: usize,
    /// Distinct divergences (one per signature); the first `--max-reported`
    /// of them are shrunk and reported.
    pub distinct: usize,
    /// Signatures of the distinct divergences, in case order.
    pub signatures: Vec<String>,
    /// Divergent cases whose divergence no known case names.
    pub new_divergences: usize,
    /// Divergent cases whose divergence a known case names.
    pub known_divergences: usize,
    /// The new signatures, in case order.
    pub new_signatures: Vec<String>,
    /// Each known divergence met and the known case it matched.
    pub known: Vec<crate::campaign::KnownMatch>,
    /// `replay`: known cases that no longer diverge (the bug was fixed).
    pub fixed: Vec<String>,
    /// Cases not run: the backend cannot run their profile.
    pub unsupported: usize,
    /// Cases on which the backend hung or died (environment failures).
    pub backend_failures: usize,
    /// Cases whose export check (docs/images.md) ran and passed: their
    /// changeset written, read back, applied and mounted.
    pub exported: usize,
    /// Of those, the ones whose changeset came from comparing trees (a
    /// naive or a walking differ) rather than from the upper alone.
    pub exported_naive: usize,
    pub elapsed_s: f64,
    pub cases_per_s: f64,
    /// `uname -r` of the machine, or of the vm backend's guest
    /// (`Backend::kernel_release`).
    pub kernel: String,
    /// Case files written by `--save`.
    pub saved: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
    /// `explore` only: distinct model states reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub states: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// The run was stopped by SIGINT/SIGTERM before it finished.
    pub interrupted: bool,
    /// `fuzz` and `replay`: how many cases reached each of the model's
    /// rules, and the rules never reached (README: "Rule coverage").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<crate::coverage::CoverageReport>,
    /// `--pack N` above 1 (docs/performance.md, "Packing"): how the cases
    /// shared mounts. The rest of the summary is the same as with
    /// `--pack 1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packed: Option<Packed>,
}

/// How the cases of a `--pack N` run shared mounts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Packed {
    /// Most cases per mount.
    pub pack: usize,
    /// Cases run in a shared mount.
    pub cases: usize,
    /// Of those, the ones that diverged there (or whose pack failed), run
    /// again alone and judged by that run.
    pub run_again_alone: usize,
}

impl Packed {
    /// `(pack, (cases, run again alone))`, `None` for `--pack 1`.
    fn of(pack: usize, (cases, run_again_alone): (usize, usize)) -> Option<Packed> {
        (pack > 1).then_some(Packed {
            pack,
            cases,
            run_again_alone,
        })
    }
}

impl Summary {
    /// Fills the timing fields from an elapsed time.
    pub fn timed(mut self, elapsed: std::time::Duration) -> Summary {
        self.elapsed_s = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0;
        self.cases_per_s = if elapsed.as_secs_f64() > 0.0 {
            (self.cases as f64 / elapsed.as_secs_f64()).round()
        } else {
            0.0
        };
        self
    }

    /// The exit status: 1 for a new divergence (or, with `strict`, a known
    /// one or a fixed known case), 2 when interrupted or the backend
    /// failed, else 0.
    pub fn status(&self, strict: bool) -> i32 {
        let known = self.known_divergences > 0 || !self.fixed.is_empty();
        if self.new_divergences > 0 || (strict && known) {
            1
        } else if self.interrupted || self.backend_failures > 0 {
            2
        } else {
            0
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary always serialises")
    }
}

/// What every summary names: the backend, its contract and the profile.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    pub backend: &'a str,
    pub contract: crate::contract::Contract,
    pub profile: &'a str,
}

impl Summary {
    fn headed(command: &str, h: &Header) -> Summary {
        Summary {
            command: command.into(),
            backend: h.backend.into(),
            contract: h.contract.name().into(),
            profile: h.profile.into(),
            kernel: ovlcheck_driver::kernel_release(),
            ..Summary::default()
        }
    }

    /// A campaign's summary (`fuzz`).
    pub fn of_campaign(
        h: &Header,
        c: &crate::campaign::Campaign,
        opts: &crate::campaign::FuzzOptions,
        saved: Vec<String>,
    ) -> Summary {
        let shard = opts.shard;
        let mut profiles: Vec<String> = c.profiles.iter().map(|p| p.to_string()).collect();
        profiles.sort();
        Summary {
            seed: Some(opts.seed),
            profiles,
            cases: c.cases(),
            ops: c.ops(),
            divergences: c.divergent_cases(),
            distinct: c.first.len(),
            signatures: c.signatures().iter().map(|s| s.to_string()).collect(),
            new_divergences: c.divergent_cases() - c.known_cases(),
            known_divergences: c.known_cases(),
            new_signatures: c.new_signatures().iter().map(|s| s.to_string()).collect(),
            known: c.known(),
            unsupported: c.unsupported(),
            backend_failures: c.backend_failures(),
            exported: c.exported().0,
            exported_naive: c.exported().1,
            saved,
            shard: (shard.count > 1).then(|| format!("{}/{}", shard.index, shard.count)),
            jobs: Some(opts.jobs),
            interrupted: c.interrupted,
            rules: Some(c.coverage().report(true)),
            packed: Packed::of(opts.pack, c.packed()),
            ..Summary::headed("fuzz", h)
        }
        .timed(c.elapsed)
    }

    /// A replay's summary. A distinct divergence is a case file with a
    /// signature (a case run `--repeat` times counts each run).
    pub fn of_replay(h: &Header, r: &crate::replay::Replay) -> Summary {
        use crate::known::Verdict;
        let mut known: Vec<crate::campaign::KnownMatch> = Vec::new();
        let mut new: Vec<String> = Vec::new();
        for (path, verdict, d) in r.judged() {
            let Some(d) = d else { continue };
            let case = path.display().to_string();
            match (verdict, known.last_mut()) {
                // A file's repeated runs are together: one match, counted.
                (Verdict::Known, Some(k)) if k.case == case && k.signature == *d.signature() => {
                    k.cases += 1
                }
                (Verdict::Known, _) => known.push(crate::campaign::KnownMatch {
                    signature: d.signature().clone(),
                    case,
                    cases: 1,
                }),
                _ => {
                    let key = format!("{case}: {}", d.signature());
                    if !new.contains(&key) {
                        new.push(key);
                    }
                }
            }
        }
        let known_keys = known.iter().map(|k| format!("{}: {}", k.case, k.signature));
        let signatures: Vec<String> = new.iter().cloned().chain(known_keys).collect();
        let mut fixed: Vec<String> = r
            .judged()
            .filter(|(_, j, _)| *j == Verdict::Fixed)
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        fixed.dedup();
        Summary {
            cases: r.cases.len(),
            ops: r.ops,
            divergences: r.count(Verdict::New) + r.count(Verdict::Known),
            distinct: signatures.len(),
            signatures,
            new_divergences: r.count(Verdict::New),
            known_divergences: r.count(Verdict::Known),
            new_signatures: new,
            known,
            fixed,
            unsupported: r.unsupported(),
            backend_failures: r.failures(),
            exported: r.exported.0,
            exported_naive: r.exported.1,
            interrupted: r.interrupted,
            rules: Some(r.coverage.report(false)),
            packed: Packed::of(r.pack, r.packed),
            ..Summary::headed("replay", h)
        }
        .timed(r.elapsed)
    }

    /// An exploration's summary, its divergences judged by `known` (the
    /// known case each matches, if any).
    pub fn of_exploration(
        h: &Header,
        x: &crate::explore::Exploration,
        known: &dyn Fn(&crate::runner::Divergence) -> Option<std::path::PathBuf>,
        jobs: usize,
        saved: Vec<String>,
        interrupted: bool,
        elapsed: std::time::Duration,
    ) -> Summary {
        let signatures: std::collections::BTreeSet<String> = x
            .divergences
            .iter()
            .map(|d| d.signature().to_string())
            .collect();
        let (matches, new_signatures) = sort_known(known, &x.divergences);
        let known_divergences: usize = matches.iter().map(|k| k.cases).sum();
        Summary {
            cases: x.sequences,
            ops: x.ops,
            divergences: x.divergences.len(),
            distinct: signatures.len(),
            new_divergences: x.divergences.len() - known_divergences,
            known_divergences,
            new_signatures,
            known: matches,
            signatures: signatures.into_iter().collect(),
            backend_failures: x.backend_failures,
            saved,
            states: Some(x.states),
            depth: Some(x.depth),
            jobs: Some(jobs),
            interrupted,
            ..Summary::headed("explore", h)
        }
        .timed(elapsed)
    }
}

/// `divergences` sorted by `known` (the known case each matches): one
/// entry per known signature, in the order first met, with the known case
/// it matched and how many cases showed it; and the new signatures, in the
/// order first met.
fn sort_known(
    known: &dyn Fn(&crate::runner::Divergence) -> Option<std::path::PathBuf>,
    divergences: &[crate::runner::Divergence],
) -> (Vec<crate::campaign::KnownMatch>, Vec<String>) {
    let mut matches: Vec<crate::campaign::KnownMatch> = Vec::new();
    let mut new: Vec<String> = Vec::new();
    for d in divergences {
        let Some(case) = known(d) else {
            let sig = d.signature().to_string();
            if !new.contains(&sig) {
                new.push(sig);
            }
            continue;
        };
        match matches.iter_mut().find(|k| &k.signature == d.signature()) {
            Some(k) => k.cases += 1,
            None => matches.push(crate::campaign::KnownMatch {
                signature: d.signature().clone(),
                case: case.display().to_string(),
                cases: 1,
            }),
        }
    }
    (matches, new)
}
