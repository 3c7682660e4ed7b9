//! The harness side of worker processes: forking one, its setup
//! handshake, and [`WorkerProcess`], the handle that sends it requests
//! under a watchdog. What runs inside the worker is [`crate::worker`].
//!
//! Workers are forked (never exec'd) from a long-lived spawner thread of
//! the harness — `PR_SET_PDEATHSIG` fires when the *thread* that forked
//! exits, so forking from short-lived harness threads would kill pooled
//! workers.

use crate::api::DriverError;
use crate::proto::{self, Request, Response};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::idmap::{ID_BASE, ID_RANGE};

/// The harness's handle on one worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    pid: Pid,
    sock: Option<OwnedFd>,
    /// Runs in its own user namespace.
    pub userns: bool,
    /// The CPU it is pinned to ([`crate::placement`]); `None`: any.
    cpu: Option<usize>,
}

impl WorkerProcess {
    /// The worker's pid (tests check it is gone after a kill).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Sends `req` and waits up to `timeout` for the answer. A timeout kills
    /// the worker ([`DriverError::Hung`]); EOF or a broken frame is
    /// [`DriverError::Died`].
    pub fn call(
        &mut self,
        req: &Request,
        op: &str,
        timeout: Duration,
    ) -> Result<Response, DriverError> {
        let sock = match &self.sock {
            Some(s) => s,
            None => return Err(DriverError::Died("worker already gone".into())),
        };
        if let Err(e) = proto::send(sock, req) {
            self.kill();
            return Err(DriverError::Died(format!("sending `{op}`: {e}")));
        }
        let deadline = Instant::now() + timeout;
        match recv_deadline(sock.as_fd(), deadline) {
            Ok(r) => Ok(r),
            Err(RecvError::Timeout) => {
                self.kill();
                Err(DriverError::Hung { op: op.to_string() })
            }
            Err(RecvError::Broken(e)) => {
                let status = self.kill();
                Err(DriverError::Died(format!("during `{op}`: {e}{status}")))
            }
        }
    }

    /// SIGKILLs and reaps the worker; says how it ended if it had already.
    /// Its own children (a fuse-overlayfs daemon) are killed too: a worker
    /// waiting for its daemon's answer to a FUSE request cannot die until
    /// the daemon does, and a daemon that waits for something itself (a
    /// fifo's other end) would keep both alive.
    pub fn kill(&mut self) -> String {
        self.sock = None;
        let mut status = String::new();
        if let Ok(s) = waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            if s != nix::sys::wait::WaitStatus::StillAlive {
                return format!(" ({s:?})");
            }
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        for child in children(self.pid) {
            let _ = kill(child, Signal::SIGKILL);
        }
        if let Ok(s) = waitpid(self.pid, None) {
            status = format!(" ({s:?})");
        }
        status
    }

    /// Whether the worker can serve another request.
    pub fn alive(&self) -> bool {
        self.sock.is_some()
    }

    /// The CPU it is pinned to, if any.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Pins it to `cpu` (`None`: unpins it), unless it already is. A
    /// failure leaves it where it was: placement is only about speed.
    pub fn place(&mut self, cpu: Option<usize>) {
        if self.cpu != cpu && crate::placement::place(self.pid, cpu).is_ok() {
            self.cpu = cpu;
        }
    }
}

/// How long a dropped worker may take to end its session and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for WorkerProcess {
    /// Closes the socket: on EOF the worker unmounts its session (a
    /// fuse-overlayfs daemon gets a clean unmount, not a SIGKILL from its
    /// dying parent) and exits. SIGKILLed if it does not within 5 s.
    fn drop(&mut self) {
        if self.sock.take().is_some() {
            let _ = crate::spawn::wait_timeout(self.pid, SHUTDOWN_TIMEOUT);
        }
    }
}

enum RecvError {
    Timeout,
    Broken(String),
}

fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> Result<(), RecvError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RecvError::Timeout);
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(RecvError::Broken(format!("poll: {e}"))),
        }
    }
}

fn read_exact_deadline(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), RecvError> {
    let mut got = 0;
    while got < buf.len() {
        wait_readable(fd, deadline)?;
        let n = match crate::sys::read_some(fd, &mut buf[got..]) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => continue,
            Err(e) => return Err(RecvError::Broken(format!("read: {e}"))),
        };
        if n == 0 {
            return Err(RecvError::Broken("worker closed its socket (EOF)".into()));
        }
        got += n;
    }
    Ok(())
}

fn recv_deadline(fd: BorrowedFd<'_>, deadline: Instant) -> Result<Response, RecvError> {
    let mut len = [0u8; 4];
    read_exact_deadline(fd, &mut len, deadline)?;
    let n = u32::from_le_bytes(len) as usize;
    if n > proto::MAX_FRAME {
        return Err(RecvError::Broken(format!("frame of {n} bytes")));
    }
    let mut body = vec![0u8; n];
    read_exact_deadline(fd, &mut body, deadline)?;
    proto::decode(&body).map_err(RecvError::Broken)
}

// ---------------------------------------------------------------------------
// Spawning

type Job = (
    bool,
    Duration,
    mpsc::Sender<Result<WorkerProcess, DriverError>>,
);

/// The spawner thread of this process (re-made after a fork: the pid tells).
static SPAWNER: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);

/// The mount point of a worker's scratch tmpfs: `$TMPDIR/ovlcheck-scratch`,
/// an empty directory on the host, over-mounted only inside each worker's
/// namespace.
pub fn scratch_mountpoint() -> PathBuf {
    std::env::temp_dir().join("ovlcheck-scratch")
}

/// Forks a new worker (from the spawner thread). `userns`: in its own user
/// namespace. `timeout` bounds its setup.
pub fn spawn(userns: bool, timeout: Duration) -> Result<WorkerProcess, DriverError> {
    let mountpoint = scratch_mountpoint();
    if let Err(e) = std::fs::create_dir(&mountpoint) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(DriverError::Environment(format!(
                "cannot create {}: {e}; set TMPDIR to a writable directory",
                mountpoint.display()
            )));
        }
    }
    let tx = spawner_sender();
    let (rtx, rrx) = mpsc::channel();
    tx.send((userns, timeout, rtx))
        .map_err(|_| DriverError::Io("spawner thread is gone".into()))?;
    rrx.recv()
        .map_err(|_| DriverError::Io("spawner thread is gone".into()))?
}

fn spawner_sender() -> mpsc::Sender<Job> {
    let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
    let me = std::process::id();
    if let Some((pid, tx)) = guard.as_ref() {
        if *pid == me {
            return tx.clone();
        }
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("ovlcheck-spawner".into())
        .spawn(move || {
            for (userns, timeout, reply) in rx {
                let _ = reply.send(fork_worker(userns, timeout));
            }
        })
        .expect("spawn the ovlcheck spawner thread");
    *guard = Some((me, tx.clone()));
    tx
}

fn fork_worker(userns: bool, timeout: Duration) -> Result<WorkerProcess, DriverError> {
    let (parent_end, child_end) =
        crate::sys::socketpair().map_err(|e| DriverError::Io(format!("socketpair: {e}")))?;
    let parent_pid = nix::unistd::getpid();
    let mountpoint = scratch_mountpoint();
    // SAFETY: the child only uses syscalls, allocation and raw-fd I/O (see
    // `crate::worker::main`), and never returns into the parent's code.
    match unsafe { fork() } {
        Err(e) => Err(DriverError::Io(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            drop(parent_end);
            crate::worker::main(child_end, parent_pid, userns, mountpoint)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(child_end);
            let mut w = WorkerProcess {
                pid: child,
                sock: Some(parent_end),
                userns,
                cpu: None,
            };
            setup_handshake(&mut w, userns, timeout)?;
            Ok(w)
        }
    }
}

/// Parent side of the worker's setup: writes the id maps when asked, then
/// waits for the ready frame.
fn setup_handshake(
    w: &mut WorkerProcess,
    userns: bool,
    timeout: Duration,
) -> Result<(), DriverError> {
    let sock = match &w.sock {
        Some(s) => s.as_fd(),
        None => return Err(DriverError::Died("worker already gone".into())),
    };
    let deadline = Instant::now() + timeout;
    if userns {
        let mut b = [0u8; 1];
        if read_exact_deadline(sock, &mut b, deadline).is_err() || b[0] != proto::USERNS_MADE {
            let status = w.kill();
            return Err(DriverError::Environment(format!(
                "cannot create a user namespace{status}: enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root"
            )));
        }
        if let Err(e) = write_id_maps(w.pid) {
            w.kill();
            return Err(DriverError::Environment(format!(
                "cannot write user namespace id maps: {e}"
            )));
        }
        let _ = crate::sys::send_nosignal(sock, &[proto::ID_MAPS_WRITTEN]);
    }
    match recv_deadline(sock, deadline) {
        Ok(Response::Ok) => Ok(()),
        Ok(Response::Failed(e)) => {
            w.kill();
            Err(e)
        }
        Ok(other) => {
            w.kill();
            Err(DriverError::Io(format!(
                "unexpected worker greeting {other:?}"
            )))
        }
        Err(RecvError::Timeout) => {
            w.kill();
            Err(DriverError::Hung {
                op: "worker setup".into(),
            })
        }
        Err(RecvError::Broken(e)) => {
            let status = w.kill();
            Err(DriverError::Died(format!("worker setup: {e}{status}")))
        }
    }
}

/// Writes the id maps of worker `pid` ([`crate::idmap::IdMap`]).
fn write_id_maps(pid: Pid) -> std::io::Result<()> {
    crate::idmap::IdMap::current().write(pid.as_raw())
}

/// Whether process `pid` exists and is not a zombie (tests use it to check
/// that no worker survives).
pub fn is_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
}

/// The children of process `pid` (`/proc/PID/task/PID/children`); none
/// when that cannot be read.
fn children(pid: Pid) -> Vec<Pid> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .map(Pid::from_raw)
                .collect()
        })
        .unwrap_or_default()
}
