//! The model as a backend (`--backend model`): runs the whole pipeline
//! without a kernel, taking the first allowed outcome of every step. It
//! measures the harness's own cost and checks the corpus against the model.

use ovlcheck_case::{Case, Outcome, Step, View};
use ovlcheck_driver::{run_via_session, Backend, CaseRun, DriverError, Session};
use ovlcheck_model::Model;

/// The pure model behind the `Backend` trait.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelBackend;

struct ModelSession {
    model: Model,
}

impl ModelBackend {
    /// The backend's name; [`crate::run_case`] recognises it by it.
    pub const NAME: &'static str = "model";

    /// Runs `case` from `initial`, the state `Model::new(case)` built. The
    /// runner hands over its own initial state (an O(1) clone that shares
    /// the mount-time inode snapshot): the model is a pure function of the
    /// case, so building it a second time would only measure the builder
    /// twice. Every step and view is still computed on this side.
    pub fn run_from(initial: Model, case: &Case) -> Result<CaseRun, DriverError> {
        run_via_session(Box::new(ModelSession { model: initial }), case)
    }
}

impl Backend for ModelBackend {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn kind(&self) -> ovlcheck_driver::BackendKind {
        ovlcheck_driver::BackendKind::Model
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        let model = Model::new(case).map_err(|e| DriverError::Io(format!("invalid case: {e}")))?;
        Ok(Box::new(ModelSession { model }))
    }
}

impl Session for ModelSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        let mut choices = self.model.apply(step);
        // Prefer the outcome the case pins, as a real backend would have.
        let pos = step
            .expect
            .as_ref()
            .and_then(|e| choices.iter().position(|(o, _)| o == e))
            .unwrap_or(0);
        let (outcome, next) = choices.swap_remove(pos);
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

    fn finish(self: Box<Self>) -> Result<(), DriverError> {
        Ok(())
    }
}
