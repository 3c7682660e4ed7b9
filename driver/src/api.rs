//! The contract between the harness and a filesystem implementation under
//! test: [`Backend`], the [`Session`] of one mounted case, everything
//! observed of a whole case ([`CaseRun`]) and the errors ([`DriverError`]).
//! Both sides of the worker pipe speak it: a worker's mounted case is a
//! [`Session`] too, so a whole case is observed by one function,
//! [`CaseRun::collect`], wherever it runs.

use ovlcheck_case::oci::DiffMethod;
use ovlcheck_case::{Case, Errno, Op, Outcome, Step, View};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Why a backend could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DriverError {
    /// The environment cannot run this backend at all (no overlay, no
    /// permission to mount, a binary missing). The message is one line that
    /// says what to do.
    #[error("unusable environment: {0}")]
    Environment(String),
    /// The backend did not answer within the watchdog timeout; it was killed.
    #[error("backend hung during `{op}` and was killed")]
    Hung { op: String },
    /// The backend process died (crash, EOF on its socket), or the
    /// filesystem under test did (a helper daemon exited).
    #[error("backend died: {0}")]
    Died(String),
    /// An unexpected failure (a layer that could not be built, a failed
    /// mount at start, ...).
    #[error("backend failure: {0}")]
    Io(String),
}

/// Which implementation a backend runs; the harness tells backends apart by
/// it, not by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The kernel's overlayfs.
    Kernel,
    /// `/usr/bin/fuse-overlayfs` (Debian package `fuse-overlayfs`).
    FuseOverlayfs,
    /// A user-given mount command.
    Exec,
    /// Docker's overlay2 graph driver, through a Docker engine's API
    /// (ovlcheck-engine).
    Docker,
    /// containers/storage's overlay driver, through podman's
    /// Docker-compatible API (ovlcheck-engine).
    Podman,
    /// containerd's overlayfs snapshotter and walking differ, through
    /// containerd's own client `ctr` (ovlcheck-engine).
    Containerd,
    /// The kernel's overlayfs of another kernel, booted under qemu with a
    /// worker as its init (ovlcheck-vm, docs/vm.md).
    Vm,
    /// The harness's pure model (`ModelBackend` in ovlcheck-harness): it
    /// predicts rather than mounts, so this crate, which never depends on
    /// the model, has no backend of this kind.
    Model,
}

impl BackendKind {
    /// `kernel`, `fuse-overlayfs`, `exec`, `vm`, `model`, `docker` or
    /// `podman`.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        match name {
            "kernel" => Some(BackendKind::Kernel),
            "fuse-overlayfs" => Some(BackendKind::FuseOverlayfs),
            "exec" => Some(BackendKind::Exec),
            "model" => Some(BackendKind::Model),
            "vm" => Some(BackendKind::Vm),
            "docker" => Some(BackendKind::Docker),
            "podman" => Some(BackendKind::Podman),
            "containerd" => Some(BackendKind::Containerd),
            _ => None,
        }
    }

    /// The name [`BackendKind::from_name`] takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Kernel => "kernel",
            BackendKind::FuseOverlayfs => "fuse-overlayfs",
            BackendKind::Exec => "exec",
            BackendKind::Model => "model",
            BackendKind::Vm => "vm",
            BackendKind::Docker => "docker",
            BackendKind::Podman => "podman",
            BackendKind::Containerd => "containerd",
        }
    }

    /// Whether a case runs with the `fs.protected_*` settings its profile
    /// names: on the model, and in the vm backend's guest, which sets them
    /// before each case. A backend on the host's kernel runs every case
    /// with the host's (support.rs: `adapt_profile`).
    pub fn runs_own_sysctls(self) -> bool {
        matches!(self, BackendKind::Model | BackendKind::Vm)
    }

    /// Whether a container engine makes the layers and commits (the case's
    /// ops still run on a kernel overlay mount of the engine's layers).
    pub fn is_engine(self) -> bool {
        matches!(
            self,
            BackendKind::Docker | BackendKind::Podman | BackendKind::Containerd
        )
    }
}

/// A filesystem implementation under test.
pub trait Backend: Send + Sync {
    /// Which implementation this is.
    fn kind(&self) -> BackendKind;
    /// Short name for reports: `kernel`, `fuse-overlayfs`, `exec`, `model`.
    fn name(&self) -> &str {
        self.kind().name()
    }
    /// Builds the case's layers, mounts them and returns the live session.
    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError>;
    /// Runs a whole case and takes every observation the differential
    /// runner compares ([`CaseRun`]). The outcomes do not depend on the
    /// model, so a backend may do it all in one round trip; the default goes
    /// through a [`Session`] step by step. `wants` says which optional
    /// observations are taken ([`Wants`]).
    fn run_case(&self, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        let mut s = self.start(case)?;
        let run = CaseRun::collect(&mut *s, case, wants)?;
        s.finish()?;
        Ok(run)
    }
    /// Several cases of one profile, each as [`Backend::run_case`] runs it
    /// with `wants[i]`. A backend that can run them in one mount
    /// ([`crate::pack`], [`Backend::packs`]) does; the default runs them
    /// one after the other. `Err` for the whole pack: the caller runs its
    /// cases alone to learn which one the error belongs to.
    fn run_pack(&self, cases: &[Case], wants: &[Wants]) -> Result<Vec<CaseRun>, DriverError> {
        cases
            .iter()
            .zip(wants)
            .map(|(c, w)| self.run_case(c, *w))
            .collect()
    }
    /// Whether [`Backend::run_pack`] shares one mount between its cases.
    fn packs(&self) -> bool {
        false
    }
    /// The profile this implementation runs for `profile` (options it
    /// lacks turned off, so the model is told), or why it cannot.
    fn adapt_profile(
        &self,
        profile: &ovlcheck_case::Profile,
    ) -> Result<ovlcheck_case::Profile, String> {
        crate::support::adapt_profile(self.kind(), profile)
    }
    /// The release of the kernel whose overlay this backend mounts, when
    /// it is not the host's (the vm backend's guest, docs/vm.md); reports
    /// name it instead of `uname -r`.
    fn kernel_release(&self) -> Option<String> {
        None
    }
    /// The case this implementation runs for `case`: its profile adapted
    /// ([`Backend::adapt_profile`]) and, for a container engine, the layers
    /// the engine adds to every container (Docker's `-init` layer) as the
    /// top lower layer, so that the model is told the stack the ops really
    /// run on. Idempotent: a case it returned comes back unchanged. `Err`:
    /// why this implementation cannot run the case.
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        Ok(c)
    }
}

/// One mounted case. The harness holds one per live case
/// ([`crate::backend::WorkerSession`] for mounted backends), and a worker
/// implements it on its own mounted case ([`crate::worker::MountedCase`]).
pub trait Session {
    /// Performs one step (filesystem op or lifecycle op) and returns its
    /// outcome; the errno is the implementation's, untranslated.
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError>;
    /// The merged tree as users see it.
    fn merged_view(&mut self) -> Result<View, DriverError>;
    /// The raw container layer (`upperdir`), `None` for read-only profiles.
    fn upper_view(&mut self) -> Result<Option<View>, DriverError>;
    /// The raw lower layers, bottom first: the case's lowers, then the
    /// layers made by each `commit`, in order.
    fn lower_views(&mut self) -> Result<Vec<View>, DriverError>;
    /// The *kernel view*: what the kernel's overlayfs shows of the layers
    /// as they are now. Unmounts the implementation under test, mounts the
    /// kernel's overlay read-only with the current container layer on top
    /// of every lower layer (the profile's kernel options, as the commit
    /// check mounts), walks it and unmounts it; nothing is mounted
    /// afterwards, so it is the session's last observation. `Err(errno)`:
    /// the kernel refused to mount the layers, itself a finding about
    /// their layout.
    fn kernel_view(&mut self) -> Result<Result<View, Errno>, DriverError>;
    /// The *export*: the store's `Diff` of the container layer (native or
    /// naive, [`ovlcheck_case::oci::diff_method`]) as an OCI layer tar,
    /// that tar applied by the store's `ApplyDiff` as a new layer on the
    /// same lower layers, and the merged tree of that image mounted with a
    /// fresh container layer (docs/images.md). The session is left as it
    /// was, still mounted. `None` for a read-only profile (no container
    /// layer).
    fn export(&mut self) -> Result<Option<Export>, DriverError>;
    /// Unmounts and removes everything the session made.
    fn finish(self: Box<Self>) -> Result<(), DriverError>;
    /// How `commit` steps make the new image layer: `None`, the container
    /// layer becomes an image layer as it is (overlay2 `create` above it);
    /// `Some(c)`, through the store's layer tar as `c` says (an engine's
    /// commit: its `Diff` then its `ApplyDiff`).
    fn commit_tar(&self) -> Option<ovlcheck_case::oci::TarCommit> {
        None
    }
}

/// A container's layer stack as an engine made it, for a worker to mount
/// and run a case's ops on (docs/engines.md): the engine's layer
/// directories and the options the engine mounts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStack {
    /// Where the engine keeps the stack's layers.
    pub layers: StackLayers,
    /// The profile the case runs under (what the model is told).
    pub profile: ovlcheck_case::Profile,
    /// The overlay options besides the directories, exactly as the engine
    /// passes them (moby overlay2 `Get`: `index=off`).
    pub options: Vec<String>,
}

/// How an engine's store names a container's layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StackLayers {
    /// An overlay2 store (a Docker data-root's `overlay2/`, a
    /// containers/storage `overlay/`): `l/` short links, `<id>/diff`,
    /// `link`, `lower`; the container layer's `lower` file names the image
    /// layers, top first.
    Overlay2 {
        /// The store home.
        home: PathBuf,
        /// The container layer's id in `home`.
        container: String,
    },
    /// Directories named one by one, as containerd's overlayfs
    /// snapshotter gives them (`ctr snapshots mounts`: `snapshots/N/fs`
    /// and `snapshots/N/work`).
    Dirs(StackDirs),
}

/// A stack's directories ([`StackLayers::Dirs`]), absolute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackDirs {
    /// The image layers, top first (the order of `lowerdir=`).
    pub lowers: Vec<PathBuf>,
    /// The container layer.
    pub upper: PathBuf,
    /// Its work directory.
    pub work: PathBuf,
}

/// The optional observations of a case ([`CaseRun`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wants {
    /// [`Session::kernel_view`] at the end (contract `layout`).
    pub kernel_view: bool,
    /// [`Session::export`] after the remount (contract `layout` and above).
    pub export: bool,
}

/// What [`Session::export`] observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// How the changeset was derived.
    pub method: DiffMethod,
    /// The tar's entries, read back ([`ovlcheck_case::oci`]: keyed by
    /// entry name, hard links as `ino` groups), or why the tar is not a
    /// valid OCI layer (a finding about the container layer it was made of).
    pub changeset: Result<View, String>,
    /// The merged tree of the lower layers with the applied layer on top
    /// and a fresh container layer (inode labels refer to this mount);
    /// `None` when the tar was invalid and so not applied.
    pub merged: Option<View>,
    /// How this store's tar makes the new layer (which xattrs it carries,
    /// which layers stay above it); the model's prediction follows it.
    pub commit: ovlcheck_case::oci::TarCommit,
}

/// Everything observed of one case: each step's outcome, the merged and
/// upper views after the steps, then a remount and the merged view after
/// it, then (when asked) the export, then a commit and the merged view
/// after it, then (when asked) the kernel view. A lifecycle view is `None` only when its lifecycle step
/// failed, but for the remount of a volatile upper: the kernel refuses it
/// (EINVAL) and the driver mounts again once it has removed
/// `work/incompat/volatile` (docs/semantics.md, §1.1), so the view after
/// it is taken and compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRun {
    pub outcomes: Vec<Outcome>,
    pub merged: View,
    pub upper: Option<View>,
    pub remount: Outcome,
    pub after_remount: Option<View>,
    /// [`Session::export`] after the remount; `None` when not asked, for
    /// a read-only profile, or when the remount failed (a volatile upper's
    /// refused remount excepted).
    pub export: Option<Export>,
    pub commit: Outcome,
    pub after_commit: Option<View>,
    /// [`Session::kernel_view`] after the commit check; `None` when not
    /// asked.
    pub kernel_view: Option<Result<View, Errno>>,
    /// [`Session::commit_tar`] of the session.
    pub commit_tar: Option<ovlcheck_case::oci::TarCommit>,
}

impl CaseRun {
    /// Runs `case`'s steps on `s`, a session started on `case`, and takes
    /// every observation in the order [`CaseRun`] lists them, the optional
    /// ones as `wants` says. Stops at the first error (a backend that died
    /// answers nothing more). Does not finish `s`.
    pub fn collect<S: Session + ?Sized>(
        s: &mut S,
        case: &Case,
        wants: Wants,
    ) -> Result<CaseRun, DriverError> {
        let outcomes = case
            .steps
            .iter()
            .map(|step| s.apply(step))
            .collect::<Result<Vec<_>, _>>()?;
        let merged = s.merged_view()?;
        let upper = s.upper_view()?;
        let volatile = case.profile.volatile_upper();
        let (remount, after_remount) = lifecycle(s, Op::Remount, volatile)?;
        let export = if wants.export && after_remount.is_some() {
            s.export()?
        } else {
            None
        };
        let (commit, after_commit) = lifecycle(s, Op::Commit, false)?;
        let kernel_view = if wants.kernel_view {
            Some(s.kernel_view()?)
        } else {
            None
        };
        Ok(CaseRun {
            outcomes,
            merged,
            upper,
            remount,
            after_remount,
            export,
            commit,
            after_commit,
            kernel_view,
            commit_tar: s.commit_tar(),
        })
    }
}

/// A session that can hold a pack of cases ([`crate::pack`]): each case's
/// steps run beneath its directory of the mount, and one export serves
/// the whole pack.
pub trait PackSession: Session {
    /// The mount holds `cases` cases, one per [`crate::pack::case_dir`]:
    /// a commit gives each its directory in the fresh container layer, as
    /// a mount root gets one.
    fn begin_pack(&mut self, cases: usize) -> Result<(), DriverError>;
    /// Makes the directory `dir` of the mount the root the next steps
    /// resolve beneath; `None` goes back to the mount root and parks the
    /// fds the steps since the last `enter` opened (a case's fds stay open
    /// while the other cases run, as they would in a mount of its own).
    fn enter(&mut self, dir: Option<&str>) -> Result<(), DriverError>;
    /// Each case's [`Session::export`] (`None` where `wants[i]` asks for
    /// none), taken once for the whole pack and cut back into each case's
    /// part.
    fn pack_exports(&mut self, wants: &[Wants]) -> Result<Vec<Option<Export>>, DriverError>;
    /// An `offline` step of every case at once: case `i`'s change
    /// (`changes[i]`: its lower layer, the pack's layer of the same index,
    /// as layers are aligned at the bottom and a change is made only to a
    /// case's image layers; and the change) made beneath its directory
    /// while the pack is unmounted, then one mount; each case's outcome,
    /// as [`Session::apply`] gives it for a case alone. Only a backend
    /// that makes offline changes at all makes them in a pack.
    fn offline(
        &mut self,
        changes: &[(usize, &ovlcheck_case::OfflineChange)],
    ) -> Result<Vec<Outcome>, DriverError> {
        let _ = changes;
        Err(DriverError::Io(
            "this backend makes no offline change to a pack's layers".into(),
        ))
    }
}

impl CaseRun {
    /// [`CaseRun::collect`] for `cases` packed on `s`, a session started on
    /// their pack ([`crate::pack::combine`]): each case's steps up to its
    /// next lifecycle step beneath its directory, case by case, then that
    /// step once for all (the cases of a pack have steps of the same kinds
    /// in the same order; at an `offline` step, each case's own change
    /// beneath its directory, [`PackSession::offline`]); then every
    /// observation once for the pack, in the order [`CaseRun::collect`]
    /// takes them, cut back into each case's part
    /// ([`crate::pack::split_view`]).
    pub fn collect_pack<S: PackSession + ?Sized>(
        s: &mut S,
        cases: &[Case],
        wants: &[Wants],
    ) -> Result<Vec<CaseRun>, DriverError> {
        if wants.len() != cases.len() {
            return Err(DriverError::Io(
                "a pack's wants do not match its cases".into(),
            ));
        }
        s.begin_pack(cases.len())?;
        let mut outcomes: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
        let mut rest: Vec<&[Step]> = cases.iter().map(|c| c.steps.as_slice()).collect();
        loop {
            let mut points: Vec<Option<&Step>> = vec![None; cases.len()];
            for (i, steps) in rest.iter_mut().enumerate() {
                let end = steps.iter().position(|s| s.op.is_lifecycle());
                let (now, later) = steps.split_at(end.unwrap_or(steps.len()));
                s.enter(Some(&crate::pack::case_dir(i)))?;
                for step in now {
                    outcomes[i].push(s.apply(step)?);
                }
                s.enter(None)?;
                points[i] = later.first();
                *steps = later.get(1..).unwrap_or_default();
            }
            let Some(step) = points.iter().flatten().next() else {
                break;
            };
            if !matches!(step.op, Op::Offline { .. }) {
                let outcome = s.apply(step)?;
                for o in &mut outcomes {
                    o.push(outcome.clone());
                }
                continue;
            }
            let changes = points
                .iter()
                .map(|point| match point.map(|p| &p.op) {
                    Some(Op::Offline { layer, change }) => Ok((*layer, change)),
                    _ => Err(DriverError::Io(
                        "a pack's cases reach lifecycle steps of other kinds".into(),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (o, outcome) in outcomes.iter_mut().zip(s.offline(&changes)?) {
                o.push(outcome);
            }
        }
        let volatile = cases.iter().any(|c| c.profile.volatile_upper());
        let merged = s.merged_view()?;
        let upper = s.upper_view()?;
        let (remount, after_remount) = lifecycle(s, Op::Remount, volatile)?;
        let exports = match after_remount {
            Some(_) if wants.iter().any(|w| w.export) => s.pack_exports(wants)?,
            _ => vec![None; cases.len()],
        };
        let (commit, after_commit) = lifecycle(s, Op::Commit, false)?;
        let kernel_view = match wants.iter().any(|w| w.kernel_view) {
            true => Some(s.kernel_view()?),
            false => None,
        };
        let split = |v: &View, i| crate::pack::split_view(v, i);
        Ok(outcomes
            .into_iter()
            .zip(exports)
            .enumerate()
            .map(|(i, (outcomes, export))| CaseRun {
                outcomes,
                merged: split(&merged, i),
                upper: upper.as_ref().map(|v| split(v, i)),
                remount: remount.clone(),
                after_remount: after_remount.as_ref().map(|v| split(v, i)),
                export,
                commit: commit.clone(),
                after_commit: after_commit.as_ref().map(|v| split(v, i)),
                kernel_view: kernel_view
                    .as_ref()
                    .map(|k| k.as_ref().map(|v| split(v, i)).map_err(|e| *e)),
                commit_tar: s.commit_tar(),
            })
            .collect())
    }
}

/// A lifecycle step and, when it worked, the merged view after it; with
/// `volatile`, also after the refusal (EINVAL) that a volatile upper's
/// remount meets, which the driver follows with a mount of its own.
pub(crate) fn lifecycle<S: Session + ?Sized>(
    s: &mut S,
    op: Op,
    volatile: bool,
) -> Result<(Outcome, Option<View>), DriverError> {
    let remount = op == Op::Remount;
    let outcome = s.apply(&Step::new(op))?;
    let remounted = volatile && remount && outcome == Outcome::Err(Errno::EINVAL);
    let view = if outcome.is_ok() || remounted {
        Some(s.merged_view()?)
    } else {
        None
    };
    Ok((outcome, view))
}

/// Settings shared by every mounted backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendOptions {
    /// Watchdog per request (default 10 s or `$OVL_OP_TIMEOUT_MS`; starting a
    /// session gets 6x).
    pub timeout: Duration,
    /// `exec` backend: mount command template (`{lowerdir} {upperdir}
    /// {workdir} {target} {options}`), run with `/bin/sh -c`.
    pub mount_template: Option<String>,
    /// `exec` backend: unmount command template (`{target}`).
    pub umount_template: Option<String>,
    /// Most idle workers kept for reuse. The default, 4 per allowed CPU
    /// (at least 8), keeps the two workers each campaign thread takes
    /// turns between, of both kinds (root and user namespace), at
    /// `--jobs` up to the CPU count.
    pub pool_size: usize,
}

/// Environment variable overriding the default watchdog (milliseconds).
pub const TIMEOUT_ENV: &str = "OVL_OP_TIMEOUT_MS";

impl Default for BackendOptions {
    /// The watchdog is `$OVL_OP_TIMEOUT_MS` milliseconds when set, else 10 s.
    fn default() -> Self {
        let ms = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0);
        BackendOptions {
            timeout: Duration::from_millis(ms.unwrap_or(10_000)),
            mount_template: None,
            umount_template: None,
            pool_size: 8.max(4 * crate::placement::allowed_cpus().len()),
        }
    }
}
