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
    pub elapsed_s: f64,
    pub cases_per_s: f64,
    /// `uname -r` of the machine.
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
