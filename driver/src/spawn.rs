//! Helper processes of a worker: `fuse-overlayfs` daemons and the `exec`
//! backend's shell commands. Spawned with a plain fork + `execv` (the worker
//! must not use std's process machinery, which takes locks a forked child
//! may find held), each with `PR_SET_PDEATHSIG(SIGKILL)` so it dies with the
//! worker, output appended to `<session>/helpers.log`.

use crate::mount::MountSpec;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where Debian's `fuse-overlayfs` package puts the binary.
pub const FUSE_OVERLAYFS: &str = "/usr/bin/fuse-overlayfs";
/// Debian's `fuse3` unmount helper.
pub const FUSERMOUNT3: &str = "/usr/bin/fusermount3";

/// How long a helper command may run.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

fn log_path(home: &Path) -> PathBuf {
    home.parent().unwrap_or(home).join("helpers.log")
}

fn cstrings(argv: &[String]) -> Result<Vec<CString>, String> {
    argv.iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| format!("NUL in argument {a:?}")))
        .collect()
}

/// Starts `argv` in `cwd` with stdout/stderr appended to `log`.
pub fn spawn(argv: &[String], cwd: &Path, log: &Path) -> Result<Pid, String> {
    let args = crate::sys::Argv::new(cstrings(argv)?);
    let cwd_c =
        CString::new(cwd.as_os_str().as_encoded_bytes()).map_err(|_| "NUL in cwd".to_string())?;
    let out = crate::sys::openat(
        crate::sys::CWD,
        log.as_os_str().as_encoded_bytes(),
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        0o644,
    )
    .map_err(|e| format!("open {}: {e}", log.display()))?;
    // SAFETY: the worker is single-threaded; the child only makes raw
    // syscalls on memory prepared before the fork, then execs or _exits.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => crate::sys::exec_child(&args, &cwd_c, out.as_fd()),
    }
}

/// Waits for child `pid` up to `timeout`; kills it after that. Sleeps in
/// `poll` on a pidfd, so the wait ends the moment the child exits (a
/// polling loop would leave it a zombie for up to one interval).
pub fn wait_timeout(pid: Pid, timeout: Duration) -> Result<WaitStatus, String> {
    let deadline = Instant::now() + timeout;
    let pidfd = crate::sys::pidfd_open(pid.as_raw()).ok();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(s) => return Ok(s),
            Err(e) => return Err(format!("waitpid: {e}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(format!(
                "helper {pid} did not finish in {timeout:?}; killed"
            ));
        }
        match &pidfd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            // No pidfd (a kernel before 5.3): poll the status every ms.
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn log_tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = s.lines().rev().take(5).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Runs `argv` to completion; a non-zero exit is an error with the log.
pub fn run(argv: &[String], cwd: &Path) -> Result<(), String> {
    let log = log_path(cwd);
    let _ = std::fs::write(&log, "");
    let pid = spawn(argv, cwd, &log)?;
    match wait_timeout(pid, HELPER_TIMEOUT)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        s => Err(format!(
            "`{}` failed ({s:?}): {}",
            argv.join(" "),
            log_tail(&log)
        )),
    }
}

fn abs(home: &Path, rel: &str) -> String {
    format!("{}/{rel}", home.display())
}

fn dev_of(p: &Path) -> Option<u64> {
    crate::sys::fstatat(crate::sys::CWD, p.as_os_str().as_encoded_bytes(), 0)
        .ok()
        .map(|s| s.st_dev)
}

/// Starts `fuse-overlayfs -f` (foreground, so that the process we watch is
/// the daemon) on `spec` with absolute paths and waits until the mount
/// appears. `allow_other` lets ops run as other uids reach the mount.
pub fn fuse_mount(binary: &str, home: &Path, spec: &MountSpec) -> Result<Pid, String> {
    let lowers: Vec<String> = spec.lowers.iter().map(|l| abs(home, l)).collect();
    let mut opts = format!("lowerdir={}", lowers.join(":"));
    if let (Some(u), Some(w)) = (&spec.upper, &spec.work) {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            abs(home, u),
            abs(home, w)
        ));
    }
    opts.push_str(",allow_other");
    let target = home.join(&spec.target);
    let argv = vec![
        binary.to_string(),
        "-f".into(),
        "-o".into(),
        opts,
        target.display().to_string(),
    ];
    let log = log_path(home);
    let _ = std::fs::write(&log, "");
    let pid = spawn(&argv, home, &log)?;
    let before = dev_of(target.parent().unwrap_or(home));
    let deadline = Instant::now() + HELPER_TIMEOUT;
    loop {
        if dev_of(&target) != before {
            return Ok(pid);
        }
        if let Ok(s) = waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            if s != WaitStatus::StillAlive {
                return Err(format!("fuse-overlayfs exited ({s:?}): {}", log_tail(&log)));
            }
        }
        if Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(format!(
                "fuse-overlayfs did not mount in time: {}",
                log_tail(&log)
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `fusermount3 -u target` (falling back to a lazy `umount2`), then reaps
/// the daemon.
pub fn fuse_unmount(target: &Path, daemon: Option<Pid>) -> Result<(), String> {
    let home = target
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let argv = vec![
        FUSERMOUNT3.to_string(),
        "-u".into(),
        target.display().to_string(),
    ];
    if run(&argv, home).is_err() {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| format!("umount fuse: {e}"))?;
    }
    // After an unmount the daemon exits by itself, with status 0; any other
    // end (a crash, a kill) is the backend dying, not a clean unmount.
    match daemon
        .map(|pid| wait_timeout(pid, HELPER_TIMEOUT))
        .transpose()?
    {
        None | Some(WaitStatus::Exited(_, 0)) => Ok(()),
        Some(s) => Err(format!("fuse-overlayfs died ({s:?})")),
    }
}

/// `'...'` with embedded quotes escaped, for `/bin/sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Fills a command template: `{lowerdir}` (colon list, top first),
/// `{upperdir}`, `{workdir}` (empty when read-only), `{target}`,
/// `{options}` (the kernel overlay options), each shell-quoted.
pub fn fill_template(template: &str, home: &Path, spec: &MountSpec) -> String {
    let lowers: Vec<String> = spec.lowers.iter().map(|l| abs(home, l)).collect();
    let opt = |o: &Option<String>| o.as_ref().map(|d| abs(home, d)).unwrap_or_default();
    template
        .replace("{lowerdir}", &shell_quote(&lowers.join(":")))
        .replace("{upperdir}", &shell_quote(&opt(&spec.upper)))
        .replace("{workdir}", &shell_quote(&opt(&spec.work)))
        .replace("{target}", &shell_quote(&abs(home, &spec.target)))
        .replace("{options}", &shell_quote(&spec.options.join(",")))
}

/// Runs the exec backend's mount template with `/bin/sh -c`.
pub fn exec_mount(template: &str, home: &Path, spec: &MountSpec) -> Result<(), String> {
    let cmd = fill_template(template, home, spec);
    run(&["/bin/sh".into(), "-c".into(), cmd], home)
}

/// Runs the exec backend's unmount template (`{target}`).
pub fn exec_unmount(template: &str, home: &Path, target: &Path) -> Result<(), String> {
    let cmd = template.replace("{target}", &shell_quote(&target.display().to_string()));
    run(&["/bin/sh".into(), "-c".into(), cmd], home)
}
