//! The checks `ovlcheck inspect` makes; each problem is one line naming a
//! path. docs/inspect.md, "Checks", says why each one is a problem.
//!
//! - `l/`: every entry is a symlink `../ID/diff` to an existing layer whose
//!   `link` file names it back.
//! - Each layer: `diff/` exists; its `link` file names an `l/` entry that
//!   points back to it; its `lower` file parses (`l/SHORT` entries of 26
//!   base32 characters, or `ID/diff`), names existing short links and
//!   layers, continues its parent's chain (the entries are `l/<parent's
//!   link>` followed by the parent's own `lower`), and agrees with the
//!   parent the engine's records give.
//! - Orphans: a layer directory no record refers to (only where there are
//!   records).
//! - Overlay markers: an opaque marker on a layer's root (overlay never
//!   looks a layer root up, so it hides nothing); an xattr whiteout outside
//!   an `opaque=x` directory (lookup hides it, readdir lists it); in any
//!   layer but a top-most read-write one, a whiteout that hides nothing: in
//!   an opaque directory of its own layer, or with no layer beneath showing
//!   its path.

use super::export::overlay_xattr;
use super::overlay2::{is_short_name, lower_entries};
use super::{Problem, Store};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Runs every check on `store` and adds what it finds to its problems
/// (sorted, without duplicates).
pub fn run(store: &mut Store) {
    let mut p = Vec::new();
    if store.short_links {
        short_links(store, &mut p);
        lower_files(store, &mut p);
    }
    layer_dirs(store, &mut p);
    orphans(store, &mut p);
    markers(store, &mut p);
    store.problems.extend(p);
    store.problems.sort();
    store.problems.dedup();
}

fn short_links(store: &Store, out: &mut Vec<Problem>) {
    let l = store.home.join("l");
    if !l.is_dir() {
        out.push(Problem::new(
            &l,
            "missing: no layer can be found by its short name",
        ));
        return;
    }
    for link in store.links.values() {
        let path = l.join(&link.name);
        let Some(target) = &link.target else {
            out.push(Problem::new(&path, "not a symlink"));
            continue;
        };
        if !is_short_name(&link.name) {
            out.push(Problem::new(
                &path,
                "not a short link name (26 characters of A-Z and 2-7)",
            ));
        }
        match &link.layer {
            None => {
                let id = target
                    .strip_prefix("../")
                    .and_then(|t| t.strip_suffix("/diff"))
                    .filter(|id| !id.contains('/'));
                match id {
                    Some(id) if store.home.join(id).join("diff").is_dir() => {}
                    Some(_) => out.push(Problem::new(
                        &path,
                        format!("dangling short link: {target} does not exist"),
                    )),
                    None => out.push(Problem::new(
                        &path,
                        format!("points to {target}, not to ../ID/diff"),
                    )),
                }
            }
            Some(id) if !store.layers.get(id).is_some_and(|x| x.has_diff) => {
                out.push(Problem::new(
                    &path,
                    format!("dangling short link: {target} does not exist"),
                ))
            }
            Some(id) => {
                let own = store.layers.get(id).and_then(|x| x.link.clone());
                if own.as_deref() != Some(link.name.as_str()) {
                    out.push(Problem::new(
                        &path,
                        format!(
                            "points to layer {id}, whose link file names {}",
                            own.map_or_else(|| "nothing".to_string(), |o| format!("l/{o}"))
                        ),
                    ));
                }
            }
        }
    }
}

fn layer_dirs(store: &Store, out: &mut Vec<Problem>) {
    let content = store.content_dir();
    for layer in store.layers.values() {
        if !layer.has_diff {
            out.push(Problem::new(
                layer.path.join(content),
                "missing: the layer has no contents",
            ));
        }
        if !store.short_links {
            continue;
        }
        let link_path = layer.path.join("link");
        match &layer.link {
            None => out.push(Problem::new(
                &link_path,
                "missing: the layer has no short name, so no lower file can name it",
            )),
            Some(s) if !is_short_name(s) => out.push(Problem::new(
                &link_path,
                format!("unparseable: `{s}` is not a 26-character short name"),
            )),
            Some(s) => match store.links.get(s) {
                None => out.push(Problem::new(
                    &link_path,
                    format!("names l/{s}, which does not exist: missing short link"),
                )),
                Some(sl) if sl.layer.as_deref() != Some(layer.id.as_str()) => {
                    out.push(Problem::new(
                        &link_path,
                        format!(
                            "names l/{s}, which points to {}",
                            sl.target.as_deref().unwrap_or("nothing (not a symlink)")
                        ),
                    ))
                }
                Some(_) => {}
            },
        }
    }
}

fn lower_files(store: &Store, out: &mut Vec<Problem>) {
    for layer in store.layers.values() {
        let path = layer.path.join("lower");
        let recorded = store.parents.get(&layer.id);
        let Some(raw) = &layer.lower else {
            if let Some(Some(parent)) = recorded {
                out.push(Problem::new(
                    &path,
                    format!("missing, but the records make {parent} this layer's parent"),
                ));
            }
            continue;
        };
        if raw.trim().is_empty() {
            out.push(Problem::new(
                &path,
                "empty: truncated, or a base layer with a stray lower file",
            ));
            continue;
        }
        let mut resolved = true;
        for (i, e) in lower_entries(raw).iter().enumerate() {
            let n = i + 1;
            let problem = if let Some(short) = e.strip_prefix("l/") {
                if !is_short_name(short) {
                    Some(format!("entry {n} `{e}` is not l/ and a 26-character short name: truncated or unparseable"))
                } else {
                    match store.links.get(short) {
                        None => Some(format!(
                            "entry {n} names l/{short}, which does not exist: missing short link"
                        )),
                        Some(sl) if sl.layer.is_none() => Some(format!(
                            "entry {n} names l/{short}, which points to {}: a missing layer",
                            sl.target.as_deref().unwrap_or("nothing")
                        )),
                        Some(_) => None,
                    }
                }
            } else if e.ends_with("/diff") && layer.lowers.get(i).is_some_and(|x| x.layer.is_some())
            {
                None
            } else if e.ends_with("/diff") {
                Some(format!("entry {n} names {e}, a missing layer"))
            } else {
                Some(format!(
                    "entry {n} `{e}` is neither l/SHORT nor ID/diff: truncated or unparseable"
                ))
            };
            if let Some(p) = problem {
                out.push(Problem::new(&path, p));
                resolved = false;
            }
        }
        if !resolved {
            continue;
        }
        let chain: Vec<String> = layer
            .lowers
            .iter()
            .filter_map(|e| e.layer.clone())
            .collect();
        if chain.contains(&layer.id) {
            out.push(Problem::new(&path, "names the layer itself: a loop"));
            continue;
        }
        let parent = &chain[0];
        if let Some(parent_chain) = store.chain(parent) {
            let expected: Vec<String> = std::iter::once(parent.clone())
                .chain(parent_chain)
                .collect();
            if expected != chain {
                out.push(Problem::new(
                    &path,
                    format!(
                        "lists {}, but its parent {parent} with the layers beneath it makes {}: \
                         a lower file must be l/<parent's link> followed by the parent's lower (truncated?)",
                        layers(chain.len()),
                        expected.len()
                    ),
                ));
            }
        }
        match recorded {
            Some(Some(p)) if p != parent => out.push(Problem::new(
                &path,
                format!("its first entry is layer {parent}, but the records make {p} this layer's parent"),
            )),
            Some(None) => out.push(Problem::new(
                &path,
                format!("names parent {parent}, but the records make this a base layer"),
            )),
            _ => {}
        }
    }
}

/// `1 layer`, `2 layers`.
fn layers(n: usize) -> String {
    if n == 1 {
        "1 layer".into()
    } else {
        format!("{n} layers")
    }
}

fn orphans(store: &Store, out: &mut Vec<Problem>) {
    let Some(referenced) = &store.referenced else {
        return;
    };
    for id in store.layers.keys() {
        if !referenced.contains(id) {
            out.push(Problem::new(
                store.home.join(id),
                "orphan layer directory: no image, container or layer record refers to it",
            ));
        }
    }
}

/// What one layer's walk found: whiteouts and opaque directories, by path
/// relative to the layer's content directory.
#[derive(Default)]
struct Marks {
    /// (path, is an xattr whiteout)
    whiteouts: Vec<(String, bool)>,
    /// Directories with `opaque=y`.
    opaque: BTreeSet<String>,
    /// Directories with `opaque=x`.
    xdirs: BTreeSet<String>,
}

fn scan(dir: &Path, rel: &str, m: &mut Marks) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let p = dir.join(&name);
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            m.whiteouts.push((r, false));
        } else if ft.is_file() && md.len() == 0 && overlay_xattr(&p, "whiteout").is_some() {
            m.whiteouts.push((r, true));
        } else if ft.is_dir() {
            match overlay_xattr(&p, "opaque").as_deref() {
                Some(b"y") => {
                    m.opaque.insert(r.clone());
                }
                Some(b"x") => {
                    m.xdirs.insert(r.clone());
                }
                _ => {}
            }
            scan(&p, &r, m);
        }
    }
}

/// The proper ancestors of `rel` (`a`, `a/b` for `a/b/c`).
fn ancestors(rel: &str) -> Vec<&str> {
    rel.match_indices('/').map(|(i, _)| &rel[..i]).collect()
}

/// Whether some layer of `chain` (content directories, uppermost first)
/// shows a real entry at `rel` to the layers above them.
fn visible_below(chain: &[std::path::PathBuf], rel: &str) -> bool {
    for diff in chain {
        let mut stop = false;
        let mut absent = false;
        for a in ancestors(rel) {
            let p = diff.join(a);
            match fs::symlink_metadata(&p) {
                Err(_) => {
                    absent = true;
                    break;
                }
                Ok(md) if !md.is_dir() => return false,
                Ok(_) => {
                    if overlay_xattr(&p, "redirect").is_some() {
                        // A moved directory: where its contents come from
                        // is not judged here.
                        return true;
                    }
                    if overlay_xattr(&p, "opaque").as_deref() == Some(b"y") {
                        stop = true;
                    }
                }
            }
        }
        if !absent {
            if let Ok(md) = fs::symlink_metadata(diff.join(rel)) {
                let ft = md.file_type();
                let whiteout = (ft.is_char_device() && md.rdev() == 0)
                    || (ft.is_file() && overlay_xattr(&diff.join(rel), "whiteout").is_some());
                return !whiteout;
            }
        }
        if stop {
            return false;
        }
    }
    false
}

fn markers(store: &Store, out: &mut Vec<Problem>) {
    // Layers some other layer stacks on.
    let stacked: BTreeSet<&String> = store
        .layers
        .values()
        .flat_map(|l| l.lowers.iter().filter_map(|e| e.layer.as_ref()))
        .collect();
    for layer in store.layers.values().filter(|l| l.has_diff) {
        let diff = store.diff_path(&layer.id);
        if let Some(v) = overlay_xattr(&diff, "opaque") {
            out.push(Problem::new(
                &diff,
                format!(
                    "opaque marker ({}) on the layer's root: overlay never looks a layer root up, so it hides nothing",
                    String::from_utf8_lossy(&v)
                ),
            ));
        }
        let mut m = Marks::default();
        scan(&diff, "", &mut m);
        for (w, x) in &m.whiteouts {
            let parent = w.rsplit_once('/').map_or("", |(p, _)| p);
            if *x && !m.xdirs.contains(parent) {
                out.push(Problem::new(
                    diff.join(w),
                    "xattr whiteout outside an opaque=x directory: lookup hides the name but readdir lists it",
                ));
            }
        }
        let top_most = !stacked.contains(&layer.id) && !store.image_dirs.contains(&layer.id);
        if top_most || !store.short_links {
            continue;
        }
        if layer.lower.is_none() && matches!(store.parents.get(&layer.id), Some(Some(_))) {
            // A parent on record but no lower file (reported above): what
            // lies beneath is unknown.
            continue;
        }
        let Some(chain) = store.chain(&layer.id) else {
            continue;
        };
        let chain: Vec<std::path::PathBuf> = chain.iter().map(|id| store.diff_path(id)).collect();
        for (w, x) in &m.whiteouts {
            let parent = w.rsplit_once('/').map_or("", |(p, _)| p);
            if *x && !m.xdirs.contains(parent) {
                // Not a whiteout at all (reported above).
                continue;
            }
            if let Some(o) = ancestors(w).into_iter().find(|a| m.opaque.contains(*a)) {
                out.push(Problem::new(
                    diff.join(w),
                    format!("whiteout hides nothing: it is inside {o}, an opaque directory of the same layer"),
                ));
            } else if !visible_below(&chain, w) {
                out.push(Problem::new(
                    diff.join(w),
                    if chain.is_empty() {
                        "whiteout hides nothing: a base layer has no layer beneath it".to_string()
                    } else {
                        format!(
                            "whiteout hides nothing: no layer beneath it ({}) shows {w}",
                            layers(chain.len())
                        )
                    },
                ));
            }
        }
    }
}
