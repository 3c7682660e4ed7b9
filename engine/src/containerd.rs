//! The `containerd` backend: containerd's overlayfs snapshotter and its
//! `walking` differ, driven with `ctr`, containerd's own client
//! (docs/engines.md, "containerd").
//!
//! containerd unpacks an image on the client side: `ctr images import`
//! runs containerd's own unpacker, which prepares a snapshot per layer and
//! has the daemon's diff service apply the layer tar into it. A Rust gRPC
//! client would have to reimplement that unpacker, so `ctr` it is: each
//! call below is one `ctr` process, as in containerd's own integration
//! scripts.
//!
//! A case's lowers go in as an image archive; the container is an active
//! snapshot prepared on the image's chain; a worker mounts it exactly as
//! `ctr snapshots prepare --mounts` says. A commit is containerd's: the
//! differ's layer tar of the active snapshot against its parent
//! (`ctr snapshots diff`), imported as the image's next layer (the
//! unpacker applies it), and a fresh snapshot on the new chain.

use crate::api::{layer_tar, module_default_differs, unrepresentable};
use crate::archive;
use crate::daemon::{Daemon, Program};
use ovlcheck_case::oci::{DiffMethod, NaiveCompare, TarCommit, TarXattrs};
use ovlcheck_case::{Case, Errno, LayerSpec, Op, Outcome, Profile, Step, View};
use ovlcheck_driver::{
    Backend, BackendKind, BackendOptions, CaseRun, DriverError, EngineStack, Export, PackSession,
    PooledBackend, Session, StackDirs, StackLayers, Wants, WorkerSession,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Debian's `containerd` package puts the daemon here.
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// ... and its client here.
pub const CTR: &str = "/usr/bin/ctr";

/// The namespace every image and snapshot of ovlcheck's lives in, apart
/// from a shared daemon's other users.
const NAMESPACE: &str = "ovlcheck";
/// The snapshotter under test.
const SNAPSHOTTER: &str = "overlayfs";
/// The media type `ctr snapshots diff` is asked for: an uncompressed
/// layer tar (image-spec media-types.md).
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// How containerd commits a container: its walking differ's tar, which
/// carries `security.capability` alone of the xattrs (containerd
/// archive/tar.go, `ChangeWriter.HandleChange`), applied as a new layer
/// with nothing kept above it.
const COMMIT: TarCommit = TarCommit {
    xattrs: TarXattrs::Capability,
    init_layer: false,
    differ: Some(DiffMethod::Walking),
    // containerd has no other differ.
    naive: NaiveCompare::Content,
};

/// A private containerd: its root, state, sockets and the `opt` plugin's
/// directory in the scratch directory, the CRI plugin off (it would set up
/// networking).
pub const CONTAINERD_DAEMON: Program = Program {
    name: "containerd",
    path: CONTAINERD,
    package: "containerd",
    host_var: "CONTAINERD_ADDRESS",
    args: |dir, _socket| {
        vec![
            "--config".into(),
            dir.join("config.toml").display().to_string(),
        ]
    },
    config: Some(|dir, socket| {
        format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"{socket}.ttrpc\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = socket.display(),
            opt = dir.join("opt").display(),
        )
    }),
};

/// containerd as a backend. Cloning shares the daemon.
#[derive(Clone)]
pub struct ContainerdBackend {
    inner: Arc<Inner>,
}

struct Inner {
    /// The options the snapshotter mounts with besides the directories.
    options: Vec<String>,
    /// Worker processes that mount the snapshots.
    workers: PooledBackend,
    /// Numbers the images and snapshots of this process.
    next: AtomicU64,
    /// Declared last: the private daemon stops after everything above.
    daemon: Daemon,
}

impl std::fmt::Debug for ContainerdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("containerd")
            .field("socket", &self.inner.daemon.socket)
            .finish()
    }
}

/// An active snapshot as the snapshotter mounts it.
#[derive(Clone, Debug)]
struct Mounts {
    dirs: StackDirs,
    options: Vec<String>,
}

impl ContainerdBackend {
    /// Connects to the containerd at `socket` (or `CONTAINERD_ADDRESS`),
    /// or starts a private one; checks that its overlayfs snapshotter
    /// mounts as the `default` profile says.
    pub fn new(
        socket: Option<&str>,
        opts: BackendOptions,
    ) -> Result<ContainerdBackend, DriverError> {
        if !Path::new(CTR).exists() {
            return Err(DriverError::Environment(format!(
                "{CTR} not found: apt-get install containerd"
            )));
        }
        let daemon = Daemon::connect_or_start_program(CONTAINERD_DAEMON, socket)?;
        let mut inner = Inner {
            options: Vec::new(),
            workers: PooledBackend::new(ovlcheck_driver::proto::Mounter::Kernel, opts),
            next: AtomicU64::new(0),
            daemon,
        };
        inner.wait_until_serving()?;
        inner.options = inner.probe_options()?;
        let options: Vec<&str> = inner.options.iter().map(String::as_str).collect();
        if let Some(why) = module_default_differs(&options, false) {
            return Err(DriverError::Environment(format!(
                "containerd mounts with the overlay module's defaults, and {why}: the default \
                 profile would not describe its mounts"
            )));
        }
        Ok(ContainerdBackend {
            inner: Arc::new(inner),
        })
    }

    /// The options the snapshotter mounts a container with.
    pub fn mount_options(&self) -> &[String] {
        &self.inner.options
    }

    /// The `ctr` calls of one case alone, nothing mounted or judged:
    /// import the image and prepare a container; for each `commit` step
    /// and for the export, diff it, import the committed image and
    /// prepare a container of it; remove everything. The yardstick of
    /// engine/benches/engines.rs.
    pub fn engine_calls_only(&self, case: &Case) -> Result<(), DriverError> {
        let e = &self.inner;
        let mut tars = image_layers(case)?
            .iter()
            .map(layer_tar)
            .collect::<Result<Vec<_>, _>>()?;
        let mut images = vec![e.import(&tars)?];
        let mut keys = vec![e.prepare(&tars)?.0];
        let commits = case.steps.iter().filter(|s| s.op == Op::Commit).count();
        for _ in 0..=commits {
            let key = keys.last().cloned().unwrap_or_default();
            tars.push(e.diff(&key)?);
            images.push(e.import(&tars)?);
            keys.push(e.prepare(&tars)?.0);
        }
        keys.reverse();
        images.reverse();
        e.remove(&keys, &images)
    }
}

/// The image layers of an adapted case: its lowers.
fn image_layers(case: &Case) -> Result<&[LayerSpec], DriverError> {
    if case.lowers.is_empty() {
        return Err(DriverError::Io(
            "an engine's case has an image layer at least".into(),
        ));
    }
    if let Some(why) = unrepresentable(
        "containerd",
        None,
        &case.data,
        &case.lowers,
        case.upper.as_ref(),
    ) {
        return Err(DriverError::Io(why));
    }
    Ok(&case.lowers)
}

/// Image layers `layers` (bottom first) as containerd's applier leaves
/// them, so the model is told (docs/engines.md, "containerd"):
/// - no `trusted.*` xattrs: the applier refuses to set them ("admin
///   attributes from archive not supported", containerd archive
///   tar_unix.go, `setxattr`);
/// - no whiteouts or opaque markers in the bottom layer: it is applied
///   into a plain directory without the overlay whiteout converter
///   (containerd diff/apply apply_linux.go: only an overlay mount gets
///   it), so a whiteout removes what it names there, which is nothing.
fn as_applied(layers: &mut [LayerSpec]) {
    use ovlcheck_case::layer::Entry;
    for layer in layers.iter_mut() {
        layer
            .entries
            .retain(|e| !matches!(e, Entry::Xattr { name, .. } if name.starts_with("trusted.")));
    }
    let Some(bottom) = layers.first_mut() else {
        return;
    };
    let whiteouts: Vec<_> = bottom
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Whiteout { path } => Some(path.clone()),
            _ => None,
        })
        .collect();
    bottom.entries.retain(|e| match e {
        Entry::Whiteout { .. } | Entry::Opaque { .. } => false,
        Entry::Owner { path, .. } | Entry::Mtime { path, .. } => !whiteouts.contains(path),
        Entry::Hardlink { existing, .. } => !whiteouts.contains(existing),
        _ => true,
    });
}

/// The chain id of the snapshot that holds the image of layer tars
/// `tars` (image-spec config.md, "Layer ChainID": the diff id of the
/// bottom layer, then `sha256(chain + " " + diff id)` upwards), which the
/// unpacker names the committed snapshot by.
fn chain_id(tars: &[Vec<u8>]) -> String {
    let mut chain = String::new();
    for tar in tars {
        let diff_id = archive::digest(tar);
        chain = match chain.is_empty() {
            true => diff_id,
            false => archive::digest(format!("{chain} {diff_id}").as_bytes()),
        };
    }
    chain
}

impl Inner {
    /// `ctr ARGS` against this daemon in ovlcheck's namespace, `stdin`
    /// fed to it: its stdout, or its stderr as the error.
    fn ctr(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, DriverError> {
        let mut cmd = Command::new(CTR);
        cmd.arg("--address")
            .arg(&self.daemon.socket)
            .args(["--namespace", NAMESPACE])
            .args(args)
            .stdin(match stdin {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The subcommand and its operands, without flags, for messages.
        let what = || {
            let words: Vec<&str> = args
                .iter()
                .copied()
                .filter(|a| !a.starts_with('-') && *a != SNAPSHOTTER && *a != LAYER_TAR)
                .collect();
            words.join(" ")
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| DriverError::Io(format!("ctr {}: {e}", what())))?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error shows as ctr's own failure below.
            let _ = pipe.write_all(bytes);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| DriverError::Io(format!("ctr {}: {e}", what())))?;
        if !out.status.success() {
            return Err(DriverError::Io(format!(
                "ctr {}: {}",
                what(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Waits until the daemon answers `ctr version`.
    fn wait_until_serving(&self) -> Result<(), DriverError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match self.ctr(&["version"], None) {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(DriverError::Environment(format!(
                        "no containerd answers at {}: {e} {}",
                        self.daemon.socket.display(),
                        self.daemon.log_tail()
                    )))
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    /// The snapshotter's options, read from a probe container on an
    /// image of one empty layer.
    fn probe_options(&self) -> Result<Vec<String>, DriverError> {
        let tars = vec![layer_tar(&LayerSpec::default())?];
        let image = self.import(&tars)?;
        let probe = self.prepare(&tars);
        let keys: Vec<String> = probe.iter().map(|(k, _)| k.clone()).collect();
        self.remove(&keys, &[image])?;
        Ok(probe?.1.options)
    }

    /// A name no other image or snapshot of this daemon has.
    fn fresh_name(&self, what: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{what}-{}-{n}", std::process::id())
    }

    /// Imports an image of layer tars `tars` (bottom first), which
    /// unpacks it into the snapshotter; its name.
    fn import(&self, tars: &[Vec<u8>]) -> Result<String, DriverError> {
        let name = format!("ovlcheck.invalid/{}:latest", self.fresh_name("case"));
        let (bytes, _) = archive::image_archive_tagged(tars, Some(&name))
            .map_err(|e| DriverError::Io(format!("image archive: {e}")))?;
        let args = ["images", "import", "--snapshotter", SNAPSHOTTER, "-"];
        self.ctr(&args, Some(&bytes))?;
        Ok(name)
    }

    /// Prepares an active snapshot on the image of `tars`: its key and
    /// how the snapshotter mounts it.
    fn prepare(&self, tars: &[Vec<u8>]) -> Result<(String, Mounts), DriverError> {
        let key = self.fresh_name("container");
        let parent = chain_id(tars);
        let args = [
            "snapshots",
            "--snapshotter",
            SNAPSHOTTER,
            "prepare",
            "--mounts",
            &key,
            &parent,
        ];
        let out = self.ctr(&args, None)?;
        let mounts = parse_mounts(&out)
            .map_err(|e| DriverError::Io(format!("containerd snapshot {key}: mounts: {e}")));
        match mounts {
            Ok(m) => Ok((key, m)),
            Err(e) => {
                let _ = self.remove(&[key], &[]);
                Err(e)
            }
        }
    }

    /// The walking differ's layer tar of active snapshot `key` against its
    /// parent.
    fn diff(&self, key: &str) -> Result<Vec<u8>, DriverError> {
        let args = [
            "snapshots",
            "--snapshotter",
            SNAPSHOTTER,
            "diff",
            "--media-type",
            LAYER_TAR,
            key,
        ];
        self.ctr(&args, None)
    }

    /// Removes snapshots `keys` and images `images` (the daemon's garbage
    /// collector then removes the layers and blobs nothing else holds).
    fn remove(&self, keys: &[String], images: &[String]) -> Result<(), DriverError> {
        let mut first = Ok(());
        if !keys.is_empty() {
            let mut args = vec!["snapshots", "--snapshotter", SNAPSHOTTER, "rm"];
            args.extend(keys.iter().map(String::as_str));
            first = self.ctr(&args, None).map(drop);
        }
        if !images.is_empty() {
            let mut args = vec!["images", "rm", "--sync"];
            args.extend(images.iter().map(String::as_str));
            first = first.and(self.ctr(&args, None).map(drop));
        }
        first
    }
}

/// The one overlay mount `ctr snapshots prepare --mounts` prints (a JSON
/// list of `{Type, Source, Options}`): its directories and other options.
fn parse_mounts(json: &[u8]) -> Result<Mounts, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Mount {
        r#type: String,
        options: Vec<String>,
    }
    let mounts: Vec<Mount> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let [m] = &mounts[..] else {
        return Err(format!("{} mounts, not one", mounts.len()));
    };
    if m.r#type != "overlay" {
        return Err(format!("a {} mount, not overlay", m.r#type));
    }
    let (mut lowers, mut upper, mut work, mut options) = (None, None, None, Vec::new());
    for o in &m.options {
        match o.split_once('=') {
            Some(("lowerdir", v)) => lowers = Some(v.split(':').map(PathBuf::from).collect()),
            Some(("upperdir", v)) => upper = Some(PathBuf::from(v)),
            Some(("workdir", v)) => work = Some(PathBuf::from(v)),
            _ => options.push(o.clone()),
        }
    }
    match (lowers, upper, work) {
        (Some(lowers), Some(upper), Some(work)) => Ok(Mounts {
            dirs: StackDirs {
                lowers,
                upper,
                work,
            },
            options,
        }),
        _ => Err(format!(
            "no lowerdir, upperdir and workdir in {:?}",
            m.options
        )),
    }
}

impl Backend for ContainerdBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Containerd
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        ContainerdSession::start(Arc::clone(&self.inner), case)
            .map(|s| Box::new(s) as Box<dyn Session>)
    }

    /// The cases in one snapshot: one import, one prepare, one diff for
    /// the pack, where a case alone costs each of them.
    fn run_pack(&self, cases: &[Case], wants: &[Wants]) -> Result<Vec<CaseRun>, DriverError> {
        let mut s = ContainerdSession::start_pack(Arc::clone(&self.inner), cases)?;
        let runs = CaseRun::collect_pack(&mut s, cases, wants)?;
        Box::new(s).finish()?;
        Ok(runs)
    }

    fn packs(&self) -> bool {
        true
    }

    /// The case's lowers as image layers (at least one: an image has a
    /// layer).
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        if let Some(why) = crate::api::offline_refused("containerd", case) {
            return Err(why);
        }
        if let Some(why) = unrepresentable("containerd", None, &c.data, &c.lowers, c.upper.as_ref())
        {
            return Err(why);
        }
        if c.lowers.is_empty() {
            c.lowers.push(LayerSpec::default());
        }
        as_applied(&mut c.lowers);
        Ok(c)
    }
}

/// One case in a containerd snapshot.
struct ContainerdSession {
    engine: Arc<Inner>,
    profile: Profile,
    worker: Option<WorkerSession>,
    /// The layer tars of the image the container is on, bottom first.
    tars: Vec<Vec<u8>>,
    /// The container now: its snapshot key and mounts.
    container: Option<(String, Mounts)>,
    /// Snapshots and images made for the case, removed at the end.
    keys: Vec<String>,
    images: Vec<String>,
    /// A commit the export made already: the next `commit` step finds the
    /// stack switched and only says so.
    committed: bool,
    /// How many cases share the snapshot (0: one case alone).
    packed: usize,
}

impl PackSession for ContainerdSession {
    fn begin_pack(&mut self, cases: usize) -> Result<(), DriverError> {
        crate::api::made_for(self.packed, cases)
    }

    fn enter(&mut self, dir: Option<&str>) -> Result<(), DriverError> {
        self.worker()?.enter(dir)
    }

    /// One commit of the snapshot for the whole pack, cut back into each
    /// case's part ([`crate::api::export_parts`]).
    fn pack_exports(&mut self, wants: &[Wants]) -> Result<Vec<Option<Export>>, DriverError> {
        Ok(crate::api::export_parts(self.export()?, wants))
    }
}

impl ContainerdSession {
    fn start(engine: Arc<Inner>, case: &Case) -> Result<ContainerdSession, DriverError> {
        ContainerdSession::open(engine, &case.profile, image_layers(case)?, 0)
    }

    /// A pack of `cases` (each as [`Backend::adapt_case`] made it) in one
    /// snapshot ([`ovlcheck_driver::pack`]); every container snapshot made
    /// for the pack gets the cases' directories before it is mounted.
    fn start_pack(engine: Arc<Inner>, cases: &[Case]) -> Result<ContainerdSession, DriverError> {
        let pack = ovlcheck_driver::pack::combine(cases).map_err(DriverError::Io)?;
        if let Some(why) = unrepresentable("containerd", None, &pack.data, &pack.lowers, None) {
            return Err(DriverError::Io(why));
        }
        ContainerdSession::open(engine, &pack.profile, &pack.lowers, cases.len())
    }

    /// Imports an image of `layers` and mounts a container snapshot of it;
    /// `packed` cases share it when not 0.
    fn open(
        engine: Arc<Inner>,
        profile: &Profile,
        layers: &[LayerSpec],
        packed: usize,
    ) -> Result<ContainerdSession, DriverError> {
        let tars = layers
            .iter()
            .map(layer_tar)
            .collect::<Result<Vec<_>, _>>()?;
        let mut s = ContainerdSession {
            engine,
            profile: profile.clone(),
            worker: None,
            tars,
            container: None,
            keys: Vec::new(),
            images: Vec::new(),
            committed: false,
            packed,
        };
        let image = s.engine.import(&s.tars)?;
        s.images.push(image);
        s.run_container()?;
        Ok(s)
    }

    /// Prepares a container on the current image and mounts it in a
    /// worker; in a pack, its snapshot gets every case's directory first,
    /// as a mount root is a directory of the container layer.
    fn run_container(&mut self) -> Result<(), DriverError> {
        let (key, mounts) = self.engine.prepare(&self.tars)?;
        if self.packed > 0 {
            crate::api::make_case_dirs(&mounts.dirs.upper, self.packed)?;
        }
        self.keys.push(key.clone());
        self.container = Some((key, mounts));
        self.mount_container()
    }

    /// Mounts the current container in a worker.
    fn mount_container(&mut self) -> Result<(), DriverError> {
        let (_, mounts) = self
            .container
            .clone()
            .ok_or_else(|| DriverError::Io("no container prepared".into()))?;
        self.worker = Some(self.engine.workers.attach(&EngineStack {
            layers: StackLayers::Dirs(mounts.dirs),
            profile: self.profile.clone(),
            options: mounts.options,
        })?);
        Ok(())
    }

    fn worker(&mut self) -> Result<&mut WorkerSession, DriverError> {
        self.worker
            .as_mut()
            .ok_or_else(|| DriverError::Io("the container is not mounted".into()))
    }

    /// containerd's commit: the differ's tar of the container, imported as
    /// the image's next layer, and a container of the new image, mounted.
    /// The tar, or why the differ made none (the container stays mounted
    /// as it was): that is containerd's answer, not a harness failure.
    fn commit(&mut self) -> Result<Result<Vec<u8>, String>, DriverError> {
        if let Some(w) = self.worker.take() {
            Box::new(w).finish()?;
        }
        let key = self
            .container
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let tar = match self.engine.diff(&key) {
            Ok(tar) => tar,
            Err(DriverError::Io(e)) => {
                self.mount_container()?;
                return Ok(Err(format!("containerd's differ made no layer tar: {e}")));
            }
            Err(e) => return Err(e),
        };
        self.tars.push(tar.clone());
        let image = self.engine.import(&self.tars)?;
        self.images.push(image);
        self.run_container()?;
        Ok(Ok(tar))
    }

    /// Unmounts, then removes the case's snapshots and images (newest
    /// first), the first error reported.
    fn cleanup(&mut self) -> Result<(), DriverError> {
        let unmounted = self.worker.take().map_or(Ok(()), |w| Box::new(w).finish());
        let keys: Vec<String> = std::mem::take(&mut self.keys).into_iter().rev().collect();
        let images: Vec<String> = std::mem::take(&mut self.images).into_iter().rev().collect();
        let removed = self.engine.remove(&keys, &images);
        unmounted.and(removed)
    }
}

impl Session for ContainerdSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        match step.op {
            Op::Commit if std::mem::take(&mut self.committed) => Ok(Outcome::OK),
            // A commit containerd cannot make is the step's failure (EIO;
            // docs/engines.md, "containerd").
            Op::Commit => Ok(match self.commit()? {
                Ok(_) => Outcome::OK,
                Err(_) => Outcome::Err(Errno::EIO),
            }),
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

    /// containerd's commit: the differ's tar and the merged tree of a
    /// container on the image it was applied to. The next `commit` step
    /// keeps this stack.
    fn export(&mut self) -> Result<Option<Export>, DriverError> {
        let tar = self.commit()?;
        self.committed = tar.is_ok();
        let changeset = tar.and_then(|tar| ovlcheck_driver::oci::read(&tar));
        let merged = match &changeset {
            Ok(_) => Some(self.merged_view()?),
            Err(_) => None,
        };
        Ok(Some(Export {
            method: DiffMethod::Walking,
            changeset,
            merged,
            commit: COMMIT,
        }))
    }

    fn finish(mut self: Box<Self>) -> Result<(), DriverError> {
        self.cleanup()
    }

    fn commit_tar(&self) -> Option<TarCommit> {
        Some(COMMIT)
    }
}

impl Drop for ContainerdSession {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let (a, b) = (b"a".to_vec(), b"b".to_vec());
        assert_eq!(chain_id(std::slice::from_ref(&a)), archive::digest(&a));
        let expect =
            archive::digest(format!("{} {}", archive::digest(&a), archive::digest(&b)).as_bytes());
        assert_eq!(chain_id(&[a, b]), expect);
    }

    #[test]
    fn mounts_are_read_from_ctr_json() {
        let json = br#"[{"Type":"overlay","Source":"overlay","Options":["index=off","workdir=/s/3/work","upperdir=/s/3/fs","lowerdir=/s/2/fs:/s/1/fs"]}]"#;
        let m = parse_mounts(json).unwrap();
        assert_eq!(m.options, vec!["index=off".to_string()]);
        assert_eq!(m.dirs.upper, PathBuf::from("/s/3/fs"));
        assert_eq!(m.dirs.work, PathBuf::from("/s/3/work"));
        assert_eq!(
            m.dirs.lowers,
            vec![PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")]
        );
        let bind = br#"[{"Type":"bind","Source":"/s/1/fs","Options":["rbind","rw"]}]"#;
        assert!(parse_mounts(bind).unwrap_err().contains("bind"));
        assert!(parse_mounts(b"[]").unwrap_err().contains("0 mounts"));
    }
}
