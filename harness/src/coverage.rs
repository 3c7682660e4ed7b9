//! Rule coverage: how many cases reached each of the model's named rules
//! (`ovlcheck_model::RULES`), which rules the cases' profiles could reach
//! but never did, and which no profile of the run can reach, with why
//! (README: "Rule coverage").

use ovlcheck_case::Profile;
use ovlcheck_model::{Rule, RuleSet, RULES};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why every rule is out of reach of a run that judged no case.
const NO_CASE: &str = "no case ran";

/// Cases per rule, and the profiles the cases ran with.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Cases that reached each rule, indexed as [`RULES`].
    cases: Vec<u64>,
    /// The distinct profiles of the cases counted, in the order met.
    profiles: Vec<Profile>,
}

impl Coverage {
    /// Counts one case run with `profile` whose judgement reached `rules`.
    pub fn add(&mut self, profile: &Profile, rules: RuleSet) {
        if self.cases.is_empty() {
            self.cases = vec![0; RULES.len()];
        }
        for r in rules.iter() {
            self.cases[r as usize] += 1;
        }
        if !self.profiles.contains(profile) {
            self.profiles.push(profile.clone());
        }
    }

    /// Cases that reached `rule`.
    pub fn cases(&self, rule: Rule) -> u64 {
        self.cases.get(rule as usize).copied().unwrap_or(0)
    }

    /// Why none of the counted profiles can reach `rule`; `None` when one
    /// can. With no case counted every rule is unreachable.
    pub fn unreachable(&self, rule: Rule) -> Option<String> {
        let mut needs: Vec<&str> = Vec::new();
        for p in &self.profiles {
            match rule.unreachable_with(p) {
                None => return None,
                Some(n) if !needs.contains(&n) => needs.push(n),
                Some(_) => {}
            }
        }
        Some(match needs.is_empty() {
            true => NO_CASE.to_string(),
            false => format!("needs {}", needs.join(" or ")),
        })
    }

    /// The report `--json` carries and the CLI prints. For `generated`
    /// cases (a campaign), a rule that only corpus cases can reach
    /// (`RuleInfo::not_generated`) is listed apart with the reason.
    pub fn report(&self, generated: bool) -> CoverageReport {
        let mut report = CoverageReport::default();
        for info in RULES {
            let n = self.cases(info.rule);
            report.cases.insert(info.id.to_string(), n);
            if n > 0 {
                report.reached += 1;
                continue;
            }
            match (self.unreachable(info.rule), info.not_generated) {
                (Some(why), _) => {
                    report.unreachable.insert(info.id.to_string(), why);
                }
                (None, Some(why)) if generated => {
                    report
                        .not_generated
                        .insert(info.id.to_string(), why.to_string());
                }
                (None, _) => report.unreached.push(info.id.to_string()),
            }
        }
        report
    }
}

/// Rule coverage of one run: every rule's case count by stable id, the
/// rules reachable with the run's profiles that no case reached, those
/// generated cases cannot reach, and the rules out of reach, each with the
/// reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoverageReport {
    /// Rules reached by at least one case.
    pub reached: usize,
    /// Cases that reached each rule, by id (every rule, zeros included).
    pub cases: BTreeMap<String, u64>,
    /// Reachable with the run's profiles, but reached by no case.
    pub unreached: Vec<String>,
    /// Campaigns: reachable with the run's profiles, but only by corpus
    /// cases: id and why generated cases cannot.
    pub not_generated: BTreeMap<String, String>,
    /// Not reachable with any of the run's profiles: id and what it needs.
    pub unreachable: BTreeMap<String, String>,
}

impl CoverageReport {
    /// Lines for the end of a run's report: the rules reached, those never
    /// reached, and those out of reach grouped by what they need.
    pub fn lines(&self) -> Vec<String> {
        let total = self.cases.len();
        if self.reached == 0 && self.unreachable.values().all(|w| w == NO_CASE) {
            return vec![format!("rules: none of {total} reached (no case judged)")];
        }
        let mut out = vec![format!(
            "rules: {} of {total} reached, {} never reached, {} not generated, {} out of reach of these profiles",
            self.reached,
            self.unreached.len(),
            self.not_generated.len(),
            self.unreachable.len()
        )];
        if !self.unreached.is_empty() {
            out.push(format!("  never reached: {}", self.unreached.join(", ")));
        }
        for (label, reasons) in [
            ("not generated", &self.not_generated),
            ("out of reach", &self.unreachable),
        ] {
            let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (id, why) in reasons {
                by_reason.entry(why).or_default().push(id);
            }
            for (why, ids) in by_reason {
                out.push(format!("  {label} ({why}): {}", ids.join(", ")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str) -> Profile {
        Profile::preset(name).unwrap()
    }

    #[test]
    fn counts_cases_and_sorts_rules_by_reach() {
        let mut c = Coverage::default();
        let mut one = RuleSet::default();
        one.insert(Rule::CopyUpData);
        c.add(&preset("default"), one);
        c.add(&preset("default"), one);
        let r = c.report(true);
        assert_eq!(r.cases["copy-up.data"], 2);
        assert_eq!(r.reached, 1);
        assert!(r.unreached.contains(&"remove.whiteout".to_string()));
        assert_eq!(r.unreachable["copy-up.metacopy"], "needs metacopy=on");
        // Generated layers carry malformed redirects: a campaign that met
        // none has not reached the rule, as a replay has not. Only a view
        // before any step is out of generated cases' reach here.
        assert_eq!(
            r.not_generated.keys().collect::<Vec<_>>(),
            ["readdir.before-fix-origin"]
        );
        assert!(r.unreached.contains(&"lookup.redirect-invalid".to_string()));
        assert!(c
            .report(false)
            .unreached
            .contains(&"lookup.redirect-invalid".to_string()));
        c.add(&preset("metacopy"), RuleSet::default());
        let r = c.report(true);
        assert!(!r.unreachable.contains_key("copy-up.metacopy"));
        assert!(r.unreached.contains(&"copy-up.metacopy".to_string()));
    }

    #[test]
    fn nothing_run_reaches_nothing() {
        let r = Coverage::default().report(true);
        assert_eq!(r.reached, 0);
        assert!(r.unreached.is_empty());
        assert_eq!(r.unreachable.len(), RULES.len());
        assert_eq!(r.unreachable["lookup.merge"], "no case ran");
    }
}
