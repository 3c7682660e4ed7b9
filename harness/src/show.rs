//! `ovlcheck show CASE`: the layer stack as two tables, before and after the
//! case's steps. One row per path; one column per lower layer (bottom to
//! top), the upper, and the merged view users see.
//!
//! The "before" table is the case as written, with the merged view the model
//! derives at mount time. The "after" table is what the steps left: by
//! default the model's end state, or with a backend the layer directories
//! that implementation actually wrote. There each layer's cell marks the
//! overlay state that explains the merged view: whiteouts, opaque
//! directories, redirects, copy-ups and metacopy files (overlayfs.rst, and
//! docs/semantics.md for how the model decides each one). Layers added by
//! `commit` steps appear as extra lower columns.

use ovlcheck_case::layer::{Object, ObjectKind};
use ovlcheck_case::{Case, Node, NodeKind, View};
use ovlcheck_driver::{Backend, DriverError, Session};
use ovlcheck_model::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What the words and marks in the cells mean, printed under the tables.
pub const LEGEND: &str = "legend: - no entry | whiteout: char 0/0 | \
xwhiteout: file with overlay.whiteout | +opaque: overlay.opaque=y | \
+xwhiteouts: overlay.opaque=x | +redirect=P: overlay.redirect | \
+copyup: has overlay.origin, or an upper dir merging a lower one | \
+metacopy: overlay.metacopy, data still below | ^: escaped (overlay.overlay.*), \
the next overlay's | D0, D1: data-only layers";

/// What one layer of the case holds at one path, in a word or two.
fn cell(o: &Object) -> String {
    // An escaped layer's markers are the next overlay's: `^` before each.
    let esc = if o.markers.escaped { "^" } else { "" };
    let mut s = match &o.kind {
        ObjectKind::Dir => "dir".to_string(),
        ObjectKind::File(_) if o.markers.xwhiteout => format!("{esc}xwhiteout"),
        ObjectKind::File(_) => "file".to_string(),
        ObjectKind::Symlink(_) => "symlink".to_string(),
        ObjectKind::Fifo => "fifo".to_string(),
        ObjectKind::Whiteout => "whiteout".to_string(),
        ObjectKind::Hardlink(_) => "file(link)".to_string(),
    };
    let _ = match o.markers.opaque {
        Some('y') => write!(s, "+{esc}opaque"),
        Some(_) => write!(s, "+{esc}xwhiteouts"),
        None => Ok(()),
    };
    if let Some(r) = &o.markers.redirect {
        let _ = write!(s, "+{esc}redirect={r}");
    }
    if o.markers.metacopy {
        let _ = write!(s, "+{esc}metacopy");
    }
    s
}

/// The kind word of a node, as the layer and merged columns share it.
fn kind_word(n: &Node) -> String {
    if n.kind == NodeKind::File && n.overlay.contains_key("whiteout") {
        "xwhiteout".into()
    } else {
        n.kind.keyword()
    }
}

fn merged_cell(view: &View, path: &str) -> String {
    view.nodes.get(path).map_or_else(|| "-".into(), kind_word)
}

/// True for an entry that hides the same path in the layers below: a
/// whiteout (a char 0/0 device, or an xattr whiteout).
fn is_whiteout(n: &Node) -> bool {
    n.kind == NodeKind::Whiteout || (n.kind == NodeKind::File && n.overlay.contains_key("whiteout"))
}

/// What one raw layer holds at one path after the steps, with its overlay
/// marks. `over_lower` says that the topmost lower entry at this path is a
/// real one (not a whiteout); it is only asked for the upper, the layer
/// copy-up writes into.
///
/// A copy-up is an entry with an origin xattr (copy_up.c records the lower
/// inode's file handle there), or an upper directory over a lower one that
/// is not opaque: it merges the lower directory, so it continues it. An
/// opaque directory hides what is below it: it was made, not copied up
/// (dir.c ovl_create_over_whiteout). A non-directory without an origin over
/// a lower entry is most often a new file put there by a create over a
/// whiteout or by a rename, so it is not marked. In lower layers (image
/// layers routinely repeat the directories of the layers below) only an
/// origin records a copy-up.
fn layer_cell(n: &Node, over_lower: bool) -> String {
    let mut s = kind_word(n);
    let opaque = n.overlay.get("opaque").map(String::as_str);
    match opaque {
        Some("y") => s.push_str("+opaque"),
        Some("x") => s.push_str("+xwhiteouts"),
        Some(v) => {
            let _ = write!(s, "+opaque={v}");
        }
        None => {}
    }
    if let Some(r) = n.overlay.get("redirect") {
        let _ = write!(s, "+redirect={r}");
    }
    let merges = n.kind == NodeKind::Dir && over_lower && opaque != Some("y");
    if n.overlay.contains_key("origin") || merges {
        s.push_str("+copyup");
    }
    if n.overlay.contains_key("metacopy") {
        s.push_str("+metacopy");
    }
    s
}

/// Aligned rows under a header, the header underlined with dashes.
fn render(out: &mut String, rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
}

/// The rows of a table: a header, then one row per path of any column or
/// of the merged view (the root left out), sorted.
fn rows(columns: &[(String, BTreeMap<String, String>)], merged: &View) -> Vec<Vec<String>> {
    let mut paths: BTreeSet<&String> = columns.iter().flat_map(|(_, c)| c.keys()).collect();
    paths.extend(merged.nodes.keys().filter(|p| !p.is_empty()));
    let mut header = vec!["path".to_string()];
    header.extend(columns.iter().map(|(n, _)| n.clone()));
    header.push("merged".into());
    let mut rows = vec![header];
    for p in paths {
        let mut row = vec![p.clone()];
        row.extend(
            columns
                .iter()
                .map(|(_, c)| c.get(p).cloned().unwrap_or_else(|| "-".into())),
        );
        row.push(merged_cell(merged, p));
        rows.push(row);
    }
    rows
}

/// The "before" table of `case`: its layers as written and the merged view
/// the model derives from them at mount time.
pub fn before_table(case: &Case) -> Result<String, String> {
    let mut columns: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    // Data-only layers (never merged: their paths show in no merged cell).
    for (i, layer) in case.data.iter().enumerate() {
        columns.push((format!("D{i}"), layer_cells(layer)?));
    }
    for (i, layer) in case.lowers.iter().enumerate() {
        columns.push((format!("L{i}"), layer_cells(layer)?));
    }
    if !case.profile.readonly {
        columns.push((
            "upper".into(),
            case.upper
                .as_ref()
                .map(layer_cells)
                .transpose()?
                .unwrap_or_default(),
        ));
    }
    let model = Model::new(case).map_err(|e| e.to_string())?;
    let mut out = String::new();
    render(&mut out, &rows(&columns, &model.merged_view()));
    Ok(out)
}

fn layer_cells(layer: &ovlcheck_case::LayerSpec) -> Result<BTreeMap<String, String>, String> {
    let objects = layer.objects().map_err(|e| e.message)?;
    Ok(objects
        .iter()
        .map(|o| (o.path.to_string(), cell(o)))
        .collect())
}

/// The raw layers and the merged view after every step.
struct EndState {
    /// Bottom first: the case's lowers, then one layer per `commit`.
    lowers: Vec<View>,
    /// `None` for a read-only profile.
    upper: Option<View>,
    merged: View,
}

/// Runs every step of `case` on `backend` and observes what is left. The
/// session is finished (unmounted, removed) whether or not that worked.
fn end_state(backend: &dyn Backend, case: &Case) -> Result<EndState, String> {
    let mut session = backend.start(case).map_err(|e| e.to_string())?;
    let observed = observe(&mut *session, case);
    let finished = session.finish();
    let state = observed.map_err(|e| e.to_string())?;
    finished.map_err(|e| e.to_string())?;
    Ok(state)
}

/// The steps' outcomes do not matter here, only the layers they leave; the
/// views are taken in the order the differential runner takes them.
fn observe(s: &mut dyn Session, case: &Case) -> Result<EndState, DriverError> {
    for step in &case.steps {
        s.apply(step)?;
    }
    let merged = s.merged_view()?;
    let upper = s.upper_view()?;
    let lowers = s.lower_views()?;
    Ok(EndState {
        lowers,
        upper,
        merged,
    })
}

/// The "after" table of `case` on `backend`: the raw layers and the merged
/// view once every step has run, with a last line naming the lower layers
/// that `commit` steps made. [`crate::ModelBackend`] gives the model's end state.
pub fn after_table(case: &Case, backend: &dyn Backend) -> Result<String, String> {
    let end = end_state(backend, case)?;
    let mut columns: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for (i, layer) in end.lowers.iter().enumerate() {
        let cells = nodes(layer)
            .map(|(p, n)| (p.clone(), layer_cell(n, false)))
            .collect();
        columns.push((format!("L{i}"), cells));
    }
    if let Some(upper) = &end.upper {
        let cells = nodes(upper)
            .map(|(p, n)| (p.clone(), layer_cell(n, over_lower(&end.lowers, p))))
            .collect();
        columns.push(("upper".into(), cells));
    }
    let mut out = String::new();
    render(&mut out, &rows(&columns, &end.merged));
    let made: Vec<String> = (case.lowers.len()..end.lowers.len())
        .map(|i| format!("L{i}"))
        .collect();
    if !made.is_empty() {
        let _ = writeln!(out, "made by commit: {}", made.join(" "));
    }
    Ok(out)
}

/// The entries of a raw layer view, its root left out.
fn nodes(v: &View) -> impl Iterator<Item = (&String, &Node)> {
    v.nodes.iter().filter(|(p, _)| !p.is_empty())
}

/// True when the topmost lower layer with an entry at `path` holds a real
/// entry there, not a whiteout.
fn over_lower(lowers: &[View], path: &str) -> bool {
    lowers
        .iter()
        .rev()
        .find_map(|l| l.nodes.get(path))
        .is_some_and(|n| !is_whiteout(n))
}

/// Everything `ovlcheck show` prints: the profile, the "before" table, the
/// "after" table on `backend` and the legend.
pub fn tables(case: &Case, backend: &dyn Backend) -> Result<String, String> {
    let case = &backend.adapt_case(case)?;
    let before = before_table(case)?;
    let after = after_table(case, backend)?;
    let whose = if backend.kind() == ovlcheck_driver::BackendKind::Model {
        "as the model predicts them".to_string()
    } else {
        format!("as {} left them", backend.name())
    };
    Ok(format!(
        "profile: {}\n\nbefore the ops:\n{before}\nafter the ops, {whose}:\n{after}\n{LEGEND}\n",
        case.profile
    ))
}
