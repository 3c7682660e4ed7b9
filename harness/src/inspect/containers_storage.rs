//! containers/storage's records of a store root (podman, CRI-O, buildah;
//! docs/inspect.md, "containers/storage"):
//!
//! ```text
//! overlay/                                  the driver home, laid out like overlay2's
//! overlay-layers/layers.json                [{"id", "parent", "names", ...}]
//! overlay-layers/volatile-layers.json       the same, for layers kept off the disk's journal
//! overlay-images/images.json                [{"id", "names", "layer": top layer id, ...}]
//! overlay-containers/containers.json        [{"id", "names", "image", "layer": its own layer}]
//! ```
//!
//! A layer's directory under `overlay/` is named by its id; an image's
//! layers are its top layer and that layer's parents. There is no `-init`
//! layer: a container's layer sits right on its image's top layer.

use super::{Container, Image, ImageLayer, Problem, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

fn read_array(p: &Path, problems: &mut Vec<Problem>) -> Vec<Value> {
    let Ok(data) = fs::read(p) else {
        return Vec::new();
    };
    match serde_json::from_slice::<Value>(&data) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            problems.push(Problem::new(p, "not a JSON array"));
            Vec::new()
        }
        Err(e) => {
            problems.push(Problem::new(p, format!("unparseable JSON: {e}")));
            Vec::new()
        }
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn names(v: &Value) -> Vec<String> {
    v.get("names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads layers, images and containers into `store` (its driver home
/// already read).
pub fn read(store: &mut Store) {
    let root = store.root.clone();
    let mut problems = Vec::new();
    let mut parents: BTreeMap<String, Option<String>> = BTreeMap::new();
    for file in ["layers.json", "volatile-layers.json"] {
        let p = root.join("overlay-layers").join(file);
        for l in read_array(&p, &mut problems) {
            let Some(id) = s(&l, "id") else { continue };
            if !store.layers.contains_key(&id) {
                problems.push(Problem::new(
                    &p,
                    format!("layer {id} has no directory under overlay/"),
                ));
            }
            parents.insert(id, s(&l, "parent"));
        }
    }
    for (id, parent) in &parents {
        if let Some(p) = parent {
            if !parents.contains_key(p) {
                problems.push(Problem::new(
                    root.join("overlay-layers/layers.json"),
                    format!("layer {id} has parent {p}, which is no layer"),
                ));
            }
        }
    }
    let chain_up = |top: &str| {
        let mut v = vec![top.to_string()];
        let mut at = parents.get(top).cloned().flatten();
        while let Some(p) = at {
            if v.contains(&p) || v.len() > 1000 {
                break;
            }
            v.push(p.clone());
            at = parents.get(&p).cloned().flatten();
        }
        v.reverse();
        v
    };
    let images_json = root.join("overlay-images/images.json");
    let mut image_label: BTreeMap<String, String> = BTreeMap::new();
    for i in read_array(&images_json, &mut problems) {
        let Some(id) = s(&i, "id") else { continue };
        let n = names(&i);
        let label = n
            .first()
            .cloned()
            .unwrap_or_else(|| super::short_id(&id).to_string());
        image_label.insert(id.clone(), label.clone());
        let layers = match s(&i, "layer") {
            Some(top) if parents.contains_key(&top) => chain_up(&top),
            Some(top) => {
                problems.push(Problem::new(
                    &images_json,
                    format!("image {label} names layer {top}, which is no layer"),
                ));
                Vec::new()
            }
            None => Vec::new(),
        };
        let count = layers.len();
        for (k, l) in layers.iter().enumerate() {
            store.image_dirs.insert(l.clone());
            if let Some(d) = store.layers.get_mut(l) {
                d.roles
                    .push(format!("image layer {}/{count} of {label}", k + 1));
            }
        }
        store.images.push(Image {
            id,
            names: n,
            layers: layers
                .into_iter()
                .map(|l| ImageLayer {
                    dir: store.layers.contains_key(&l).then(|| l.clone()),
                    id: l,
                    diff_id: None,
                })
                .collect(),
        });
    }
    let containers_json = root.join("overlay-containers/containers.json");
    for c in read_array(&containers_json, &mut problems) {
        let Some(id) = s(&c, "id") else { continue };
        let name = names(&c).into_iter().next().unwrap_or_default();
        let image = s(&c, "image").unwrap_or_default();
        let layer = s(&c, "layer");
        let label = if name.is_empty() {
            super::short_id(&id).to_string()
        } else {
            name.clone()
        };
        match &layer {
            Some(l) if !parents.contains_key(l) => problems.push(Problem::new(
                &containers_json,
                format!("container {label} names layer {l}, which is no layer"),
            )),
            Some(l) => {
                if let Some(d) = store.layers.get_mut(l) {
                    d.roles.push(format!("container layer of {label}"));
                }
            }
            None => {}
        }
        let lowers = match layer.as_deref().and_then(|l| store.chain(l)) {
            Some(mut v) => {
                v.reverse();
                v
            }
            None => layer
                .as_deref()
                .map(|l| {
                    let mut v = chain_up(l);
                    v.pop();
                    v
                })
                .unwrap_or_default(),
        };
        store.containers.push(Container {
            id,
            name,
            image: image_label.get(&image).cloned().unwrap_or(image),
            layer,
            init: None,
            lowers,
            table: None,
        });
    }
    let referenced: BTreeSet<String> = parents.keys().cloned().collect();
    store.referenced = Some(referenced);
    store.parents = parents;
    store.problems.extend(problems);
}
