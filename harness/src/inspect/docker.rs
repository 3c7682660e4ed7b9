//! Docker's records of a data-root (docs/inspect.md, "Docker"):
//!
//! ```text
//! image/overlay2/repositories.json                 tags: {"Repositories": {repo: {tag: image id}}}
//! image/overlay2/imagedb/content/sha256/ID         image config: rootfs.diff_ids, bottom first
//! image/overlay2/layerdb/sha256/CHAIN/{diff,parent,cache-id}
//!                                                  one read-only layer: its diff id, its parent's
//!                                                  chain id, its directory under overlay2/
//! image/overlay2/layerdb/mounts/CID/{mount-id,init-id,parent}
//!                                                  a container's read-write and -init layer
//!                                                  directories and the chain id beneath them
//! containers/CID/config.v2.json                    ID, Name, Image
//! ```
//!
//! An image's layers are found by walking the layerdb from the bottom: the
//! entry with no parent and the first diff id, then the entry whose parent
//! is that one and whose diff is the second, and so on (the chain id is a
//! digest of the chain, so this gives the same entries as computing it).

use super::overlay2::read_small;
use super::{Container, Image, ImageLayer, Problem, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// One `layerdb/sha256/CHAIN` entry.
#[derive(Clone, Debug)]
struct DbLayer {
    diff: Option<String>,
    parent: Option<String>,
    cache_id: Option<String>,
}

fn list_dirs(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read_json(p: &Path, problems: &mut Vec<Problem>) -> Option<Value> {
    let data = fs::read(p).ok()?;
    match serde_json::from_slice(&data) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Problem::new(p, format!("unparseable JSON: {e}")));
            None
        }
    }
}

/// Reads images, layerdb and containers into `store` (its driver home
/// already read), noting each record that names something missing.
pub fn read(store: &mut Store) {
    let root = store.root.clone();
    let img = root.join("image/overlay2");
    let mut problems = Vec::new();

    // The layerdb.
    let db_dir = img.join("layerdb/sha256");
    let mut db: BTreeMap<String, DbLayer> = BTreeMap::new();
    for chain in list_dirs(&db_dir) {
        let d = db_dir.join(&chain);
        let l = DbLayer {
            diff: read_small(&d.join("diff")),
            parent: read_small(&d.join("parent")),
            cache_id: read_small(&d.join("cache-id")),
        };
        match &l.cache_id {
            None => problems.push(Problem::new(
                d.join("cache-id"),
                "layerdb entry without a cache-id",
            )),
            Some(c) if !store.layers.contains_key(c) => problems.push(Problem::new(
                d.join("cache-id"),
                format!("cache-id names {c}, which is no directory of overlay2/"),
            )),
            Some(_) => {}
        }
        db.insert(format!("sha256:{chain}"), l);
    }
    for (chain, l) in &db {
        if let Some(p) = &l.parent {
            if !db.contains_key(p) {
                problems.push(Problem::new(
                    db_dir
                        .join(chain.trim_start_matches("sha256:"))
                        .join("parent"),
                    format!("parent {p} is not in the layerdb"),
                ));
            }
        }
    }
    let dir_of = |chain: &str| db.get(chain).and_then(|l| l.cache_id.clone());
    for l in db.values() {
        if let Some(c) = &l.cache_id {
            store
                .parents
                .insert(c.clone(), l.parent.as_deref().and_then(dir_of));
            store.image_dirs.insert(c.clone());
        }
    }

    // Tags.
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(v) = read_json(&img.join("repositories.json"), &mut problems) {
        if let Some(repos) = v.get("Repositories").and_then(Value::as_object) {
            for tags in repos.values().filter_map(Value::as_object) {
                for (tag, id) in tags {
                    if let Some(id) = id.as_str() {
                        if !tag.contains('@') {
                            names.entry(id.to_string()).or_default().push(tag.clone());
                        }
                    }
                }
            }
        }
    }

    // Images.
    let content = img.join("imagedb/content/sha256");
    let mut files: Vec<String> = fs::read_dir(&content)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut in_images: BTreeSet<String> = BTreeSet::new();
    for hex in files {
        let path = content.join(&hex);
        let Some(cfg) = read_json(&path, &mut problems) else {
            continue;
        };
        let id = format!("sha256:{hex}");
        let diff_ids: Vec<String> = cfg
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut layers = Vec::new();
        let mut parent: Option<String> = None;
        let mut broken = false;
        for diff in &diff_ids {
            let found = if broken {
                None
            } else {
                db.iter()
                    .find(|(_, l)| l.parent == parent && l.diff.as_deref() == Some(diff))
                    .map(|(c, _)| c.clone())
            };
            match &found {
                Some(c) => {
                    in_images.insert(c.clone());
                }
                None if !broken => {
                    broken = true;
                    problems.push(Problem::new(
                        &path,
                        format!(
                            "layer {} of {} (diff id {diff}) is not in the layerdb",
                            layers.len() + 1,
                            diff_ids.len()
                        ),
                    ));
                }
                None => {}
            }
            layers.push(ImageLayer {
                id: found.clone().unwrap_or_default(),
                diff_id: Some(diff.clone()),
                dir: found.as_deref().and_then(dir_of),
            });
            parent = found;
        }
        let tags = names.remove(&id).unwrap_or_default();
        let label = tags
            .first()
            .cloned()
            .unwrap_or_else(|| super::short_id(&id).to_string());
        let n = layers.len();
        for (i, l) in layers.iter().enumerate() {
            if let Some(d) = l.dir.as_ref().and_then(|d| store.layers.get_mut(d)) {
                d.roles
                    .push(format!("image layer {}/{n} of {label}", i + 1));
            }
        }
        store.images.push(Image {
            id,
            names: tags,
            layers,
        });
    }
    for (chain, l) in &db {
        if !in_images.contains(chain) {
            if let Some(d) = l.cache_id.as_ref().and_then(|d| store.layers.get_mut(d)) {
                d.roles
                    .push(format!("layerdb {} (in no image)", super::short_id(chain)));
            }
        }
    }

    // Containers.
    let mounts_dir = img.join("layerdb/mounts");
    let containers_dir = root.join("containers");
    let mut ids: BTreeSet<String> = list_dirs(&mounts_dir).into_iter().collect();
    ids.extend(list_dirs(&containers_dir));
    let mut referenced: BTreeSet<String> = db.values().filter_map(|l| l.cache_id.clone()).collect();
    for cid in ids {
        let m = mounts_dir.join(&cid);
        let config = containers_dir.join(&cid).join("config.v2.json");
        let cfg = if config.exists() {
            read_json(&config, &mut problems)
        } else {
            problems.push(Problem::new(
                containers_dir.join(&cid),
                "a layerdb mount for a container Docker has no config.v2.json for",
            ));
            None
        };
        let str_at = |k: &str| {
            cfg.as_ref()
                .and_then(|v| v.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let name = str_at("Name").unwrap_or_default();
        let image = str_at("Image").unwrap_or_default();
        if !m.is_dir() {
            problems.push(Problem::new(&m, "container without a layerdb mount"));
        }
        let mount_id = read_small(&m.join("mount-id"));
        let init_id = read_small(&m.join("init-id"));
        let parent_chain = read_small(&m.join("parent"));
        for (what, id) in [("mount-id", &mount_id), ("init-id", &init_id)] {
            match id {
                Some(d) if !store.layers.contains_key(d) => problems.push(Problem::new(
                    m.join(what),
                    format!("{what} names {d}, which is no directory of overlay2/"),
                )),
                Some(d) => {
                    referenced.insert(d.clone());
                }
                None if m.is_dir() && what == "mount-id" => {
                    problems.push(Problem::new(m.join(what), "no mount-id"))
                }
                None => {}
            }
        }
        let image_top = match &parent_chain {
            Some(p) if !db.contains_key(p) => {
                problems.push(Problem::new(
                    m.join("parent"),
                    format!("parent {p} is not in the layerdb"),
                ));
                None
            }
            Some(p) => dir_of(p),
            None => None,
        };
        let label = if name.is_empty() {
            super::short_id(&cid).to_string()
        } else {
            name.clone()
        };
        if let Some(i) = &init_id {
            store.parents.insert(i.clone(), image_top.clone());
            if let Some(l) = store.layers.get_mut(i) {
                l.roles.push(format!("init layer of {label}"));
            }
        }
        if let Some(d) = &mount_id {
            store
                .parents
                .insert(d.clone(), init_id.clone().or(image_top.clone()));
            if let Some(l) = store.layers.get_mut(d) {
                l.roles.push(format!("container layer of {label}"));
            }
        }
        // What the read-write layer's mount stacks, bottom first: its lower
        // file, or failing that the records.
        let lowers = match mount_id.as_deref().and_then(|d| store.chain(d)) {
            Some(mut c) => {
                c.reverse();
                c
            }
            None => {
                let mut v = Vec::new();
                let mut at = image_top.clone();
                while let Some(d) = at {
                    v.push(d.clone());
                    at = store.parents.get(&d).cloned().flatten();
                    if v.len() > 1000 {
                        break;
                    }
                }
                v.reverse();
                v.extend(init_id.clone());
                v
            }
        };
        store.containers.push(Container {
            id: cid,
            name,
            image,
            layer: mount_id,
            init: init_id,
            lowers,
            table: None,
        });
    }
    store.referenced = Some(referenced);
    store.problems.extend(problems);
}
