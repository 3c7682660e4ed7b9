//! A private Docker daemon for the tests that need a real data-root: its
//! data-root, exec-root, socket and pid file all in one temporary folder,
//! no network set up. [`Dockerd::stop`] (or drop) sends SIGTERM, waits, and
//! unmounts anything the daemon left under the folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts a daemon, or returns `None` after a loud SKIP message (not
    /// root, no `dockerd`, or it does not come up). With
    /// `OVL_REQUIRE_KERNEL=1` those fail the test instead.
    pub fn start(test: &str) -> Option<Dockerd> {
        let skip = |why: String| -> Option<Dockerd> {
            if super::kernel_required() {
                panic!("{test}: a private dockerd is required (OVL_REQUIRE_KERNEL=1) but unusable: {why}");
            }
            eprintln!("\n*** SKIP {test}: no private dockerd here: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("not root (dockerd needs root)".into());
        }
        for bin in ["dockerd", "docker"] {
            if Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
            {
                return skip(format!("`{bin}` missing (Debian package docker.io)"));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ovl-dockerd.")
            .tempdir_in("/tmp")
            .expect("temporary folder");
        let d = dir.path();
        let log = std::fs::File::create(d.join("log")).expect("dockerd log");
        let child = Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
                "--storage-driver=overlay2",
            ])
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return skip(format!("dockerd does not start: {e}")),
        };
        let mut daemon = Dockerd {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if daemon.try_docker(&["version"]).is_ok() {
                return Some(daemon);
            }
            let exited = daemon
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(daemon.dir.path().join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                daemon.stop();
                return skip(format!(
                    "dockerd did not come up ({}); its log ends: {}",
                    if exited.is_some() {
                        "it exited"
                    } else {
                        "60 s"
                    },
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The temporary folder holding everything.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's data-root.
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `docker -H unix://SOCK ARGS...`: its stdout, trimmed, or its stderr.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.dir.path().join("sock").display()))
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

    /// SIGTERM, wait for the daemon to exit (SIGKILL after 30 s), then
    /// unmount whatever is still mounted beneath the folder, deepest first.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) of our own child, which has not been reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        unmount_beneath(self.dir.path());
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
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
    let mut mounts = mounts_beneath(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let c = std::ffi::CString::new(m).unwrap();
        // SAFETY: umount2 of a path string we own.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}
