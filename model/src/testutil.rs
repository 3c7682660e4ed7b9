//! Helpers for the unit tests: cases from `.ovl` text, ops by their text.

use crate::Model;
use ovlcheck_case::{parse_case, Step};

/// A mounted model of a case text (layers and profile; ops ignored).
pub(crate) fn model(text: &str) -> Model {
    let case = parse_case("unit", text).unwrap_or_else(|e| panic!("{e}"));
    Model::new(&case).expect("case builds")
}

/// One step from its text form, e.g. `as 1000:1000 unlink a`.
pub(crate) fn step(op: &str) -> Step {
    let case =
        parse_case("unit", &format!("lower\nops\n  {op}\n")).unwrap_or_else(|e| panic!("{e}"));
    case.steps.into_iter().next().expect("one step")
}

/// Applies `op`, keeps the state after it, returns the outcome as text.
pub(crate) fn run(m: &mut Model, op: &str) -> String {
    let (outcome, next) = m.step(&step(op));
    *m = next;
    outcome.to_string()
}

/// The raw upper view as text.
pub(crate) fn upper(m: &Model) -> String {
    m.upper_view().map(|v| v.to_string()).unwrap_or_default()
}

/// The merged view as text.
pub(crate) fn merged(m: &Model) -> String {
    m.merged_view().to_string()
}
