//! `ovlcheck diff`: a case's layer changeset as the model predicts it, beside
//! the one a backend's store wrote (docs/images.md). One line per tar entry,
//! whiteouts and opaque markers explained; lines that differ are shown for
//! both sides.

use ovlcheck_case::oci::{self, TarCommit, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use ovlcheck_case::view::show_path;
use ovlcheck_case::{Case, Node, Op, Step, View};
use ovlcheck_driver::{Backend, BackendKind, Export, Wants};
use ovlcheck_model::Model;
use std::fmt::Write;

/// The model's state where the export is taken: after the case's steps
/// and a remount, as [`ovlcheck_driver::CaseRun::collect`] runs them, with
/// commits made as the backend makes them (`commit_tar`).
fn model_at_export(case: &Case, commit_tar: Option<TarCommit>) -> Result<Model, String> {
    let mut m = Model::new(case).map_err(|e| format!("invalid case: {e}"))?;
    for step in case.steps.iter().cloned().chain([Step::new(Op::Remount)]) {
        m = crate::runner::step_model(&m, &step, commit_tar).1;
    }
    Ok(m)
}

/// The listing: the prediction alone for the model backend, else the
/// prediction beside what `backend`'s store wrote, then whether the applied
/// layer mounts as predicted.
pub fn listing(case: &Case, backend: &dyn Backend) -> Result<String, String> {
    let case = &crate::runner::adapted(backend, case)?;
    if let Some(why) = oci::export_blocker(&case.profile) {
        return Ok(format!("no changeset: {why}\n"));
    }
    let mut out = String::new();
    if backend.kind() == BackendKind::Model {
        let model = model_at_export(case, None)?;
        let Some((method, predicted)) = model.changeset() else {
            return Ok("no changeset: no container layer\n".into());
        };
        let _ = writeln!(out, "# changeset predicted by the model ({method} diff)");
        for (name, node) in &predicted.nodes {
            out.push_str(&entry_line(' ', name, node));
        }
        return Ok(out);
    }
    let wants = Wants {
        kernel_view: false,
        export: true,
    };
    let run = backend
        .run_case(case, wants)
        .map_err(|e| format!("{}: {e}", backend.name()))?;
    let model = model_at_export(case, run.commit_tar)?;
    let commit = run.commit_tar.unwrap_or_default();
    let Some((method, _)) = model.changeset_by(commit.differ, commit.naive) else {
        return Ok("no changeset: no container layer\n".into());
    };
    let Some(Export {
        method: seen_method,
        changeset,
        merged,
        commit,
    }) = run.export
    else {
        return Err(format!(
            "{}: the export did not run (its remount failed)",
            backend.name()
        ));
    };
    let _ = writeln!(
        out,
        "# changeset: model ({method} diff) / {} store ({seen_method} diff); '<' model only, '>' store only",
        backend.name()
    );
    let (changeset, merged) = match (changeset, merged) {
        (Ok(c), Some(m)) => (c, m),
        (Err(e), _) => {
            let _ = writeln!(out, "# the store wrote an invalid layer tar: {e}");
            return Ok(out);
        }
        (Ok(_), None) => return Err("the store's changeset was not applied".into()),
    };
    let predicted = crate::runner::tar_changeset(&model, commit);
    out.push_str(&side_by_side(&predicted, &changeset));
    let applied = model
        .exported_beneath(&predicted, commit.init_layer)
        .map_err(|e| format!("the model cannot apply its changeset: {e}"))?
        .merged_view();
    let diff = crate::compare::compare_views(&applied, &merged);
    if diff.is_empty() {
        let _ = writeln!(
            out,
            "# applied as a new layer and mounted: as the model predicts"
        );
    } else {
        let _ = writeln!(
            out,
            "# applied as a new layer and mounted: differs (- model, + {}):",
            backend.name()
        );
        out.push_str(&ovlcheck_case::view::render_diff(&diff));
    }
    Ok(out)
}

/// Entries of both changesets in name order; an entry equal on both
/// sides is one line, else one line per side.
fn side_by_side(model: &View, store: &View) -> String {
    let names: std::collections::BTreeSet<&String> =
        model.nodes.keys().chain(store.nodes.keys()).collect();
    let mut out = String::new();
    for name in names {
        let m = model.nodes.get(name);
        let s = store.nodes.get(name);
        let agree = match (m, s) {
            (Some(a), Some(b)) => {
                crate::compare::compare_views(&one(name, a), &one(name, b)).is_empty()
            }
            _ => false,
        };
        if agree {
            out.push_str(&entry_line(' ', name, s.unwrap_or_else(|| unreachable!())));
            continue;
        }
        if let Some(n) = m {
            out.push_str(&entry_line('<', name, n));
        }
        if let Some(n) = s {
            out.push_str(&entry_line('>', name, n));
        }
    }
    out
}

fn one(name: &str, node: &Node) -> View {
    View {
        nodes: [(name.to_string(), node.clone())].into(),
    }
}

/// `M NAME  NODE  (what the entry means)`.
fn entry_line(mark: char, name: &str, node: &Node) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let note = if base == OPAQUE_WHITEOUT {
        format!(
            "  (opaque: hides all of {} below)",
            show_path(oci::parent_of(name))
        )
    } else if let Some(gone) = base.strip_prefix(WHITEOUT_PREFIX) {
        let dir = oci::parent_of(name);
        let path = if dir.is_empty() {
            gone.to_string()
        } else {
            format!("{dir}/{gone}")
        };
        format!("  (whiteout: deletes {} below)", show_path(&path))
    } else {
        match &node.ino {
            Some(first) if first != name => format!("  (hard link to {})", show_path(first)),
            _ => String::new(),
        }
    };
    format!("{mark} {} {node}{note}\n", show_path(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_backend::ModelBackend;

    #[test]
    fn the_model_listing_marks_whiteouts_and_opaque_directories() {
        let case = ovlcheck_case::parse_case(
            "t.ovl",
            "lower\n  dir d 0755\n  file d/x 0644 \"x\"\n  file f 0644 \"f\"\nops\n  unlink f\n  unlink d/x\n  rmdir d\n  mkdir d 0755\n",
        )
        .unwrap();
        let text = listing(&case, &ModelBackend).unwrap();
        assert!(text.contains("(whiteout: deletes f below)"), "{text}");
        assert!(text.contains("(opaque: hides all of d below)"), "{text}");
    }
}
