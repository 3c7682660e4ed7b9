//! The three backends and their sessions. All of them drive worker
//! processes ([`crate::worker`]); they differ only in how the worker mounts
//! a stack ([`Mounter`]). Workers are pooled: a finished session hands its
//! worker back, so the next case costs a few tmpfs and overlay mounts, not a
//! fork and two namespaces.

use crate::proto::{Mounter, Request, Response};
use crate::worker::{self, Worker};
use crate::{Backend, BackendKind, BackendOptions, CaseRun, DriverError, Session};
use ovlcheck_case::{Case, Op, Outcome, Profile, Step, View};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where Debian's `fuse-overlayfs` package puts the binary.
pub const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";
/// Debian's `fuse3` unmount helper.
pub const FUSERMOUNT3: &str = "/usr/bin/fusermount3";
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

/// What every backend shares: the mounter, options and the worker pool.
#[derive(Debug)]
struct Inner {
    name: &'static str,
    mounter: Mounter,
    opts: BackendOptions,
    idle: Mutex<Vec<Worker>>,
}

impl Inner {
    fn new(name: &'static str, mounter: Mounter, opts: BackendOptions) -> Arc<Inner> {
        Arc::new(Inner {
            name,
            mounter,
            opts,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// An idle worker of the right kind (`true` when pooled), or a new one,
    /// placed on this thread's worker CPU (preferring one already there);
    /// never the one this thread handed back last ([`SETTLING`]).
    fn take(&self, userns: bool) -> Result<(Worker, bool), DriverError> {
        let cpu = crate::placement::worker_cpu();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let settling = SETTLING.with(Cell::get);
            let fits = |w: &Worker| w.userns == userns && w.alive() && Some(w.pid()) != settling;
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
    fn give(&self, w: Worker) {
        SETTLING.with(|s| s.set(Some(w.pid())));
        if !w.alive() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.opts.pool_size {
            idle.push(w);
        }
    }

    /// A whole case in one round trip: start, steps, views, remount,
    /// commit and end as one [`Request::Batch`].
    fn run_case(self: &Arc<Self>, case: &Case) -> Result<CaseRun, DriverError> {
        case.profile
            .validate()
            .map_err(|e| DriverError::Io(format!("invalid profile: {e}")))?;
        let userns = needs_userns(&case.profile)?;
        let n = case.steps.len();
        let mut reqs = Vec::with_capacity(n + 8);
        reqs.push(Request::Start {
            case: Box::new(case.clone()),
            mounter: self.mounter.clone(),
        });
        reqs.extend(
            case.steps
                .iter()
                .map(|s| Request::Apply { step: s.clone() }),
        );
        reqs.extend([Request::MergedView, Request::UpperView]);
        for op in [Op::Remount, Op::Commit] {
            reqs.push(Request::Apply {
                step: Step::new(op),
            });
            reqs.push(Request::MergedView);
        }
        reqs.push(Request::End);
        let req = Request::Batch(reqs);
        let timeout = self.opts.timeout * (START_TIMEOUT_FACTOR + n as u32 + 8);
        let (mut w, pooled) = self.take(userns)?;
        let answer = match w.call(&req, "case", timeout) {
            Err(DriverError::Died(_)) if pooled => {
                w = spawn_placed(userns, self.opts.timeout * START_TIMEOUT_FACTOR)?;
                w.call(&req, "case", timeout)?
            }
            r => r?,
        };
        let Response::Batch(answers) = answer else {
            return Err(DriverError::Io(format!(
                "unexpected answer to a case: {answer:?}"
            )));
        };
        let run = case_run(answers, n);
        if !matches!(run, Err(DriverError::Environment(_))) {
            self.give(w);
        }
        run
    }

    fn start(self: &Arc<Self>, case: &Case) -> Result<RemoteSession, DriverError> {
        case.profile
            .validate()
            .map_err(|e| DriverError::Io(format!("invalid profile: {e}")))?;
        let userns = needs_userns(&case.profile)?;
        let req = Request::Start {
            case: Box::new(case.clone()),
            mounter: self.mounter.clone(),
        };
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
            Response::Ok => Ok(RemoteSession {
                worker: Some(w),
                inner: Arc::clone(self),
            }),
            Response::Error { message, env } => {
                self.give(w);
                Err(if env {
                    DriverError::Environment(message)
                } else {
                    DriverError::Io(message)
                })
            }
            other => Err(DriverError::Io(format!(
                "unexpected answer to start: {other:?}"
            ))),
        }
    }
}

/// A new worker, placed on this thread's worker CPU.
fn spawn_placed(userns: bool, timeout: Duration) -> Result<Worker, DriverError> {
    let mut w = worker::spawn(userns, timeout)?;
    w.place(crate::placement::worker_cpu());
    Ok(w)
}

/// Turns the answers to a whole-case batch into a [`CaseRun`].
fn case_run(answers: Vec<Response>, steps: usize) -> Result<CaseRun, DriverError> {
    let mut it = answers.into_iter();
    let mut next = |what: &str| -> Result<Response, DriverError> {
        match it.next() {
            Some(Response::Error { message, env: true }) => Err(DriverError::Environment(message)),
            Some(Response::Died(why)) => Err(DriverError::Died(why)),
            Some(r) => Ok(r),
            None => Err(DriverError::Io(format!("no answer for {what}"))),
        }
    };
    let io = |what: &str, r: Response| match r {
        Response::Error { message, .. } => DriverError::Io(format!("{what}: {message}")),
        r => DriverError::Io(format!("{what}: unexpected answer {r:?}")),
    };
    match next("start")? {
        Response::Ok => {}
        r => return Err(io("start", r)),
    }
    let mut outcomes = Vec::with_capacity(steps);
    for _ in 0..steps {
        match next("a step")? {
            Response::Outcome(o) => outcomes.push(o),
            r => return Err(io("step", r)),
        }
    }
    let merged = match next("merged view")? {
        Response::View(v) => v,
        r => return Err(io("merged view", r)),
    };
    let upper = match next("upper view")? {
        Response::MaybeView(v) => v,
        r => return Err(io("upper view", r)),
    };
    let mut lifecycle = |what: &str| -> Result<(Outcome, Option<View>), DriverError> {
        let o = match next(what)? {
            Response::Outcome(o) => o,
            r => return Err(io(what, r)),
        };
        let v = match next("view")? {
            Response::View(v) => Some(v),
            Response::Error { .. } if !o.is_ok() => None,
            r => return Err(io("view", r)),
        };
        Ok((o, v))
    };
    let (remount, after_remount) = lifecycle("remount")?;
    let (commit, after_commit) = lifecycle("commit")?;
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

/// Whether a case runs in a user-namespace worker: `userxattr` cases always
/// do (overlay in an unprivileged user namespace), and everything does when
/// the harness is not root — which then only supports `userxattr`.
fn needs_userns(profile: &Profile) -> Result<bool, DriverError> {
    let root = nix::unistd::geteuid().is_root();
    if !root && !profile.userxattr {
        return Err(DriverError::Environment(
            "this profile needs root (trusted.overlay xattrs); run as root or use --profile userxattr".into(),
        ));
    }
    Ok(profile.userxattr || !root)
}

/// The kernel's overlayfs.
#[derive(Debug, Clone)]
pub struct KernelBackend {
    inner: Arc<Inner>,
}

impl KernelBackend {
    pub fn new() -> KernelBackend {
        KernelBackend::with_options(BackendOptions::default())
    }

    pub fn with_options(opts: BackendOptions) -> KernelBackend {
        KernelBackend {
            inner: Inner::new("kernel", Mounter::Kernel, opts),
        }
    }

    /// [`Backend::start`] with the concrete session type (for tests and
    /// tools that want its extra methods).
    pub fn start_session(&self, case: &Case) -> Result<RemoteSession, DriverError> {
        self.inner.start(case)
    }
}

impl Default for KernelBackend {
    fn default() -> Self {
        KernelBackend::new()
    }
}

/// fuse-overlayfs (the Debian package's C implementation), unmounted with
/// `fusermount3 -u`.
#[derive(Debug, Clone)]
pub struct FuseOverlayfsBackend {
    inner: Arc<Inner>,
}

impl FuseOverlayfsBackend {
    pub fn new() -> FuseOverlayfsBackend {
        FuseOverlayfsBackend::with_options(BackendOptions::default())
    }

    pub fn with_options(opts: BackendOptions) -> FuseOverlayfsBackend {
        let mounter = Mounter::Fuse {
            binary: FUSE_OVERLAYFS.to_string(),
        };
        FuseOverlayfsBackend {
            inner: Inner::new("fuse-overlayfs", mounter, opts),
        }
    }

    /// [`Backend::start`] with the concrete session type.
    pub fn start_session(&self, case: &Case) -> Result<RemoteSession, DriverError> {
        require_file(
            FUSE_OVERLAYFS,
            "fuse-overlayfs not found: apt-get install fuse-overlayfs",
        )?;
        self.inner.start(case)
    }
}

impl Default for FuseOverlayfsBackend {
    fn default() -> Self {
        FuseOverlayfsBackend::new()
    }
}

/// Any overlay implementation mounted by user-given shell command templates
/// (see [`crate::spawn::fill_template`]), run with `/bin/sh -c` inside the
/// worker's namespace.
#[derive(Debug, Clone)]
pub struct ExecBackend {
    inner: Arc<Inner>,
}

impl ExecBackend {
    /// `mount_template` may use `{lowerdir} {upperdir} {workdir} {target}
    /// {options}`; `umount_template` uses `{target}`.
    pub fn new(mount_template: String, umount_template: String) -> ExecBackend {
        ExecBackend::with_options(mount_template, umount_template, BackendOptions::default())
    }

    pub fn with_options(
        mount_template: String,
        umount_template: String,
        opts: BackendOptions,
    ) -> ExecBackend {
        let mounter = Mounter::Exec {
            mount: mount_template,
            umount: umount_template,
        };
        ExecBackend {
            inner: Inner::new("exec", mounter, opts),
        }
    }

    /// [`Backend::start`] with the concrete session type.
    pub fn start_session(&self, case: &Case) -> Result<RemoteSession, DriverError> {
        self.inner.start(case)
    }
}

/// The three backends differ only in their [`Mounter`]: each serves the
/// trait from its worker pool.
macro_rules! pooled_backend {
    ($($t:ty),*) => {$(
        impl Backend for $t {
            fn name(&self) -> &str {
                self.inner.name
            }

            fn kind(&self) -> BackendKind {
                BackendKind::from_name(self.inner.name).expect("a pooled backend's name")
            }

            fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
                Ok(Box::new(self.start_session(case)?))
            }

            fn run_case(&self, case: &Case) -> Result<CaseRun, DriverError> {
                self.inner.run_case(case)
            }
        }
    )*};
}

pooled_backend!(KernelBackend, FuseOverlayfsBackend, ExecBackend);

/// A session served by a worker process.
#[derive(Debug)]
pub struct RemoteSession {
    worker: Option<Worker>,
    inner: Arc<Inner>,
}

impl RemoteSession {
    fn call(&mut self, req: &Request, op: &str) -> Result<Response, DriverError> {
        let timeout = self.inner.opts.timeout;
        self.call_with(req, op, timeout)
    }

    fn call_with(
        &mut self,
        req: &Request,
        op: &str,
        timeout: Duration,
    ) -> Result<Response, DriverError> {
        let w = self
            .worker
            .as_mut()
            .ok_or_else(|| DriverError::Died("session already failed".into()))?;
        let r = w.call(req, op, timeout);
        if r.is_err() {
            self.worker = None;
        }
        match r? {
            Response::Error {
                message,
                env: false,
            } => Err(DriverError::Io(message)),
            Response::Error { message, env: true } => Err(DriverError::Environment(message)),
            Response::Died(why) => Err(DriverError::Died(why)),
            ok => Ok(ok),
        }
    }

    /// The worker's `/proc/self/mountinfo` (its private namespace).
    pub fn mountinfo(&mut self) -> Result<String, DriverError> {
        match self.call(&Request::Mountinfo, "mountinfo")? {
            Response::Text(t) => Ok(t),
            other => Err(unexpected("mountinfo", other)),
        }
    }

    /// The store home of this session, a path inside the worker's
    /// namespace (reach it from outside via `/proc/<worker_pid>/root`).
    pub fn store_home(&mut self) -> Result<String, DriverError> {
        match self.call(&Request::StoreHome, "store home")? {
            Response::Text(t) => Ok(t),
            other => Err(unexpected("store home", other)),
        }
    }

    /// How the stack was mounted: `Absolute`, `Relative` or `NewApi`
    /// ([`crate::mount::Method`]) for the kernel, `Helper` otherwise.
    pub fn mount_method(&mut self) -> Result<String, DriverError> {
        match self.call(&Request::MountMethod, "mount method")? {
            Response::Text(t) => Ok(t),
            other => Err(unexpected("mount method", other)),
        }
    }

    /// The worker's pid (0 once it is gone).
    pub fn worker_pid(&self) -> i32 {
        self.worker.as_ref().map_or(0, Worker::pid)
    }

    /// Test hook: makes the worker sleep `secs` (to trip the watchdog).
    pub fn stall(&mut self, secs: u64) -> Result<(), DriverError> {
        self.call(&Request::Sleep { secs }, "sleep").map(drop)
    }
}

fn unexpected(what: &str, r: Response) -> DriverError {
    DriverError::Io(format!("unexpected answer to {what}: {r:?}"))
}

impl Session for RemoteSession {
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

    fn finish(mut self: Box<Self>) -> Result<(), DriverError> {
        self.end()
    }
}

impl RemoteSession {
    fn end(&mut self) -> Result<(), DriverError> {
        if self.worker.is_none() {
            return Ok(());
        }
        let r = self.call(&Request::End, "finish");
        if let Some(w) = self.worker.take() {
            if r.is_ok() {
                self.inner.give(w);
            }
        }
        r.map(drop)
    }
}

impl Drop for RemoteSession {
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
    let backend: Box<dyn Backend> = match kind {
        BackendKind::Kernel => Box::new(KernelBackend::new()),
        _ => Box::new(FuseOverlayfsBackend::new()),
    };
    let session = backend.start(&case).map_err(|e| match e {
        DriverError::Environment(m) => DriverError::Environment(m),
        other => DriverError::Environment(format!("a trial {} mount failed: {other}", kind.name())),
    })?;
    session.finish()
}
