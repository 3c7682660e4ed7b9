//! A Docker engine to talk to: one already running (`--engine-socket`,
//! `DOCKER_HOST`), or a private `dockerd` started in a scratch directory of
//! its own and stopped, with everything it made, when the backend is
//! dropped (docs/engines.md, "Engines").

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ovlcheck_driver::DriverError;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's `docker.io` package puts the daemon here.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

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

/// A `dockerd` this process started, in its own scratch directory.
#[derive(Debug)]
struct Private {
    child: Child,
    scratch: tempfile::TempDir,
}

impl Daemon {
    /// The engine at `socket` (`unix://PATH` or `PATH`) when given, else
    /// the one `DOCKER_HOST` names, else a private daemon.
    pub fn connect_or_start(socket: Option<&str>) -> Result<Daemon, DriverError> {
        let given = socket
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok());
        match given {
            Some(s) => {
                let path = PathBuf::from(s.strip_prefix("unix://").unwrap_or(&s));
                if !path.exists() {
                    return Err(DriverError::Environment(format!(
                        "no Docker engine socket at {}",
                        path.display()
                    )));
                }
                Ok(Daemon {
                    socket: path,
                    private: None,
                })
            }
            None => Daemon::start_private(),
        }
    }

    /// Starts `dockerd` with the overlay2 storage driver, no networking,
    /// and its data-root, exec-root, pidfile and socket in a fresh scratch
    /// directory. It gets SIGTERM if this process dies first.
    pub fn start_private() -> Result<Daemon, DriverError> {
        if !Path::new(DOCKERD).exists() {
            return Err(DriverError::Environment(
                "dockerd not found: apt-get install docker.io".into(),
            ));
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(DriverError::Environment(
                "a private Docker engine needs root (or give --engine-socket of a running one)"
                    .into(),
            ));
        }
        let scratch = tempfile::Builder::new()
            .prefix("ovlcheck-dockerd.")
            .tempdir()
            .map_err(|e| DriverError::Io(format!("scratch for dockerd: {e}")))?;
        let dir = scratch.path();
        let socket = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log"))
            .map_err(|e| DriverError::Io(format!("dockerd log: {e}")))?;
        let err = log
            .try_clone()
            .map_err(|e| DriverError::Io(format!("dockerd log: {e}")))?;
        let mut cmd = Command::new(DOCKERD);
        cmd.args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .args(["--bridge=none", "--storage-driver=overlay2"])
            .arg(format!("--data-root={}", dir.join("root").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", socket.display()))
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
            .map_err(|e| DriverError::Environment(format!("start dockerd: {e}")))?;
        let mut daemon = Daemon {
            socket,
            private: Some(Private { child, scratch }),
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
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(DriverError::Environment(format!(
                    "dockerd exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(DriverError::Environment(format!(
                    "dockerd did not listen within {}s: {}",
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
        let log = std::fs::read_to_string(p.scratch.path().join("dockerd.log")).unwrap_or_default();
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
