//! containerd's overlayfs snapshotter (docs/inspect.md, "containerd"):
//!
//! ```text
//! io.containerd.snapshotter.v1.overlayfs/metadata.db      bbolt database: names, kinds, parent chains
//! io.containerd.snapshotter.v1.overlayfs/snapshots/N/fs    a snapshot's contents (N: its numeric id)
//! io.containerd.snapshotter.v1.overlayfs/snapshots/N/work  overlay's work dir (made active; kept after a commit)
//! ```
//!
//! There are no `link` or `lower` files: which snapshot lies on which is
//! only in `metadata.db`. Its layout (containerd snapshots/storage/bolt.go,
//! checked on a containerd 1.6 store in tests/inspect.rs):
//!
//! ```text
//! v1/snapshots/<key>/id         the snapshot's number N (uvarint)
//! v1/snapshots/<key>/kind       one byte: 1 view, 2 active, 3 committed
//! v1/snapshots/<key>/parent     the parent's key (absent on a base snapshot)
//! v1/snapshots/<key>/createdat, updatedat, size, inodes, labels/
//! v1/parents/...                an index of parent to children
//! ```
//!
//! Keys are the metadata plugin's: `<namespace>/<counter>/<name>`.
//! The database is read from a copy in a temporary directory: the daemon
//! holds an exclusive lock on the live file, and nothing is ever written to
//! the user's store.

use super::{Layer, Problem, Store};
use bbolt_rs::{BucketApi, DbApi, TxApi};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// One snapshot as `metadata.db` records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The bucket name: `<namespace>/<counter>/<name>`.
    pub key: String,
    /// The `id` value: the number of its directory under `snapshots/`
    /// (`None`: missing or not a uvarint).
    pub id: Option<u64>,
    /// The `kind` byte.
    pub kind: Option<u8>,
    /// The parent's key.
    pub parent: Option<String>,
}

/// The word for a `kind` byte (containerd snapshots/snapshotter.go, `Kind`).
pub fn kind_name(kind: Option<u8>) -> String {
    match kind {
        Some(1) => "view".into(),
        Some(2) => "active".into(),
        Some(3) => "committed".into(),
        Some(k) => format!("unknown kind {k}"),
        None => "no kind".into(),
    }
}

/// A Go `binary.Uvarint`: the value, if `b` is exactly one uvarint.
fn uvarint(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate() {
        if i >= 10 {
            return None;
        }
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return (i + 1 == b.len()).then_some(v);
        }
    }
    None
}

/// Reads the snapshot records of the bbolt file `db`, opened read-only
/// from a copy in a temporary directory. Errors: the file cannot be copied
/// or opened, or has no `v1/snapshots` bucket.
pub fn read_records(db: &Path) -> Result<Vec<Record>, String> {
    let tmp = tempfile::Builder::new()
        .prefix("ovlcheck-inspect.")
        .tempdir()
        .map_err(|e| format!("a temporary directory: {e}"))?;
    let copy = tmp.path().join("metadata.db");
    fs::copy(db, &copy).map_err(|e| format!("cannot copy it: {e}"))?;
    let bolt = bbolt_rs::Bolt::open_ro(&copy).map_err(|e| format!("not a bbolt database: {e}"))?;
    let mut records = Vec::new();
    let mut missing = None;
    bolt.view(|tx| {
        let v1 = tx.bucket("v1");
        let Some(snapshots) = v1.as_ref().and_then(|v1| v1.bucket("snapshots")) else {
            missing = Some("no v1/snapshots bucket: not containerd's snapshotter database");
            return Ok(());
        };
        for (name, b) in snapshots.iter_buckets() {
            records.push(Record {
                key: String::from_utf8_lossy(name).into_owned(),
                id: b.get("id").and_then(uvarint),
                kind: b.get("kind").and_then(|k| (k.len() == 1).then(|| k[0])),
                parent: b
                    .get("parent")
                    .map(|p| String::from_utf8_lossy(p).into_owned()),
            });
        }
        Ok(())
    })
    .map_err(|e| format!("unreadable: {e}"))?;
    match missing {
        Some(m) => Err(m.to_string()),
        None => Ok(records),
    }
}

/// Reads `snapshots/N/` into `store.layers` (each snapshot a layer whose
/// content directory is `fs`), then `metadata.db`'s records: each
/// snapshot's key and kind become its role, its parent its entry in
/// `store.parents`. Errors only when `snapshots/` cannot be listed.
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
    if !db.is_file() {
        store.notes.push(format!(
            "no {}: snapshots are drawn without names or chains, and orphans are not checked",
            db.display()
        ));
        if !store.layers.is_empty() {
            store.problems.push(Problem::new(
                &db,
                "missing: containerd cannot know its snapshots",
            ));
        }
        return Ok(());
    }
    match read_records(&db) {
        Ok(records) => apply(store, &db, &records),
        Err(e) => {
            store.notes.push(format!(
                "{} could not be read: snapshots are drawn without names or chains, and orphans are not checked",
                db.display()
            ));
            store.problems.push(Problem::new(&db, e));
        }
    }
    Ok(())
}

/// Gives each snapshot directory its records' names and parent, and
/// checks the records against the directories: an id with no directory,
/// a parent key no record has, two records of one id.
fn apply(store: &mut Store, db: &Path, records: &[Record]) {
    let by_key: BTreeMap<&str, &Record> = records.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut referenced = BTreeSet::new();
    for r in records {
        let kind = kind_name(r.kind);
        let Some(id) = r.id else {
            store.problems.push(Problem::new(
                db,
                format!("snapshot {} has no id (a uvarint), so no directory", r.key),
            ));
            continue;
        };
        let dir = id.to_string();
        if !referenced.insert(dir.clone()) {
            store.problems.push(Problem::new(
                db,
                format!(
                    "snapshot {} has id {id}, which another snapshot has too",
                    r.key
                ),
            ));
        }
        if !matches!(r.kind, Some(1..=3)) {
            store
                .problems
                .push(Problem::new(db, format!("snapshot {} has {kind}", r.key)));
        }
        match store.layers.get_mut(&dir) {
            Some(l) => l.roles.push(format!("{kind} snapshot {}", r.key)),
            None => store.problems.push(Problem::new(
                db,
                format!(
                    "{kind} snapshot {} has id {id}, but there is no directory {}",
                    r.key,
                    store.home.join(&dir).display()
                ),
            )),
        }
        // A parent with no directory id stays named by its key (which has
        // a `/`, so it is never a directory's number): the chain breaks
        // there.
        let parent = match &r.parent {
            None => None,
            Some(p) => match by_key.get(p.as_str()) {
                Some(Record { id: Some(i), .. }) => Some(i.to_string()),
                Some(_) => Some(p.clone()),
                None => {
                    store.problems.push(Problem::new(
                        db,
                        format!("snapshot {} has parent {p}, which is no snapshot", r.key),
                    ));
                    Some(p.clone())
                }
            },
        };
        store.parents.insert(dir, parent);
    }
    store.referenced = Some(referenced);
}

/// The snapshot directories beneath `layer` as the records chain them,
/// uppermost first; `None` when a parent is no snapshot with an id, or the
/// chain loops.
pub fn chain(store: &Store, layer: &str) -> Option<Vec<String>> {
    let mut v = Vec::new();
    let mut at = store.parents.get(layer)?.clone();
    while let Some(p) = at {
        if p == layer || v.contains(&p) {
            return None;
        }
        at = store.parents.get(&p)?.clone();
        v.push(p);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::uvarint;

    #[test]
    fn uvarints_decode_as_go_writes_them() {
        assert_eq!(uvarint(&[0]), Some(0));
        assert_eq!(uvarint(&[5]), Some(5));
        assert_eq!(uvarint(&[0x96, 0x01]), Some(150));
        assert_eq!(uvarint(&[0x96]), None);
        assert_eq!(uvarint(&[5, 0]), None);
        assert_eq!(uvarint(&[]), None);
        assert_eq!(uvarint(&[0xff; 11]), None);
    }
}
