//! containerd's overlayfs snapshotter (docs/inspect.md, "containerd"):
//!
//! ```text
//! io.containerd.snapshotter.v1.overlayfs/metadata.db      bolt database: names, kinds, parent chains
//! io.containerd.snapshotter.v1.overlayfs/snapshots/N/fs    a snapshot's contents (N: its numeric id)
//! io.containerd.snapshotter.v1.overlayfs/snapshots/N/work  overlay's work dir (made active; kept after a commit)
//! ```
//!
//! There are no `link` or `lower` files: which snapshot lies on which is
//! only in `metadata.db`, a bbolt file, and no well-kept Rust crate reads
//! bbolt. So the snapshots are drawn without chains or names, the store
//! says so in a note, and the checks that need a chain (orphans, whiteouts
//! that hide nothing) are not made.

use super::{Layer, Problem, Store};
use std::fs;

/// Reads `snapshots/N/` into `store.layers` (each snapshot a layer whose
/// content directory is `fs`). Errors only when `snapshots/` cannot be
/// listed.
pub fn read(store: &mut Store) -> Result<(), String> {
    let dir = store.home.clone();
    let rd = fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
    for name in names {
        let path = dir.join(&name);
        if name.parse::<u64>().is_err() {
            store.problems.push(Problem::new(
                &path,
                "not a snapshot: snapshot directories are numbered (a new-* folder is a creation that never finished)",
            ));
            continue;
        }
        let is_dir = |p: &std::path::Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
        store.layers.insert(
            name.clone(),
            Layer {
                id: name.clone(),
                has_diff: is_dir(&path.join("fs")),
                has_work: is_dir(&path.join("work")),
                path,
                ..Layer::default()
            },
        );
    }
    let db = store.root.join("metadata.db");
    store.notes.push(format!(
        "containerd keeps snapshot names and parent chains in {} (a bbolt database), which ovlcheck does not read: \
         snapshots are drawn without chains, and orphans and whiteouts that hide nothing are not checked",
        db.display()
    ));
    if !db.is_file() && !store.layers.is_empty() {
        store.problems.push(Problem::new(
            &db,
            "missing: containerd cannot know its snapshots",
        ));
    }
    Ok(())
}
