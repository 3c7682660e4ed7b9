//! The `--json` summary: one JSON object, printed as the last stdout line.
//! Everything but `elapsed_s` and `cases_per_s` is a function of the command
//! line, so two runs with the same seed print the same object otherwise.

use serde::Serialize;

/// The machine-readable result of a command (DESIGN.md, CLI).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub command: String,
    pub backend: String,
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

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary always serialises")
    }
}
