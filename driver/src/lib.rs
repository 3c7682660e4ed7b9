//! The real half of every differential check: an overlay2 layer store, real
//! mounts behind one [`Backend`] trait, a confined executor and an observer.
//! Depends on `ovlcheck-case` only, never on the model (DESIGN.md: "model and
//! driver never depend on each other").
//!
//! # API contract (used by the harness; keep it)
//!
//! - `trait Backend: Send + Sync { fn name(&self) -> &str; fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError>; }`
//!   `start` builds the case's layers in a fresh overlay2 store on a private
//!   scratch tmpfs, mounts them with the case's profile and takes the
//!   mount-time inode snapshot that `View::ino` labels refer to.
//! - `trait Session { fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError>;
//!   fn merged_view(&mut self) -> Result<View, DriverError>;
//!   fn upper_view(&mut self) -> Result<Option<View>, DriverError>;
//!   fn lower_views(&mut self) -> Result<Vec<View>, DriverError>;
//!   fn finish(self: Box<Self>) -> Result<(), DriverError>; }`
//!   `apply` runs lifecycle steps too: `Op::Remount` (unmount, mount the same
//!   layers) and `Op::Commit` (unmount; the container layer becomes the top
//!   image layer; a fresh container layer above it; mount). A lifecycle step
//!   whose mount fails returns `Outcome::Err(errno)`; later steps then fail
//!   with [`DriverError::Io`].
//! - [`DriverError`] distinguishes an unusable environment (exit status 2 in
//!   the CLI) from a hung or dead backend and from unexpected failures.
//! - [`kernel_release`], [`check_environment`], [`backend_by_name`] and the
//!   constructors [`KernelBackend::new`], [`FuseOverlayfsBackend::new`],
//!   [`ExecBackend::new`].
//!
//! # Architecture
//!
//! Each session runs in a **worker process** (see [`worker`]): forked from a
//! long-lived spawner thread, it dies with the harness (`PR_SET_PDEATHSIG`),
//! lives in its own mount namespace (plus a user namespace for `userxattr`
//! or when the harness is not root) and serves requests over a socketpair.
//! Because every mount lives in that namespace, killing the worker (or the
//! harness) unmounts everything. Workers are pooled per backend and serve
//! many sessions one after the other, each on fresh tmpfs mounts, so a case
//! costs a few mounts, not a fork. Every request has a watchdog
//! ([`BackendOptions::timeout`]): no answer in time means the worker is
//! killed and [`DriverError::Hung`] returned.
//!
//! Inside the worker a [`store::LayerStore`] lays the case out like Docker's
//! overlay2 driver, [`mount`] mounts it, [`exec`] performs each op with the
//! real syscall beneath the merged root (`openat2` `RESOLVE_IN_ROOT`), and
//! [`observe`] turns trees into [`View`]s.
//!
//! # Op conventions (what the model must predict)
//!
//! - Every path is resolved with `RESOLVE_IN_ROOT` from the merged root:
//!   absolute symlink targets start at the overlay root and `..` stops there.
//! - `.` (an empty `RelPath`) names the overlay root. Ops that act on it as
//!   a last component run in a momentary chroot with the path `/`, so they
//!   get a container root's errnos: `rmdir .` EBUSY, `unlink .` EISDIR,
//!   `rename . x` / `rename x .` EBUSY, `mkdir .` EEXIST, `link . x` EPERM,
//!   `readlink .` EINVAL.
//! - Opens use `O_NONBLOCK` so fifos never hang the worker: `read` of a fifo
//!   returns `""`, `write` to (or `create` of an existing) fifo fails with
//!   `ENXIO`.
//! - `read` returns at most [`exec::READ_LIMIT`] bytes.
//! - `readdir` names are sorted, without `.` and `..`; `listxattr` returns
//!   only `user.*` names, sorted.
//! - `stat`/`lstat` report size 0 for directories.
//! - Views: see [`observe`] (inode labels, normalised overlay xattrs, and
//!   *phantoms*: names readdir lists but lookup cannot find).
//! - `as UID:GID` steps switch fsuid/fsgid, groups `[gid]` and drop the
//!   effective capabilities for the op ([`creds`]). In a `userxattr`
//!   worker made by a root harness, ids `0..10^9` are mapped; a non-root
//!   harness maps only its own id to 0, so other uids fail with
//!   [`DriverError::Io`].
//! - A helper daemon (fuse-overlayfs) that dies mid-run is
//!   [`DriverError::Died`], not an op outcome; the next `start` works again.

pub mod backend;
pub mod creds;
pub mod exec;
pub mod ids;
pub mod mount;
pub mod observe;
pub mod placement;
pub mod proto;
pub mod session;
pub mod spawn;
pub mod store;
pub mod support;
pub mod sys;
pub mod worker;

use ovlcheck_case::{Case, Outcome, Step, View};
use std::time::Duration;

pub use backend::{ExecBackend, FuseOverlayfsBackend, KernelBackend};

/// Why a backend could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The environment cannot run this backend at all (no overlay, no
    /// permission to mount, a binary missing). The message is one line that
    /// says what to do.
    #[error("unusable environment: {0}")]
    Environment(String),
    /// The backend did not answer within the watchdog timeout; it was killed.
    #[error("backend hung during `{op}` and was killed")]
    Hung { op: String },
    /// The backend process died (crash, EOF on its socket).
    #[error("backend died: {0}")]
    Died(String),
    /// An unexpected failure (a layer that could not be built, a failed
    /// mount at start, ...).
    #[error("backend failure: {0}")]
    Io(String),
}

/// A filesystem implementation under test.
pub trait Backend: Send + Sync {
    /// Short name: `kernel`, `fuse-overlayfs`, `exec`.
    fn name(&self) -> &str;
    /// Which implementation this is.
    fn kind(&self) -> BackendKind;
    /// The profile this implementation runs for `profile` (options it
    /// lacks turned off, so the model is told), or why it cannot.
    fn adapt_profile(
        &self,
        profile: &ovlcheck_case::Profile,
    ) -> Result<ovlcheck_case::Profile, String> {
        support::adapt_profile(self.kind(), profile)
    }
    /// Builds the case's layers, mounts them and returns the live session.
    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError>;
    /// Runs a whole case and takes every observation the differential
    /// runner compares ([`CaseRun`]). The outcomes do not depend on the
    /// model, so a backend may do it all in one round trip; the default goes
    /// through a [`Session`] step by step.
    fn run_case(&self, case: &Case) -> Result<CaseRun, DriverError> {
        run_via_session(self.start(case)?, case)
    }
}

/// Everything observed of one case: each step's outcome, the merged and
/// upper views after the steps, then a remount and the merged view after
/// it, then a commit and the merged view after it. A view is `None` only
/// when the lifecycle step before it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRun {
    pub outcomes: Vec<Outcome>,
    pub merged: View,
    pub upper: Option<View>,
    pub remount: Outcome,
    pub after_remount: Option<View>,
    pub commit: Outcome,
    pub after_commit: Option<View>,
    /// The layers left at the end mounted read-only by the kernel's
    /// overlay (when asked for), or the errno of that mount.
    pub kernel_view: Option<Result<View, ovlcheck_case::Errno>>,
}

/// [`Backend::run_case`] through a session, one request at a time.
pub fn run_via_session(mut s: Box<dyn Session>, case: &Case) -> Result<CaseRun, DriverError> {
    let outcomes = case
        .steps
        .iter()
        .map(|step| s.apply(step))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = s.merged_view()?;
    let upper = s.upper_view()?;
    let mut lifecycle = |op: ovlcheck_case::Op| -> Result<(Outcome, Option<View>), DriverError> {
        let o = s.apply(&Step::new(op))?;
        let v = if o.is_ok() {
            Some(s.merged_view()?)
        } else {
            None
        };
        Ok((o, v))
    };
    let (remount, after_remount) = lifecycle(ovlcheck_case::Op::Remount)?;
    let (commit, after_commit) = lifecycle(ovlcheck_case::Op::Commit)?;
    s.finish()?;
    Ok(CaseRun {
        outcomes,
        merged,
        upper,
        remount,
        after_remount,
        commit,
        after_commit,
        kernel_view: None,
    })
}

/// One mounted case.
pub trait Session {
    /// Performs one step (filesystem op or lifecycle op) and returns its
    /// outcome; the errno is the kernel's, untranslated.
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError>;
    /// The merged tree as users see it.
    fn merged_view(&mut self) -> Result<View, DriverError>;
    /// The raw container layer (`upperdir`), `None` for read-only profiles.
    fn upper_view(&mut self) -> Result<Option<View>, DriverError>;
    /// The raw lower layers, bottom first: the case's lowers, then the
    /// layers made by each `commit`, in order.
    fn lower_views(&mut self) -> Result<Vec<View>, DriverError>;
    /// Unmounts and removes everything the session made.
    fn finish(self: Box<Self>) -> Result<(), DriverError>;
}

/// Which backend implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// The kernel's overlayfs.
    Kernel,
    /// `/usr/bin/fuse-overlayfs` (Debian package `fuse-overlayfs`).
    FuseOverlayfs,
    /// A user-given mount command.
    Exec,
    /// The harness's pure model (`--backend model`, implemented in
    /// ovlcheck-harness: the driver never depends on the model).
    Model,
}

impl BackendKind {
    /// `kernel`, `fuse-overlayfs` or `exec`.
    pub fn from_name(name: &str) -> Option<BackendKind> {
        match name {
            "kernel" => Some(BackendKind::Kernel),
            "fuse-overlayfs" => Some(BackendKind::FuseOverlayfs),
            "exec" => Some(BackendKind::Exec),
            "model" => Some(BackendKind::Model),
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
        }
    }
}

/// Settings shared by every backend.
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

/// The backend called `name` (`kernel`, `fuse-overlayfs`, `exec`). `exec`
/// needs both templates in `opts`.
pub fn backend_by_name(name: &str, opts: &BackendOptions) -> Result<Box<dyn Backend>, DriverError> {
    match BackendKind::from_name(name) {
        Some(BackendKind::Kernel) => Ok(Box::new(KernelBackend::with_options(opts.clone()))),
        Some(BackendKind::FuseOverlayfs) => {
            Ok(Box::new(FuseOverlayfsBackend::with_options(opts.clone())))
        }
        Some(BackendKind::Exec) => match (&opts.mount_template, &opts.umount_template) {
            (Some(m), Some(u)) => Ok(Box::new(ExecBackend::with_options(
                m.clone(),
                u.clone(),
                opts.clone(),
            ))),
            _ => Err(DriverError::Environment(
                "the exec backend needs a mount and an unmount command template".into(),
            )),
        },
        Some(BackendKind::Model) => Err(DriverError::Environment(
            "the model backend is the harness's own (ovlcheck_harness::ModelBackend)".into(),
        )),
        None => Err(DriverError::Environment(format!(
            "unknown backend `{name}`: use kernel, fuse-overlayfs or exec"
        ))),
    }
}

/// The overlay options the kernel backend passes besides
/// `lowerdir`/`upperdir`/`workdir` for `profile` (e.g. `redirect_dir=follow,
/// index=off, metacopy=off, xino=off`), so reproducers mount alike.
pub fn overlay_options(profile: &ovlcheck_case::Profile) -> Vec<String> {
    mount::kernel_options(profile)
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Checks that `kind` can run here; the error says what to do.
pub fn check_environment(kind: BackendKind) -> Result<(), DriverError> {
    backend::check_environment(kind)
}
