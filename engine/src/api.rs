//! The flow both engines share (docs/engines.md): a case's lower layers
//! go in as an image archive (`POST /images/load`, so the engine's own
//! apply code unpacks every layer), a container is created on it and
//! never started, and a worker mounts the container's layers exactly as
//! the engine's overlay driver would (the store's `lower` file and the
//! driver's options) to run the ops. The engine's `POST /commit` makes the
//! changeset and the new layer, `GET /images/{id}/get` gives its tar back,
//! and a container created on the committed image shows the merged tree of
//! the applied layer. What differs between engines is data: a `Flavor`
//! (`docker.rs`, `podman.rs`).

use crate::archive;
use crate::daemon::{Daemon, Program};
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, ImportImageOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use bollard::Docker;
use futures_util::TryStreamExt;
use ovlcheck_case::layer::DEFAULT_MTIME;
use ovlcheck_case::oci::{DiffMethod, NaiveCompare, TarCommit, TarXattrs};
use ovlcheck_case::{Case, Errno, LayerSpec, Op, Outcome, Profile, Step, View};
use ovlcheck_driver::pack::split_view;
use ovlcheck_driver::store::MarkerNames;
use ovlcheck_driver::{
    Backend, BackendKind, BackendOptions, CaseRun, DriverError, EngineStack, Export, PackSession,
    PooledBackend, Session, StackLayers, Wants, WorkerSession,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The xattr namespace of overlay markers for a rootful engine.
const TRUSTED: &str = "trusted.overlay.";
/// The command of every container: never run (containers are only
/// created), but the API wants one.
const NEVER_RUN: &str = "/ovlcheck-never-started";

/// What one engine does its own way, as data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flavor {
    /// The backend this engine is.
    pub kind: BackendKind,
    /// The engine in messages (`Docker`, `podman`).
    pub name: &'static str,
    /// The private daemon, and where a running one is found.
    pub program: Program,
    /// The storage driver the engine must report (`Driver` of `GET
    /// /info`).
    pub driver: &'static str,
    /// The driver's home below the engine's root (`DockerRootDir` of `GET
    /// /info`): `overlay2` for Docker, `overlay` for containers/storage.
    pub home: &'static str,
    /// The options the driver mounts a container with besides the
    /// directories.
    pub options: &'static [&'static str],
    /// Whether every container gets an `-init` layer between its image
    /// and its container layer (`<layer>-init` in the store).
    pub init_layer: bool,
    /// Which xattrs the engine's commit tars carry.
    pub tar_xattrs: TarXattrs,
    /// The mode the engine gives the root (`diff/`) of every layer
    /// whatever its tar says, when it is not a case's 0755
    /// (model/src/build.rs): the roots of a container's stack are set to
    /// 0755 before the ops run, as the `-init` layer's mtimes are
    /// normalized.
    pub layer_root_mode: Option<u32>,
    /// The mode of a whiteout's `.wh.NAME` entry in the engine's commit
    /// tars; read back as the model writes it (0600, the store's native
    /// diff), any other mode left to show.
    pub whiteout_mode: u32,
    /// Whether loading an image, committing and removing one must not
    /// overlap: the engine reuses a stored layer of the same diff for a
    /// loaded or committed one, and a concurrent removal can take it away
    /// in between.
    pub serial_images: bool,
    /// The most layers of an image the engine takes (moby layer store
    /// `maxLayerDepth`: `docker load` of a deeper image fails with "max
    /// depth exceeded"); `None` for no limit of the engine's own.
    pub max_layers: Option<usize>,
    /// Whether `driver_status` must not report `Using metacopy: true`:
    /// the driver would mount with `metacopy=on`, which the default
    /// profile does not describe.
    pub refuse_metacopy: bool,
}

impl Flavor {
    /// How the engine's commit makes the new stack: its tar's xattrs, and
    /// its `-init` layer kept above the committed layer (a container of
    /// the committed image gets a fresh one above the image's layers;
    /// moby daemon `create`).
    pub(crate) fn tar_commit(&self) -> TarCommit {
        TarCommit {
            xattrs: self.tar_xattrs,
            init_layer: self.init_layer,
            differ: None,
            // moby's `ChangesDirs`, where Docker's overlay2 diffs naively;
            // podman runs only where its store diffs natively (its copy of
            // `ChangesDirs` compares more: docs/engines.md, "The naive
            // differ").
            naive: NaiveCompare::Times,
        }
    }
}

/// An engine as a backend. Cloning shares the engine connection.
#[derive(Clone)]
pub(crate) struct EngineBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    flavor: Flavor,
    runtime: tokio::runtime::Runtime,
    docker: Docker,
    /// The driver's store (`<root>/overlay2`, `<graphroot>/overlay`).
    home: PathBuf,
    /// Whether the engine's diff is native (`Native Overlay Diff` in its
    /// driver status) or naive.
    method: DiffMethod,
    /// The `-init` layer of a container, as the engine makes it (with the
    /// mtimes of its files set to [`DEFAULT_MTIME`], docs/engines.md);
    /// `None` for an engine without one.
    init: Option<LayerSpec>,
    /// Worker processes that mount the engine's layers.
    workers: PooledBackend,
    /// Held over loads, commits and image removals when
    /// [`Flavor::serial_images`].
    images: std::sync::Mutex<()>,
    /// Declared last: the private daemon stops after everything above.
    daemon: Daemon,
}

impl std::fmt::Debug for EngineBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.inner.flavor.name)
            .field("socket", &self.inner.daemon.socket)
            .field("home", &self.inner.home)
            .finish()
    }
}

fn io(what: &str) -> impl Fn(bollard::errors::Error) -> DriverError + '_ {
    move |e| DriverError::Io(format!("engine {what}: {e}"))
}

/// The features the `default` profile has off that the overlay module
/// turns on by default (`/sys/module/overlay/parameters/`) and that
/// `options` do not turn off; `None` when every one is off. Not
/// `redirect_dir` where the engine's profile follows it
/// (`follows_redirect`: `ovlcheck_driver::support::engine_profile`).
pub(crate) fn module_default_differs(options: &[&str], follows_redirect: bool) -> Option<String> {
    for feature in ["index", "redirect_dir", "metacopy", "xino_auto"] {
        if follows_redirect && feature == "redirect_dir" {
            continue;
        }
        let option = feature.trim_end_matches("_auto");
        if options.iter().any(|o| o.starts_with(&format!("{option}="))) {
            continue;
        }
        let param = format!("/sys/module/overlay/parameters/{feature}");
        let value = std::fs::read_to_string(&param).unwrap_or_default();
        if value.trim() == "Y" {
            return Some(format!("{param} is Y"));
        }
    }
    None
}

/// A `driver_status` entry (`[name, value]` pairs) of `GET /info`.
fn status_says(status: &[Vec<String>], name: &str, value: &str) -> bool {
    status.iter().any(|kv| {
        kv.first().map(String::as_str) == Some(name) && kv.get(1).map(String::as_str) == Some(value)
    })
}

impl EngineBackend {
    /// Connects to the engine at `socket` (or the one its clients'
    /// variable names), or starts a private one; checks that it stores
    /// with `flavor.driver` and learns its `-init` layer if it has one.
    pub(crate) fn new(
        flavor: Flavor,
        socket: Option<&str>,
        opts: BackendOptions,
    ) -> Result<EngineBackend, DriverError> {
        let daemon = Daemon::connect_or_start_program(flavor.program, socket)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DriverError::Io(format!("tokio runtime: {e}")))?;
        let path = daemon.socket.display().to_string();
        let name = flavor.name;
        let docker = runtime
            .block_on(async {
                let d = Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)?;
                d.negotiate_version().await
            })
            .map_err(|e| {
                DriverError::Environment(format!("no {name} engine answers at {path}: {e}"))
            })?;
        let info = runtime.block_on(docker.info()).map_err(io("info"))?;
        if info.driver.as_deref() != Some(flavor.driver) {
            return Err(DriverError::Environment(format!(
                "the {name} engine at {path} stores with {:?}, not {}",
                info.driver.unwrap_or_default(),
                flavor.driver
            )));
        }
        let status = info.driver_status.unwrap_or_default();
        if flavor.refuse_metacopy && status_says(&status, "Using metacopy", "true") {
            return Err(DriverError::Environment(format!(
                "the {name} engine at {path} mounts with metacopy=on: no profile ovlcheck runs \
                 on an engine describes it"
            )));
        }
        if let Some(why) =
            module_default_differs(flavor.options, flavor.kind == BackendKind::Docker)
        {
            return Err(DriverError::Environment(format!(
                "{name} mounts with the overlay module's defaults, and {why}: no profile \
                 ovlcheck runs on an engine would describe its mounts"
            )));
        }
        let native = status_says(&status, "Native Overlay Diff", "true");
        let root = info
            .docker_root_dir
            .ok_or_else(|| DriverError::Io(format!("{name} info gives no DockerRootDir")))?;
        let mut inner = Inner {
            flavor,
            runtime,
            docker,
            home: Path::new(&root).join(flavor.home),
            method: if native {
                DiffMethod::Native
            } else {
                DiffMethod::Naive
            },
            init: None,
            workers: PooledBackend::new(ovlcheck_driver::proto::Mounter::Kernel, opts),
            images: std::sync::Mutex::new(()),
            daemon,
        };
        if flavor.init_layer {
            inner.init = Some(inner.observe_init()?);
        }
        Ok(EngineBackend {
            inner: Arc::new(inner),
        })
    }

    /// The `-init` layer every container of this engine gets (normalized
    /// mtimes), as a case layer; `None` when the engine has none.
    pub(crate) fn init_layer(&self) -> Option<&LayerSpec> {
        self.inner.init.as_ref()
    }

    /// The driver's store.
    pub(crate) fn store_home(&self) -> &Path {
        &self.inner.home
    }

    /// Whether the engine's diff is native.
    /// The engine calls one case makes, with nothing mounted, run, observed
    /// or judged: load the image, create a container, commit it, save the
    /// committed image when the commit added a layer (as the export does),
    /// create a container of it, remove everything. The
    /// yardstick of the backend's own cost (engine/benches/engines.rs).
    pub(crate) fn engine_calls_only(&self, case: &Case) -> Result<(), DriverError> {
        let e = &self.inner;
        let kept = usize::from(e.init.is_some());
        let image_layers = &case.lowers[..case.lowers.len().saturating_sub(kept)];
        let image = e.load(image_layers)?;
        let (first, _) = e.create(&image)?;
        let (committed, layers) = e.commit(&first)?;
        if layers > image_layers.len() {
            e.layer_tars(&committed)?.map_err(DriverError::Io)?;
        }
        let (second, _) = e.create(&committed)?;
        e.remove_container(&second)?;
        e.remove_container(&first)?;
        e.remove_image(&committed)?;
        e.remove_image(&image)
    }

    pub(crate) fn diff_method(&self) -> DiffMethod {
        self.inner.method
    }
}

impl Inner {
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The image lock, when the engine needs one ([`Flavor::serial_images`]).
    fn images_lock(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.flavor
            .serial_images
            .then(|| self.images.lock().unwrap_or_else(|e| e.into_inner()))
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
        let _serial = self.images_lock();
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
                "{} load did not load {id}: {}",
                self.flavor.name,
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
        if let Some(mode) = self.flavor.layer_root_mode {
            let dirs = data.get("LowerDir").into_iter().flat_map(|l| l.split(':'));
            for dir in dirs.chain(data.get("UpperDir").map(String::as_str)) {
                normalize_root(Path::new(dir), mode)?;
            }
        }
        if self.flavor.init_layer {
            normalize_init(&self.home.join(format!("{layer}-init")).join("diff"))?;
        }
        Ok((created.id, layer))
    }

    /// Commits container `id`: the new image's id and how many layers it
    /// has.
    fn commit(&self, id: &str) -> Result<(String, usize), DriverError> {
        let options = CommitContainerOptionsBuilder::default()
            .container(id)
            .pause(false)
            .build();
        // A commit stores a layer too (an empty diff reuses the empty
        // layer a removal may be taking away).
        let serial = self.images_lock();
        let r = self
            .block(
                self.docker
                    .commit_container(options, ContainerConfig::default()),
            )
            .map_err(io("commit"))?;
        drop(serial);
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
        // podman's compat API takes a bare 64-hex id for a name and
        // refuses it; both engines take the digest form.
        let id = &match id.contains(':') {
            true => id.to_string(),
            false => format!("sha256:{id}"),
        };
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        let _serial = self.images_lock();
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

    /// `changeset` (an engine's commit tar) with the `.wh.NAME` entries of
    /// the engine's [`Flavor::whiteout_mode`] given the model's 0600.
    fn whiteouts_as_model(&self, mut changeset: View) -> View {
        for (path, node) in changeset.nodes.iter_mut() {
            let name = path.rsplit('/').next().unwrap_or(path);
            if name.starts_with(".wh.")
                && !name.starts_with(".wh..wh.")
                && node.mode == self.flavor.whiteout_mode
            {
                node.mode = 0o600;
            }
        }
        changeset
    }

    /// Mounts container layer `layer` in a worker.
    fn attach(&self, layer: &str, profile: &Profile) -> Result<WorkerSession, DriverError> {
        self.workers.attach(&EngineStack {
            layers: StackLayers::Overlay2 {
                home: self.home.clone(),
                container: layer.to_string(),
            },
            profile: profile.clone(),
            options: self.flavor.options.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// A case layer as an OCI layer tar: written into a scratch directory
/// and tarred by the store's native `Diff` (kernel whiteouts and opaque
/// directories become `.wh.` entries).
pub(crate) fn layer_tar(spec: &LayerSpec) -> Result<Vec<u8>, DriverError> {
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

/// Sets the root of a layer (`dir`, its `diff/`) from the engine's
/// `engine_mode` to a case layer root's 0755 (model/src/build.rs); a root
/// already changed (by a commit of a case that changed it) is left alone.
fn normalize_root(dir: &Path, engine_mode: u32) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| DriverError::Io(format!("layer root {}: {e}", dir.display()));
    let mode = std::fs::symlink_metadata(dir)
        .map_err(fail)?
        .permissions()
        .mode()
        & 0o7777;
    if mode == engine_mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    Ok(())
}

/// Why `case` cannot go into this engine as it is: what an image layer
/// cannot carry.
pub(crate) fn unrepresentable(
    engine: &str,
    max_layers: Option<usize>,
    data: &[LayerSpec],
    image: &[LayerSpec],
    upper: Option<&LayerSpec>,
) -> Option<String> {
    if !data.is_empty() {
        return Some(format!(
            "{engine} images have no data-only layers (an image layer is an ordinary layer)"
        ));
    }
    if let Some(max) = max_layers.filter(|max| image.len() > *max) {
        return Some(format!(
            "{engine} images have at most {max} layers; the case has {}",
            image.len()
        ));
    }
    if upper.is_some_and(|u| !u.entries.is_empty()) {
        return Some("an engine's container layer starts empty: the case seeds its upper".into());
    }
    for (i, l) in image.iter().enumerate() {
        if l.format == ovlcheck_case::layer::LayerFormat::Escaped {
            return Some(format!(
                "lower {i} is escaped: an OCI layer tar carries no overlay xattrs"
            ));
        }
        let objects = match l.objects() {
            Ok(o) => o,
            Err(e) => return Some(format!("lower {i}: {}", e.message)),
        };
        for o in objects {
            let m = &o.markers;
            if m.redirect.is_some()
                || m.xwhiteout
                || m.metacopy
                || m.opaque.is_some_and(|c| c != 'y')
            {
                return Some(format!(
                    "lower {i} has {}: an OCI layer has only whiteouts and opaque directories",
                    o.path
                ));
            }
            if !o.flags.is_empty() {
                return Some(format!(
                    "lower {i} gives {} inode flags ({}): an OCI layer tar carries none",
                    o.path, o.flags
                ));
            }
            if let Some(name) = o.xattrs.keys().find(|k| ovlcheck_case::acl::is_acl_name(k)) {
                return Some(format!(
                    "lower {i} gives {} `{name}`: the image layer tars made here carry no POSIX \
                     ACLs",
                    o.path
                ));
            }
        }
    }
    None
}

/// The public backend of one engine: a wrapper around an [`EngineBackend`]
/// (`docker.rs`, `podman.rs`) whose every call goes to the shared flow.
macro_rules! engine_backend {
    ($wrapper:ty) => {
        impl $wrapper {
            /// The engine's overlay driver store (its `l/` links and layer
            /// directories).
            pub fn store_home(&self) -> &std::path::Path {
                self.0.store_home()
            }

            /// Whether the engine's diff is native or naive.
            pub fn diff_method(&self) -> ovlcheck_case::oci::DiffMethod {
                self.0.diff_method()
            }

            /// The engine calls of one case alone, nothing mounted or
            /// judged: the yardstick of engine/benches/engines.rs.
            pub fn engine_calls_only(
                &self,
                case: &ovlcheck_case::Case,
            ) -> Result<(), ovlcheck_driver::DriverError> {
                self.0.engine_calls_only(case)
            }
        }

        impl ovlcheck_driver::Backend for $wrapper {
            fn kind(&self) -> ovlcheck_driver::BackendKind {
                self.0.kind()
            }

            fn start(
                &self,
                case: &ovlcheck_case::Case,
            ) -> Result<Box<dyn ovlcheck_driver::Session>, ovlcheck_driver::DriverError> {
                self.0.start(case)
            }

            fn adapt_case(
                &self,
                case: &ovlcheck_case::Case,
            ) -> Result<ovlcheck_case::Case, String> {
                self.0.adapt_case(case)
            }

            fn run_pack(
                &self,
                cases: &[ovlcheck_case::Case],
                wants: &[ovlcheck_driver::Wants],
            ) -> Result<Vec<ovlcheck_driver::CaseRun>, ovlcheck_driver::DriverError> {
                self.0.run_pack(cases, wants)
            }

            fn packs(&self) -> bool {
                self.0.packs()
            }
        }
    };
}
pub(crate) use engine_backend;

/// Why engine `name` does not run `case`: it has an `offline` step, and
/// an engine's image layers are its own to change.
pub(crate) fn offline_refused(name: &str, case: &Case) -> Option<String> {
    case.steps
        .iter()
        .any(|s| matches!(s.op, ovlcheck_case::Op::Offline { .. }))
        .then(|| {
            format!(
                "{name}'s image layers are its own: a case's offline change to them is not made"
            )
        })
}

impl Backend for EngineBackend {
    fn kind(&self) -> BackendKind {
        self.inner.flavor.kind
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        EngineSession::start(Arc::clone(&self.inner), case).map(|s| Box::new(s) as Box<dyn Session>)
    }

    /// The cases in one container: one image load, one container, one
    /// commit for the pack, where a case alone costs each of them.
    fn run_pack(&self, cases: &[Case], wants: &[Wants]) -> Result<Vec<CaseRun>, DriverError> {
        let mut s = EngineSession::start_pack(Arc::clone(&self.inner), cases)?;
        let runs = CaseRun::collect_pack(&mut s, cases, wants)?;
        Box::new(s).finish()?;
        Ok(runs)
    }

    fn packs(&self) -> bool {
        true
    }

    /// The case's lowers as image layers (at least one: an image has a
    /// layer), then the engine's `-init` layer if it has one as the top
    /// lower (kept when the case already ends with it).
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        if let Some(why) = offline_refused(self.inner.flavor.name, case) {
            return Err(why);
        }
        match &self.inner.init {
            Some(init) if c.lowers.last() == Some(init) => {}
            init => {
                let f = &self.inner.flavor;
                if let Some(why) =
                    unrepresentable(f.name, f.max_layers, &c.data, &c.lowers, c.upper.as_ref())
                {
                    return Err(why);
                }
                if self.inner.method == DiffMethod::Naive {
                    if let Some(why) = crate::naive_apply::unlike_their_tars(&c.lowers) {
                        return Err(why);
                    }
                }
                if c.lowers.is_empty() {
                    // An image has at least one layer: an empty one.
                    c.lowers.push(LayerSpec::default());
                }
                c.lowers.extend(init.iter().cloned());
            }
        }
        Ok(c)
    }
}

/// One case in an engine's container.
struct EngineSession {
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
    /// How many cases share the container (0: one case alone).
    packed: usize,
    /// After a commit through a naive differ, the time the clock must
    /// pass before the next op ([`EngineSession::wait_for_the_clock`]).
    clock_past: Option<SystemTime>,
}

impl EngineSession {
    fn start(engine: Arc<Inner>, case: &Case) -> Result<EngineSession, DriverError> {
        let image_layers = match &engine.init {
            Some(want) => match case.lowers.split_last() {
                Some((init, below)) if init == want => below,
                _ => {
                    return Err(DriverError::Io(
                        "the case's top lower layer is not this engine's -init layer".into(),
                    ))
                }
            },
            None if case.lowers.is_empty() => {
                return Err(DriverError::Io(
                    "an engine's case has an image layer at least".into(),
                ))
            }
            None => &case.lowers[..],
        };
        let f = &engine.flavor;
        if let Some(why) = unrepresentable(
            f.name,
            f.max_layers,
            &case.data,
            image_layers,
            case.upper.as_ref(),
        ) {
            return Err(DriverError::Io(why));
        }
        EngineSession::open(engine, &case.profile, image_layers, 0)
    }

    /// A pack of `cases` (each as [`Backend::adapt_case`] made it, the
    /// engine's `-init` layer its top lower) in one container
    /// ([`ovlcheck_driver::pack`]): the image is the pack's layers, each
    /// case's copy of the `-init` layer beneath its directory (the case
    /// sees it there as it sees the engine's own at the root alone), and
    /// every container layer made for the pack gets the cases' directories
    /// before it is mounted.
    fn start_pack(engine: Arc<Inner>, cases: &[Case]) -> Result<EngineSession, DriverError> {
        let pack = ovlcheck_driver::pack::combine(cases).map_err(DriverError::Io)?;
        let f = &engine.flavor;
        if let Some(why) = unrepresentable(f.name, f.max_layers, &pack.data, &pack.lowers, None) {
            return Err(DriverError::Io(why));
        }
        EngineSession::open(engine, &pack.profile, &pack.lowers, cases.len())
    }

    /// Loads an image of `image_layers` and mounts a container of it;
    /// `packed` cases share it when not 0.
    fn open(
        engine: Arc<Inner>,
        profile: &Profile,
        image_layers: &[LayerSpec],
        packed: usize,
    ) -> Result<EngineSession, DriverError> {
        let mut s = EngineSession {
            engine,
            profile: profile.clone(),
            worker: None,
            containers: Vec::new(),
            images: Vec::new(),
            container: String::new(),
            committed: false,
            image_layers: image_layers.len(),
            packed,
            clock_past: None,
        };
        let image = s.engine.load(image_layers)?;
        s.images.push(image.clone());
        s.run_container_of(&image)?;
        Ok(s)
    }

    /// Creates a container of `image` and mounts it in a worker; in a pack,
    /// its container layer gets every case's directory first, as a mount
    /// root is a directory of the container layer.
    fn run_container_of(&mut self, image: &str) -> Result<(), DriverError> {
        let (id, layer) = self.engine.create(image)?;
        self.containers.push(id.clone());
        self.container = id;
        if self.packed > 0 {
            let diff = self.engine.home.join(&layer).join("diff");
            make_case_dirs(&diff, self.packed)?;
        }
        self.worker = Some(self.engine.attach(&layer, &self.profile)?);
        Ok(())
    }

    fn worker(&mut self) -> Result<&mut WorkerSession, DriverError> {
        self.worker
            .as_mut()
            .ok_or_else(|| DriverError::Io("the container is not mounted".into()))
    }

    /// The engine's commit, then a container of the committed image,
    /// mounted: the committed image's id and whether the commit added a
    /// layer (Docker adds none for an empty diff: moby
    /// `image.NewChildImage` records an empty layer in the history only;
    /// podman adds an empty one, docs/engines.md, "podman").
    fn commit(&mut self) -> Result<(String, bool), DriverError> {
        if let Some(w) = self.worker.take() {
            Box::new(w).finish()?;
        }
        let (image, layers) = self.engine.commit(&self.container)?;
        let below = std::mem::replace(&mut self.image_layers, layers);
        self.images.push(image.clone());
        self.run_container_of(&image)?;
        if self.engine.method == DiffMethod::Naive {
            self.clock_past = Some(next_second(SystemTime::now()));
        }
        Ok((image, layers > below))
    }

    /// Waits, after a commit through a naive differ, until the clock is in
    /// a second later than any time the commit's tar holds. The tar keeps
    /// a time's seconds alone (go-archive `FileInfoHeader`), and the next
    /// commit's `sameFsTime` calls a clock time of that same second equal
    /// to it: the op that sets the clock again would be exported or not
    /// as the clock happened to tick (`oci::differs_by_times`).
    fn wait_for_the_clock(&mut self) {
        if let Some(t) = self.clock_past.take() {
            if let Ok(left) = t.duration_since(SystemTime::now()) {
                std::thread::sleep(left);
            }
        }
    }
}

/// The start of the second after `now`, and a little more: the clock that
/// stamps files (the kernel's coarse clock) lags the one `now` reads by
/// up to a tick.
fn next_second(now: SystemTime) -> SystemTime {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs + 1) + Duration::from_millis(20)
}

impl Session for EngineSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        match step.op {
            Op::Commit if std::mem::take(&mut self.committed) => Ok(Outcome::OK),
            Op::Commit => self.commit().map(|_| Outcome::OK),
            _ => {
                self.wait_for_the_clock();
                self.worker()?.apply(step)
            }
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
            self.engine
                .layer_tars(&image)?
                .and_then(|tars| {
                    let top = tars.last().ok_or("the committed image has no layer")?;
                    ovlcheck_driver::oci::read(top)
                })
                .map(|view| self.engine.whiteouts_as_model(view))
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
            commit: self.engine.flavor.tar_commit(),
        }))
    }

    fn finish(mut self: Box<Self>) -> Result<(), DriverError> {
        self.cleanup()
    }

    /// An engine's commit goes through the layer tar (moby daemon/images
    /// `CommitImage`: the container's `TarStream`, then `Register`, which
    /// applies it as a new layer; buildah's commit: the container layer's
    /// `Diff`, then `PutLayer`).
    fn commit_tar(&self) -> Option<TarCommit> {
        Some(self.engine.flavor.tar_commit())
    }
}

impl PackSession for EngineSession {
    fn begin_pack(&mut self, cases: usize) -> Result<(), DriverError> {
        made_for(self.packed, cases)
    }

    fn enter(&mut self, dir: Option<&str>) -> Result<(), DriverError> {
        self.worker()?.enter(dir)
    }

    /// One commit of the container for the whole pack, cut back into each
    /// case's part ([`export_parts`]).
    fn pack_exports(&mut self, wants: &[Wants]) -> Result<Vec<Option<Export>>, DriverError> {
        Ok(export_parts(self.export()?, wants))
    }
}

/// Each case's part of a pack's export (`None` where `wants[i]` asks for
/// none): its part of the engine's tar, without its directory, which
/// stands for the root (a layer tar never lists its root), and its part
/// of the committed image's merged tree.
pub(crate) fn export_parts(export: Option<Export>, wants: &[Wants]) -> Vec<Option<Export>> {
    let Some(export) = export else {
        return vec![None; wants.len()];
    };
    let part = |i| {
        let changeset = export.changeset.as_ref().map(|v| {
            let mut own = split_view(v, i);
            own.nodes.remove("");
            own
        });
        Export {
            method: export.method,
            changeset: changeset.map_err(Clone::clone),
            merged: export.merged.as_ref().map(|v| split_view(v, i)),
            commit: export.commit,
        }
    };
    wants
        .iter()
        .enumerate()
        .map(|(i, w)| w.export.then(|| part(i)))
        .collect()
}

/// `Ok` when a container made for a pack of `packed` cases runs `cases`.
pub(crate) fn made_for(packed: usize, cases: usize) -> Result<(), DriverError> {
    match cases == packed {
        true => Ok(()),
        false => Err(DriverError::Io(format!(
            "a container made for {packed} cases holds {cases}"
        ))),
    }
}

/// Every case directory of a pack of `cases` in the container layer
/// `diff`, with the attributes a layer root has (0755, root's).
pub(crate) fn make_case_dirs(diff: &Path, cases: usize) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    for i in 0..cases {
        let dir = diff.join(ovlcheck_driver::pack::case_dir(i));
        let fail = |e: std::io::Error| DriverError::Io(format!("{}: {e}", dir.display()));
        std::fs::create_dir(&dir).map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    }
    Ok(())
}

impl EngineSession {
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

impl Drop for EngineSession {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
