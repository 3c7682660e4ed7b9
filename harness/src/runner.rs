//! The differential runner: one case on the model and on a backend, step by
//! step, then the merged view, the raw upper view, the merged view after a
//! remount and after a commit, and (contract `layout`) the kernel's mount of
//! the layers the backend left. The first difference is the divergence;
//! what counts as a difference is the contract's ([`Contract`]).

use crate::compare::{agree_sorted, compare_views};
use crate::contract::Contract;
use crate::model_backend::ModelBackend;
use ovlcheck_case::oci::{DiffMethod, TarCommit};
use ovlcheck_case::{
    Case, Class, Errno, Field, Node, Op, Outcome, Signature, Step, View, ViewDiff, ViewSig, Which,
};
use ovlcheck_driver::{Backend, CaseRun, DriverError, Export, Wants};
use ovlcheck_model::{Model, RuleSet};
use serde::Serialize;

/// What was compared when model and backend first disagreed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Check {
    /// The backend's outcome of step N is not the model's.
    Outcome { step: usize },
    /// The backend's outcome of step N is not the one the case pins.
    Pinned { step: usize, expected: Outcome },
    /// A view differs.
    View { which: Which },
    /// The kernel refused to mount the layers the backend left.
    KernelMount { errno: Errno },
    /// The layer tar made of the container layer is invalid (the reason).
    InvalidChangeset { reason: String },
}

/// A disagreement between model and backend, with what is needed to read it.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub check: Check,
    /// The contract the comparison was made under.
    pub contract: Contract,
    /// The kind of disagreement ([`Divergence::signature`]).
    pub signature: Signature,
    /// The case as run, with every step up to the divergence pinned to the
    /// backend's observed outcome.
    pub case: Case,
    /// The model's outcome per step run.
    pub predicted: Vec<Outcome>,
    /// The backend's observed outcome per step run.
    pub observed: Vec<Outcome>,
    /// For view divergences: the model's view, the backend's (both as the
    /// contract compares them), their diff.
    pub views: Option<(View, View, Vec<ViewDiff>)>,
}

impl Divergence {
    /// A short, stable key: the same kind of bug gives the same key.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// The signature of a check's failure.
fn signature_of(
    check: &Check,
    case: &Case,
    predicted: &[Outcome],
    observed: &[Outcome],
    views: Option<&(View, View, Vec<ViewDiff>)>,
    contract: Contract,
) -> Signature {
    match check {
        Check::Outcome { step } | Check::Pinned { step, .. } => Signature::Outcome {
            op: case.steps[*step].op.keyword().to_string(),
            model: Class::of(&predicted[*step]),
            backend: Class::of(&observed[*step]),
        },
        Check::View { which } => Signature::View {
            which: *which,
            diff: views
                .and_then(|(_, _, d)| d.first())
                .map_or(ViewSig::Fields(Vec::new()), |d| view_sig(d, contract)),
        },
        Check::KernelMount { errno } => Signature::KernelMount { errno: *errno },
        Check::InvalidChangeset { .. } => Signature::InvalidChangeset,
    }
}

/// What differs first in a view, typed. Below `kernel` an `ino` label
/// difference is one of which names are the same file ([`Contract::project`]).
fn view_sig(d: &ViewDiff, contract: Contract) -> ViewSig {
    match d {
        ViewDiff::OnlyLeft { .. } => ViewSig::Missing,
        ViewDiff::OnlyRight { .. } => ViewSig::Extra,
        ViewDiff::Changed { fields, .. } => ViewSig::Fields(
            fields
                .iter()
                .map(|f| match f.parse::<Field>() {
                    Ok(Field::Ino) if contract != Contract::Kernel => Field::SameFile,
                    Ok(field) => field,
                    Err(e) => unreachable!("a view field the signature cannot name: {e}"),
                })
                .collect(),
        ),
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
    /// The model's outcome and the backend's per step run.
    pub predicted: Vec<Outcome>,
    pub observed: Vec<Outcome>,
    /// How the changeset of the export check was derived, when that check
    /// ran and passed.
    pub exported: Option<DiffMethod>,
    pub divergence: Option<Divergence>,
    /// The model's rules that decided an outcome or a view of this run
    /// (`ovlcheck_model::Rule`; the campaign's rule coverage).
    pub rules: RuleSet,
}

/// Runs `case` on the model and on `backend` and compares everything the
/// backend's default contract covers.
pub fn run_case(backend: &dyn Backend, case: &Case) -> Result<Run, RunError> {
    run_case_under(backend, case, Contract::default_for(backend.kind()))
}

/// Runs `case` on the model and on `backend` and compares under `contract`,
/// every check included.
pub fn run_case_under(
    backend: &dyn Backend,
    case: &Case,
    contract: Contract,
) -> Result<Run, RunError> {
    run_case_checked(backend, case, contract, true)
}

/// [`run_case_under`], with the export check only when `export` (`fuzz
/// --no-export`; it runs where [`wants_export`] allows).
pub fn run_case_checked(
    backend: &dyn Backend,
    case: &Case,
    contract: Contract,
    export: bool,
) -> Result<Run, RunError> {
    let model = Model::new(case).map_err(|e| RunError::BadCase(e.to_string()))?;
    let wants = wants(backend, case, contract, export);
    let observed = if backend.kind() == ovlcheck_driver::BackendKind::Model {
        ModelBackend::run_from(model.clone(), case, wants)?
    } else {
        backend.run_case(case, wants)?
    };
    Ok(compare_run(model, case, &observed, contract))
}

/// The optional observations `backend` takes of `case` under `contract`:
/// the kernel view where the contract asks it of this backend (never of
/// the model), the export where `export` allows it and [`wants_export`]
/// runs it.
fn wants(backend: &dyn Backend, case: &Case, contract: Contract, export: bool) -> Wants {
    Wants {
        kernel_view: backend.kind() != ovlcheck_driver::BackendKind::Model
            && contract.wants_kernel_view(backend.kind()),
        export: export && wants_export(contract, case),
    }
}

/// How a case of [`run_pack_checked`] was run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Packing {
    /// In a mount of its own.
    #[default]
    Alone,
    /// In a mount shared with other cases, and judged by that run.
    Packed,
    /// In a shared mount, where it diverged (or the pack failed), then
    /// alone, and judged by that run.
    RunAgainAlone,
}

/// [`run_case_checked`] for several cases at once, in one mount where the
/// backend shares one between cases ([`Backend::run_pack`],
/// ovlcheck_driver::pack). Each case's part of the pack is judged as
/// [`run_case_checked`] judges a case; a case whose part diverges, and
/// every case of a pack that failed as a whole, is run again alone and
/// judged by that run, so a pack never reports what its cases alone would
/// not. The caller passes cases that [`pack_groups`] put together.
pub fn run_pack_checked(
    backend: &dyn Backend,
    cases: &[Case],
    contract: Contract,
    export: bool,
) -> Vec<(Result<Run, RunError>, Packing)> {
    let alone = |c: &Case| run_case_checked(backend, c, contract, export);
    let all_alone = |how| cases.iter().map(|c| (alone(c), how)).collect();
    if cases.len() < 2 || !backend.packs() {
        return all_alone(Packing::Alone);
    }
    let Ok(models) = cases.iter().map(Model::new).collect::<Result<Vec<_>, _>>() else {
        return all_alone(Packing::Alone);
    };
    let wants: Vec<Wants> = cases
        .iter()
        .map(|c| wants(backend, c, contract, export))
        .collect();
    let Ok(runs) = backend.run_pack(cases, &wants) else {
        return all_alone(Packing::RunAgainAlone);
    };
    models
        .into_iter()
        .zip(cases)
        .zip(&runs)
        .map(|((model, case), observed)| {
            let run = compare_run(model, case, observed, contract);
            match run.divergence {
                Some(_) => (alone(case), Packing::RunAgainAlone),
                None => (Ok(run), Packing::Packed),
            }
        })
        .collect()
}

/// Packs of the cases at the given positions (`None`: a case that is not
/// run): cases that `ovlcheck_driver::pack::unpackable` accepts and that
/// are `compatible` go together in order, up to `pack` at a time; every
/// other case is a pack of its own. Positions keep their order within a
/// pack.
pub fn pack_groups(cases: &[Option<&Case>], pack: usize) -> Vec<Vec<usize>> {
    use ovlcheck_driver::pack::{compatible, unpackable};
    let mut packs: Vec<Vec<usize>> = Vec::new();
    // The packs of packable cases, which may take more, in order.
    let mut open: Vec<usize> = Vec::new();
    for (at, case) in cases.iter().enumerate() {
        let Some(case) = case else { continue };
        if unpackable(case).is_some() {
            packs.push(vec![at]);
            continue;
        }
        let fits = |p: &Vec<usize>| {
            p.len() < pack && compatible(cases[p[0]].expect("packs hold cases"), case)
        };
        match open.iter().copied().find(|&i| fits(&packs[i])) {
            Some(i) => packs[i].push(at),
            None => {
                open.push(packs.len());
                packs.push(vec![at]);
            }
        }
    }
    packs
}

/// `case` as `backend` runs it ([`Backend::adapt_case`]). Outcomes pinned
/// for another stack (another profile, the layers as an engine holds
/// them, or an engine's commit, which goes through a layer tar) say
/// nothing of this one and are dropped.
pub fn adapted(backend: &dyn Backend, case: &Case) -> Result<Case, String> {
    let a = backend.adapt_case(case)?;
    let engine_commit =
        backend.kind().is_engine() && case.steps.iter().any(|s| s.op == ovlcheck_case::Op::Commit);
    Ok(
        if a.profile != case.profile || a.lowers != case.lowers || engine_commit {
            a.unpinned()
        } else {
            a
        },
    )
}

/// Whether the export check runs on `case`: at `layout` and above, where
/// the case's profile allows it ([`ovlcheck_case::oci::export_blocker`]),
/// and not when a layer carries a `metacopy` entry or a redirect the
/// lookup fails on: a metacopy file the mount refuses (EPERM) or finds no
/// data for (EIO), or a directory whose redirect it refuses (EPERM) or
/// finds malformed (EINVAL), cannot be stat'ed by a naive differ's walk,
/// so no store could export it either. Nor when the upper layer has an
/// owner its idmapped mount does not map: a merged directory whose upper
/// and parent upper both have one cannot be looked up (EPERM,
/// docs/semantics.md §1.16).
pub fn wants_export(contract: Contract, case: &Case) -> bool {
    use ovlcheck_case::Entry;
    let unreadable = case.layer_entries().any(|e| match e {
        Entry::Metacopy { .. } => true,
        Entry::Redirect { target, .. } => ovlcheck_model::redirect_fails(&case.profile, target),
        _ => false,
    });
    let unmapped_upper = case.upper.as_ref().is_some_and(|u| {
        u.entries.iter().any(|e| {
            matches!(e, Entry::Owner { uid, gid, .. }
                if case.profile.unmapped(*uid) || case.profile.unmapped(*gid))
        })
    });
    contract.wants_export()
        && ovlcheck_case::oci::export_blocker(&case.profile).is_none()
        && !unreadable
        && !unmapped_upper
}

/// What the model predicted and the backend did so far.
struct Trace<'a> {
    case: &'a Case,
    contract: Contract,
    predicted: Vec<Outcome>,
    observed: Vec<Outcome>,
    /// How the export check's changeset was derived, once it passed.
    exported: Option<DiffMethod>,
    /// How the backend commits ([`ovlcheck_driver::Session::commit_tar`]).
    commit_tar: Option<TarCommit>,
}

impl<'a> Trace<'a> {
    /// The checks of a lifecycle step whose outcome was just traced: the
    /// outcome, then the merged view after it.
    fn lifecycle(
        &mut self,
        model: &Model,
        step: Step,
        view: &Option<View>,
        which: Which,
    ) -> Option<Run> {
        if self.predicted.last() != self.observed.last() {
            let at = self.observed.len() - 1;
            return Some(
                self.take()
                    .diverged(Check::Outcome { step: at }, Some(step), None),
            );
        }
        let d = view
            .as_ref()
            .and_then(|v| differ(self.contract, which, model.merged_nodes(), v))?;
        Some(self.take().diverged(Check::View { which }, None, Some(d)))
    }

    /// The export check (docs/images.md): the changeset the store wrote,
    /// then the merged tree of the image with it applied.
    fn export(&mut self, model: &Model, export: &Export) -> Option<Run> {
        let predicted = tar_changeset(model, export.commit);
        let (changeset, merged) = match (&export.changeset, &export.merged) {
            (Ok(c), Some(m)) => (c, m),
            _ => {
                let reason = export.changeset.as_ref().err().cloned().unwrap_or_default();
                let check = Check::InvalidChangeset { reason };
                return Some(self.take().diverged(check, None, None));
            }
        };
        let checks = [
            (
                Which::Changeset,
                predicted.nodes.clone().into_iter().collect(),
            ),
            (
                Which::Exported,
                model
                    .exported_beneath(&predicted, export.commit.init_layer)
                    .unwrap_or_else(|e| panic!("the model cannot apply its own changeset: {e}"))
                    .merged_nodes(),
            ),
        ];
        for ((which, nodes), seen) in checks.into_iter().zip([changeset, merged]) {
            if let Some(d) = differ(self.contract, which, nodes, seen) {
                return Some(self.take().diverged(Check::View { which }, None, Some(d)));
            }
        }
        None
    }

    /// The trace, leaving an empty one behind (a divergence ends the run).
    fn take(&mut self) -> Trace<'a> {
        Trace {
            case: self.case,
            contract: self.contract,
            predicted: std::mem::take(&mut self.predicted),
            observed: std::mem::take(&mut self.observed),
            exported: self.exported,
            commit_tar: self.commit_tar,
        }
    }

    fn step(&mut self, model: &Model, step: &Step, seen: &Outcome) -> Model {
        let (outcome, next) = step_model(model, step, self.commit_tar);
        self.predicted.push(outcome);
        self.observed.push(seen.clone());
        next
    }

    fn finished(self) -> Run {
        Run {
            ops: self.observed.len(),
            predicted: self.predicted,
            observed: self.observed,
            exported: self.exported,
            divergence: None,
            rules: RuleSet::default(),
        }
    }

    /// The run ending in a divergence; `extra` is a lifecycle step run
    /// after the case's steps (its outcome already in the trace).
    fn diverged(
        self,
        check: Check,
        extra: Option<Step>,
        views: Option<(View, View, Vec<ViewDiff>)>,
    ) -> Run {
        let mut case = self.case.clone();
        case.steps.truncate(self.observed.len());
        case.steps.extend(extra);
        for (step, seen) in case.steps.iter_mut().zip(&self.observed) {
            step.expect = Some(seen.clone());
        }
        let signature = signature_of(
            &check,
            &case,
            &self.predicted,
            &self.observed,
            views.as_ref(),
            self.contract,
        );
        let divergence = Divergence {
            check,
            contract: self.contract,
            signature,
            case,
            predicted: self.predicted.clone(),
            observed: self.observed.clone(),
            views,
        };
        Run {
            ops: self.observed.len(),
            predicted: self.predicted,
            observed: self.observed,
            exported: self.exported,
            divergence: Some(divergence),
            rules: RuleSet::default(),
        }
    }
}

/// One step of the model, with a commit made as the backend makes it:
/// through its layer tar when `commit_tar` says so
/// ([`ovlcheck_driver::Session::commit_tar`]).
pub fn step_model(model: &Model, step: &Step, commit_tar: Option<TarCommit>) -> (Outcome, Model) {
    let (outcome, next) = model.step(step);
    match (&step.op, commit_tar) {
        (Op::Commit, Some(commit)) if outcome.is_ok() => (outcome, tar_commit(model, commit)),
        _ => (outcome, next),
    }
}

/// A commit through the store's layer tar: the model's changeset of the
/// container layer (with the xattrs the tar carries) applied as a new image
/// layer, under a fresh container layer (docs/engines.md).
fn tar_commit(model: &Model, commit: TarCommit) -> Model {
    let changeset = tar_changeset(model, commit);
    model
        .exported_beneath(&changeset, commit.init_layer)
        .unwrap_or_else(|e| panic!("the model cannot apply its own changeset: {e}"))
}

/// The model's changeset of the container layer as a store whose commits
/// are `commit` writes it: by its differ, with the xattrs its tars carry
/// ([`ovlcheck_case::oci::TarXattrs::written`]).
pub(crate) fn tar_changeset(model: &Model, commit: TarCommit) -> View {
    let xattrs = commit.xattrs;
    let changeset = model
        .changeset_by(commit.differ, commit.naive)
        .map(|(_, v)| v)
        .unwrap_or_default();
    let lowers: Vec<View> = match xattrs.reads_lowers() {
        true => (0..model.lower_count())
            .map(|i| model.lower_view(i))
            .collect(),
        false => Vec::new(),
    };
    xattrs.written(changeset, &lowers)
}

/// Compares what the backend did with what the model predicts, step by
/// step, then the views; the first difference is the divergence. The run
/// records the rules the model's judgement reached.
pub fn compare_run(model: Model, case: &Case, run: &CaseRun, contract: Contract) -> Run {
    // Every state derived from `model` shares its rule log.
    let log = model.clone();
    let mut judged = compare_steps(model, case, run, contract);
    judged.rules = log.rules_reached();
    judged
}

fn compare_steps(model: Model, case: &Case, run: &CaseRun, contract: Contract) -> Run {
    let mut trace = Trace {
        case,
        contract,
        predicted: Vec::new(),
        observed: Vec::new(),
        exported: None,
        commit_tar: run.commit_tar,
    };
    let mut model = model;
    for (i, (step, seen)) in case.steps.iter().zip(&run.outcomes).enumerate() {
        model = trace.step(&model, step, seen);
        if !contract.same_outcome(&trace.predicted[i], seen) {
            return trace.diverged(Check::Outcome { step: i }, None, None);
        }
        let pinned = step.expect.as_ref();
        if let Some(expected) = pinned.filter(|e| !contract.same_outcome(e, seen)).cloned() {
            return trace.diverged(Check::Pinned { step: i, expected }, None, None);
        }
    }
    let none = View::default();
    let upper = match (model.upper_nodes(), &run.upper) {
        (None, None) => None,
        (m, b) => Some((m.unwrap_or_default(), b.as_ref().unwrap_or(&none))),
    };
    let ends = [
        (Which::Merged, Some((model.merged_nodes(), &run.merged))),
        (Which::Upper, upper),
    ];
    for (which, pair) in ends {
        if let Some(d) = pair.and_then(|(m, b)| differ(contract, which, m, b)) {
            return trace.diverged(Check::View { which }, None, Some(d));
        }
    }
    let remount = Step::new(Op::Remount);
    model = trace.step(&model, &remount, &run.remount);
    if let Some(diverged) =
        trace.lifecycle(&model, remount, &run.after_remount, Which::AfterRemount)
    {
        return diverged;
    }
    if let Some(export) = &run.export {
        if let Some(diverged) = trace.export(&model, export) {
            return diverged;
        }
        trace.exported = Some(export.method);
    }
    let commit = Step::new(Op::Commit);
    model = trace.step(&model, &commit, &run.commit);
    if let Some(diverged) = trace.lifecycle(&model, commit, &run.after_commit, Which::AfterCommit) {
        return diverged;
    }
    match &run.kernel_view {
        Some(Err(errno)) => {
            return trace.diverged(Check::KernelMount { errno: *errno }, None, None);
        }
        Some(Ok(v)) => {
            if let Some(d) = differ(contract, Which::Kernel, model.merged_nodes(), v) {
                return trace.diverged(
                    Check::View {
                        which: Which::Kernel,
                    },
                    None,
                    Some(d),
                );
            }
        }
        None => {}
    }
    trace.finished()
}

/// Both views as the contract compares them, and their diff, when they
/// differ (the model's map is built and the backend's view copied only
/// then). `model` is sorted by path.
fn differ(
    contract: Contract,
    which: Which,
    model: Vec<(String, Node)>,
    backend: &View,
) -> Option<(View, View, Vec<ViewDiff>)> {
    if contract == Contract::Kernel && agree_sorted(&model, backend) {
        return None;
    }
    let model = contract.project(
        which,
        &View {
            nodes: model.into_iter().collect(),
        },
    );
    let backend = contract.project(which, backend);
    let diff = compare_views(&model, &backend);
    (!diff.is_empty()).then_some((model, backend, diff))
}
