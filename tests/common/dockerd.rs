//! A private Docker daemon for the tests that need a real data-root: its
//! data-root, exec-root, socket and pid file all in one temporary folder,
//! no network set up (ovlcheck-engine's private [`Daemon`]), and the
//! `docker` command line pointed at it.

use ovlcheck_engine::daemon::Daemon;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    daemon: Daemon,
}

impl Dockerd {
    /// Starts a daemon ([`Daemon::start_private`]), or returns `None` after
    /// a loud SKIP message (not root, no `dockerd`, or it does not come
    /// up). With `OVL_REQUIRE_KERNEL=1` those fail the test instead.
    pub fn start(test: &str) -> Option<Dockerd> {
        let skip = |why: String| -> Option<Dockerd> {
            if super::kernel_required() {
                panic!("{test}: a private dockerd is required (OVL_REQUIRE_KERNEL=1) but unusable: {why}");
            }
            eprintln!("\n*** SKIP {test}: no private dockerd here: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        };
        if Command::new("docker")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            return skip("`docker` missing (Debian package docker.io)".into());
        }
        let d = match Daemon::start_private() {
            Ok(daemon) => Dockerd { daemon },
            Err(e) => return skip(e.to_string()),
        };
        // The socket exists: wait until the API answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = d.try_docker(&["version"]) {
            if Instant::now() > deadline {
                return skip(format!("dockerd does not answer: {e}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }

    /// The temporary folder holding everything.
    pub fn dir(&self) -> &Path {
        self.daemon.scratch().expect("a private daemon")
    }

    /// The daemon's API socket, as `--engine-socket` takes it.
    pub fn socket(&self) -> String {
        self.daemon.socket.display().to_string()
    }

    /// The daemon's data-root.
    pub fn data_root(&self) -> PathBuf {
        self.dir().join("root")
    }

    /// `docker -H unix://SOCK ARGS...`: its stdout, trimmed, or its stderr.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.daemon.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// [`Dockerd::try_docker`], panicking on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
    }

    /// Stops the daemon ([`Daemon::stop`]); the folder stays until drop.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }
}

/// The mount points at or beneath `dir`, from /proc/self/mountinfo.
pub fn mounts_beneath(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

/// Unmounts (lazily) every mount at or beneath `dir`, deepest first.
pub fn unmount_beneath(dir: &Path) {
    ovlcheck_engine::daemon::unmount_under(dir);
}
