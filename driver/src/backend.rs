//! The harness side of mounted backends: [`PooledBackend`], one type for
//! every implementation a worker can mount ([`Mounter`]: the kernel's
//! overlayfs, fuse-overlayfs, a user's mount command), and
//! [`WorkerSession`], the harness's handle on a case a worker runs step by
//! step. Workers are pooled: a finished case hands its worker back, so the
//! next case costs a few tmpfs and overlay mounts, not a fork and two
//! namespaces.

use crate::api::{
    Backend, BackendKind, BackendOptions, CaseRun, DriverError, EngineStack, Export, Session, Wants,
};
use crate::process::{self, WorkerProcess};
use crate::proto::{Mounter, Request, Response, RunCase, RunPack};
use crate::spawn::{FUSERMOUNT3, FUSE_OVERLAYFS};
use ovlcheck_case::{Case, Errno, Outcome, Profile, Step, View};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starting a session (building layers, mounting) may take this many
/// op timeouts.
const START_TIMEOUT_FACTOR: u32 = 6;

thread_local! {
    /// The worker this thread handed back last. It answered its case first
    /// and is still unmounting that case's session
    /// (`WorkerState::settle`: two RCU grace periods and the superblocks'
    /// teardown), so the thread's next case goes to another worker and the
    /// two overlap. Each thread thus takes turns between two workers of a
    /// kind: `fuzz --jobs 1` ran 5-17% more cases per second (the teardown
    /// uses the idle CPU), `--jobs 2` the same within the noise
    /// (`harness/benches/ratios.rs`, alternating with the single worker).
    static SETTLING: Cell<Option<i32>> = const { Cell::new(None) };
}

/// A backend whose cases run in pooled worker processes, mounted by its
/// [`Mounter`]. Cloning it shares the pool.
#[derive(Debug, Clone)]
pub struct PooledBackend {
    pool: Arc<Pool>,
}

/// The mounter, the options and the idle workers of a [`PooledBackend`].
#[derive(Debug)]
struct Pool {
    mounter: Mounter,
    opts: BackendOptions,
    idle: Mutex<Vec<WorkerProcess>>,
}

impl PooledBackend {
    /// A backend mounting with `mounter`.
    pub fn new(mounter: Mounter, opts: BackendOptions) -> PooledBackend {
        PooledBackend {
            pool: Arc::new(Pool {
                mounter,
                opts,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The kernel's overlayfs, default options.
    pub fn kernel() -> PooledBackend {
        PooledBackend::new(Mounter::Kernel, BackendOptions::default())
    }

    /// fuse-overlayfs (the Debian package's C implementation, unmounted
    /// with `fusermount3 -u`), default options.
    pub fn fuse_overlayfs() -> PooledBackend {
        PooledBackend::new(Mounter::fuse_overlayfs(), BackendOptions::default())
    }

    /// Any overlay implementation mounted by user-given shell command
    /// templates (see [`crate::spawn::fill_template`]), run with
    /// `/bin/sh -c` inside the worker's namespace: `mount` may use
    /// `{lowerdir} {upperdir} {workdir} {target} {options}`, `umount` uses
    /// `{target}`. Default options.
    pub fn exec(mount: String, umount: String) -> PooledBackend {
        PooledBackend::new(Mounter::Exec { mount, umount }, BackendOptions::default())
    }

    /// How its workers mount a stack.
    pub fn mounter(&self) -> &Mounter {
        &self.pool.mounter
    }

    /// [`Backend::start`] with the concrete session type (for tests and
    /// tools that want its extra methods).
    pub fn start_session(&self, case: &Case) -> Result<WorkerSession, DriverError> {
        if let Mounter::Fuse { binary } = &self.pool.mounter {
            require_file(
                binary,
                "fuse-overlayfs not found: apt-get install fuse-overlayfs",
            )?;
        }
        self.pool.start(case)
    }

    /// A session on an engine's stack ([`EngineStack`]): a root worker
    /// mounts the engine's container layer with the kernel's overlay and
    /// the engine's options; steps, views and remounts work as for any
    /// session, commits and exports are the engine's (ovlcheck-engine).
    pub fn attach(&self, stack: &EngineStack) -> Result<WorkerSession, DriverError> {
        self.pool.session(
            Request::Attach {
                stack: Box::new(stack.clone()),
            },
            false,
        )
    }

    /// A whole case in one round trip ([`Request::RunCase`]), with the
    /// optional observations `wants` asks for.
    pub fn run(&self, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        self.pool.run(case, wants)
    }
}

impl Backend for PooledBackend {
    fn kind(&self) -> BackendKind {
        self.pool.mounter.kind()
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        Ok(Box::new(self.start_session(case)?))
    }

    fn run_case(&self, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        self.run(case, wants)
    }

    fn run_pack(&self, cases: &[Case], wants: &[Wants]) -> Result<Vec<CaseRun>, DriverError> {
        self.pool.run_pack(cases, wants)
    }

    /// The kernel's overlay only. Another implementation may answer
    /// differently for what else its mount holds, and that can hide a
    /// divergence a case alone shows: fuse-overlayfs did for 3 of 1,000
    /// cases (`fuzz --backend fuse-overlayfs --cases 1000 --pack 8`
    /// reported 203 divergent cases against 206 with `--pack 1`).
    fn packs(&self) -> bool {
        self.pool.mounter == Mounter::Kernel
    }

    /// As every backend does, and a case run in a user namespace must
    /// need no id the namespace lacks ([`crate::idmap`]).
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        if let Some(why) = crate::support::unreadable_layers(self.kind(), &c) {
            return Err(why);
        }
        if let Some(why) = crate::support::data_only_layers(self.kind(), &c) {
            return Err(why);
        }
        if let Some(why) = crate::support::idmapped_case(&c) {
            return Err(why);
        }
        if let Some(why) = crate::support::protected_flags(&c) {
            return Err(why);
        }
        if crate::support::in_user_namespace(&c.profile) {
            let mapped = crate::idmap::IdMap::current().mapped();
            if let Some(why) = crate::support::unmapped_id(&c, mapped) {
                return Err(why);
            }
        }
        Ok(c)
    }
}

impl Pool {
    /// An idle worker of the right kind (`true` when pooled), or a new one,
    /// placed on this thread's worker CPU (preferring one already there);
    /// never the one this thread handed back last ([`SETTLING`]).
    fn take(&self, userns: bool) -> Result<(WorkerProcess, bool), DriverError> {
        let cpu = crate::placement::worker_cpu();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let settling = SETTLING.with(Cell::get);
            let fits =
                |w: &WorkerProcess| w.userns == userns && w.alive() && Some(w.pid()) != settling;
            idle.iter()
                .position(|w| fits(w) && w.cpu() == cpu)
                .or_else(|| idle.iter().position(fits))
                .map(|i| idle.swap_remove(i))
        };
        match found {
            Some(mut w) => {
                w.place(cpu);
                Ok((w, true))
            }
            None => Ok((
                spawn_placed(userns, self.opts.timeout * START_TIMEOUT_FACTOR)?,
                false,
            )),
        }
    }

    /// Returns a worker to the pool (or lets it go when the pool is full).
    fn give(&self, w: WorkerProcess) {
        SETTLING.with(|s| s.set(Some(w.pid())));
        if !w.alive() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.opts.pool_size {
            idle.push(w);
        }
    }

    /// A whole case in one round trip: the worker answers a
    /// [`Request::RunCase`] with the [`CaseRun`] it collected.
    fn run(self: &Arc<Self>, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        let req = Request::RunCase(Box::new(RunCase {
            case: case.clone(),
            mounter: self.mounter.clone(),
            wants,
        }));
        match self.whole(&case.profile, &[(case, wants)], &req)? {
            Response::CaseRun(run) => Ok(*run),
            other => Err(unexpected("a case", other)),
        }
    }

    /// Cases of one profile in one mount: the worker answers a
    /// [`Request::RunPack`] with each case's [`CaseRun`].
    fn run_pack(
        self: &Arc<Self>,
        cases: &[Case],
        wants: &[Wants],
    ) -> Result<Vec<CaseRun>, DriverError> {
        let first = cases
            .first()
            .ok_or_else(|| DriverError::Io("an empty pack".into()))?;
        let req = Request::RunPack(Box::new(RunPack {
            cases: cases.to_vec(),
            mounter: self.mounter.clone(),
            wants: wants.to_vec(),
        }));
        let each: Vec<(&Case, Wants)> = cases.iter().zip(wants.iter().copied()).collect();
        match self.whole(&first.profile, &each, &req)? {
            Response::CaseRuns(runs) if runs.len() == cases.len() => Ok(runs),
            other => Err(unexpected("a pack", other)),
        }
    }

    /// A request that starts, runs and ends whole cases (`each`, of
    /// `profile`), on a worker of the right kind, with a watchdog that
    /// allows for every step and observation; a [`Response::Failed`]
    /// answer as its error.
    fn whole(
        self: &Arc<Self>,
        profile: &Profile,
        each: &[(&Case, Wants)],
        req: &Request,
    ) -> Result<Response, DriverError> {
        profile
            .validate()
            .map_err(|e| DriverError::Io(format!("invalid profile: {e}")))?;
        let userns = needs_userns(profile)?;
        // Start, the steps, the views and lifecycle steps, the kernel view
        // and the export (a diff, an apply and a mount: three requests' time).
        let requests: u32 = each
            .iter()
            .map(|(case, wants)| {
                case.steps.len() as u32
                    + 8
                    + u32::from(wants.kernel_view)
                    + 3 * u32::from(wants.export)
            })
            .sum();
        let timeout = self.opts.timeout * (START_TIMEOUT_FACTOR + requests);
        let (mut w, pooled) = self.take(userns)?;
        let answer = match w.call(req, "case", timeout) {
            // A pooled worker may have died while idle: retry on a fresh one.
            Err(DriverError::Died(_)) if pooled => {
                w = spawn_placed(userns, self.opts.timeout * START_TIMEOUT_FACTOR)?;
                w.call(req, "case", timeout)?
            }
            r => r?,
        };
        let answer = match answer {
            Response::Failed(e) => Err(e),
            other => Ok(other),
        };
        if !matches!(answer, Err(DriverError::Environment(_))) {
            self.give(w);
        }
        answer
    }

    fn start(self: &Arc<Self>, case: &Case) -> Result<WorkerSession, DriverError> {
        case.profile
            .validate()
            .map_err(|e| DriverError::Io(format!("invalid profile: {e}")))?;
        let userns = needs_userns(&case.profile)?;
        let req = Request::Start {
            case: Box::new(case.clone()),
            mounter: self.mounter.clone(),
        };
        self.session(req, userns)
    }

    /// A session on a worker that answered `req` (a start or an attach)
    /// with [`Response::Ok`].
    fn session(self: &Arc<Self>, req: Request, userns: bool) -> Result<WorkerSession, DriverError> {
        let timeout = self.opts.timeout * START_TIMEOUT_FACTOR;
        let (mut w, pooled) = self.take(userns)?;
        let answer = match w.call(&req, "start", timeout) {
            // A pooled worker may have died while idle: retry on a fresh one.
            Err(DriverError::Died(_)) if pooled => {
                w = spawn_placed(userns, timeout)?;
                w.call(&req, "start", timeout)?
            }
            r => r?,
        };
        match answer {
            Response::Ok => Ok(WorkerSession {
                worker: Some(w),
                pool: Arc::clone(self),
            }),
            Response::Failed(e) => {
                self.give(w);
                Err(e)
            }
            other => Err(unexpected("start", other)),
        }
    }
}

/// A new worker, placed on this thread's worker CPU.
fn spawn_placed(userns: bool, timeout: Duration) -> Result<WorkerProcess, DriverError> {
    let mut w = process::spawn(userns, timeout)?;
    w.place(crate::placement::worker_cpu());
    Ok(w)
}

/// Whether a case runs in a user-namespace worker
/// ([`crate::support::in_user_namespace`]); a profile a harness that is not
/// root cannot mount is refused.
fn needs_userns(profile: &Profile) -> Result<bool, DriverError> {
    if let Some(why) = crate::support::needs_root(profile) {
        return Err(DriverError::Environment(format!("this profile {why}")));
    }
    Ok(crate::support::in_user_namespace(profile))
}

/// The backend called `name` (`kernel`, `fuse-overlayfs`, `exec`). `exec`
/// needs both templates in `opts`.
pub fn backend_by_name(name: &str, opts: &BackendOptions) -> Result<Box<dyn Backend>, DriverError> {
    let mounter = match BackendKind::from_name(name) {
        Some(BackendKind::Kernel) => Mounter::Kernel,
        Some(BackendKind::FuseOverlayfs) => Mounter::fuse_overlayfs(),
        Some(BackendKind::Exec) => match (&opts.mount_template, &opts.umount_template) {
            (Some(m), Some(u)) => Mounter::Exec {
                mount: m.clone(),
                umount: u.clone(),
            },
            _ => {
                return Err(DriverError::Environment(
                    "the exec backend needs a mount and an unmount command template".into(),
                ))
            }
        },
        Some(BackendKind::Model) => {
            return Err(DriverError::Environment(
                "the model backend is ovlcheck-harness's ModelBackend, not a mounted one".into(),
            ))
        }
        Some(BackendKind::Vm) => {
            return Err(DriverError::Environment(
                "the vm backend is ovlcheck-vm's VmBackend: it needs --kernel".into(),
            ))
        }
        Some(kind @ (BackendKind::Docker | BackendKind::Podman | BackendKind::Containerd)) => {
            return Err(DriverError::Environment(format!(
                "the {} backend is ovlcheck-engine's, not a pooled one",
                kind.name()
            )))
        }
        None => {
            return Err(DriverError::Environment(format!(
                "unknown backend `{name}`: use kernel, fuse-overlayfs or exec"
            )))
        }
    };
    Ok(Box::new(PooledBackend::new(mounter, opts.clone())))
}

/// The harness's handle on a case a worker runs step by step.
#[derive(Debug)]
pub struct WorkerSession {
    worker: Option<WorkerProcess>,
    pool: Arc<Pool>,
}

impl WorkerSession {
    fn call(&mut self, req: &Request, op: &str) -> Result<Response, DriverError> {
        let timeout = self.pool.opts.timeout;
        let w = self
            .worker
            .as_mut()
            .ok_or_else(|| DriverError::Died("session already failed".into()))?;
        let r = w.call(req, op, timeout);
        if r.is_err() {
            self.worker = None;
        }
        match r? {
            Response::Failed(e) => Err(e),
            ok => Ok(ok),
        }
    }

    fn text(&mut self, req: &Request, what: &str) -> Result<String, DriverError> {
        match self.call(req, what)? {
            Response::Text(t) => Ok(t),
            other => Err(unexpected(what, other)),
        }
    }

    /// [`crate::api::PackSession::enter`] on the worker's mounted case:
    /// the next steps resolve beneath `dir` of the mount (`None`: the root
    /// again), for a pack whose lifecycle steps the caller makes (a
    /// container engine's commit).
    pub fn enter(&mut self, dir: Option<&str>) -> Result<(), DriverError> {
        let req = Request::Enter {
            dir: dir.map(str::to_string),
        };
        match self.call(&req, "enter")? {
            Response::Ok => Ok(()),
            other => Err(unexpected("enter", other)),
        }
    }

    /// The worker's `/proc/self/mountinfo` (its private namespace).
    pub fn mountinfo(&mut self) -> Result<String, DriverError> {
        self.text(&Request::Mountinfo, "mountinfo")
    }

    /// The store home of this session, a path inside the worker's
    /// namespace (reach it from outside via `/proc/<worker_pid>/root`).
    pub fn store_home(&mut self) -> Result<String, DriverError> {
        self.text(&Request::StoreHome, "store home")
    }

    /// How the stack was mounted: `Absolute`, `Relative` or `NewApi`
    /// ([`crate::mount::Method`]) for the kernel, `Helper` otherwise.
    pub fn mount_method(&mut self) -> Result<String, DriverError> {
        self.text(&Request::MountMethod, "mount method")
    }

    /// The worker's pid (0 once it is gone).
    pub fn worker_pid(&self) -> i32 {
        self.worker.as_ref().map_or(0, WorkerProcess::pid)
    }

    /// Test hook: makes the worker sleep `secs` (to trip the watchdog).
    pub fn stall(&mut self, secs: u64) -> Result<(), DriverError> {
        self.call(&Request::Sleep { secs }, "sleep").map(drop)
    }

    fn end(&mut self) -> Result<(), DriverError> {
        if self.worker.is_none() {
            return Ok(());
        }
        let r = self.call(&Request::End, "finish");
        if let Some(w) = self.worker.take() {
            if r.is_ok() {
                self.pool.give(w);
            }
        }
        r.map(drop)
    }
}

fn unexpected(what: &str, r: Response) -> DriverError {
    DriverError::Io(format!("unexpected answer to {what}: {r:?}"))
}

impl Session for WorkerSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        let req = Request::Apply { step: step.clone() };
        match self.call(&req, step.op.keyword())? {
            Response::Outcome(o) => Ok(o),
            other => Err(unexpected(step.op.keyword(), other)),
        }
    }

    fn merged_view(&mut self) -> Result<View, DriverError> {
        match self.call(&Request::MergedView, "merged view")? {
            Response::View(v) => Ok(v),
            other => Err(unexpected("merged view", other)),
        }
    }

    fn upper_view(&mut self) -> Result<Option<View>, DriverError> {
        match self.call(&Request::UpperView, "upper view")? {
            Response::MaybeView(v) => Ok(v),
            other => Err(unexpected("upper view", other)),
        }
    }

    fn lower_views(&mut self) -> Result<Vec<View>, DriverError> {
        match self.call(&Request::LowerViews, "lower views")? {
            Response::Views(v) => Ok(v),
            other => Err(unexpected("lower views", other)),
        }
    }

    fn kernel_view(&mut self) -> Result<Result<View, Errno>, DriverError> {
        match self.call(&Request::KernelView, "kernel view")? {
            Response::KernelView(v) => Ok(v),
            other => Err(unexpected("kernel view", other)),
        }
    }

    fn export(&mut self) -> Result<Option<Export>, DriverError> {
        match self.call(&Request::Export, "export")? {
            Response::Export(e) => Ok(e),
            other => Err(unexpected("export", other)),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<(), DriverError> {
        self.end()
    }
}

impl Drop for WorkerSession {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

fn require_file(path: &str, message: &str) -> Result<(), DriverError> {
    if std::path::Path::new(path).exists() {
        Ok(())
    } else {
        Err(DriverError::Environment(message.to_string()))
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Static checks first (overlay in `/proc/filesystems`, user namespaces for
/// a non-root harness, binaries), then a trial session of an empty case, as
/// moby's `SupportsOverlay` does a trial mount.
pub fn check_environment(kind: BackendKind) -> Result<(), DriverError> {
    if kind == BackendKind::Model {
        // The model mounts nothing.
        return Ok(());
    }
    let root = nix::unistd::geteuid().is_root();
    if !root && userns_disabled() {
        return Err(DriverError::Environment(
            "no permission to mount: not root and user namespaces are disabled; run as root or enable them (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces)".into(),
        ));
    }
    if kind == BackendKind::FuseOverlayfs {
        require_file(
            FUSE_OVERLAYFS,
            "fuse-overlayfs not found: apt-get install fuse-overlayfs",
        )?;
        require_file(FUSERMOUNT3, "fusermount3 not found: apt-get install fuse3")?;
        require_file(
            "/dev/fuse",
            "/dev/fuse is missing: modprobe fuse (or give the container --device /dev/fuse)",
        )?;
    }
    if kind == BackendKind::Exec {
        return require_file(
            "/bin/sh",
            "/bin/sh not found: the exec backend runs its templates with /bin/sh -c",
        );
    }
    trial(kind, root)
}

/// Whether `/proc/filesystems` lists `fstype` (a module may still load on
/// first mount, so this only sharpens the message of a failed trial).
fn filesystem_listed(fstype: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
}

fn userns_disabled() -> bool {
    read_trim("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
        || read_trim("/proc/sys/user/max_user_namespaces").as_deref() == Some("0")
}

fn trial(kind: BackendKind, root: bool) -> Result<(), DriverError> {
    let fstype = if kind == BackendKind::FuseOverlayfs {
        "fuse"
    } else {
        "overlay"
    };
    trial_session(kind, root).map_err(|e| match e {
        DriverError::Environment(m) if !filesystem_listed(fstype) => DriverError::Environment(format!(
            "the kernel has no {fstype} filesystem (not in /proc/filesystems): run `modprobe {fstype}` as root ({m})"
        )),
        other => other,
    })
}

fn trial_session(kind: BackendKind, root: bool) -> Result<(), DriverError> {
    let mut case = Case::default();
    case.profile.userxattr = !root;
    let backend = match kind {
        BackendKind::Kernel => PooledBackend::kernel(),
        _ => PooledBackend::fuse_overlayfs(),
    };
    let session = backend.start(&case).map_err(|e| match e {
        DriverError::Environment(m) => DriverError::Environment(m),
        other => DriverError::Environment(format!("a trial {} mount failed: {other}", kind.name())),
    })?;
    session.finish()
}
