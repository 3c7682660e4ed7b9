//! `ovlcheck inspect DIR`: explains and checks a real container store.
//!
//! One module per concept: [`layout`] tells the kinds of store apart by
//! what their directories hold; [`overlay2`] reads an overlay2-style driver
//! home (layer directories with `diff`, `link`, `lower`, `work`, and the
//! `l/` short links; Docker's overlay2 and containers/storage's overlay
//! driver share it); [`docker`], [`containers_storage`] and [`containerd`]
//! read each engine's own records of images and containers; [`checks`]
//! finds the inconsistencies; [`draw`] prints the store as text; [`export`]
//! turns a container's layers into a `.ovl` case. docs/inspect.md says what
//! each check means and what a store must look like to pass.

pub mod checks;
pub mod containerd;
pub mod containers_storage;
pub mod docker;
pub mod draw;
pub mod export;
pub mod layout;
pub mod overlay2;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use layout::Layout;

/// One layer directory of the driver home (a containerd snapshot too).
#[derive(Clone, Debug, Serialize, Default)]
pub struct Layer {
    /// The directory's name: Docker's cache id, containers/storage's layer
    /// id, containerd's snapshot number.
    pub id: String,
    pub path: PathBuf,
    /// The content directory exists (`diff`, containerd's `fs`).
    pub has_diff: bool,
    pub has_work: bool,
    /// The `committed` file (Docker: the layer has a child, so it is only
    /// mounted read-only).
    pub committed: bool,
    /// The `link` file: the layer's short name under `l/`.
    pub link: Option<String>,
    /// The `lower` file as written.
    pub lower: Option<String>,
    /// The `lower` file's entries, uppermost first.
    pub lowers: Vec<LowerEntry>,
    /// What the store's records say this layer is, e.g. `image layer 2/3 of
    /// base:1`, `init layer of /c1`, `container layer of /c1`.
    pub roles: Vec<String>,
}

/// One entry of a `lower` file.
#[derive(Clone, Debug, Serialize)]
pub struct LowerEntry {
    /// As written, e.g. `l/2AQ2F7X67IL4TATXIIYO62CM67`.
    pub entry: String,
    /// The layer it resolves to through its short link, if it does.
    pub layer: Option<String>,
}

/// One entry of `l/`.
#[derive(Clone, Debug, Serialize)]
pub struct ShortLink {
    pub name: String,
    /// The symlink's target (`None`: not a symlink).
    pub target: Option<String>,
    /// The layer directory it names when the target is `../ID/diff` and
    /// that directory exists.
    pub layer: Option<String>,
}

/// An image: its layers bottom (base) first.
#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub id: String,
    /// Tags or names (`base:1`).
    pub names: Vec<String>,
    pub layers: Vec<ImageLayer>,
}

/// One layer of an image as the engine's records name it.
#[derive(Clone, Debug, Serialize)]
pub struct ImageLayer {
    /// Docker: the layer's chain id (its `image/overlay2/layerdb/sha256/`
    /// entry); containers/storage: the layer id.
    pub id: String,
    /// Docker: the diff id (the digest of the uncompressed layer tar).
    pub diff_id: Option<String>,
    /// The layer directory (Docker: the layerdb's `cache-id`).
    pub dir: Option<String>,
}

/// A container: its read-write layer, its init layer (Docker) and the
/// image it was made from.
#[derive(Clone, Debug, Serialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The read-write layer's directory (Docker: layerdb `mounts/ID/mount-id`).
    pub layer: Option<String>,
    /// Docker: the `-init` layer's directory (`mounts/ID/init-id`).
    pub init: Option<String>,
    /// The layer directories beneath the read-write layer, bottom first, as
    /// the read-write layer's `lower` file names them (what a mount stacks).
    pub lowers: Vec<String>,
    /// The stack as `ovlcheck show` draws a case (its "before" table).
    pub table: Option<String>,
}

/// One inconsistency: the path it is about and what is wrong there.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub path: String,
    pub problem: String,
}

impl Problem {
    pub fn new(path: impl AsRef<Path>, problem: impl Into<String>) -> Problem {
        Problem {
            path: path.as_ref().display().to_string(),
            problem: problem.into(),
        }
    }
}

/// Everything read from a store, and what was found wrong with it.
#[derive(Clone, Debug, Serialize)]
pub struct Store {
    /// `docker`, `overlay2`, `containers-storage` or `containerd`.
    pub kind: &'static str,
    /// The directory given.
    pub root: PathBuf,
    /// The driver home holding the layer directories.
    pub home: PathBuf,
    /// Whether the store names layers by `l/` short links and `lower` files
    /// (all but containerd).
    pub short_links: bool,
    /// What could not be read or checked, in a sentence each.
    pub notes: Vec<String>,
    pub images: Vec<Image>,
    pub containers: Vec<Container>,
    pub layers: BTreeMap<String, Layer>,
    pub links: BTreeMap<String, ShortLink>,
    /// Directories of the driver home that are no layer (`l`, staging
    /// folders).
    #[serde(skip)]
    pub not_layers: BTreeSet<String>,
    /// Layer directories the engine's records refer to; `None` when the
    /// store has no records (an `overlay2/` folder alone, containerd), so
    /// orphans cannot be told.
    #[serde(skip)]
    pub referenced: Option<BTreeSet<String>>,
    /// For each layer directory, its parent layer directory according to the
    /// engine's records (`None`: a base layer).
    #[serde(skip)]
    pub parents: BTreeMap<String, Option<String>>,
    /// Layer directories that the records say are image layers (never
    /// written to again).
    #[serde(skip)]
    pub image_dirs: BTreeSet<String>,
    pub problems: Vec<Problem>,
}

impl Store {
    fn new(kind: &'static str, root: &Path, home: &Path) -> Store {
        Store {
            kind,
            root: root.to_path_buf(),
            home: home.to_path_buf(),
            short_links: true,
            notes: Vec::new(),
            images: Vec::new(),
            containers: Vec::new(),
            layers: BTreeMap::new(),
            links: BTreeMap::new(),
            not_layers: BTreeSet::new(),
            referenced: None,
            parents: BTreeMap::new(),
            image_dirs: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// The name of the content directory of a layer: `diff`, or `fs` in a
    /// containerd snapshot.
    pub fn content_dir(&self) -> &'static str {
        if self.short_links {
            "diff"
        } else {
            "fs"
        }
    }

    /// A layer's content directory.
    pub fn diff_path(&self, layer: &str) -> PathBuf {
        self.home.join(layer).join(self.content_dir())
    }

    /// The layers beneath `layer` as its `lower` file names them, uppermost
    /// first; `None` when the file is missing or an entry does not resolve.
    pub fn chain(&self, layer: &str) -> Option<Vec<String>> {
        let l = self.layers.get(layer)?;
        if l.lower.is_none() {
            return Some(Vec::new());
        }
        l.lowers.iter().map(|e| e.layer.clone()).collect()
    }

    /// The container `sel` names: its id, a unique id prefix or its name
    /// (with or without the leading `/`).
    pub fn find_container(&self, sel: &str) -> Result<&Container, String> {
        let bare = sel.trim_start_matches('/');
        if let Some(c) = self
            .containers
            .iter()
            .find(|c| c.id == sel || c.name.trim_start_matches('/') == bare)
        {
            return Ok(c);
        }
        let matches: Vec<&Container> = self
            .containers
            .iter()
            .filter(|c| !sel.is_empty() && c.id.starts_with(sel))
            .collect();
        match matches.as_slice() {
            [c] => Ok(c),
            [] => Err(format!(
                "no container `{sel}` in {} (containers: {})",
                self.root.display(),
                if self.containers.is_empty() {
                    "none".to_string()
                } else {
                    self.containers
                        .iter()
                        .map(|c| format!("{} {}", short_id(&c.id), c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            many => Err(format!(
                "`{sel}` is a prefix of {} container ids: give more of it",
                many.len()
            )),
        }
    }
}

/// The first 12 characters of an id, as `docker ps` shows it (a Docker
/// `-init` layer keeps its suffix).
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    let (base, init) = match id.strip_suffix("-init") {
        Some(b) => (b, "-init"),
        None => (id, ""),
    };
    format!("{}{init}", &base[..base.len().min(12)])
}

/// Reads the store at `dir` (any kind [`layout::detect`] knows), without
/// checking it. Errors: an unknown directory, an unreadable driver home.
pub fn read(dir: &Path) -> Result<Store, String> {
    let layout = layout::detect(dir)?;
    let mut store = match &layout {
        Layout::Docker { root } => {
            let mut s = Store::new("docker", root, &root.join("overlay2"));
            overlay2::read_home(&mut s)?;
            docker::read(&mut s);
            s
        }
        Layout::Overlay2 { home } => {
            let mut s = Store::new("overlay2", home, home);
            overlay2::read_home(&mut s)?;
            s.notes.push(
                "an overlay2 folder alone: no image or container records, so no orphan check"
                    .into(),
            );
            s
        }
        Layout::ContainersStorage { root } => {
            let mut s = Store::new("containers-storage", root, &root.join("overlay"));
            overlay2::read_home(&mut s)?;
            containers_storage::read(&mut s);
            s
        }
        Layout::Containerd { root } => {
            let mut s = Store::new("containerd", root, &root.join("snapshots"));
            s.short_links = false;
            containerd::read(&mut s)?;
            s
        }
    };
    store.problems.sort();
    store.problems.dedup();
    Ok(store)
}

/// Reads and checks the store at `dir`, and draws each container's stack.
pub fn inspect(dir: &Path) -> Result<Store, String> {
    let mut store = read(dir)?;
    checks::run(&mut store);
    for i in 0..store.containers.len() {
        let table =
            export::container_case_as(&store, &store.containers[i], export::Contents::Shape)
                .ok()
                .and_then(|(case, _)| crate::show::before_table(&case).ok());
        store.containers[i].table = table;
    }
    Ok(store)
}

#[cfg(test)]
mod tests;
