//! An engine to talk to: one already running (`--engine-socket`, or the
//! variable its clients read: `DOCKER_HOST`, `CONTAINER_HOST`), or a
//! private one (`dockerd`, `podman system service`) started in a scratch
//! directory of its own and stopped, with everything it made, when the
//! backend is dropped (docs/engines.md, "Engines").

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ovlcheck_driver::DriverError;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's `docker.io` package puts the daemon here.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Debian's `podman` package puts podman here.
pub const PODMAN: &str = "/usr/bin/podman";

/// How to start one engine's private daemon, and where its clients look
/// for a running one.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The engine's name in messages (`dockerd`, `podman`).
    pub name: &'static str,
    /// The executable.
    pub path: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
    /// The environment variable naming a running engine's socket.
    pub host_var: &'static str,
    /// The arguments that start it with its state in `dir` and its API on
    /// `socket`.
    pub args: fn(dir: &Path, socket: &Path) -> Vec<String>,
    /// A configuration file written to `dir/config.toml` before the start,
    /// for an engine whose state directories only a file can move.
    pub config: Option<fn(dir: &Path, socket: &Path) -> String>,
}

/// `dockerd` with the overlay2 storage driver, no networking, and its
/// data-root, exec-root, pidfile and socket in the scratch directory.
pub const DOCKER: Program = Program {
    name: "dockerd",
    path: DOCKERD,
    package: "docker.io",
    host_var: "DOCKER_HOST",
    args: |dir, socket| {
        vec![
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
            "--bridge=none".into(),
            "--storage-driver=overlay2".into(),
            format!("--data-root={}", dir.join("root").display()),
            format!("--exec-root={}", dir.join("exec").display()),
            format!("--pidfile={}", dir.join("dockerd.pid").display()),
            format!("--host=unix://{}", socket.display()),
        ]
    },
    config: None,
};

/// `podman system service` (its Docker-compatible API, never timing
/// out) with the overlay storage driver, its graph root, run root and
/// libpod tmpdir in the scratch directory, cgroupfs and no event log
/// (nothing written outside the scratch directory but containers/image's
/// blob-info cache).
pub const PODMAN_SERVICE: Program = Program {
    name: "podman",
    path: PODMAN,
    package: "podman",
    host_var: "CONTAINER_HOST",
    args: |dir, socket| {
        vec![
            format!("--root={}", dir.join("root").display()),
            format!("--runroot={}", dir.join("run").display()),
            format!("--tmpdir={}", dir.join("tmp").display()),
            "--storage-driver=overlay".into(),
            "--cgroup-manager=cgroupfs".into(),
            "--events-backend=none".into(),
            "system".into(),
            "service".into(),
            "--time=0".into(),
            format!("unix://{}", socket.display()),
        ]
    },
    config: None,
};

/// How long a private daemon may take to answer its first ping.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a private daemon may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the engine listens, and the private daemon behind it if this
/// process started one.
#[derive(Debug)]
pub struct Daemon {
    /// The API socket (a path, without `unix://`).
    pub socket: PathBuf,
    private: Option<Private>,
}

/// A daemon this process started, in its own scratch directory.
#[derive(Debug)]
struct Private {
    program: Program,
    child: Child,
    scratch: tempfile::TempDir,
}

impl Daemon {
    /// The Docker engine at `socket` (`unix://PATH` or `PATH`) when given,
    /// else the one `DOCKER_HOST` names, else a private daemon.
    pub fn connect_or_start(socket: Option<&str>) -> Result<Daemon, DriverError> {
        Daemon::connect_or_start_program(DOCKER, socket)
    }

    /// [`Daemon::connect_or_start`] for `program`'s engine.
    pub fn connect_or_start_program(
        program: Program,
        socket: Option<&str>,
    ) -> Result<Daemon, DriverError> {
        let given = socket
            .map(str::to_string)
            .or_else(|| std::env::var(program.host_var).ok());
        match given {
            Some(s) => {
                let path = PathBuf::from(s.strip_prefix("unix://").unwrap_or(&s));
                if !path.exists() {
                    return Err(DriverError::Environment(format!(
                        "no {} socket at {}",
                        program.name,
                        path.display()
                    )));
                }
                Ok(Daemon {
                    socket: path,
                    private: None,
                })
            }
            None => Daemon::start_program(program),
        }
    }

    /// Starts `dockerd` with the overlay2 storage driver, no networking,
    /// and its data-root, exec-root, pidfile and socket in a fresh scratch
    /// directory ([`DOCKER`]). It gets SIGTERM if this process dies first.
    pub fn start_private() -> Result<Daemon, DriverError> {
        Daemon::start_program(DOCKER)
    }

    /// Starts `program` with its state and socket in a fresh scratch
    /// directory. It gets SIGTERM if this process dies first.
    pub fn start_program(program: Program) -> Result<Daemon, DriverError> {
        if !Path::new(program.path).exists() {
            return Err(DriverError::Environment(format!(
                "{} not found: apt-get install {}",
                program.name, program.package
            )));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(DriverError::Environment(format!(
                "a private {} needs root (or give --engine-socket of a running one)",
                program.name
            )));
        }
        let scratch = tempfile::Builder::new()
            .prefix(&format!("ovlcheck-{}.", program.name))
            .tempdir()
            .map_err(|e| DriverError::Io(format!("scratch for {}: {e}", program.name)))?;
        let dir = scratch.path();
        let socket = dir.join("engine.sock");
        let log = std::fs::File::create(dir.join("engine.log"))
            .map_err(|e| DriverError::Io(format!("{} log: {e}", program.name)))?;
        let err = log
            .try_clone()
            .map_err(|e| DriverError::Io(format!("{} log: {e}", program.name)))?;
        if let Some(config) = program.config {
            std::fs::write(dir.join("config.toml"), config(dir, &socket))
                .map_err(|e| DriverError::Io(format!("{} config: {e}", program.name)))?;
        }
        let mut cmd = Command::new(program.path);
        cmd.args((program.args)(dir, &socket))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child
        // before exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| DriverError::Environment(format!("start {}: {e}", program.name)))?;
        let mut daemon = Daemon {
            socket,
            private: Some(Private {
                program,
                child,
                scratch,
            }),
        };
        daemon.wait_for_socket()?;
        Ok(daemon)
    }

    /// Waits until the private daemon's socket exists (the API answers
    /// from then on), or says why not with the end of its log.
    fn wait_for_socket(&mut self) -> Result<(), DriverError> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.socket.exists() {
            let p = self.private.as_mut().expect("a private daemon");
            let name = p.program.name;
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(DriverError::Environment(format!(
                    "{name} exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(DriverError::Environment(format!(
                    "{name} did not listen within {}s: {}",
                    START_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The last lines of a private daemon's log (for error messages).
    pub fn log_tail(&self) -> String {
        let Some(p) = &self.private else {
            return String::new();
        };
        let log = std::fs::read_to_string(p.scratch.path().join("engine.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Whether this process started the daemon.
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }
}

impl Daemon {
    /// A private daemon's scratch directory (`root/` is its data-root).
    pub fn scratch(&self) -> Option<&Path> {
        self.private.as_ref().map(|p| p.scratch.path())
    }

    /// Stops a private daemon (SIGTERM, then SIGKILL) and unmounts whatever
    /// is still mounted under its scratch directory, which stays until the
    /// daemon is dropped. A daemon this process did not start is left
    /// alone.
    pub fn stop(&mut self) {
        let Some(p) = self.private.as_mut() else {
            return;
        };
        let pid = Pid::from_raw(p.child.id() as i32);
        if let Ok(None) = p.child.try_wait() {
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match p.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        unmount_under(p.scratch.path());
    }
}

impl Drop for Daemon {
    /// [`Daemon::stop`], then the scratch directory is removed.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lazily unmounts every mount at or below `dir` (deepest first), as
/// listed in this process's mountinfo.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|t| t.starts_with(dir))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    for t in targets {
        let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
    }
}
