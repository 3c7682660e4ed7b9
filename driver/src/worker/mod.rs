//! The worker side of the pipe: everything here runs inside a worker
//! process, after [`crate::process`] forked it. The worker:
//!
//! 1. sets `PR_SET_PDEATHSIG(SIGKILL)` and checks the parent is still there;
//! 2. keeps only its socket (fd 3, close-on-exec) and stderr, stdin/stdout
//!    go to `/dev/null`;
//! 3. `unshare(CLONE_NEWNS)`, plus `CLONE_NEWUSER` for `userxattr` cases or
//!    a non-root harness (the parent writes the id maps), makes `/`
//!    recursively private and mounts a scratch tmpfs over
//!    `$TMPDIR/ovlcheck-scratch` — visible only in its own namespace;
//! 4. answers [`Request`]s with its [`WorkerState`] until EOF.
//!
//! It only uses syscalls, allocation and its own raw-fd I/O (no std stdio
//! locks, no threads: it is a fork of a multi-threaded harness). When it
//! dies, for whatever reason, its mount namespace and every mount in it go
//! away; its own children (fuse-overlayfs) get `PR_SET_PDEATHSIG` too.

mod case;

pub use case::{MountedCase, WORKER_UMASK};

use crate::api::{CaseRun, DriverError, PackSession, Session};
use crate::proto::{self, Request, Response, RunCase, RunPack};
use crate::sys;
use case::Scratch;
use nix::sched::{unshare, CloneFlags};
use nix::unistd::Pid;
use ovlcheck_case::{Case, LowerFs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// The fd number of the worker's socket in the worker.
const SOCK_FD: RawFd = 3;

/// The worker process's main: `sock` is its end of the socketpair,
/// `parent` the harness, `mountpoint` where its scratch tmpfs goes. Never
/// returns.
pub fn main(sock: OwnedFd, parent: Pid, userns: bool, mountpoint: PathBuf) -> ! {
    let _ = sys::die_with_parent();
    if nix::unistd::getppid() != parent {
        sys::exit_now(121);
    }
    let sock = own_fds(sock);
    let greeting = match setup_namespaces(sock.as_fd(), userns, &mountpoint) {
        Ok(()) => Response::Ok,
        Err(e) => Response::Failed(e),
    };
    let failed = !matches!(greeting, Response::Ok);
    if proto::send(&sock, &greeting).is_err() || failed {
        sys::exit_now(122);
    }
    serve(sock.as_fd(), WorkerState::new(mountpoint, userns));
}

/// Moves the socket to fd 3, closes every other inherited fd but stderr,
/// points stdin/stdout at /dev/null. Returns the socket.
fn own_fds(sock: OwnedFd) -> OwnedFd {
    let sock = match sys::move_fd(sock, SOCK_FD) {
        Ok(sock) => sock,
        Err(_) => sys::exit_now(120),
    };
    sys::close_from(SOCK_FD as u32 + 1);
    sys::null_stdin_stdout();
    sock
}

/// The worker's namespaces and scratch tmpfs. A user namespace's id maps
/// are written by the harness between [`proto::USERNS_MADE`] and
/// [`proto::ID_MAPS_WRITTEN`].
fn setup_namespaces(
    sock: BorrowedFd<'_>,
    userns: bool,
    mountpoint: &std::path::Path,
) -> Result<(), DriverError> {
    let env = DriverError::Environment;
    if userns {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| env(format!("unshare(CLONE_NEWUSER|CLONE_NEWNS): {e}")))?;
        sys::send_nosignal(sock, &[proto::USERNS_MADE])
            .map_err(|e| DriverError::Io(format!("handshake: {e}")))?;
        let mut b = [0u8; 1];
        match proto::read_exact(sock, &mut b) {
            Ok(true) if b[0] == proto::ID_MAPS_WRITTEN => {}
            _ => sys::exit_now(123),
        }
        let root = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root, root, root)
            .map_err(|e| env(format!("setresgid(0) in the user namespace: {e}")))?;
        let uroot = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(uroot, uroot, uroot)
            .map_err(|e| env(format!("setresuid(0) in the user namespace: {e}")))?;
    } else {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| {
            env(format!(
                "unshare(CLONE_NEWNS): {e}: run as root, or use the userxattr profile"
            ))
        })?;
    }
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| env(format!("making / private: {e}")))?;
    crate::mount::mount_tmpfs(mountpoint, None)
        .map_err(|e| env(format!("mounting a tmpfs on {}: {e}", mountpoint.display())))?;
    sys::umask(WORKER_UMASK);
    Ok(())
}

/// Answers requests until the harness closes the socket.
fn serve(sock: BorrowedFd<'_>, mut state: WorkerState) -> ! {
    loop {
        let req: Request = match proto::recv(sock) {
            Ok(Some(r)) => r,
            _ => {
                state.shutdown();
                sys::exit_now(0)
            }
        };
        let resp =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.handle(req))) {
                Ok(r) => r,
                Err(_) => Response::Failed(DriverError::Io("worker panicked".into())),
            };
        if proto::send(sock, &resp).is_err() {
            state.shutdown();
            sys::exit_now(0);
        }
        state.settle();
    }
}

/// Everything one worker keeps between requests.
pub struct WorkerState {
    root: PathBuf,
    userns: bool,
    counter: u64,
    /// The case being run step by step ([`Request::Start`]).
    session: Option<MountedCase>,
    /// A case that ended, torn down by [`WorkerState::settle`] once the
    /// answer is on its way (so the unmounting overlaps the harness's work
    /// on the answer) and in any case before the next request.
    ended: Option<MountedCase>,
    /// The next case's scratch, made by [`WorkerState::settle`] while the
    /// worker waits for its next case.
    spare: Option<Scratch>,
}

impl WorkerState {
    /// A worker whose cases go in directories under `root`; `userns`:
    /// it runs in its own user namespace.
    pub fn new(root: PathBuf, userns: bool) -> WorkerState {
        WorkerState {
            root,
            userns,
            counter: 0,
            session: None,
            ended: None,
            spare: None,
        }
    }

    /// A directory name for the next scratch.
    fn next_dir(&mut self) -> PathBuf {
        self.counter += 1;
        self.root.join(format!("s{}", self.counter))
    }

    /// The scratch for a case whose tmpfs has `size` bytes (`None`:
    /// the default size): the spare one when it fits, else a new one.
    fn scratch(&mut self, size: Option<u64>) -> Result<Scratch, String> {
        match (size, self.spare.take()) {
            (None, Some(spare)) => Ok(spare),
            (_, spare) => {
                self.spare = spare;
                let dir = self.next_dir();
                Scratch::new(dir, size)
            }
        }
    }

    /// Ends the current session, if any (unmounts everything it made). The
    /// spare scratch stays for the next case; [`WorkerState::shutdown`]
    /// discards it too.
    pub fn end(&mut self) {
        self.settle();
        if let Some(s) = self.session.take() {
            s.teardown();
        }
    }

    /// Ends everything before the worker exits.
    pub fn shutdown(&mut self) {
        self.end();
        if let Some(spare) = self.spare.take() {
            spare.discard();
        }
    }

    /// Tears down the case that ended, if any, and makes the next case's
    /// scratch: both while the harness judges the answer, off the next
    /// case's path (the tmpfs mount and the store cost ≈45 µs of a case's
    /// ≈300 µs start).
    pub fn settle(&mut self) {
        if let Some(s) = self.ended.take() {
            s.teardown();
            if self.spare.is_none() {
                let dir = self.next_dir();
                // A failure shows again, and is reported, when a case
                // makes its scratch itself.
                self.spare = Scratch::new(dir, None).ok();
            }
        }
    }

    /// Builds and mounts `case` (ending any session first).
    fn start(&mut self, case: &Case, mounter: proto::Mounter) -> Result<MountedCase, DriverError> {
        self.end();
        if case.profile.userxattr && !self.userns {
            return Err(DriverError::Io(
                "userxattr needs a user-namespace worker".into(),
            ));
        }
        let size = match case.profile.lower_fs {
            LowerFs::Same | LowerFs::Overlay => case.profile.upper_size,
            LowerFs::Separate => None,
        };
        self.scratch(size)
            .and_then(|scratch| MountedCase::start(scratch, case, mounter))
            .map_err(DriverError::Io)
    }

    /// Mounts an engine's stack (ending any session first).
    fn attach(&mut self, stack: &crate::api::EngineStack) -> Result<MountedCase, DriverError> {
        self.end();
        self.scratch(None)
            .and_then(|scratch| MountedCase::attach(scratch, stack))
            .map_err(DriverError::Io)
    }

    /// A whole case: start, [`CaseRun::collect`], end.
    fn run_case(&mut self, req: RunCase) -> Result<CaseRun, DriverError> {
        let RunCase {
            case,
            mounter,
            wants,
        } = req;
        let mut mounted = self.start(&case, mounter)?;
        let run = CaseRun::collect(&mut mounted, &case, wants);
        self.ended = Some(mounted);
        run
    }

    /// Several cases in one mount: start the pack ([`crate::pack::combine`]),
    /// run and observe each case beneath its directory, end.
    fn run_pack(&mut self, req: RunPack) -> Result<Vec<CaseRun>, DriverError> {
        let RunPack {
            cases,
            mounter,
            wants,
        } = req;
        let pack = crate::pack::combine(&cases).map_err(DriverError::Io)?;
        let mut mounted = self.start(&pack, mounter)?;
        let runs = CaseRun::collect_pack(&mut mounted, &cases, &wants);
        self.ended = Some(mounted);
        runs
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        self.settle();
        let answer = match req {
            Request::RunCase(r) => self
                .run_case(*r)
                .map(|run| Response::CaseRun(Box::new(run))),
            Request::RunPack(r) => self.run_pack(*r).map(Response::CaseRuns),
            Request::Start { case, mounter } => self.start(&case, mounter).map(|s| {
                self.session = Some(s);
                Response::Ok
            }),
            Request::Attach { stack } => self.attach(&stack).map(|s| {
                self.session = Some(s);
                Response::Ok
            }),
            Request::End => {
                self.ended = self.session.take();
                Ok(Response::Ok)
            }
            Request::Mountinfo => Ok(Response::Text(crate::mount::mountinfo())),
            Request::Sleep { secs } => {
                std::thread::sleep(std::time::Duration::from_secs(secs));
                Ok(Response::Ok)
            }
            other => match self.session.as_mut() {
                None => Err(DriverError::Io("no session".into())),
                Some(s) => session_request(s, other),
            },
        };
        answer.unwrap_or_else(Response::Failed)
    }
}

/// A request about the session being run step by step.
fn session_request(s: &mut MountedCase, req: Request) -> Result<Response, DriverError> {
    Ok(match req {
        Request::Apply { step } => Response::Outcome(s.apply(&step)?),
        Request::Enter { dir } => {
            s.enter(dir.as_deref())?;
            Response::Ok
        }
        Request::MergedView => Response::View(s.merged_view()?),
        Request::UpperView => Response::MaybeView(s.upper_view()?),
        Request::LowerViews => Response::Views(s.lower_views()?),
        Request::KernelView => Response::KernelView(s.kernel_view()?),
        Request::Export => Response::Export(s.export()?),
        Request::StoreHome => Response::Text(s.store_home()),
        Request::MountMethod => Response::Text(s.mount_method()),
        other => {
            return Err(DriverError::Io(format!(
                "unexpected request for a session: {other:?}"
            )))
        }
    })
}
