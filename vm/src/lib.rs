//! The `vm` backend: the overlayfs of another kernel, booted under qemu
//! with the ovlcheck binary as its init (docs/vm.md). The guest runs the
//! host's worker code ([`ovlcheck_driver::worker::WorkerState`]) and
//! answers the same requests ([`ovlcheck_driver::proto`]), so a case is
//! laid out, mounted, run and observed exactly as on the host; only the
//! kernel differs.
//!
//! A guest boots once and serves case after case; a campaign thread keeps
//! one, so `--jobs N` runs N guests. A guest that hangs or dies is a
//! backend failure carrying its console's tail, and the next case gets a
//! fresh guest.

pub mod guest;
pub mod image;
pub mod machine;

use guest::{Hello, OverlayFeatures};
use machine::{BootSpec, Guest};
use ovlcheck_case::profile::KernelVersion;
use ovlcheck_case::{Case, Op, Outcome, Profile, Step, View};
use ovlcheck_driver::api::Export;
use ovlcheck_driver::proto::{Mounter, Request, Response, RunCase};
use ovlcheck_driver::{Backend, BackendKind, BackendOptions, CaseRun, DriverError, Session, Wants};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Booting a guest may take this many request timeouts, and at least
/// [`BOOT_TIMEOUT_MIN`] (TCG boots Debian's 6.1 in about 3 s alone; several
/// guests and builds share the CPUs).
const BOOT_TIMEOUT_FACTOR: u32 = 6;
/// See [`BOOT_TIMEOUT_FACTOR`].
const BOOT_TIMEOUT_MIN: Duration = Duration::from_secs(60);
/// Starting a case may take this many request timeouts, as on the host.
const START_TIMEOUT_FACTOR: u32 = 6;
/// Lower layers (the case's and its commits') that always fit in a page
/// of `mount(2)` options: Docker's cap, whose relative `l/` paths take 29
/// bytes each. A kernel without `lowerdir+` cannot mount more.
const CLASSIC_MOUNT_LAYERS: usize = 128;

/// What the vm backend boots.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// The guest kernel: a bzImage (`vmlinuz`) or a vmlinux.
    pub kernel: PathBuf,
    /// An initrd unpacked before the guest's own initramfs (optional).
    pub initrd: Option<PathBuf>,
    /// Where the guest kernel's `overlay.ko` is (a module tree such as
    /// `/lib/modules/RELEASE`); default `/lib/modules/RELEASE` for the
    /// release the image names.
    pub modules: Option<PathBuf>,
    /// The binary that becomes the guest's init; default this process's
    /// own executable as it runs (`/proc/PID/exe`, also after a rebuild
    /// replaced its file; it must be an `ovlcheck` binary).
    pub guest_binary: Option<PathBuf>,
    /// `qemu-system-x86_64` (default: found on `$PATH`).
    pub qemu: PathBuf,
    /// qemu's accelerator: `tcg` (default: works everywhere) or `kvm`.
    pub accel: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Watchdog per request and pool settings, as for host workers.
    pub backend: BackendOptions,
}

impl VmOptions {
    /// Options for `kernel`, the rest default.
    pub fn new(kernel: impl Into<PathBuf>) -> VmOptions {
        VmOptions {
            kernel: kernel.into(),
            initrd: None,
            modules: None,
            guest_binary: None,
            qemu: PathBuf::from("qemu-system-x86_64"),
            accel: "tcg".into(),
            memory_mib: 1024,
            backend: BackendOptions::default(),
        }
    }
}

/// The vm backend. Cloning shares the guests.
#[derive(Clone, Debug)]
pub struct VmBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spec: BootSpec,
    timeout: Duration,
    pool_size: usize,
    /// What the first guest said: every guest boots the same image.
    hello: Hello,
    /// The guest kernel's version, as the model is told it.
    version: Option<KernelVersion>,
    features: OverlayFeatures,
    /// How the kernel is booted, for reports.
    how: &'static str,
    /// How long the first guest took from qemu's start to its hello.
    boot_time: Duration,
    idle: Mutex<Vec<Guest>>,
    /// The kernel image and initramfs, removed with the backend.
    _files: tempfile::TempDir,
}

impl VmBackend {
    /// Prepares the images and boots a first guest, so that a kernel that
    /// cannot boot, or has no overlay, is an unusable environment at once.
    pub fn new(opts: VmOptions) -> Result<VmBackend, DriverError> {
        let env = DriverError::Environment;
        let qemu = which(&opts.qemu).ok_or_else(|| {
            env(format!(
                "{} not found: apt-get install qemu-system-x86",
                opts.qemu.display()
            ))
        })?;
        if !opts.kernel.is_file() {
            return Err(env(format!(
                "--kernel {}: no such file",
                opts.kernel.display()
            )));
        }
        let files = tempfile::Builder::new()
            .prefix("ovlcheck-vm")
            .tempdir()
            .map_err(|e| env(format!("a temporary directory: {e}")))?;
        let kernel = image::prepare_kernel(&opts.kernel, files.path()).map_err(env)?;
        let modules = image::guest_modules(opts.modules.as_deref(), kernel.release.as_deref())
            .map_err(env)?;
        // This program as it runs: `/proc/PID/exe` reads the running
        // executable also after a rebuild replaced its file (its path then
        // ends in " (deleted)"); the pid, not `self`, so that `strip` reads
        // this program and not itself.
        let binary = match &opts.guest_binary {
            Some(b) => b.clone(),
            None => PathBuf::from(format!("/proc/{}/exe", std::process::id())),
        };
        let initramfs = files.path().join("initramfs.cpio");
        image::write_initramfs(
            &initramfs,
            &binary,
            &modules,
            opts.initrd.as_deref(),
            files.path(),
        )
        .map_err(env)?;
        let spec = BootSpec {
            qemu,
            kernel: kernel.boot.clone(),
            initramfs,
            memory_mib: opts.memory_mib,
            accel: opts.accel.clone(),
            dir: files.path().to_path_buf(),
        };
        let timeout = opts.backend.timeout;
        let started = std::time::Instant::now();
        let first = Guest::boot(&spec, boot_timeout(timeout)).map_err(|e| {
            env(format!(
                "the guest kernel {} did not boot: {e}",
                opts.kernel.display()
            ))
        })?;
        let boot_time = started.elapsed();
        let hello = first.hello.clone();
        let features = hello.overlay.clone().map_err(|why| {
            env(format!(
                "guest kernel {} ({}): {why}",
                hello.release,
                opts.kernel.display()
            ))
        })?;
        Ok(VmBackend {
            inner: Arc::new(Inner {
                version: KernelVersion::parse(&hello.release),
                spec,
                timeout,
                pool_size: opts.backend.pool_size,
                hello,
                features,
                how: kernel.how,
                boot_time,
                idle: Mutex::new(vec![first]),
                _files: files,
            }),
        })
    }

    /// The guest kernel's release (`uname -r` in the guest).
    pub fn release(&self) -> &str {
        &self.inner.hello.release
    }

    /// How long the first guest took from qemu's start to its hello.
    pub fn boot_time(&self) -> Duration {
        self.inner.boot_time
    }

    /// The channel the guest talks over (docs/vm.md, "The channel").
    pub fn channel(&self) -> guest::ChannelKind {
        self.inner.hello.channel
    }

    /// What the guest kernel's overlay does.
    pub fn features(&self) -> &OverlayFeatures {
        &self.inner.features
    }

    /// One line for reports: the release, how it boots (and how long the
    /// first boot took, a timing only shown) and its overlay's features.
    pub fn describe(&self) -> String {
        let f = &self.inner.features;
        format!(
            "guest kernel {} ({}, {}, booted in {:.1} s, channel {}): overlay {}, lowerdir+ {}, \
             uuid xattr {}, tmpfs user xattrs {}, fsync= {}, tmpfs keeps a listing's end {}",
            self.inner.hello.release,
            self.inner.how,
            self.inner.spec.accel,
            self.inner.boot_time.as_secs_f64(),
            self.inner.hello.channel,
            if f.module_loaded {
                "module"
            } else {
                "built in"
            },
            yes(f.layer_append),
            yes(f.uuid_xattr),
            yes(f.layer_user_xattrs),
            yes(f.fsync_option),
            yes(f.tmpfs_keeps_end),
        )
    }

    /// A guest from the pool, or a freshly booted one.
    fn take(&self) -> Result<Guest, DriverError> {
        let found = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(Guest::alive);
            idle.pop()
        };
        match found {
            Some(g) => Ok(g),
            None => Guest::boot(&self.inner.spec, boot_timeout(self.inner.timeout)),
        }
    }

    /// Hands a guest back (dropped, so powered off, when the pool is full).
    fn give(&self, g: Guest) {
        if !g.alive() {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.inner.pool_size {
            idle.push(g);
        }
    }

    /// [`Backend::start`] with the concrete session type.
    pub fn start_session(&self, case: &Case) -> Result<VmSession, DriverError> {
        let case = self.checked(case)?;
        let mut g = self.take()?;
        let req = Request::Start {
            case: Box::new(case),
            mounter: Mounter::Kernel,
        };
        match g.call(&req, "start", self.inner.timeout * START_TIMEOUT_FACTOR)? {
            Response::Ok => Ok(VmSession {
                guest: Some(g),
                backend: self.clone(),
            }),
            Response::Failed(e) => {
                self.give(g);
                Err(e)
            }
            other => Err(unexpected("start", other)),
        }
    }

    /// `case` as the guest runs it, or why it cannot.
    fn checked(&self, case: &Case) -> Result<Case, DriverError> {
        case.profile
            .validate()
            .map_err(|e| DriverError::Io(format!("invalid profile: {e}")))?;
        self.adapt_case(case).map_err(DriverError::Io)
    }
}

/// How long a guest may take to boot, for a request watchdog of `timeout`.
fn boot_timeout(timeout: Duration) -> Duration {
    (timeout * BOOT_TIMEOUT_FACTOR).max(BOOT_TIMEOUT_MIN)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl VmBackend {
    /// Whether the guest's kernel is known to be older than `major.minor`.
    fn guest_before(&self, major: u16, minor: u16) -> bool {
        self.inner
            .version
            .is_some_and(|v| v < KernelVersion::new(major, minor))
    }
}

impl Backend for VmBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Vm
    }

    fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError> {
        Ok(Box::new(self.start_session(case)?))
    }

    fn run_case(&self, case: &Case, wants: Wants) -> Result<CaseRun, DriverError> {
        let case = self.checked(case)?;
        let requests = case.steps.len() as u32
            + 8
            + u32::from(wants.kernel_view)
            + 3 * u32::from(wants.export);
        let req = Request::RunCase(Box::new(RunCase {
            case,
            mounter: Mounter::Kernel,
            wants,
        }));
        let mut g = self.take()?;
        let answer = g.call(
            &req,
            "case",
            self.inner.timeout * (START_TIMEOUT_FACTOR + requests),
        )?;
        self.give(g);
        match answer {
            Response::CaseRun(run) => Ok(*run),
            Response::Failed(e) => Err(e),
            other => Err(unexpected("a case", other)),
        }
    }

    fn kernel_release(&self) -> Option<String> {
        Some(self.inner.hello.release.clone())
    }

    /// The profile with the guest kernel's version, so that the model
    /// follows that kernel's rules ([`Profile::kernel`]).
    fn adapt_profile(&self, profile: &Profile) -> Result<Profile, String> {
        if profile.userxattr && !self.inner.features.layer_user_xattrs {
            return Err(format!(
                "guest kernel {}: its tmpfs has no user.* xattrs (v6.6), which the userxattr \
                 profile's layers need for the overlay's own xattrs (user.overlay.*)",
                self.inner.hello.release
            ));
        }
        if profile.uuid != ovlcheck_case::Uuid::Auto && !self.inner.features.uuid_xattr {
            return Err(format!(
                "guest kernel {}: its overlay has no uuid= option (v6.6)",
                self.inner.hello.release
            ));
        }
        if profile.volatile && self.guest_before(5, 10) {
            return Err(format!(
                "guest kernel {}: its overlay has no volatile option (v5.10)",
                self.inner.hello.release
            ));
        }
        if profile.idmapped && self.guest_before(6, 3) {
            return Err(format!(
                "guest kernel {}: its tmpfs has no idmapped mounts (v6.3), which the idmapped \
                 layers are",
                self.inner.hello.release
            ));
        }
        if profile.fsync.is_some() && !self.inner.features.fsync_option {
            return Err(format!(
                "guest kernel {}: its overlay has no fsync= option (upstream 1f6ee9be92f8; \
                 in the 6.12 and 6.18 stable series since an update)",
                self.inner.hello.release
            ));
        }
        let mut p = ovlcheck_driver::support::adapt_profile(BackendKind::Vm, profile)?;
        p.kernel = self.inner.version;
        Ok(p)
    }

    /// The profile adapted. Refused: a stack longer than a page of mount
    /// options on a kernel without `lowerdir+`, and layers with user
    /// xattrs where the guest's tmpfs has none (they could not be laid
    /// out; ops on user xattrs run, and the model predicts the layer's
    /// EOPNOTSUPP: model/src/features.rs, `layer_user_xattrs`).
    fn adapt_case(&self, case: &Case) -> Result<Case, String> {
        let mut c = case.clone();
        c.profile = self.adapt_profile(&case.profile)?;
        if let Some(why) = ovlcheck_driver::support::idmapped_case(&c) {
            return Err(why);
        }
        if let Some(why) = ovlcheck_driver::support::data_only_layers(BackendKind::Vm, &c) {
            return Err(why);
        }
        if !self.inner.features.layer_user_xattrs && layers_have_user_xattrs(&c) {
            return Err(format!(
                "guest kernel {}: its tmpfs has no user.* xattrs (v6.6), which the case's layers have",
                self.inner.hello.release
            ));
        }
        let layers = c.lowers.len()
            + c.steps
                .iter()
                .filter(|s| matches!(s.op, Op::Commit))
                .count()
            + 1;
        if !self.inner.features.layer_append && layers > CLASSIC_MOUNT_LAYERS {
            return Err(format!(
                "guest kernel {}: {layers} lower layers (with the commits) may not fit in a \
                 page of mount options, and its overlay has no lowerdir+ (v6.8)",
                self.inner.hello.release
            ));
        }
        Ok(c)
    }
}

/// Whether a layer entry of `case` is a `user.*` xattr.
fn layers_have_user_xattrs(case: &Case) -> bool {
    case.layer_entries().any(|e| matches!(e, ovlcheck_case::layer::Entry::Xattr { name, .. } if name.starts_with("user.")))
}

fn unexpected(what: &str, r: Response) -> DriverError {
    DriverError::Io(format!("unexpected answer to {what}: {r:?}"))
}

/// Finds `name` on `$PATH` (or takes it as a path when it has a slash).
fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A case run step by step in a guest.
#[derive(Debug)]
pub struct VmSession {
    guest: Option<Guest>,
    backend: VmBackend,
}

impl VmSession {
    fn call(&mut self, req: &Request, op: &str) -> Result<Response, DriverError> {
        let timeout = self.backend.inner.timeout;
        let g = self
            .guest
            .as_mut()
            .ok_or_else(|| DriverError::Died("session already failed".into()))?;
        let r = g.call(req, op, timeout);
        if r.is_err() {
            self.guest = None;
        }
        match r? {
            Response::Failed(e) => Err(e),
            ok => Ok(ok),
        }
    }

    /// The guest's mountinfo (its only mount namespace).
    pub fn mountinfo(&mut self) -> Result<String, DriverError> {
        match self.call(&Request::Mountinfo, "mountinfo")? {
            Response::Text(t) => Ok(t),
            other => Err(unexpected("mountinfo", other)),
        }
    }

    /// The pid of the session's qemu (0 once the guest is gone), so tests
    /// can kill a guest.
    pub fn qemu_pid(&self) -> u32 {
        self.guest.as_ref().map_or(0, Guest::pid)
    }

    /// Test hook: makes the guest's worker sleep `secs` (to trip the
    /// watchdog).
    pub fn stall(&mut self, secs: u64) -> Result<(), DriverError> {
        self.call(&Request::Sleep { secs }, "sleep").map(drop)
    }

    fn end(&mut self) -> Result<(), DriverError> {
        if self.guest.is_none() {
            return Ok(());
        }
        let r = self.call(&Request::End, "finish");
        if let Some(g) = self.guest.take() {
            if r.is_ok() {
                self.backend.give(g);
            }
        }
        r.map(drop)
    }
}

impl Drop for VmSession {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl Session for VmSession {
    fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError> {
        match self.call(&Request::Apply { step: step.clone() }, step.op.keyword())? {
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

    fn kernel_view(&mut self) -> Result<Result<View, ovlcheck_case::Errno>, DriverError> {
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

/// Where the guest's probed behaviour differs from what the model takes
/// from its version (model/src/features.rs): a stable update can bring a
/// later release's behaviour, which the version does not tell. Each note
/// says what will then diverge.
pub fn version_notes(vm: &VmBackend) -> Vec<String> {
    let Ok(profile) = vm.adapt_profile(&ovlcheck_case::Profile::default()) else {
        return Vec::new();
    };
    let f = vm.features();
    let mut notes = Vec::new();
    if f.tmpfs_keeps_end != ovlcheck_model::tmpfs_keeps_end(&profile) {
        let does = if f.tmpfs_keeps_end {
            "keeps"
        } else {
            "does not keep"
        };
        notes.push(format!(
            "the guest's tmpfs {does} a directory read to its end there, unlike what the model \
             takes from version {} (a stable update?): a continued listing of a directory of \
             the upper alone after an empty read will diverge (version.empty-listing-read-again)",
            vm.release()
        ));
    }
    notes
}
