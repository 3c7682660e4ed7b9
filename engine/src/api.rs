//! The `docker` backend: Docker's overlay2 graph driver judged through the
//! engine's own API (docs/engines.md). A case's lower layers go in as an
//! image archive (`POST /images/load`, so the engine's `ApplyDiff` unpacks
//! every layer), a container is created on it and never started, and a
//! worker mounts the container's layers exactly as overlay2 `Get` would
//! (the engine's `lower` file and `index=off`) to run the ops. The
//! engine's `POST /commit` makes the changeset and the new layer, `GET
//! /images/{id}/get` gives its tar back, and a container created on the
//! committed image shows the merged tree of the applied layer.

use crate::archive;
use crate::daemon::Daemon;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, ImportImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use ovlcheck_case::layer::DEFAULT_MTIME;
use ovlcheck_case::oci::{DiffMethod, TarXattrs};
use ovlcheck_case::{Case, Errno, LayerSpec, Op, Outcome, Profile, Step, View};
use ovlcheck_driver::store::MarkerNames;
use ovlcheck_driver::{
    Backend, BackendKind, BackendOptions, DriverError, EngineStack, Export, PooledBackend, Session,
    WorkerSession,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The overlay options overlay2 `Get` passes besides the directories when
/// `/sys/module/overlay/parameters/index` exists (moby overlay2 driver;
/// docs/engines.md).
const DOCKER_OPTIONS: [&str; 1] = ["index=off"];
/// The xattr namespace of overlay markers for a rootful engine.
const TRUSTED: &str = "trusted.overlay.";
/// The command of every container: never run (containers are only
/// created), but the API wants one.
const NEVER_RUN: &str = "/ovlcheck-never-started";

/// A Docker engine as a backend. Cloning shares the engine connection.
#[derive(Clone)]
pub struct DockerBackend {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Runtime,
    docker: Docker,
    /// The engine's overlay2 store (`<DockerRootDir>/overlay2`).
    home: PathBuf,
    /// Whether the engine's diff is native (`Native Overlay Diff` in its
    /// driver status) or naive.
    method: DiffMethod,
    /// The `-init` layer of a container, as the engine makes it (with the
    /// mtimes of its files set to [`DEFAULT_MTIME`], docs/engines.md).
    init: LayerSpec,
    /// Worker processes that mount the engine's layers.
    workers: PooledBackend,
    /// Declared last: the private daemon stops after everything above.
    daemon: Daemon,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("socket", &self.inner.daemon.socket)
            .field("home", &self.inner.home)
            .finish()
    }
}

fn io(what: &str) -> impl Fn(bollard::errors::Error) -> DriverError + '_ {
    move |e| DriverError::Io(format!("docker {what}: {e}"))
}

impl DockerBackend {
    /// Connects to the engine at `socket` (or `DOCKER_HOST`), or starts a
    /// private one; checks that it stores with overlay2 and learns its
    /// `-init` layer.
    pub fn new(socket: Option<&str>, opts: BackendOptions) -> Result<DockerBackend, DriverError> {
        let daemon = Daemon::connect_or_start(socket)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DriverError::Io(format!("tokio runtime: {e}")))?;
        let path = daemon.socket.display().to_string();
        let docker = runtime
            .block_on(async {
                let d = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)?;
                d.negotiate_version().await
            })
            .map_err(|e| {
                DriverError::Environment(format!("no Docker engine answers at {path}: {e}"))
            })?;
        let info = runtime.block_on(docker.info()).map_err(io("info"))?;
        if info.driver.as_deref() != Some("overlay2") {
            return Err(DriverError::Environment(format!(
                "the Docker engine at {path} stores with {:?}, not overlay2",
                info.driver.unwrap_or_default()
            )));
        }
        let status = info.driver_status.unwrap_or_default();
        let native = status.iter().any(|kv| {
            kv.first().map(String::as_str) == Some("Native Overlay Diff")
                && kv.get(1).map(String::as_str) == Some("true")
        });
        let root = info
            .docker_root_dir
            .ok_or_else(|| DriverError::Io("docker info gives no DockerRootDir".into()))?;
        let mut inner = Inner {
            runtime,
            docker,
            home: Path::new(&root).join("overlay2"),
            method: if native {
                DiffMethod::Native
            } else {
                DiffMethod::Naive
            },
            init: LayerSpec::default(),
            workers: PooledBackend::new(ovlcheck_driver::proto::Mounter::Kernel, opts),
            daemon,
        };
        inner.init = inner.observe_init()?;
        Ok(DockerBackend {
            inner: Arc::new(inner),
        })
    }

    /// The `-init` layer every container of this engine gets (normalized
    /// mtimes), as a case layer.
    pub fn init_layer(&self) -> &LayerSpec {
        &self.inner.init
    }

    /// The engine's overlay2 store.
    pub fn store_home(&self) -> &Path {
        &self.inner.home
    }
}

impl Inner {
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Loads an image of `layers` (case layers, bottom first); its id.
    fn load(&self, layers: &[LayerSpec]) -> Result<String, DriverError> {
        let tars = layers
            .iter()
            .map(layer_tar)
            .collect::<Result<Vec<_>, _>>()?;
        let (archive, id) = archive::image_archive(&tars)
            .map_err(|e| DriverError::Io(format!("image archive: {e}")))?;
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let answers = self
            .block(
                self.docker
                    .import_image(options, bollard::body_full(archive.into()), None)
                    .try_collect::<Vec<_>>(),
            )
            .map_err(io("load"))?;
        // The engine answers 200 and reports a refused archive in the
        // stream; it names the image it loaded.
        let said: Vec<String> = answers
            .iter()
            .filter_map(|a| {
                a.error_detail
                    .as_ref()
                    .and_then(|e| e.message.clone())
                    .or_else(|| a.stream.clone())
            })
            .collect();
        if !said.iter().any(|s| s.contains(&id)) {
            return Err(DriverError::Io(format!(
                "docker load did not load {id}: {}",
                said.join(" ").trim()
            )));
        }
        Ok(id)
    }

    /// Creates a container of `image` (never started); its id and the id
    /// of its container layer in the store.
    fn create(&self, image: &str) -> Result<(String, String), DriverError> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec![NEVER_RUN.to_string()]),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = self
            .block(self.docker.create_container(None, body))
            .map_err(io("create"))?;
        let inspected = self
            .block(self.docker.inspect_container(&created.id, None))
            .map_err(io("inspect"))?;
        let data = inspected.graph_driver.map(|g| g.data).unwrap_or_default();
        let layer_of = |key: &str| -> Result<String, DriverError> {
            data.get(key)
                .and_then(|d| Path::new(d).parent())
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| DriverError::Io(format!("container {} has no {key}", created.id)))
        };
        let layer = layer_of("UpperDir")?;
        normalize_init(&self.home.join(format!("{layer}-init")).join("diff"))?;
        Ok((created.id, layer))
    }

    /// Commits container `id`: the new image's id and how many layers it
    /// has.
    fn commit(&self, id: &str) -> Result<(String, usize), DriverError> {
        let options = CommitContainerOptionsBuilder::default()
            .container(id)
            .pause(false)
            .build();
        let r = self
            .block(
                self.docker
                    .commit_container(options, ContainerConfig::default()),
            )
            .map_err(io("commit"))?;
        let image = self
            .block(self.docker.inspect_image(&r.id))
            .map_err(io("inspect image"))?;
        let layers = image.root_fs.and_then(|r| r.layers).map_or(0, |l| l.len());
        Ok((r.id, layers))
    }

    /// The layer tars of `image`, bottom first, as `docker save` gives
    /// them.
    fn layer_tars(&self, image: &str) -> Result<Result<Vec<Vec<u8>>, String>, DriverError> {
        let chunks = self
            .block(self.docker.export_image(image).try_collect::<Vec<_>>())
            .map_err(io("save"))?;
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        Ok(archive::layers(&bytes))
    }

    fn remove_container(&self, id: &str) -> Result<(), DriverError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        self.block(self.docker.remove_container(id, Some(options)))
            .map_err(io("remove container"))
    }

    /// Removes image `id`; one already gone is fine (removing a committed
    /// image prunes its untagged parents).
    fn remove_image(&self, id: &str) -> Result<(), DriverError> {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        match self.block(self.docker.remove_image(id, Some(options), None)) {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(io("remove image")(e)),
        }
    }

    /// The `-init` layer of a probe container on an empty image.
    fn observe_init(&self) -> Result<LayerSpec, DriverError> {
        let image = self.load(&[LayerSpec::default()])?;
        let made = self.create(&image).and_then(|(id, layer)| {
            let dir = self.home.join(format!("{layer}-init")).join("diff");
            let spec = read_layer(&dir);
            self.remove_container(&id)?;
            spec
        });
        self.remove_image(&image)?;
        made
    }

    /// Mounts container layer `layer` in a worker.
    fn attach(&self, layer: &str, profile: &Profile) -> Result<WorkerSession, DriverError> {
        self.workers.attach(&EngineStack {
            home: self.home.clone(),
            container: layer.to_string(),
            profile: profile.clone(),
            options: DOCKER_OPTIONS.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// A case layer as an OCI layer tar: written into a scratch directory
/// and tarred by the store's native `Diff` (kernel whiteouts and opaque
/// directories become `.wh.` entries).
fn layer_tar(spec: &LayerSpec) -> Result<Vec<u8>, DriverError> {
    let objects = spec
        .objects()
        .map_err(|e| DriverError::Io(format!("layer entry {}: {}", e.entry, e.message)))?;
    let dir = tempfile::Builder::new()
        .prefix("ovlcheck-layer.")
        .tempdir()
        .map_err(|e| DriverError::Io(format!("layer scratch: {e}")))?;
    let markers = MarkerNames { prefix: TRUSTED };
    ovlcheck_driver::store::write_objects(dir.path(), &objects, &markers)
        .and_then(|()| ovlcheck_driver::oci::write_native(dir.path(), TRUSTED))
        .map_err(|e| DriverError::Io(format!("layer tar: {e}")))
}

/// A layer directory of the store read back as a case layer (through its
/// native tar: what an image made of it would hold).
fn read_layer(dir: &Path) -> Result<LayerSpec, DriverError> {
    let tar = ovlcheck_driver::oci::write_native(dir, TRUSTED)
        .map_err(|e| DriverError::Io(format!("tar {}: {e}", dir.display())))?;
    let view = ovlcheck_driver::oci::read(&tar)
        .map_err(|e| DriverError::Io(format!("read {}: {e}", dir.display())))?;
    Ok(ovlcheck_case::oci::layer_spec(&view))
}

/// Sets the mtime of every non-directory of an `-init` layer to
/// [`DEFAULT_MTIME`]: the engine writes them at the container's creation,
/// and a case's layers have no clock (docs/engines.md).
fn normalize_init(dir: &Path) -> Result<(), DriverError> {
    let fail = |e: std::io::Error| DriverError::Io(format!("init layer {}: {e}", dir.display()));
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(fail)? {
            let entry = entry.map_err(fail)?;
            let path = entry.path();
            if entry.file_type().map_err(fail)?.is_dir() {
                stack.push(path);
                continue;
            }
            let t = nix::sys::time::TimeSpec::new(DEFAULT_MTIME, 0);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| fail(e.into()))?;
        }
    }
    Ok(())
}

/// Why `case` cannot go into this engine as it is: what an image layer
/// cannot carry.
fn unrepresentable(case: &Case) -> Option<String> {
    if case.upper.as_ref().is_some_and(|u| !u.entries.is_empty()) {
        return Some("an engine's container layer starts empty: the case seeds its upper".into());
    }
    for (i, l) in case.lowers.iter().enumerate() {
        let objects = match l.objects() {
            Ok(o) => o,
            Err(e) => return Some(format!("lower {i}: {}", e.message)),
        };
        for o in objects {
            let m = &o.markers;
            if m.redirect.is_some() || m.xwhiteout || m.opaque.is_some_and(|c| c != 'y') {
                return Some(format!(
                    "lower {i} has {}: an OCI layer has only whiteouts and opaque directories",
                    o.path
                ));
            }
        }
    }
    None
}

impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        DockerSession::start(Arc::clone(&self.inner), case).map(|s| Box::new(s) as Box<dyn Session>)
    }

    /// The case's lowers as image layers, then the engine's `-init` layer
    /// as the top lower (kept when the case already ends with it).
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        if c.lowers.last() != Some(&self.inner.init) {
            if let Some(why) = unrepresentable(&c) {
                return Err(why);
            }
            if c.lowers.is_empty() {
                // An image has at least one layer: an empty one.
                c.lowers.push(LayerSpec::default());
            }
            c.lowers.push(self.inner.init.clone());
        }
        Ok(c)
    }
}

/// One case in a Docker container.
struct DockerSession {
    engine: Arc<Inner>,
    profile: Profile,
    worker: Option<WorkerSession>,
    /// Containers and images made for the case, removed at the end.
    containers: Vec<String>,
    images: Vec<String>,
    /// The container the ops run in now.
    container: String,
    /// A commit the export made already: the next `commit` step finds the
    /// stack switched and only says so.
    committed: bool,
    /// How many layers the current container's image has.
    image_layers: usize,
}

impl DockerSession {
    fn start(engine: Arc<Inner>, case: &Case) -> Result<DockerSession, DriverError> {
        let Some((init, image_layers)) = case.lowers.split_last() else {
            return Err(DriverError::Io(
                "a Docker case has the -init layer on top".into(),
            ));
        };
        if *init != engine.init {
            return Err(DriverError::Io(
                "the case's top lower layer is not this engine's -init layer".into(),
            ));
        }
        if let Some(why) = unrepresentable(case) {
            return Err(DriverError::Io(why));
        }
        let mut s = DockerSession {
            engine,
            profile: case.profile.clone(),
            worker: None,
            containers: Vec::new(),
            images: Vec::new(),
            container: String::new(),
            committed: false,
            image_layers: image_layers.len(),
        };
        let image = s.engine.load(image_layers)?;
        s.images.push(image.clone());
        s.run_container_of(&image)?;
        Ok(s)
    }

    /// Creates a container of `image` and mounts it in a worker.
    fn run_container_of(&mut self, image: &str) -> Result<(), DriverError> {
        let (id, layer) = self.engine.create(image)?;
        self.containers.push(id.clone());
        self.container = id;
        self.worker = Some(self.engine.attach(&layer, &self.profile)?);
        Ok(())
    }

    fn worker(&mut self) -> Result<&mut WorkerSession, DriverError> {
        self.worker
            .as_mut()
            .ok_or_else(|| DriverError::Io("the container is not mounted".into()))
    }

    /// `docker commit`, then a container of the committed image, mounted:
    /// the committed image's id and whether the commit added a layer (an
    /// empty diff adds none: moby `image.NewChildImage` records an empty
    /// layer in the history only).
    fn commit(&mut self) -> Result<(String, bool), DriverError> {
        if let Some(w) = self.worker.take() {
            Box::new(w).finish()?;
        }
        let (image, layers) = self.engine.commit(&self.container)?;
        let below = std::mem::replace(&mut self.image_layers, layers);
        self.images.push(image.clone());
        self.run_container_of(&image)?;
        Ok((image, layers > below))
    }
}

impl Session for DockerSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        match step.op {
            Op::Commit if std::mem::take(&mut self.committed) => Ok(Outcome::OK),
            Op::Commit => self.commit().map(|_| Outcome::OK),
            _ => self.worker()?.apply(step),
        }
    }

    fn merged_view(&mut self) -> Result<View, DriverError> {
        self.worker()?.merged_view()
    }

    fn upper_view(&mut self) -> Result<Option<View>, DriverError> {
        self.worker()?.upper_view()
    }

    fn lower_views(&mut self) -> Result<Vec<View>, DriverError> {
        self.worker()?.lower_views()
    }

    fn kernel_view(&mut self) -> Result<Result<View, Errno>, DriverError> {
        Err(DriverError::Io(
            "no kernel view of an engine's store: the engine's own mount is the kernel's".into(),
        ))
    }

    /// The engine's commit: its diff of the container layer (the committed
    /// image's top layer tar) and the merged tree of a container on the
    /// committed image. The next `commit` step keeps this stack.
    fn export(&mut self) -> Result<Option<Export>, DriverError> {
        let (image, added) = self.commit()?;
        self.committed = true;
        let changeset = if added {
            self.engine.layer_tars(&image)?.and_then(|tars| {
                let top = tars.last().ok_or("the committed image has no layer")?;
                ovlcheck_driver::oci::read(top)
            })
        } else {
            Ok(View::default())
        };
        let merged = match &changeset {
            Ok(_) => Some(self.merged_view()?),
            Err(_) => None,
        };
        Ok(Some(Export {
            method: self.engine.method,
            changeset,
            merged,
            xattrs: TarXattrs::Capability,
        }))
    }

    fn finish(mut self: Box<Self>) -> Result<(), DriverError> {
        self.cleanup()
    }

    /// `docker commit` goes through the layer tar (moby
    /// daemon/images `CommitImage`: the container's `TarStream`, then
    /// `Register`, which applies it as a new layer).
    fn commit_tar(&self) -> Option<TarXattrs> {
        Some(TarXattrs::Capability)
    }
}

impl DockerSession {
    /// Unmounts, then removes the case's containers and images (newest
    /// first), the first error reported.
    fn cleanup(&mut self) -> Result<(), DriverError> {
        let mut first = self.worker.take().map_or(Ok(()), |w| Box::new(w).finish());
        for c in std::mem::take(&mut self.containers).iter().rev() {
            let r = self.engine.remove_container(c);
            first = first.and(r);
        }
        for i in std::mem::take(&mut self.images).iter().rev() {
            let r = self.engine.remove_image(i);
            first = first.and(r);
        }
        first
    }
}

impl Drop for DockerSession {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
