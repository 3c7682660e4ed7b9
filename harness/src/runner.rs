//! The differential runner: one case on the model and on a backend, step by
//! step, then the merged view, the raw upper view, the merged view after a
//! remount and after a commit. The first difference is the divergence.

use crate::compare::{agree_sorted, compare_views, Which};
use crate::model_backend::ModelBackend;
use ovlcheck_case::{Allowed, Case, Errno, Node, Op, Outcome, Step, View, ViewDiff};
use ovlcheck_driver::{Backend, BackendKind, CaseRun, DriverError};
use ovlcheck_model::Model;
use serde::Serialize;

/// What was compared when model and backend first disagreed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Check {
    /// The backend's outcome of step N is not among the model's.
    Outcome { step: usize },
    /// The backend's outcome of step N is not the one the case pins.
    Pinned { step: usize, expected: Outcome },
    /// A view differs.
    View { which: Which },
    /// The kernel refused to mount, read-only, the layers the backend
    /// left (the kernel view's mount failed with this errno).
    KernelRefused { errno: Errno },
}

/// A disagreement between model and backend, with what is needed to read it.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub check: Check,
    /// The case as run, with every step up to the divergence pinned to the
    /// backend's observed outcome.
    pub case: Case,
    /// Model's allowed outcomes per step run.
    pub allowed: Vec<Allowed>,
    /// Backend's observed outcome per step run.
    pub observed: Vec<Outcome>,
    /// For view divergences: the model's view, the backend's, their diff.
    pub views: Option<(View, View, Vec<ViewDiff>)>,
}

impl Divergence {
    /// A short, stable key: the same kind of bug gives the same key.
    pub fn signature(&self) -> String {
        match &self.check {
            Check::Outcome { step } | Check::Pinned { step, .. } => {
                let op = &self.case.steps[*step].op;
                let model = self
                    .allowed
                    .get(*step)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let backend = self
                    .observed
                    .get(*step)
                    .map(short_outcome)
                    .unwrap_or_default();
                format!(
                    "{}: model {} / backend {}",
                    op.keyword(),
                    short_allowed(&model),
                    backend
                )
            }
            Check::KernelRefused { errno } => {
                format!("kernel view: mount {}", errno.name())
            }
            Check::View { which } => {
                let fields: Vec<String> = self
                    .views
                    .iter()
                    .flat_map(|(_, _, d)| d.iter().map(diff_field))
                    .take(1)
                    .collect();
                format!("{} view: {}", which.name(), fields.join(","))
            }
        }
    }
}

fn short_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Ok(_) => "ok".into(),
        Outcome::Err(e) => e.name(),
    }
}

fn short_allowed(s: &str) -> String {
    s.split(" | ")
        .map(|o| {
            if o.starts_with('E') {
                o.to_string()
            } else {
                "ok".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn diff_field(d: &ViewDiff) -> String {
    match d {
        ViewDiff::OnlyLeft { .. } => "missing on backend".into(),
        ViewDiff::OnlyRight { .. } => "extra on backend".into(),
        ViewDiff::Changed { fields, .. } => fields.join("+"),
    }
}

/// Why a case could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The case is not a valid case (the model refused it).
    #[error("invalid case: {0}")]
    BadCase(String),
    /// The backend could not run it (environment, hang, crash).
    #[error("{0}")]
    Backend(#[from] DriverError),
}

/// The result of one differential run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Steps executed (lifecycle ops included).
    pub ops: usize,
    /// Model's allowed outcomes and backend's observed outcome per step run.
    pub allowed: Vec<Allowed>,
    pub observed: Vec<Outcome>,
    pub divergence: Option<Divergence>,
}

/// Runs `case` on the model and on `backend` and compares everything.
/// The model backend starts from the model built here (see
/// [`ModelBackend::run_from`]).
pub fn run_case(backend: &dyn Backend, case: &Case) -> Result<Run, RunError> {
    let model = Model::new(case).map_err(|e| RunError::BadCase(e.to_string()))?;
    let observed = if backend.kind() == BackendKind::Model {
        ModelBackend::run_from(model.clone(), case)?
    } else {
        backend.run_case(case)?
    };
    Ok(compare_run(model, case, &observed))
}

struct Trace<'a> {
    case: &'a Case,
    allowed: Vec<Allowed>,
    observed: Vec<Outcome>,
}

impl Trace<'_> {
    fn divergence(self, check: Check, views: Option<(View, View, Vec<ViewDiff>)>) -> Divergence {
        let mut case = self.case.clone();
        case.steps.truncate(self.observed.len());
        for (step, seen) in case.steps.iter_mut().zip(&self.observed) {
            step.expect = Some(seen.clone());
        }
        Divergence {
            check,
            case,
            allowed: self.allowed,
            observed: self.observed,
            views,
        }
    }
}

/// Most candidate states [`compare_run`] follows at once; more successors
/// with the backend's outcome than this are cut (the first ones kept).
const MAX_CANDIDATES: usize = 16;

/// Compares what the backend did with what the model allows, step by step,
/// then the views; the first difference is the divergence.
///
/// The model may allow several successor states with the same outcome (the
/// kernel may legally end in any of them), so the run follows a small set
/// of candidate states, deduplicated by [`Model::canonical_hash`]: a step's
/// allowed outcomes are those of any candidate, and a view agrees when it
/// agrees with some candidate's. A divergence is reported against the first
/// candidate.
pub fn compare_run(model: Model, case: &Case, run: &CaseRun) -> Run {
    let mut trace = Trace {
        case,
        allowed: Vec::new(),
        observed: Vec::new(),
    };
    let mut models = vec![model];
    for (i, (step, seen)) in case.steps.iter().zip(&run.outcomes).enumerate() {
        let (allowed, next) = successors(&models, step, seen);
        let pin_broken = step.expect.as_ref().filter(|e| *e != seen).cloned();
        trace.allowed.push(allowed);
        trace.observed.push(seen.clone());
        if next.is_empty() {
            return diverged(trace, Check::Outcome { step: i }, None);
        }
        if let Some(expected) = pin_broken {
            return diverged(trace, Check::Pinned { step: i, expected }, None);
        }
        models = next;
    }
    // The end views: merged, then the raw upper, of the same candidate.
    let none = View::default();
    let ends = |m: &Model| {
        let upper = match (m.upper_nodes(), &run.upper) {
            (None, None) => None,
            (mv, b) => Some((mv.unwrap_or_default(), b.as_ref().unwrap_or(&none))),
        };
        [
            (Which::Merged, Some((m.merged_nodes(), &run.merged))),
            (Which::Upper, upper),
        ]
        .into_iter()
        .find_map(|(which, pair)| pair.and_then(|(mv, b)| differ(mv, b)).map(|d| (which, d)))
    };
    let mut first_diff = None;
    let before = std::mem::take(&mut models);
    for m in before {
        match ends(&m) {
            None => models.push(m),
            Some(d) => {
                first_diff.get_or_insert(d);
            }
        }
    }
    if models.is_empty() {
        let (which, d) = first_diff.expect("a candidate's views differ");
        return diverged(trace, Check::View { which }, Some(d));
    }
    let lifecycle = [
        (
            Op::Remount,
            Which::AfterRemount,
            &run.remount,
            &run.after_remount,
        ),
        (
            Op::Commit,
            Which::AfterCommit,
            &run.commit,
            &run.after_commit,
        ),
    ];
    for (op, which, seen, view) in lifecycle {
        let step = Step::new(op);
        let (allowed, next) = successors(&models, &step, seen);
        if next.is_empty() {
            let (ops, run_allowed, run_observed) = (
                trace.observed.len() + 1,
                trace.allowed.clone(),
                trace.observed.clone(),
            );
            let mut d = trace.divergence(Check::View { which }, None);
            d.case.steps.push(step);
            d.allowed.push(allowed);
            d.observed.push(seen.clone());
            return Run {
                ops,
                allowed: run_allowed,
                observed: run_observed,
                divergence: Some(d),
            };
        }
        models = next;
        if let Some(v) = view {
            let mut first_diff = None;
            models.retain(|m| match differ(m.merged_nodes(), v) {
                None => true,
                Some(d) => {
                    first_diff.get_or_insert(d);
                    false
                }
            });
            if models.is_empty() {
                return diverged(trace, Check::View { which }, first_diff);
            }
        }
    }
    // The kernel's reading of the layers the backend left, against the
    // merged tree the model predicts after the commit.
    match &run.kernel_view {
        None => {}
        Some(Err(errno)) => {
            return diverged(trace, Check::KernelRefused { errno: *errno }, None);
        }
        Some(Ok(v)) => {
            let mut first_diff = None;
            let agrees = models.iter().any(|m| match differ(m.merged_nodes(), v) {
                None => true,
                Some(d) => {
                    first_diff.get_or_insert(d);
                    false
                }
            });
            if !agrees {
                let which = Which::KernelView;
                return diverged(trace, Check::View { which }, first_diff);
            }
        }
    }
    finished(trace)
}

/// Every outcome the candidates allow for `step` (each once, in order), and
/// the distinct successor states whose outcome is `seen` (hashed only when
/// there is more than one).
fn successors(models: &[Model], step: &Step, seen: &Outcome) -> (Allowed, Vec<Model>) {
    let mut allowed: Vec<Outcome> = Vec::new();
    let mut next = Vec::new();
    for m in models {
        for (o, s) in m.apply(step) {
            if o == *seen {
                next.push(s);
            }
            if !allowed.contains(&o) {
                allowed.push(o);
            }
        }
    }
    if next.len() > 1 {
        let mut hashes = Vec::with_capacity(next.len());
        next.retain(|m| {
            let h = m.canonical_hash();
            let new = !hashes.contains(&h);
            hashes.push(h);
            new
        });
        next.truncate(MAX_CANDIDATES);
    }
    (Allowed(allowed), next)
}
/// Both views and their diff when they differ (the model's map is built
/// and the backend's view copied only then). `model` is sorted by path.
fn differ(model: Vec<(String, Node)>, backend: &View) -> Option<(View, View, Vec<ViewDiff>)> {
    if agree_sorted(&model, backend) {
        return None;
    }
    let model = View {
        nodes: model.into_iter().collect(),
    };
    let diff = compare_views(&model, backend);
    (!diff.is_empty()).then(|| (model, backend.clone(), diff))
}

fn finished(trace: Trace<'_>) -> Run {
    Run {
        ops: trace.observed.len(),
        allowed: trace.allowed,
        observed: trace.observed,
        divergence: None,
    }
}

fn diverged(trace: Trace<'_>, check: Check, views: Option<(View, View, Vec<ViewDiff>)>) -> Run {
    let (ops, allowed, observed) = (
        trace.observed.len(),
        trace.allowed.clone(),
        trace.observed.clone(),
    );
    Run {
        ops,
        allowed,
        observed,
        divergence: Some(trace.divergence(check, views)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovlcheck_case::{parse_case, Errno};

    fn model(text: &str) -> Model {
        Model::new(&parse_case("t", text).unwrap()).unwrap()
    }

    fn step(op: &str) -> Step {
        parse_case("t", &format!("lower\nops\n  {op}\n"))
            .unwrap()
            .steps
            .remove(0)
    }

    /// The candidates' allowed outcomes are united (each once); only the
    /// successors with the backend's outcome go on, equal states once.
    #[test]
    fn successors_unite_outcomes_and_keep_distinct_states() {
        let has = model("lower\n  file f 0644 \"x\"\n");
        let lacks = model("lower\n  file g 0644 \"y\"\n");
        let unlink = step("unlink f");
        let ok = Outcome::OK;
        let enoent = Outcome::Err(Errno::ENOENT);

        let (allowed, next) = successors(&[has.clone(), lacks.clone()], &unlink, &ok);
        assert_eq!(allowed.0, vec![ok.clone(), enoent.clone()]);
        assert_eq!(next.len(), 1, "only the state that had f can unlink it");

        let (_, next) = successors(&[lacks.clone(), has.clone()], &unlink, &enoent);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].canonical_hash(), lacks.canonical_hash());

        let (allowed, next) = successors(&[has.clone(), has.clone()], &unlink, &ok);
        assert_eq!(allowed.0, vec![ok.clone()]);
        assert_eq!(next.len(), 1, "equal successors are followed once");

        let other = model("lower\n  file f 0644 \"x\"\n  file h 0644 \"z\"\n");
        let (_, next) = successors(&[has, other], &unlink, &ok);
        assert_eq!(next.len(), 2, "distinct successors are all followed");
    }
}
