//! Human-readable divergence reports: the case, model and backend outcomes
//! side by side with the first difference marked, and a tree diff of the
//! first differing view.

use crate::runner::{Check, Divergence};
use ovlcheck_case::view::render_diff;
use ovlcheck_case::{print_case, Outcome};
use std::fmt::Write;

/// One op rendered in the `.ovl` op syntax (without its pin).
pub fn step_text(step: &ovlcheck_case::Step) -> String {
    ovlcheck_case::print_step(&step.unpinned())
}

/// The full report of one divergence.
pub fn render(d: &Divergence, backend: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "DIVERGENCE: {}", d.signature());
    let _ = writeln!(
        out,
        "profile: {}   backend: {backend}   contract: {}",
        d.case.profile,
        d.contract.name()
    );
    let _ = writeln!(out, "\ncase (backend outcomes pinned):");
    for line in print_case(&d.case).lines() {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out);
    out.push_str(&side_by_side(d));
    if let Some((_, _, diff)) = &d.views {
        let which = match &d.check {
            Check::View { which } => which.name(),
            _ => "view",
        };
        if d.contract != crate::contract::Contract::Kernel {
            let _ = writeln!(
                out,
                "\n(fields outside the {} contract are not compared or shown)",
                d.contract.name()
            );
        }
        let _ = writeln!(out, "\n{which} view differs (- model, + {backend}):");
        for line in render_diff(diff).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The steps with model and backend outcomes in columns, the first
/// difference marked.
pub fn side_by_side(d: &Divergence) -> String {
    let first = match d.check {
        Check::Outcome { step } | Check::Pinned { step, .. } => Some(step),
        Check::View { .. } | Check::KernelMount { .. } | Check::InvalidChangeset { .. } => None,
    };
    let mut out = steps_table(&d.case, &d.predicted, &d.observed, first);
    if let Check::KernelMount { errno } = &d.check {
        let _ = writeln!(
            out,
            "the kernel's overlay refused to mount the layers the backend left: {errno}"
        );
    }
    if let Check::InvalidChangeset { reason } = &d.check {
        let _ = writeln!(
            out,
            "the layer tar made of the container layer is not a valid OCI layer: {reason}"
        );
    }
    if let Check::Pinned { step, expected } = &d.check {
        let _ = writeln!(
            out,
            "(step {} is pinned to {} in the case file)",
            step + 1,
            outcome_text(expected)
        );
    }
    out
}

/// A case's steps with the model's and the backend's outcomes in columns,
/// step `mark` marked as the first difference.
pub fn steps_table(
    case: &ovlcheck_case::Case,
    predicted: &[Outcome],
    observed: &[Outcome],
    mark: Option<usize>,
) -> String {
    let rows: Vec<(String, String, String)> = case
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let model = predicted.get(i).map(outcome_text).unwrap_or_default();
            let backend = observed.get(i).map(outcome_text).unwrap_or_default();
            let op = clip(&step_text(s), COLUMN);
            (
                format!("{:>3}  {op}", i + 1),
                clip(&model, COLUMN),
                clip(&backend, COLUMN),
            )
        })
        .collect();
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
    let w1 = rows
        .iter()
        .map(|r| r.1.len())
        .max()
        .unwrap_or(0)
        .clamp(5, 40);
    let mut out = format!("{:<w0$}  {:<w1$}  backend\n", "  #  op", "model");
    for (i, (op, model, backend)) in rows.into_iter().enumerate() {
        let flag = if Some(i) == mark {
            "   <<< first difference"
        } else {
            ""
        };
        let _ = writeln!(out, "{op:<w0$}  {model:<w1$}  {backend}{flag}");
    }
    out
}

/// Widest cell of the side-by-side table; longer text is cut with `...`.
const COLUMN: usize = 72;

/// `s` cut to at most `max` chars (never inside a char), `...` marking a cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((b, _)) => format!("{}...", &s[..b]),
        None => s.to_string(),
    }
}

fn outcome_text(o: &Outcome) -> String {
    o.to_string()
}
