//! The worker protocol: length-prefixed (u32 little endian) frames of
//! postcard (compact binary serde) over a socketpair. One request, one
//! response, strictly alternating. Both ends are the same binary, so the
//! format needs no versioning; postcard encodes and decodes views several
//! times faster than JSON, which matters at a thousand cases a second.

use crate::api::{BackendKind, CaseRun, DriverError};
use nix::errno::Errno;
use ovlcheck_case::{Case, Outcome, Step, View};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;

/// Largest frame accepted (views of 16 MiB files are big).
pub const MAX_FRAME: usize = 1 << 30;

/// Setup handshake of a user-namespace worker, before any frame: the worker
/// sends this byte once it has unshared its user namespace...
pub const USERNS_MADE: u8 = b'U';
/// ...and waits for this one, sent once the harness has written its id
/// maps (user_namespaces(7): only a process outside may write them).
pub const ID_MAPS_WRITTEN: u8 = b'G';

/// How the worker mounts a stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mounter {
    /// The kernel's overlayfs.
    Kernel,
    /// `fuse-overlayfs -f` at this path, unmounted with `fusermount3 -u`.
    Fuse { binary: String },
    /// User-given shell templates.
    Exec { mount: String, umount: String },
}

impl Mounter {
    /// Debian's fuse-overlayfs ([`crate::spawn::FUSE_OVERLAYFS`]).
    pub fn fuse_overlayfs() -> Mounter {
        Mounter::Fuse {
            binary: crate::spawn::FUSE_OVERLAYFS.to_string(),
        }
    }

    /// The backend kind it mounts.
    pub fn kind(&self) -> BackendKind {
        match self {
            Mounter::Kernel => BackendKind::Kernel,
            Mounter::Fuse { .. } => BackendKind::FuseOverlayfs,
            Mounter::Exec { .. } => BackendKind::Exec,
        }
    }
}

/// A whole case in one round trip, answered by [`Response::CaseRun`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunCase {
    pub case: Case,
    pub mounter: Mounter,
    /// The optional observations to take.
    pub wants: crate::api::Wants,
}

/// Several cases in one mount ([`crate::pack`]), answered by
/// [`Response::CaseRuns`]: each case's [`CaseRun`], in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunPack {
    /// Cases of one profile, none of them [`crate::pack::unpackable`].
    pub cases: Vec<Case>,
    pub mounter: Mounter,
    /// Each case's optional observations (the kernel view is asked of all
    /// or none).
    pub wants: Vec<crate::api::Wants>,
}

/// A request to the worker. Every request is answered by one
/// [`Response`]; a request that fails is answered by
/// [`Response::Failed`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Start, run and observe a whole case, then end it
    /// ([`crate::api::CaseRun::collect`] on the worker's side).
    RunCase(Box<RunCase>),
    /// Start, run and observe several cases in one mount, then end it.
    RunPack(Box<RunPack>),
    /// Build and mount a case (ends any previous session); answered by
    /// [`Response::Ok`].
    Start { case: Box<Case>, mounter: Mounter },
    /// Mount a stack an engine made, with the kernel's overlay, as the
    /// session (ends any previous one); answered by [`Response::Ok`].
    Attach { stack: Box<crate::api::EngineStack> },
    /// One step of the current session: [`Response::Outcome`].
    Apply { step: Step },
    /// [`crate::api::PackSession::enter`] on the current session:
    /// [`Response::Ok`].
    Enter { dir: Option<String> },
    /// [`Response::View`].
    MergedView,
    /// [`Response::MaybeView`].
    UpperView,
    /// [`Response::Views`].
    LowerViews,
    /// [`Response::KernelView`].
    KernelView,
    /// [`Response::Export`].
    Export,
    /// `/proc/self/mountinfo` of the worker's namespace: [`Response::Text`].
    Mountinfo,
    /// How the current stack was mounted (`Absolute`, `Relative`, `NewApi`
    /// for the kernel; `Helper` otherwise): [`Response::Text`].
    MountMethod,
    /// The store home of the current session (a path in the worker's
    /// namespace): [`Response::Text`].
    StoreHome,
    /// Unmount and remove the current session.
    End,
    /// Test hook: stop answering (for watchdog tests).
    Sleep { secs: u64 },
}

/// The worker's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    Ok,
    Outcome(Outcome),
    View(View),
    MaybeView(Option<View>),
    Views(Vec<View>),
    KernelView(Result<View, ovlcheck_case::Errno>),
    Export(Option<crate::api::Export>),
    Text(String),
    CaseRun(Box<CaseRun>),
    CaseRuns(Vec<CaseRun>),
    /// The request failed; [`DriverError::Died`] when the filesystem under
    /// test died (a helper daemon exited).
    Failed(DriverError),
}

/// Writes one frame with `send(MSG_NOSIGNAL)`: a dead peer is an error
/// (`EPIPE`), never a `SIGPIPE` that would kill the harness.
pub fn send<T: Serialize>(fd: impl AsFd, msg: &T) -> Result<(), String> {
    let body = postcard::to_allocvec(msg).map_err(|e| format!("encode: {e}"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    crate::sys::send_nosignal(fd, &frame).map_err(|e| format!("write: {e}"))
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first.
pub fn read_exact(fd: impl AsFd, buf: &mut [u8]) -> Result<bool, Errno> {
    let mut got = 0;
    while got < buf.len() {
        let n = crate::sys::read_some(fd.as_fd(), &mut buf[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(false)
            } else {
                Err(Errno::EPIPE)
            };
        }
        got += n;
    }
    Ok(true)
}

/// Reads one frame (blocking); `Ok(None)` on a clean EOF.
pub fn recv<T: for<'de> Deserialize<'de>>(fd: impl AsFd) -> Result<Option<T>, String> {
    let mut len = [0u8; 4];
    if !read_exact(fd.as_fd(), &mut len).map_err(|e| format!("read: {e}"))? {
        return Ok(None);
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(format!("frame of {n} bytes"));
    }
    let mut body = vec![0u8; n];
    if !read_exact(fd.as_fd(), &mut body).map_err(|e| format!("read: {e}"))? && n > 0 {
        return Err("EOF inside a frame".into());
    }
    decode(&body).map(Some)
}

/// Decodes one frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    postcard::from_bytes(body).map_err(|e| format!("decode: {e}"))
}
