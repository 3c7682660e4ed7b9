//! The text `ovlcheck inspect` prints: the store, its images, its
//! containers with their stacks drawn as `ovlcheck show` draws a case, every
//! layer with its short link, its `lower` file resolved to layers and its
//! parent chain (the walk-through docs/inspect.md shows), and the problems.

use super::{short_id, Store};
use std::fmt::Write;

/// The whole report.
pub fn render(store: &Store) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} store {} (layers in {})",
        store.kind,
        store.root.display(),
        store.home.display()
    );
    for n in &store.notes {
        let _ = writeln!(o, "note: {n}");
    }
    images(store, &mut o);
    containers(store, &mut o);
    layers(store, &mut o);
    problems(store, &mut o);
    o
}

fn images(store: &Store, o: &mut String) {
    if store.images.is_empty() && store.kind != "docker" && store.kind != "containers-storage" {
        return;
    }
    let _ = writeln!(o, "\nimages ({}):", store.images.len());
    for img in &store.images {
        let names = if img.names.is_empty() {
            "<untagged>".to_string()
        } else {
            img.names.join(" ")
        };
        let _ = writeln!(
            o,
            "  {names}  {}  {} layers, bottom first:",
            img.id,
            img.layers.len()
        );
        for (i, l) in img.layers.iter().enumerate() {
            let dir = l.dir.as_deref().unwrap_or("?");
            let mut line = format!("    {}  {dir}", i + 1);
            if !l.id.is_empty() && l.id != dir {
                let _ = write!(line, "  chain {}", l.id);
            }
            if let Some(d) = &l.diff_id {
                let _ = write!(line, "  diff {}", short_id(d));
            }
            let _ = writeln!(o, "{line}");
        }
    }
}

fn containers(store: &Store, o: &mut String) {
    if store.containers.is_empty() && store.kind != "docker" && store.kind != "containers-storage" {
        return;
    }
    let _ = writeln!(o, "\ncontainers ({}):", store.containers.len());
    for c in &store.containers {
        let name = if c.name.is_empty() {
            "<unnamed>"
        } else {
            &c.name
        };
        let _ = writeln!(o, "  {name}  {}  image {}", c.id, c.image);
        let _ = writeln!(
            o,
            "    read-write layer {}",
            c.layer.as_deref().unwrap_or("(none on record)")
        );
        if let Some(i) = &c.init {
            let _ = writeln!(o, "    init layer       {i}");
        }
        let mut cols: Vec<String> = c
            .lowers
            .iter()
            .enumerate()
            .map(|(i, l)| format!("L{i} = {}", short_id(l)))
            .collect();
        if let Some(u) = &c.layer {
            cols.push(format!("upper = {}", short_id(u)));
        }
        let _ = writeln!(o, "    stack, bottom first: {}", cols.join(", "));
        match &c.table {
            Some(t) => {
                for line in t.lines() {
                    let _ = writeln!(o, "      {line}");
                }
            }
            None => {
                let _ = writeln!(o, "      (no table: the stack could not be read as a case; `inspect --case` says why)");
            }
        }
    }
}

fn layers(store: &Store, o: &mut String) {
    let _ = writeln!(o, "\nlayers ({}):", store.layers.len());
    for l in store.layers.values() {
        let _ = writeln!(o, "  {}", l.id);
        if !l.roles.is_empty() {
            let _ = writeln!(o, "    is     {}", l.roles.join("; "));
        }
        let mut have = vec![format!(
            "{} {}",
            store.content_dir(),
            if l.has_diff { "yes" } else { "MISSING" }
        )];
        have.push(format!("work {}", if l.has_work { "yes" } else { "no" }));
        if store.short_links {
            have.push(format!(
                "committed {}",
                if l.committed { "yes" } else { "no" }
            ));
        }
        let _ = writeln!(o, "    has    {}", have.join(", "));
        if !store.short_links {
            snapshot_chain(store, &l.id, o);
            continue;
        }
        match &l.link {
            Some(s) => {
                let target = store
                    .links
                    .get(s)
                    .map(|sl| {
                        sl.target
                            .clone()
                            .unwrap_or_else(|| "(not a symlink)".into())
                    })
                    .unwrap_or_else(|| "(no such short link)".into());
                let _ = writeln!(o, "    link   {s}   l/{s} -> {target}");
            }
            None => {
                let _ = writeln!(o, "    link   (no link file)");
            }
        }
        match &l.lower {
            None => {
                let _ = writeln!(o, "    lower  (no lower file: a base layer)");
            }
            Some(raw) => {
                let _ = writeln!(o, "    lower  {}", raw.trim_end());
                for e in &l.lowers {
                    let _ = writeln!(
                        o,
                        "             {} -> {}",
                        e.entry,
                        e.layer.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        let mut chain = vec![short_id(&l.id).to_string()];
        chain.extend(l.lowers.iter().map(|e| {
            e.layer
                .as_deref()
                .map_or("?".to_string(), |x| short_id(x).to_string())
        }));
        let _ = writeln!(o, "    chain  {} (base)", chain.join(" -> "));
    }
}

/// A containerd snapshot's chain as `metadata.db` records it, down to its
/// base snapshot (nothing without records).
fn snapshot_chain(store: &Store, id: &str, o: &mut String) {
    if store.referenced.is_none() {
        return;
    }
    if !store.parents.contains_key(id) {
        let _ = writeln!(o, "    chain  (no record names this snapshot)");
        return;
    }
    match super::containerd::chain(store, id) {
        Some(beneath) => {
            let mut chain = vec![id.to_string()];
            chain.extend(beneath);
            let _ = writeln!(o, "    chain  {} (base)", chain.join(" -> "));
        }
        None => {
            let _ = writeln!(
                o,
                "    chain  {id} -> ? (a parent is no snapshot on record, or the chain loops)"
            );
        }
    }
}

fn problems(store: &Store, o: &mut String) {
    if store.problems.is_empty() {
        let _ = writeln!(o, "\nno problems");
        return;
    }
    let _ = writeln!(o, "\nproblems ({}):", store.problems.len());
    for p in &store.problems {
        let _ = writeln!(o, "  {}: {}", p.path, p.problem);
    }
}
