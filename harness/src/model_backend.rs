//! The model as a backend (`--backend model`): runs the whole pipeline
//! without a kernel, taking the model's outcome of every step. It
//! measures the harness's own cost and checks the corpus against the model.

use ovlcheck_case::{Case, Errno, Outcome, Step, View};
use ovlcheck_driver::{Backend, BackendKind, CaseRun, DriverError, Export, Session, Wants};
use ovlcheck_model::Model;

/// The pure model behind the `Backend` trait, of kind
/// [`BackendKind::Model`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelBackend;

/// A case being predicted step by step.
struct ModelSession {
    model: Model,
}

impl ModelBackend {
    /// Runs `case` from `initial`, the state `Model::new(case)` built. The
    /// runner hands over its own initial state (an O(1) clone that shares
    /// the mount-time inode snapshot): the model is a pure function of the
    /// case, so building it a second time would only measure the builder
    /// twice. Every step and view is still computed on this side.
    /// `wants` as the runner asks ([`Wants::kernel_view`] is never
    /// needed: the model's kernel view is its merged view after commit).
    pub fn run_from(initial: Model, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        CaseRun::collect(&mut ModelSession { model: initial }, case, wants)
    }
}

impl Backend for ModelBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Model
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        let model = Model::new(case).map_err(|e| DriverError::Io(format!("invalid case: {e}")))?;
        Ok(Box::new(ModelSession { model }))
    }
}

impl Session for ModelSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        let (outcome, next) = self.model.step(step);
        self.model = next;
        Ok(outcome)
    }

    fn merged_view(&mut self) -> Result<View, DriverError> {
        Ok(self.model.merged_view())
    }

    fn upper_view(&mut self) -> Result<Option<View>, DriverError> {
        Ok(self.model.upper_view())
    }

    fn lower_views(&mut self) -> Result<Vec<View>, DriverError> {
        Ok((0..self.model.lower_count())
            .map(|i| self.model.lower_view(i))
            .collect())
    }

    /// The merged view. Where [`CaseRun::collect`] takes the kernel view,
    /// right after a commit, the kernel's read-only mount of the layers
    /// shows the tree the model predicts after that commit, inode labels
    /// included (both count from the latest mount).
    fn kernel_view(&mut self) -> Result<Result<View, Errno>, DriverError> {
        Ok(Ok(self.model.merged_view()))
    }

    /// The model's own changeset, applied by the model.
    fn export(&mut self) -> Result<Option<Export>, DriverError> {
        let Some((method, changeset)) = self.model.changeset() else {
            return Ok(None);
        };
        let merged = self
            .model
            .exported(&changeset)
            .map_err(|e| DriverError::Io(format!("apply: {e}")))?
            .merged_view();
        Ok(Some(Export {
            method,
            changeset: Ok(changeset),
            merged: Some(merged),
            commit: ovlcheck_case::oci::TarCommit::default(),
        }))
    }

    fn finish(self: Box<Self>) -> Result<(), DriverError> {
        Ok(())
    }
}
