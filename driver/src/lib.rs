//! The real half of every differential check: an overlay2 layer store, real
//! mounts behind one [`Backend`] trait, a confined executor and an observer.
//! Depends on `ovlcheck-case` only, never on the model (docs/architecture.md:
//! model and driver never depend on each other).
//!
//! # API contract (used by the harness; keep it)
//!
//! - `trait Backend: Send + Sync { fn kind(&self) -> BackendKind;
//!   fn name(&self) -> &str; fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError>;
//!   fn run_case(&self, case: &Case) -> Result<CaseRun, DriverError>; }`
//!   `start` builds the case's layers in a fresh overlay2 store on a private
//!   scratch tmpfs, mounts them with the case's profile and takes the
//!   mount-time inode snapshot that `View::ino` labels refer to. `run_case`
//!   runs and observes a whole case ([`CaseRun`]); the harness tells
//!   backends apart by [`BackendKind`] ([`BackendKind::Model`] is the
//!   harness's own pure model).
//! - `trait Session { fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError>;
//!   fn merged_view(&mut self) -> Result<View, DriverError>;
//!   fn upper_view(&mut self) -> Result<Option<View>, DriverError>;
//!   fn lower_views(&mut self) -> Result<Vec<View>, DriverError>;
//!   fn kernel_view(&mut self) -> Result<Result<View, Errno>, DriverError>;
//!   fn finish(self: Box<Self>) -> Result<(), DriverError>; }`
//!   `apply` runs lifecycle steps too: `Op::Remount` (unmount, mount the same
//!   layers) and `Op::Commit` (unmount; the container layer becomes the top
//!   image layer; a fresh container layer above it; mount). A lifecycle step
//!   whose mount fails returns `Outcome::Err(errno)`; later steps then fail
//!   with [`DriverError::Io`]. `kernel_view` is the kernel's overlay
//!   mounted read-only over the current layers: how the kernel reads the
//!   layout another implementation left. [`PooledBackend`]'s `run_case`
//!   takes it, after the commit, for every implementation but the
//!   kernel's own (whose commit check already is that mount);
//!   [`PooledBackend::run`] takes it on request.
//! - [`CaseRun::collect`] turns a started session into a [`CaseRun`]; the
//!   harness's step-by-step sessions and the worker's one-round-trip case
//!   both go through it.
//! - `Backend::run_pack` runs several cases and answers each one's
//!   [`CaseRun`]; [`PooledBackend`] on the kernel runs them in one mount
//!   ([`pack`], `Backend::packs`), every other backend one after the
//!   other.
//! - [`DriverError`] distinguishes an unusable environment (exit status 2 in
//!   the CLI) from a hung or dead backend and from unexpected failures.
//! - [`kernel_release`], [`check_environment`], [`backend_by_name`],
//!   [`overlay_options`] and [`PooledBackend`] with its constructors
//!   [`PooledBackend::kernel`], [`PooledBackend::fuse_overlayfs`],
//!   [`PooledBackend::exec`] and [`PooledBackend::new`].
//!
//! # Architecture
//!
//! The two sides of a worker's socket:
//!
//! - **Harness side.** [`PooledBackend`] ([`backend`]) keeps a pool of
//!   worker processes ([`process`]: forked from a long-lived spawner
//!   thread, each dies with the harness through `PR_SET_PDEATHSIG`) and
//!   sends them [`proto::Request`]s: a whole case as one
//!   [`proto::RunCase`], answered by the [`CaseRun`], or a case step by
//!   step through a [`backend::WorkerSession`]. Every request has a
//!   watchdog ([`BackendOptions::timeout`]): no answer in time means the
//!   worker is killed and [`DriverError::Hung`] returned.
//! - **Worker side** ([`worker`]). A worker lives in its own mount
//!   namespace (plus a user namespace for `userxattr` or when the harness
//!   is not root), so killing it (or the harness) unmounts everything. Its
//!   [`worker::WorkerState`] serves many cases one after the other, each a
//!   [`worker::MountedCase`] on fresh tmpfs mounts, so a case costs a few
//!   mounts, not a fork. A [`store::LayerStore`] lays the case out like
//!   Docker's overlay2 driver, [`mount`] mounts it with the kernel (or
//!   [`spawn`] runs a helper that does), [`exec`] performs each op with the
//!   real syscall beneath the merged root (`openat2` `RESOLVE_IN_ROOT`),
//!   and [`observe`] turns trees into [`View`](ovlcheck_case::View)s.
//!
//! Dependencies between the modules go one way: [`api`] and [`proto`] are
//! shared, [`worker`] never imports the harness side, and [`process`] only
//! reaches into [`worker`] for the forked child's entry point.
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

pub mod api;
pub mod backend;
pub mod creds;
pub mod exec;
pub mod idmap;
pub mod idmapped;
pub mod ids;
pub mod mount;
pub mod observe;
pub mod oci;
pub mod pack;
pub mod placement;
pub mod process;
pub mod proto;
pub mod spawn;
pub mod store;
pub mod support;
pub mod sys;
pub mod worker;

pub use api::{
    Backend, BackendKind, BackendOptions, CaseRun, DriverError, EngineStack, Export, PackSession,
    Session, StackDirs, StackLayers, Wants, TIMEOUT_ENV,
};
pub use backend::{backend_by_name, check_environment, PooledBackend, WorkerSession};

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
