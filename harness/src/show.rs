//! `ovlcheck show CASE`: the layer stack as a table, one row per path, one
//! column per lower layer (bottom to top), the upper, and the merged view the
//! model derives (before any op runs).

use ovlcheck_case::layer::{Object, ObjectKind};
use ovlcheck_case::{Case, NodeKind, View};
use ovlcheck_model::Model;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// What one layer holds at one path, in a word or two.
fn cell(o: &Object) -> String {
    let mut s = match &o.kind {
        ObjectKind::Dir => "dir".to_string(),
        ObjectKind::File(_) if o.markers.xwhiteout => "xwhiteout".to_string(),
        ObjectKind::File(_) => "file".to_string(),
        ObjectKind::Symlink(_) => "symlink".to_string(),
        ObjectKind::Fifo => "fifo".to_string(),
        ObjectKind::Whiteout => "whiteout".to_string(),
        ObjectKind::Hardlink(_) => "file(link)".to_string(),
    };
    match o.markers.opaque {
        Some('y') => s.push_str("+opaque"),
        Some(_) => s.push_str("+xwhiteouts"),
        None => {}
    }
    if let Some(r) = &o.markers.redirect {
        let _ = write!(s, "+redirect={r}");
    }
    s
}

fn merged_cell(view: &View, path: &str) -> String {
    match view.nodes.get(path).map(|n| n.kind) {
        None => "-".into(),
        Some(NodeKind::Dir) => "dir".into(),
        Some(NodeKind::File) => "file".into(),
        Some(NodeKind::Symlink) => "symlink".into(),
        Some(NodeKind::Fifo) => "fifo".into(),
        Some(NodeKind::Whiteout) => "whiteout".into(),
        Some(NodeKind::Char(a, b)) => format!("char {a}:{b}"),
        Some(NodeKind::Other) => "other".into(),
    }
}

/// The table for `case`.
pub fn table(case: &Case) -> Result<String, String> {
    let mut columns: Vec<(String, BTreeMap<String, String>)> = Vec::new();
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
    let merged = model.merged_view();
    let mut paths: BTreeSet<String> = columns
        .iter()
        .flat_map(|(_, c)| c.keys().cloned())
        .collect();
    paths.extend(merged.nodes.keys().filter(|p| !p.is_empty()).cloned());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["path".to_string()];
    header.extend(columns.iter().map(|(n, _)| n.clone()));
    header.push("merged".into());
    rows.push(header);
    for p in &paths {
        let mut row = vec![p.clone()];
        row.extend(
            columns
                .iter()
                .map(|(_, c)| c.get(p).cloned().unwrap_or_else(|| "-".into())),
        );
        row.push(merged_cell(&merged, p));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("profile: {}\n", case.profile);
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
    Ok(out)
}

fn layer_cells(layer: &ovlcheck_case::LayerSpec) -> Result<BTreeMap<String, String>, String> {
    let objects = layer.objects().map_err(|e| e.message)?;
    Ok(objects
        .iter()
        .map(|o| (o.path.to_string(), cell(o)))
        .collect())
}
