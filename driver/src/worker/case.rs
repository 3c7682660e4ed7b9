//! One case on a worker: its overlay2 store on fresh tmpfs mounts, the
//! stack mounted with the chosen [`Mounter`], steps run and trees observed.
//! Runs only inside a worker process (single-threaded, own namespace).

use crate::api::{DriverError, Export, Session};
use crate::mount::{self, MountSpec};
use crate::observe::{self, Snapshot};
use crate::proto::Mounter;
use crate::store::{Layer, LayerStore, MarkerNames};
use crate::{exec, spawn};
use nix::unistd::Pid;
use ovlcheck_case::layer::{Object, ObjectKind};
use ovlcheck_case::oci::{self, DiffMethod};
use ovlcheck_case::{
    Case, Errno as CaseErrno, LayerSpec, LowerFs, OfflineChange, Op, Outcome, Profile, Step, View,
};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The umask of a worker (set once at its start): objects get exactly the
/// modes they are created with, which the stores here rely on.
pub const WORKER_UMASK: u32 = 0;

/// A case's own tmpfs with an empty overlay2 store on it.
pub(super) struct Scratch {
    dir: PathBuf,
    store: LayerStore,
}

impl Scratch {
    /// Mounts a tmpfs (of `size` bytes, when given) on a new directory
    /// `dir` and initialises an overlay2 store in it.
    pub(super) fn new(dir: PathBuf, size: Option<u64>) -> Res<Scratch> {
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        mount::mount_tmpfs(&dir, size).map_err(|e| format!("tmpfs on {}: {e}", dir.display()))?;
        match LayerStore::init(&dir.join("overlay2"), 0) {
            Ok(s) => Ok(Scratch {
                store: s.known_umask(WORKER_UMASK),
                dir,
            }),
            Err(e) => {
                let _ = mount::unmount(&dir);
                let _ = std::fs::remove_dir(&dir);
                Err(format!("store: {e}"))
            }
        }
    }

    /// Unmounts the tmpfs and removes the directory.
    pub(super) fn discard(self) {
        if mount::unmount(&self.dir).is_err() {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A live mount of the stack.
struct Mounted {
    root: OwnedFd,
    target: PathBuf,
    /// The inodes at mount time; `None` until taken, which happens before
    /// the first step, a lifecycle step included (or in the first merged
    /// view's walk, when no step came first: the tree is then still as
    /// mounted).
    snapshot: Option<Snapshot>,
    daemon: Option<Pid>,
    /// The fds the case's steps hold open (`open P FLAGS as F`).
    fds: exec::FdTable,
    /// In a pack ([`crate::pack`]): the directory the current case's steps
    /// resolve beneath, and the fds earlier cases of the pack left open
    /// (closed at the unmount, as a case's own are).
    within: Option<OwnedFd>,
    parked: Vec<exec::FdTable>,
    /// The upper and top lower directories, whose fsids a `statfs` needs.
    fsid_dirs: [Option<PathBuf>; 2],
    /// Their fsids, taken at the first `statfs` of the mount.
    fsids: Option<exec::LayerFsids>,
}

/// One case's store and mount: the worker's [`Session`].
pub struct MountedCase {
    dir: PathBuf,
    /// Mounts made for this case (tmpfs, idmapped binds of layer
    /// directories), outermost first.
    tmpfs: Vec<PathBuf>,
    /// With the `idmapped` option, each layer directory as it is below its
    /// idmapped mount, by layer id (driver/src/idmapped.rs).
    raw_dirs: std::collections::BTreeMap<String, OwnedFd>,
    store: LayerStore,
    profile: Profile,
    mounter: Mounter,
    /// Data-only layers (a case's `data` sections), bottom first: base
    /// layers of the store that no `lower` file names, mounted after `::`.
    data: Vec<Layer>,
    /// Image layers, bottom first.
    lowers: Vec<Layer>,
    container: Layer,
    mounted: Option<Mounted>,
    /// How the last mount was made.
    method: String,
    /// Why nothing is mounted: a lifecycle mount failed, or the kernel
    /// view ended the mount.
    broken: Option<String>,
    /// The number of cases when this mount holds a pack of them
    /// ([`crate::pack`]): a commit gives each its directory in the fresh
    /// container layer.
    packed: usize,
    /// The engine's mount when the layers are an engine's
    /// ([`MountedCase::attach`]): then the layers are the engine's, the
    /// mount point is in the case's scratch, and commits and exports are
    /// the engine's to make.
    engine: Option<EngineMount>,
}

/// How an engine mounts the stack a case was attached to.
struct EngineMount {
    /// The overlay options besides the directories.
    options: Vec<String>,
    /// The layer directories when the engine names them one by one
    /// ([`crate::api::StackLayers::Dirs`]); `None`: the store's own
    /// (an overlay2 store).
    dirs: Option<crate::api::StackDirs>,
}

type Res<T> = Result<T, String>;

mod pack;

fn io_str(e: std::io::Error) -> String {
    e.to_string()
}

impl MountedCase {
    /// Builds `case`'s layers in `scratch` and mounts them.
    pub(super) fn start(scratch: Scratch, case: &Case, mounter: Mounter) -> Res<MountedCase> {
        let Scratch { dir, store } = scratch;
        let mut s = MountedCase::unmounted(dir, store, case.profile.clone(), mounter, None);
        match s.build(case).and_then(|_| s.mount().map_err(|e| e.message)) {
            Ok(()) => Ok(s),
            Err(e) => {
                s.teardown();
                Err(e)
            }
        }
    }

    /// A case in `dir` with no layers yet and nothing mounted.
    fn unmounted(
        dir: PathBuf,
        store: LayerStore,
        profile: Profile,
        mounter: Mounter,
        engine: Option<EngineMount>,
    ) -> MountedCase {
        MountedCase {
            dir: dir.clone(),
            tmpfs: vec![dir],
            raw_dirs: Default::default(),
            store,
            profile,
            mounter,
            data: Vec::new(),
            lowers: Vec::new(),
            container: Layer {
                id: String::new(),
                link: String::new(),
                lower: Vec::new(),
            },
            mounted: None,
            method: String::new(),
            broken: None,
            packed: 0,
            engine,
        }
    }

    /// Mounts the container layer of an engine's store (`stack`) with the
    /// kernel's overlay and the engine's options, on `merged` in
    /// `scratch`: the engine's own directories are read and written, never
    /// created or removed here.
    pub(super) fn attach(scratch: Scratch, stack: &crate::api::EngineStack) -> Res<MountedCase> {
        use crate::api::StackLayers;
        let Scratch { dir, store } = scratch;
        let (store, opened, dirs) = match &stack.layers {
            StackLayers::Overlay2 { home, container } => {
                let store = LayerStore::init(home, 0).map_err(|e| format!("engine store: {e}"))?;
                let opened = store
                    .open(container)
                    .and_then(|c| {
                        let lowers = c
                            .lower
                            .iter()
                            .rev()
                            .map(|entry| store.open(&layer_id_of(&store, entry)?))
                            .collect::<std::io::Result<Vec<_>>>()?;
                        Ok(Some((c, lowers)))
                    })
                    .map_err(|e| format!("engine layer {container}: {e}"));
                (store, opened, None)
            }
            // The scratch store stays empty: the mount and the views use
            // the engine's directories.
            StackLayers::Dirs(dirs) => (store, Ok(None), Some(dirs.clone())),
        };
        let engine = Some(EngineMount {
            options: stack.options.clone(),
            dirs,
        });
        let mut s =
            MountedCase::unmounted(dir, store, stack.profile.clone(), Mounter::Kernel, engine);
        let mounted = opened.and_then(|layers| {
            if let Some((container, lowers)) = layers {
                (s.container, s.lowers) = (container, lowers);
            }
            s.mount().map_err(|e| e.message)
        });
        match mounted {
            Ok(()) => Ok(s),
            Err(e) => {
                s.teardown();
                Err(e)
            }
        }
    }

    /// The engine's own layer directories, when it names them one by one.
    fn engine_dirs(&self) -> Option<&crate::api::StackDirs> {
        self.engine.as_ref().and_then(|e| e.dirs.as_ref())
    }

    /// Where the stack is mounted: the container layer's `merged/`, or for
    /// an engine's store a directory of the case's scratch.
    fn target(&self) -> PathBuf {
        match self.engine {
            Some(_) => self.dir.join("merged"),
            None => self.store.merged(&self.container),
        }
    }

    fn markers(&self) -> MarkerNames {
        MarkerNames {
            prefix: self.profile.xattr_prefix(),
        }
    }

    fn fill(&self, layer: &Layer, spec: &LayerSpec) -> Res<()> {
        let objects = spec
            .objects()
            .map_err(|e| format!("layer spec, entry {}: {}", e.entry, e.message))?;
        let raw = self.raw_dirs.get(&layer.id);
        let written: std::borrow::Cow<[_]> = match raw {
            Some(_) => crate::idmapped::through_mount(&objects).into(),
            None => objects.as_slice().into(),
        };
        crate::store::write_objects_umask(
            &self.store.diff(layer),
            &written,
            &self.markers(),
            self.store.umask(),
        )
        .map_err(io_str)?;
        // Below an idmapped mount, the flags of an inode whose owner the
        // mount does not map are set from beneath it (fileattr_set needs the
        // owner or CAP_FOWNER over the inode).
        let flags_dir = match raw {
            Some(fd) => {
                crate::idmapped::store_unmapped(fd.as_fd(), "diff", &objects).map_err(io_str)?;
                let proc = crate::sys::proc_fd_path(fd);
                PathBuf::from(std::ffi::OsStr::from_bytes(proc.as_bytes())).join("diff")
            }
            None => self.store.diff(layer),
        };
        crate::store::set_inode_flags(&flags_dir, &objects).map_err(io_str)
    }

    /// Data-only layers, image layers bottom first, then the container
    /// layer seeded with the case's upper.
    fn build(&mut self, case: &Case) -> Res<()> {
        for spec in &case.data {
            let layer = self.new_layer(None).map_err(io_str)?;
            self.fill(&layer, spec)?;
            self.data.push(layer);
        }
        for spec in &case.lowers {
            let parent = self.lowers.last().cloned();
            let layer = self.new_layer(parent.as_ref()).map_err(io_str)?;
            self.fill(&layer, spec)?;
            self.lowers.push(layer);
        }
        if self.profile.lower_fs == LowerFs::Overlay {
            let inner = self.inner_overlay()?;
            self.lowers.push(inner);
        }
        self.container = self.new_container().map_err(|e| e.message)?;
        if let Some(up) = &case.upper {
            let c = self.container.clone();
            self.fill(&c, up)?;
        }
        Ok(())
    }

    /// With `lower=overlay`: a base layer whose `diff` is the inner overlay
    /// of the image layers (read-only, `Profile::inner_overlay`), so that
    /// the container layer made above it names it alone in its `lower`
    /// (model/src/nested.rs). A single image layer gets [`EMPTY_LOWER`]
    /// beneath it, as a read-only overlay needs two lower layers.
    fn inner_overlay(&mut self) -> Res<Layer> {
        let home = self.store.home().to_path_buf();
        let top = self
            .lowers
            .last()
            .cloned()
            .ok_or("lower=overlay needs an image layer")?;
        let layer = self.new_layer(None).map_err(io_str)?;
        let mut lowers = vec![format!("{}/{}", crate::store::LINK_DIR, top.link)];
        lowers.extend(top.lower.iter().cloned());
        if lowers.len() < 2 {
            mkdir_mode(&home.join(EMPTY_LOWER), 0o755)?;
            lowers.push(EMPTY_LOWER.to_string());
        }
        let spec = MountSpec {
            lowers,
            data: Vec::new(),
            upper: None,
            work: None,
            target: format!("{}/diff", layer.id),
            options: mount::kernel_options(&self.profile.inner_overlay()),
        };
        mount::mount_kernel(&home, &spec).map_err(|e| format!("mount the inner overlay: {e}"))?;
        self.tmpfs.push(self.store.diff(&layer));
        Ok(layer)
    }

    /// A fresh container layer above the top image layer; on its own tmpfs
    /// (sized when asked) when lowers must be on another filesystem.
    fn new_container(&mut self) -> Result<Layer, MountFailure> {
        self.new_container_above(self.lowers.last().cloned())
    }

    /// [`MountedCase::new_container`] above `parent`.
    fn new_container_above(&mut self, parent: Option<Layer>) -> Result<Layer, MountFailure> {
        let separate = self.profile.lower_fs == LowerFs::Separate;
        let layer = self.create_layer(parent.as_ref(), separate);
        let layer = layer.map_err(|e| MountFailure {
            errno: e.raw_os_error().map(nix::errno::Errno::from_raw),
            message: format!("new container layer: {e}"),
        })?;
        // A base layer has no work/ in overlay2 (it is never mounted); a
        // container layer always needs one (`create` made it above a parent).
        if parent.is_none() {
            mkdir_mode(&self.store.work(&layer), 0o700).map_err(MountFailure::other)?;
        }
        Ok(layer)
    }

    /// A new image layer above `parent` ([`MountedCase::create_layer`] on
    /// the store's filesystem).
    fn new_layer(&mut self, parent: Option<&Layer>) -> std::io::Result<Layer> {
        self.create_layer(parent, false)
    }

    /// Creates a layer above `parent` (overlay2 `create`): on a tmpfs of
    /// its own (of the profile's upper size, when given) when `own_fs`,
    /// and through an idmapped mount of its directory with the `idmapped`
    /// option (driver/src/idmapped.rs). The mounts made, even before a
    /// failure, are the case's to unmount.
    fn create_layer(&mut self, parent: Option<&Layer>, own_fs: bool) -> std::io::Result<Layer> {
        let id = self.store.new_id();
        let size = self.profile.upper_size;
        let idmapped = self.profile.idmapped;
        let mut mounted = Vec::new();
        let mut raw = None;
        let layer = self
            .store
            .create_named_with(&id, parent, &mut |dir: &Path| {
                if own_fs {
                    mount::mount_tmpfs(dir, size).map_err(std::io::Error::from)?;
                    mounted.push(dir.to_path_buf());
                }
                if idmapped {
                    raw = Some(crate::idmapped::raw_dir(dir)?);
                    crate::idmapped::bind(dir)
                        .map_err(|e| annotate_io(e, "idmapped mount of", dir))?;
                    mounted.push(dir.to_path_buf());
                }
                Ok(own_fs || idmapped)
            });
        self.tmpfs.extend(mounted);
        if let Some(fd) = raw {
            self.raw_dirs.insert(id, fd);
        }
        layer
    }

    /// Removes a layer [`MountedCase::create_layer`] made, with the mounts
    /// on its directory.
    fn remove_layer(&mut self, layer: &Layer) -> Res<()> {
        // The fd below the mounts would keep a tmpfs of the layer's own busy.
        self.raw_dirs.remove(&layer.id);
        let dir = self.store.dir(&layer.id);
        while self.tmpfs.last() == Some(&dir) {
            mount::unmount(&dir).map_err(|e| format!("umount {}: {e}", dir.display()))?;
            self.tmpfs.pop();
        }
        self.store.remove(layer).map_err(io_str)
    }

    /// Every layer's directory relative to the store home, top first: the
    /// container layer, then the image layers.
    fn all_layers(&self) -> Vec<String> {
        let c = &self.container;
        let mut lowers = vec![format!("{}/diff", c.id)];
        lowers.extend(c.lower.iter().cloned());
        lowers
    }

    /// The data-only layers as a mount names them, top first.
    fn data_dirs(&self) -> Vec<String> {
        self.data
            .iter()
            .rev()
            .map(|l| format!("{}/{}", crate::store::LINK_DIR, l.link))
            .collect()
    }

    /// The stack as the mounter mounts it: read-only profiles have every
    /// layer as a lower, the others the container layer as upper.
    fn spec(&self) -> MountSpec {
        let c = &self.container;
        let options = match (&self.engine, &self.mounter) {
            (Some(engine), _) => engine.options.clone(),
            (None, Mounter::Fuse { .. }) => Vec::new(),
            (None, _) => mount::kernel_options(&self.profile),
        };
        // Relative to the store home, as every mounter takes it; an
        // engine's mount point is outside its store, absolute.
        let target = match self.engine {
            Some(_) => self.target().display().to_string(),
            None => format!("{}/merged", c.id),
        };
        if let Some(dirs) = self.engine_dirs() {
            let text = |p: &Path| p.display().to_string();
            MountSpec {
                lowers: dirs.lowers.iter().map(|p| text(p)).collect(),
                data: Vec::new(),
                upper: Some(text(&dirs.upper)),
                work: Some(text(&dirs.work)),
                target,
                options,
            }
        } else if self.profile.readonly {
            MountSpec {
                lowers: self.all_layers(),
                data: self.data_dirs(),
                upper: None,
                work: None,
                target,
                options,
            }
        } else {
            MountSpec {
                lowers: c.lower.clone(),
                data: self.data_dirs(),
                upper: Some(format!("{}/diff", c.id)),
                work: Some(format!("{}/work", c.id)),
                target,
                options,
            }
        }
    }

    fn mount(&mut self) -> Result<(), MountFailure> {
        let home = self.store.home().to_path_buf();
        let target = self.target();
        mkdir_mode(&target, 0o700).map_err(MountFailure::other)?;
        let mut spec = self.spec();
        if spec.lowers.is_empty() {
            // overlay needs a lowerdir: an empty one stands for "no image".
            mkdir_mode(&home.join(EMPTY_LOWER), 0o755).map_err(MountFailure::other)?;
            spec.lowers.push(EMPTY_LOWER.to_string());
        }
        let daemon = match &self.mounter {
            Mounter::Kernel => {
                let m = mount::mount_kernel(&home, &spec).map_err(|e| MountFailure {
                    errno: Some(e.errno),
                    message: format!("mount: {e}"),
                })?;
                self.method = format!("{m:?}");
                None
            }
            Mounter::Fuse { binary } => {
                Some(spawn::fuse_mount(binary, &home, &spec).map_err(MountFailure::other)?)
            }
            Mounter::Exec { mount, .. } => {
                spawn::exec_mount(mount, &home, &spec).map_err(MountFailure::other)?;
                None
            }
        };
        let tb = target.as_os_str().as_encoded_bytes();
        let root = crate::sys::openat(crate::sys::CWD, tb, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| MountFailure::other(format!("open merged: {e}")))?;
        let fsid_dirs = [
            spec.upper.as_deref().map(|d| home.join(d)),
            spec.lowers.first().map(|d| home.join(d)),
        ];
        self.mounted = Some(Mounted {
            root,
            target,
            snapshot: None,
            daemon,
            fds: exec::FdTable::new(),
            within: None,
            parked: Vec::new(),
            fsid_dirs,
            fsids: None,
        });
        Ok(())
    }

    fn unmount(&mut self) -> Res<()> {
        let Some(m) = self.mounted.take() else {
            return Ok(());
        };
        // Every fd the case holds is closed before the unmount.
        drop(m.fds);
        drop(m.parked);
        drop(m.within);
        drop(m.root);
        match &self.mounter {
            Mounter::Kernel => mount::unmount(&m.target).map_err(|e| format!("umount: {e}"))?,
            Mounter::Fuse { .. } => spawn::fuse_unmount(&m.target, m.daemon)?,
            Mounter::Exec { umount, .. } => {
                spawn::exec_unmount(umount, self.store.home(), &m.target)?
            }
        }
        Ok(())
    }

    /// Unmounts the overlay and every tmpfs of the case, then removes its
    /// directory.
    pub(super) fn teardown(mut self) {
        let _ = std::env::set_current_dir("/");
        self.raw_dirs.clear();
        if let Some(m) = self.mounted.as_mut() {
            m.fds.clear();
            m.parked.clear();
            m.within = None;
        }
        if self.mounter == Mounter::Kernel && self.detach_all() {
            let _ = std::fs::remove_dir(&self.dir);
            return;
        }
        if self.unmount().is_err() {
            if let Some(m) = self.mounted.take() {
                let _ = nix::mount::umount2(&m.target, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for t in self.tmpfs.iter().rev() {
            if mount::unmount(t).is_err() {
                let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// Kernel mounts only (helpers must be stopped their own way): one lazy
    /// unmount of the case's tmpfs takes the overlay and any container
    /// tmpfs along — one RCU grace period for the whole tree instead of one
    /// per umount. Nothing holds a reference into them any more (the root fd
    /// is closed, the cwd is `/`), so every superblock is gone by the time
    /// `umount2` returns (the last `mntput`s run before it goes back to user
    /// space). `false`: nothing was detached, unmount one by one.
    fn detach_all(&mut self) -> bool {
        let Some(outer) = self.tmpfs.first() else {
            return false;
        };
        let target = self.mounted.take().map(|m| m.target);
        if nix::mount::umount2(outer, nix::mount::MntFlags::MNT_DETACH).is_ok() {
            return true;
        }
        if let Some(t) = target {
            let _ = mount::unmount(&t);
        }
        false
    }

    /// The store home (a path in the worker's namespace).
    pub fn store_home(&self) -> String {
        self.store.home().display().to_string()
    }

    /// How the stack was last mounted: `Absolute`, `Relative` or `NewApi`
    /// ([`crate::mount::Method`]) for the kernel, `Helper` otherwise.
    pub fn mount_method(&self) -> String {
        if self.method.is_empty() {
            "Helper".into()
        } else {
            self.method.clone()
        }
    }

    /// An observation of a helper-mounted tree: a helper that died before
    /// it, or during it (a walk that met `ENOTCONN`), is reported as its
    /// death, not as the symptom.
    fn observation<T>(&mut self, walk: impl FnOnce(&mut Self) -> Res<T>) -> Result<T, DriverError> {
        self.helper_alive().map_err(DriverError::Died)?;
        walk(self).map_err(|e| self.error_or_death(e))
    }

    /// A request that failed because the helper died mid-way reports the
    /// death, not the symptom.
    fn error_or_death(&mut self, e: String) -> DriverError {
        match self.helper_alive() {
            Ok(()) => DriverError::Io(e),
            Err(why) => DriverError::Died(why),
        }
    }

    fn mounted_mut(&mut self) -> Res<&mut Mounted> {
        match (&mut self.mounted, &self.broken) {
            (Some(m), _) => Ok(m),
            (None, Some(why)) => Err(format!("nothing mounted: {why}")),
            (None, None) => Err("nothing mounted".into()),
        }
    }

    /// For helper-mounted filesystems (fuse-overlayfs, exec): `Err` when
    /// the daemon exited or the mount no longer answers (`ENOTCONN`,
    /// `ECONNABORTED`), so that a dead backend is reported as such rather
    /// than as op outcomes.
    fn helper_alive(&mut self) -> Result<(), String> {
        if self.mounter == Mounter::Kernel {
            return Ok(());
        }
        let Some(m) = self.mounted.as_mut() else {
            return Ok(());
        };
        let name = match &self.mounter {
            Mounter::Fuse { .. } => "fuse-overlayfs",
            _ => "the exec backend's filesystem",
        };
        if let Some(pid) = m.daemon {
            match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
                Ok(st) => {
                    m.daemon = None;
                    return Err(format!("{name} exited ({st:?})"));
                }
                Err(e) => return Err(format!("{name}: waitpid: {e}")),
            }
        }
        // An open, not a stat: FUSE may answer a stat from its attribute
        // cache after the daemon is gone.
        let tb = m.target.as_os_str().as_encoded_bytes();
        match crate::sys::openat(crate::sys::CWD, tb, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            Err(e @ (nix::errno::Errno::ENOTCONN | nix::errno::Errno::ECONNABORTED)) => {
                Err(format!("{name} no longer answers ({e})"))
            }
            _ => Ok(()),
        }
    }

    /// The mount-time walk, made once per mount before its first step: its
    /// lookups are the model's mount (the origins of merged directories,
    /// ovl_fix_origin), and it gives the inode snapshot.
    fn walk_once(&mut self) -> Res<&mut Mounted> {
        let m = self.mounted_mut()?;
        if m.snapshot.is_none() {
            m.snapshot = Some(observe::snapshot(&m.target)?);
        }
        Ok(m)
    }

    fn run_op(&mut self, step: &Step) -> Res<Outcome> {
        let m = self.walk_once()?;
        let fsids = match (&step.op, m.fsids) {
            (Op::Statfs { .. }, None) => *m.fsids.insert(layer_fsids(&m.fsid_dirs)?),
            (_, fsids) => fsids.unwrap_or_default(),
        };
        let root = m.within.as_ref().unwrap_or(&m.root);
        exec::apply_as(root, &mut m.fds, &step.op, step.cred(), &fsids)
    }

    /// Unmount (`pre` may change the layers), mount again. For the kernel
    /// backend a failing `pre` (a commit without room) or mount is the
    /// step's outcome; after a failing `pre` the same layers are mounted
    /// again.
    fn lifecycle(
        &mut self,
        pre: impl FnOnce(&mut Self) -> Result<(), MountFailure>,
    ) -> Result<Outcome, DriverError> {
        let mut outcomes = self.lifecycle_each(|s| vec![pre(s).err()])?;
        Ok(outcomes.remove(0))
    }

    /// [`MountedCase::lifecycle`] for every case of a pack at once: `pre`
    /// gives each case's failure, and each case gets its outcome.
    fn lifecycle_each(
        &mut self,
        pre: impl FnOnce(&mut Self) -> Vec<Option<MountFailure>>,
    ) -> Result<Vec<Outcome>, DriverError> {
        // A helper that died since the last request would otherwise go
        // unnoticed: the unmount replaces it with a fresh one.
        self.helper_alive().map_err(DriverError::Died)?;
        self.unmount().map_err(DriverError::Io)?;
        let failed = pre(self);
        if let Err(e) = self.mount() {
            self.broken = Some(e.message.clone());
            let outcome = self.failure(e)?;
            return Ok(vec![outcome; failed.len()]);
        }
        failed
            .into_iter()
            .map(|failure| match failure {
                None => Ok(Outcome::OK),
                // The store's own failure (a commit on a full store) has
                // its errno whatever mounts the layers.
                Some(MountFailure { errno: Some(n), .. }) => {
                    Ok(Outcome::Err(CaseErrno::from_code(n as i32)))
                }
                Some(e) => self.failure(e),
            })
            .collect()
    }

    /// Whether the container layer was mounted `volatile` by the kernel
    /// (`volatile` or `fsync=volatile`, with an upper layer: params.c
    /// ignores it without one).
    fn volatile_upper(&self) -> bool {
        self.profile.volatile_upper() && self.engine.is_none() && self.mounter == Mounter::Kernel
    }

    /// A remount of a volatile mount (overlayfs.rst, "Volatile mount"):
    /// the kernel refuses to mount a work dir holding
    /// `work/incompat/volatile` (readdir.c: `ovl_workdir_cleanup_recurse`,
    /// EINVAL), which is the step's outcome. Then the worker does what the
    /// document allows a user who knows the system has not crashed: it
    /// removes that directory and mounts again. A mount that the kernel
    /// does not refuse is the outcome `ok`, which the model's prediction
    /// tells apart.
    fn remount_volatile(&mut self) -> Result<Outcome, DriverError> {
        self.helper_alive().map_err(DriverError::Died)?;
        self.unmount().map_err(DriverError::Io)?;
        let refused = match self.mount() {
            Ok(()) => return Ok(Outcome::OK),
            Err(MountFailure { errno: Some(n), .. }) => n,
            Err(e) => {
                self.broken = Some(e.message.clone());
                return self.failure(e);
            }
        };
        let dir = self.store.work(&self.container).join(VOLATILE_DIR);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            let message = format!("remount: rm -r {}: {e}", dir.display());
            self.broken = Some(message.clone());
            return Err(DriverError::Io(message));
        }
        match self.mount() {
            Ok(()) => Ok(Outcome::Err(CaseErrno::from_code(refused as i32))),
            Err(e) => {
                self.broken = Some(e.message.clone());
                self.failure(e)
            }
        }
    }

    /// A lifecycle failure: the kernel's errno as the outcome, else an error.
    fn failure(&self, e: MountFailure) -> Result<Outcome, DriverError> {
        match (&self.mounter, e.errno) {
            (Mounter::Kernel, Some(n)) => Ok(Outcome::Err(CaseErrno::from_code(n as i32))),
            _ => Err(DriverError::Io(e.message)),
        }
    }

    /// `offline`: `change` made in image layer `layer`'s `diff/` while the
    /// overlay is unmounted (model/src/offline.rs), as `rm -r` or writing a
    /// new file would. The path is walked without following symlinks, so
    /// nothing outside the layer is touched: a parent that is not a
    /// directory of the layer is ENOTDIR, a missing one ENOENT, a file put
    /// over a directory EISDIR; that errno is the step's outcome. In a
    /// pack, the change is made beneath the case's directory `within`.
    fn offline_change(
        &mut self,
        within: Option<&str>,
        layer: usize,
        change: &OfflineChange,
    ) -> Result<(), MountFailure> {
        let l = self
            .lowers
            .get(layer)
            .ok_or_else(|| MountFailure::other(format!("offline: no lower layer {layer}")))?;
        let diff = match within {
            Some(dir) => self.store.diff(l).join(dir),
            None => self.store.diff(l),
        };
        let path = diff.join(change.path().as_string());
        let fail = |errno: nix::errno::Errno, what: &str| MountFailure {
            errno: Some(errno),
            message: format!("offline change of {}: {what}", path.display()),
        };
        let io = |e: std::io::Error| MountFailure {
            errno: e.raw_os_error().map(nix::errno::Errno::from_raw),
            message: format!("offline change of {}: {e}", path.display()),
        };
        let names = change.path().names();
        let mut dir = diff.clone();
        for n in &names[..names.len() - 1] {
            dir.push(n.as_str());
            match std::fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(fail(
                        nix::errno::Errno::ENOTDIR,
                        "a parent is not a directory",
                    ))
                }
                Err(e) => return Err(io(e)),
            }
        }
        let existing = match std::fs::symlink_metadata(&path) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        match change {
            OfflineChange::Remove(_) => match existing {
                None => Err(fail(nix::errno::Errno::ENOENT, "nothing to remove")),
                Some(md) if md.is_dir() => std::fs::remove_dir_all(&path).map_err(io),
                Some(_) => std::fs::remove_file(&path).map_err(io),
            },
            OfflineChange::File {
                path: rel,
                mode,
                data,
            } => {
                match existing {
                    Some(md) if md.is_dir() => {
                        return Err(fail(nix::errno::Errno::EISDIR, "a directory is there"))
                    }
                    Some(_) => std::fs::remove_file(&path).map_err(io)?,
                    None => {}
                }
                let file = Object {
                    path: rel.clone(),
                    kind: ObjectKind::File(data.clone()),
                    mode: *mode,
                    uid: 0,
                    gid: 0,
                    mtime: ovlcheck_case::layer::DEFAULT_MTIME,
                    xattrs: Default::default(),
                    markers: Default::default(),
                    flags: Default::default(),
                };
                crate::store::write_objects_umask(
                    &diff,
                    &[file],
                    &self.markers(),
                    self.store.umask(),
                )
                .map_err(io)
            }
        }
    }

    /// `docker commit`: the container layer becomes the top image layer and
    /// a fresh container layer goes above it (overlay2 `create` writes
    /// `committed` into the parent). A store without room for the new
    /// layer's `link` and `lower` files fails with the kernel's errno
    /// (ENOSPC) and leaves the layers as they were (the store removes the
    /// half-made layer, as overlay2 `create` does).
    fn commit_layers(&mut self) -> Result<(), MountFailure> {
        self.lowers.push(self.container.clone());
        match self.new_container() {
            Ok(c) => {
                self.container = c.clone();
                match self.packed {
                    0 => Ok(()),
                    n => self
                        .fill(&c, &crate::pack::dirs_layer(n))
                        .map_err(MountFailure::other),
                }
            }
            Err(e) => {
                self.lowers.pop();
                Err(e)
            }
        }
    }

    fn walk_merged(&mut self) -> Res<View> {
        // Inode flags are read through the kernel's overlay only (observe:
        // merged_view).
        let iflags = self.mounter == Mounter::Kernel;
        let m = self.mounted_mut()?;
        match &m.snapshot {
            Some(snap) => observe::merged_view(&m.target, snap, iflags),
            None => {
                let (view, snap) = observe::merged_view_and_snapshot(&m.target, iflags)?;
                m.snapshot = Some(snap);
                Ok(view)
            }
        }
    }

    fn walk_upper(&self) -> Res<Option<View>> {
        if self.profile.readonly {
            return Ok(None);
        }
        let upper = match self.engine_dirs() {
            Some(dirs) => dirs.upper.clone(),
            None => self.store.diff(&self.container),
        };
        observe::raw_view(&upper, self.profile.xattr_prefix(), &[]).map(Some)
    }

    fn walk_lowers(&self) -> Res<Vec<View>> {
        let prefix = self.profile.xattr_prefix();
        let dirs: Vec<PathBuf> = match self.engine_dirs() {
            Some(dirs) => dirs.lowers.iter().rev().cloned().collect(),
            None => self.lowers.iter().map(|l| self.store.diff(l)).collect(),
        };
        dirs.iter()
            .map(|d| observe::raw_view(d, prefix, &[]))
            .collect()
    }

    /// [`Session::kernel_view`] once the implementation under test is
    /// unmounted: the kernel's overlay over every layer, read-only (no
    /// upperdir: the container layer is the top lower, as after a
    /// commit), with the profile's kernel options. Inode labels refer to
    /// this mount, as after any mount.
    fn walk_kernel_view(&mut self) -> Res<Result<View, CaseErrno>> {
        let home = self.store.home().to_path_buf();
        let spec = MountSpec {
            lowers: self.all_layers(),
            data: self.data_dirs(),
            upper: None,
            work: None,
            target: KERNEL_VIEW.to_string(),
            options: mount::kernel_options(&self.profile),
        };
        let target = home.join(KERNEL_VIEW);
        mkdir_mode(&target, 0o700)?;
        if let Err(e) = mount::mount_kernel(&home, &spec) {
            return Ok(Err(CaseErrno::from_code(e.errno as i32)));
        }
        walk_and_unmount(&target, "kernel view", merged_tree).map(Ok)
    }
}

/// The export ([`Session::export`]): the store's `Diff` of the container
/// layer, its `ApplyDiff` into a new layer and that image's merged tree
/// (docs/images.md). Everything it makes is made beside the live mount,
/// which it leaves alone, and removed again.
impl MountedCase {
    fn take_export(&mut self) -> Res<Export> {
        self.mounted_mut()?;
        let native = self.native_tar(&self.store.diff(&self.container))?;
        let (method, tar) = match native {
            Some(tar) => (DiffMethod::Native, tar),
            None => (DiffMethod::Naive, self.naive_tar()?),
        };
        // An invalid tar is the container layer's doing (e.g. a real
        // `.wh..wh..opq` file beside an opaque xattr gives that name twice):
        // it is reported, not applied.
        let changeset = crate::oci::read(&tar);
        let merged = match changeset {
            Ok(_) => Some(self.applied_view(&tar)?),
            Err(_) => None,
        };
        Ok(Export {
            method,
            changeset,
            merged,
            commit: oci::TarCommit::default(),
        })
    }

    /// The native diff's tar of the container layer directory `upper`
    /// (overlay2 `Diff`), or `None` where it would be wrong: the profile
    /// makes markers a tar cannot carry, or `upper` holds one.
    fn native_tar(&self, upper: &Path) -> Res<Option<Vec<u8>>> {
        if oci::mount_native_blocker(&self.profile).is_some() {
            return Ok(None);
        }
        crate::oci::write_native_unmarked(upper, self.profile.xattr_prefix())
            .map(Result::ok)
            .map_err(|e| format!("export: native diff: {e}"))
    }

    /// The naive diff's tar (moby `NaiveDiffDriver`): the changes from the
    /// image's merged tree to the container's, both read as the differ
    /// reads them ([`observe::diff_view`]).
    fn naive_tar(&mut self) -> Res<Vec<u8>> {
        let before = self.image_view()?;
        let after = self.container_diff_view()?;
        let changes = oci::naive_changes(&before, &after);
        let merged = self.mounted_mut()?.target.clone();
        crate::oci::write_naive(&changes, &merged).map_err(|e| format!("export: naive diff: {e}"))
    }

    /// The container's merged tree as the naive differ reads it.
    fn container_diff_view(&mut self) -> Res<View> {
        let iflags = self.mounter == Mounter::Kernel;
        observe::diff_view(&self.mounted_mut()?.target, iflags)
    }

    /// The merged tree of the image layers alone, the container's parent
    /// image, as the naive differ reads it (what it compares with).
    /// Without image layers it is an empty directory.
    fn image_view(&mut self) -> Res<View> {
        if self.container.lower.is_empty() {
            let empty = self.store.home().join(EMPTY_LOWER);
            mkdir_mode(&empty, 0o755)?;
            return diff_tree(&empty);
        }
        self.read_only_view(self.container.lower.clone(), "the image layers", diff_tree)
    }

    /// `ApplyDiff` of `tar` as a new layer above the top image layer, and
    /// the merged tree of that image; the layer is removed afterwards.
    ///
    /// Where every layer is on one filesystem the image is mounted
    /// read-only ([`MountedCase::read_only_view`]): an empty container
    /// layer on that filesystem would show the same tree. Where the
    /// container layer has a filesystem of its own (`lower=separate`) the
    /// merged tree depends on it (the `dev` classes, corpus/rules/46; the
    /// lookups of readdir's `d_ino` with xino, corpus/rules/62), so the
    /// image is mounted as a container sees it, with a fresh container
    /// layer on its own filesystem. So too above an overlay as the lower
    /// (`lower=overlay`), where `xino=auto` is on without an upper layer
    /// and off with one (model/src/features.rs).
    fn applied_view(&mut self, tar: &[u8]) -> Res<View> {
        let prefix = self.profile.xattr_prefix();
        self.applied_view_of(|diff| {
            crate::oci::apply(tar, diff, prefix).map_err(|e| format!("export: apply the diff: {e}"))
        })
    }

    /// [`MountedCase::applied_view`] of the layer `fill` writes into the
    /// `diff/` directory it is given.
    fn applied_view_of(&mut self, fill: impl FnOnce(&Path) -> Res<()>) -> Res<View> {
        let parent = self.lowers.last().cloned();
        let applied = self
            .new_layer(parent.as_ref())
            .map_err(|e| format!("export: new layer for the diff: {e}"))?;
        let view = fill(&self.store.diff(&applied)).and_then(|()| match self.profile.lower_fs {
            LowerFs::Same => {
                let mut lowers = vec![format!("{}/diff", applied.id)];
                lowers.extend(applied.lower.iter().cloned());
                self.read_only_view(lowers, "the applied layer", merged_tree)
            }
            LowerFs::Separate | LowerFs::Overlay => self.container_view(&applied),
        });
        let removed = self
            .remove_layer(&applied)
            .map_err(|e| format!("export: remove the applied layer: {e}"));
        let view = view?;
        removed?;
        Ok(view)
    }

    /// The merged tree of the image whose top layer is `applied`, with a
    /// fresh container layer (the kernel's overlay, the profile's kernel
    /// options, as the case was mounted); the container layer is removed
    /// afterwards.
    fn container_view(&mut self, applied: &Layer) -> Res<View> {
        let fresh = self
            .new_container_above(Some(applied.clone()))
            .map_err(|e| format!("export: {}", e.message))?;
        let home = self.store.home().to_path_buf();
        let target = self.store.merged(&fresh);
        let spec = MountSpec {
            lowers: fresh.lower.clone(),
            data: self.data_dirs(),
            upper: Some(format!("{}/diff", fresh.id)),
            work: Some(format!("{}/work", fresh.id)),
            target: format!("{}/merged", fresh.id),
            options: mount::kernel_options(&self.profile),
        };
        let view = mkdir_mode(&target, 0o700).and_then(|()| {
            mount::mount_kernel(&home, &spec)
                .map_err(|e| format!("export: mount the applied layer: {e}"))?;
            walk_and_unmount(&target, "export: the applied layer", merged_tree)
        });
        let removed = self.remove_container(&fresh);
        let view = view?;
        removed?;
        Ok(view)
    }

    /// Removes a container layer [`MountedCase::new_container_above`]
    /// made, with its own tmpfs if it has one.
    fn remove_container(&mut self, layer: &Layer) -> Res<()> {
        self.remove_layer(layer)
            .map_err(|e| format!("export: remove the fresh container layer: {e}"))
    }

    /// The merged tree of `lowers` (top first, relative to the store home)
    /// mounted read-only: the kernel's overlay with the profile's kernel
    /// options and no upper layer, as the commit check mounts. An image is
    /// what its layers show; a container layer above them, empty, would
    /// add a work directory, a mount's worth of setup and its removal, and
    /// nothing a walk sees. A single layer gets [`EMPTY_LOWER`] beneath it
    /// (the kernel: "at least 2 lowerdir are needed while upperdir
    /// nonexistent").
    fn read_only_view(&mut self, mut lowers: Vec<String>, what: &str, read: ReadTree) -> Res<View> {
        let home = self.store.home().to_path_buf();
        if lowers.len() < 2 {
            mkdir_mode(&home.join(EMPTY_LOWER), 0o755)?;
            lowers.push(EMPTY_LOWER.to_string());
        }
        let spec = MountSpec {
            lowers,
            data: self.data_dirs(),
            upper: None,
            work: None,
            target: EXPORT_IMAGE.to_string(),
            options: mount::kernel_options(&self.profile),
        };
        let target = home.join(EXPORT_IMAGE);
        mkdir_mode(&target, 0o700)?;
        mount::mount_kernel(&home, &spec).map_err(|e| format!("export: mount {what}: {e}"))?;
        let view = walk_and_unmount(&target, &format!("export: {what}"), read)?;
        std::fs::remove_dir(&target).map_err(|e| format!("export: rmdir {EXPORT_IMAGE}: {e}"))?;
        Ok(view)
    }
}

/// How a walk reads a mounted tree: [`merged_tree`] or [`diff_tree`].
type ReadTree = fn(&Path) -> Res<View>;

/// The merged view of the kernel's overlay mounted at `target`.
fn merged_tree(target: &Path) -> Res<View> {
    observe::merged_view_and_snapshot(target, true).map(|(view, _)| view)
}

/// The tree mounted at `target` as the naive differ reads it.
fn diff_tree(target: &Path) -> Res<View> {
    observe::diff_view(target, true)
}

/// The tree of the overlay mounted at `target` as `read` reads it (`what`
/// in errors), which is unmounted afterwards whether the walk worked or
/// not.
fn walk_and_unmount(target: &Path, what: &str, read: ReadTree) -> Res<View> {
    let view = read(target);
    let unmounted = mount::unmount(target).map_err(|e| format!("{what}: umount: {e}"));
    let view = view?;
    unmounted?;
    Ok(view)
}

impl Session for MountedCase {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        // A mount ends after its walk, as any op comes after it: a
        // lifecycle step first in its mount must not skip it (the model's
        // mount makes the walk's lookups: the origins of merged
        // directories and their parents' impure marks).
        if matches!(step.op, Op::Remount | Op::Commit | Op::Offline { .. }) {
            if let Err(e) = self.walk_once().map(|_| ()) {
                return Err(self.error_or_death(e));
            }
        }
        match step.op {
            Op::Remount if self.volatile_upper() => self.remount_volatile(),
            Op::Remount => self.lifecycle(|_| Ok(())),
            Op::Commit if self.engine.is_some() => Err(DriverError::Io(
                "a commit of an engine's container is the engine's to make".into(),
            )),
            Op::Commit => self.lifecycle(|s| s.commit_layers()),
            Op::Offline { .. } if self.engine.is_some() => Err(DriverError::Io(
                "an engine's image layers are the engine's: no offline change".into(),
            )),
            Op::Offline { layer, ref change } => {
                self.lifecycle(|s| s.offline_change(None, layer, change))
            }
            _ => match self.run_op(step) {
                Ok(o) if helper_suspect(&o) => {
                    self.helper_alive().map_err(DriverError::Died)?;
                    Ok(o)
                }
                Ok(o) => Ok(o),
                // E.g. the mount-time snapshot before the op could not walk.
                Err(e) => Err(self.error_or_death(e)),
            },
        }
    }

    fn merged_view(&mut self) -> Result<View, DriverError> {
        self.observation(Self::walk_merged)
    }

    fn upper_view(&mut self) -> Result<Option<View>, DriverError> {
        self.observation(|s| s.walk_upper())
    }

    fn lower_views(&mut self) -> Result<Vec<View>, DriverError> {
        self.observation(|s| s.walk_lowers())
    }

    fn kernel_view(&mut self) -> Result<Result<View, CaseErrno>, DriverError> {
        // As for a lifecycle step: a helper that died since the last
        // request would go unnoticed once unmounted.
        if self.engine.is_some() {
            return Err(DriverError::Io(
                "no kernel view of an engine's store: the engine's own mount is the kernel's"
                    .into(),
            ));
        }
        self.helper_alive().map_err(DriverError::Died)?;
        self.unmount().map_err(DriverError::Io)?;
        self.broken = Some("unmounted for the kernel view".into());
        self.walk_kernel_view().map_err(DriverError::Io)
    }

    fn export(&mut self) -> Result<Option<Export>, DriverError> {
        if self.engine.is_some() {
            return Err(DriverError::Io(
                "an export of an engine's container is the engine's to make".into(),
            ));
        }
        if self.profile.readonly {
            return Ok(None);
        }
        self.observation(|s| s.take_export()).map(Some)
    }

    fn finish(self: Box<Self>) -> Result<(), DriverError> {
        self.teardown();
        Ok(())
    }
}

/// Op errnos that may mean a helper daemon died (FUSE answers `ENOTCONN`
/// once its daemon is gone).
fn helper_suspect(o: &Outcome) -> bool {
    use ovlcheck_case::Errno as E;
    matches!(o, Outcome::Err(E::EIO | E::Other(107) | E::Other(103)))
}

/// Where an empty lower directory lives (relative to the store home) for
/// cases without image layers: overlay needs at least one `lowerdir`.
const EMPTY_LOWER: &str = "empty";
/// Where the kernel view is mounted (relative to the store home).
const KERNEL_VIEW: &str = "kernel-view";
/// Where the export mounts the image layers for the naive diff, and the
/// image with the applied layer (relative to the store home).
const EXPORT_IMAGE: &str = "export-image";
/// What a volatile mount leaves in its work dir (super.c:
/// `ovl_create_volatile_dirty` makes `work/incompat/volatile/dirty`),
/// relative to the work dir.
const VOLATILE_DIR: &str = "work/incompat/volatile";

/// A mount that did not happen; `errno` for kernel mounts.
struct MountFailure {
    errno: Option<nix::errno::Errno>,
    message: String,
}

impl MountFailure {
    fn other(message: String) -> MountFailure {
        MountFailure {
            errno: None,
            message,
        }
    }
}

/// The layer id an `l/<LID>` lower entry's link points at
/// (`../<id>/diff`).
fn layer_id_of(store: &LayerStore, entry: &str) -> std::io::Result<String> {
    let dir = store.resolve_lower(entry)?;
    dir.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::other(format!("{entry}: not a layer's diff")))
}

/// The fsids of the upper and top lower directories `[upper, lower]`.
fn layer_fsids(dirs: &[Option<PathBuf>; 2]) -> Res<exec::LayerFsids> {
    let fsid = |path: &PathBuf| {
        let bytes = path.as_os_str().as_encoded_bytes();
        crate::sys::openat(crate::sys::CWD, bytes, libc::O_PATH | libc::O_DIRECTORY, 0)
            .and_then(crate::sys::fsid)
            .map_err(|e| format!("statfs {}: {e}", path.display()))
    };
    let [upper, lower] = dirs;
    Ok(exec::LayerFsids {
        upper: upper.as_ref().map(fsid).transpose()?,
        lower: lower.as_ref().map(fsid).transpose()?,
    })
}

/// `mkdir` with an exact mode (the worker's umask is
/// [`WORKER_UMASK`], 0, and store directories are never
/// set-gid); an existing directory is fine.
fn mkdir_mode(path: &Path, mode: u32) -> Res<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("mkdir {}: {e}", path.display())),
    }
}

/// `e` with what was done to `path`.
fn annotate_io(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}
