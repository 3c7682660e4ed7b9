//! The host side of one guest: the qemu process, its console kept in a
//! ring buffer (the tail goes into every failure report), and the channel
//! requests go over with a watchdog.

use crate::guest::{ChannelKind, Hello, DEFLATED, GUEST_ENV, PORT_NAME};
use ovlcheck_driver::proto::{self, Request, Response};
use ovlcheck_driver::DriverError;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most console bytes kept per guest.
const CONSOLE_KEPT: usize = 64 * 1024;
/// Lines of console shown in a failure report.
const TAIL_LINES: usize = 40;

/// How to start a guest.
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The kernel image qemu loads (`-kernel`).
    pub kernel: PathBuf,
    /// The initramfs (`-initrd`).
    pub initramfs: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// qemu's `-accel`: `tcg` or `kvm`.
    pub accel: String,
    /// Where the channels' sockets go.
    pub dir: PathBuf,
}

/// Numbers the guests' socket files.
static GUESTS: AtomicU64 = AtomicU64::new(0);

/// The console of a guest: what qemu's first serial port printed (and
/// qemu's own messages), the last [`CONSOLE_KEPT`] bytes.
#[derive(Clone, Debug, Default)]
struct Console(Arc<Mutex<VecDeque<u8>>>);

impl Console {
    /// Copies `r` into the ring until EOF, on a thread of its own.
    fn drain(&self, mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let ring = Arc::clone(&self.0);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut q = ring.lock().unwrap_or_else(|p| p.into_inner());
                q.extend(&buf[..n]);
                let excess = q.len().saturating_sub(CONSOLE_KEPT);
                q.drain(..excess);
            }
        })
    }

    /// The last [`TAIL_LINES`] lines.
    fn tail(&self) -> String {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = q.as_slices();
        let text = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }
}

/// One running guest.
#[derive(Debug)]
pub struct Guest {
    child: Child,
    channel: Option<UnixStream>,
    console: Console,
    /// The threads copying qemu's output into the console.
    drains: Vec<std::thread::JoinHandle<()>>,
    /// What the guest said it is.
    pub hello: Hello,
    /// Its channels' socket files, removed with it.
    sockets: Vec<PathBuf>,
}

impl Guest {
    /// Starts qemu and waits up to `timeout` for the guest's [`Hello`].
    /// The guest is offered two channels, a virtio-console port named
    /// [`PORT_NAME`] and its second serial port, each a socket qemu
    /// connects to; the hello comes on the one it chose
    /// ([`crate::guest::open_channel`]).
    pub fn boot(spec: &BootSpec, timeout: Duration) -> Result<Guest, DriverError> {
        let n = GUESTS.fetch_add(1, Ordering::Relaxed);
        let sock = spec.dir.join(format!("guest{n}.sock"));
        let port = spec.dir.join(format!("guest{n}.port"));
        let bind = |p: &PathBuf| {
            let l = UnixListener::bind(p)
                .map_err(|e| DriverError::Io(format!("{}: {e}", p.display())))?;
            l.set_nonblocking(true)
                .map_err(|e| DriverError::Io(format!("listener: {e}")))?;
            Ok::<_, DriverError>(l)
        };
        let listeners = [bind(&port)?, bind(&sock)?];
        let append = format!("console=ttyS0 panic=-1 quiet rdinit=/init {GUEST_ENV}=1");
        let mut child = Command::new(&spec.qemu)
            .args(["-accel", &spec.accel, "-m", &spec.memory_mib.to_string()])
            .args([
                "-smp",
                "1",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
            ])
            .arg("-no-reboot")
            .arg("-kernel")
            .arg(&spec.kernel)
            .arg("-initrd")
            .arg(&spec.initramfs)
            .args(["-append", &append, "-serial", "stdio", "-serial"])
            .arg(format!("unix:{}", sock.display()))
            .args(["-device", "virtio-serial-pci,id=ovlcheck", "-chardev"])
            .arg(format!("socket,id=channel,path={}", port.display()))
            .args(["-device"])
            .arg(format!(
                "virtserialport,bus=ovlcheck.0,chardev=channel,name={PORT_NAME}"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DriverError::Environment(format!("{}: {e}", spec.qemu.display())))?;
        let console = Console::default();
        let mut drains = Vec::new();
        if let Some(o) = child.stdout.take() {
            drains.push(console.drain(o));
        }
        if let Some(e) = child.stderr.take() {
            drains.push(console.drain(e));
        }
        let mut g = Guest {
            child,
            channel: None,
            console,
            drains,
            hello: Hello {
                release: String::new(),
                overlay: Err("not booted".into()),
                channel: ChannelKind::Serial,
            },
            sockets: vec![sock, port],
        };
        let deadline = Instant::now() + timeout;
        let mut streams = Vec::new();
        for listener in &listeners {
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(g.failed(format!("accept: {e}"))),
                }
                if let Ok(Some(status)) = g.child.try_wait() {
                    return Err(g.failed(format!("qemu exited ({status}) before connecting")));
                }
                if Instant::now() >= deadline {
                    return Err(g.hung("boot"));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            stream
                .set_nonblocking(false)
                .map_err(|e| DriverError::Io(format!("channel: {e}")))?;
            streams.push(stream);
        }
        let chosen = g.first_readable(&streams, deadline)?;
        g.channel = Some(streams.swap_remove(chosen));
        g.hello = g.recv(deadline, "boot")?;
        Ok(g)
    }

    /// Which of `streams` has bytes first (the guest's hello), waiting
    /// until `deadline`; a guest that exits first has failed.
    fn first_readable(
        &mut self,
        streams: &[UnixStream],
        deadline: Instant,
    ) -> Result<usize, DriverError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.hung("boot"));
            }
            let mut fds: Vec<PollFd> = streams
                .iter()
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                .collect();
            // Short waits: qemu's exit shows only in try_wait.
            let wait = PollTimeout::try_from(left.min(Duration::from_millis(100)))
                .unwrap_or(PollTimeout::ZERO);
            match poll(&mut fds, wait) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(self.failed(format!("poll: {e}"))),
            }
            if let Some(i) = fds
                .iter()
                .position(|f| f.revents().is_some_and(|r| !r.is_empty()))
            {
                return Ok(i);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(format!("qemu exited ({status}) before its hello")));
            }
        }
    }

    /// Sends `req` and waits up to `timeout` for the answer. No answer in
    /// time kills the guest ([`DriverError::Hung`]); a closed channel (the
    /// guest panicked or powered off) is [`DriverError::Died`]. Both carry
    /// the console's tail.
    pub fn call(
        &mut self,
        req: &Request,
        op: &str,
        timeout: Duration,
    ) -> Result<Response, DriverError> {
        self.exchange(req, op, timeout)
    }

    /// [`Guest::call`] with frames of any type: for a guest whose init is
    /// not the worker's and speaks its own frames after the [`Hello`] (the
    /// bare loop of vm/benches/guest_rate.rs).
    pub fn exchange<Q: Serialize, A: for<'de> Deserialize<'de>>(
        &mut self,
        msg: &Q,
        op: &str,
        timeout: Duration,
    ) -> Result<A, DriverError> {
        let Some(ch) = &self.channel else {
            return Err(DriverError::Died("guest already gone".into()));
        };
        if let Err(e) = proto::send(ch, msg) {
            return Err(self.failed(format!("sending `{op}`: {e}")));
        }
        self.recv(Instant::now() + timeout, op)
    }

    /// The qemu process's pid (tests kill it to play a dead guest).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the guest can serve another request.
    pub fn alive(&self) -> bool {
        self.channel.is_some()
    }

    fn recv<T: for<'de> serde::Deserialize<'de>>(
        &mut self,
        deadline: Instant,
        op: &str,
    ) -> Result<T, DriverError> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len, deadline, op)?;
        let word = u32::from_le_bytes(len);
        let n = (word & !DEFLATED) as usize;
        if n > proto::MAX_FRAME {
            return Err(self.failed(format!("during `{op}`: a frame of {n} bytes")));
        }
        let mut body = vec![0u8; n];
        self.read_exact(&mut body, deadline, op)?;
        if word & DEFLATED != 0 {
            body = inflated(&body)
                .map_err(|e| self.failed(format!("during `{op}`: a deflated frame: {e}")))?;
        }
        proto::decode(&body).map_err(|e| self.failed(format!("during `{op}`: {e}")))
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        op: &str,
    ) -> Result<(), DriverError> {
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.hung(op));
            }
            let Some(ch) = self.channel.as_mut() else {
                return Err(DriverError::Died("guest already gone".into()));
            };
            let _ = ch.set_read_timeout(Some(left));
            match ch.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(self.failed(format!("during `{op}`: the guest closed its channel")))
                }
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.failed(format!("during `{op}`: read: {e}"))),
            }
        }
        Ok(())
    }

    /// Kills qemu, waits for it and for its output to be in the console.
    fn kill(&mut self) {
        self.channel = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        for d in self.drains.drain(..) {
            let _ = d.join();
        }
    }

    /// The guest hung: killed, [`DriverError::Hung`] with the console tail.
    fn hung(&mut self, op: &str) -> DriverError {
        self.kill();
        DriverError::Hung {
            op: format!(
                "{op}` in the guest; its console ended with:\n{}\n`",
                self.console.tail()
            ),
        }
    }

    /// The guest failed (panicked, powered off, broke a frame): killed,
    /// [`DriverError::Died`] with `what` and the console tail.
    fn failed(&mut self, what: String) -> DriverError {
        self.kill();
        DriverError::Died(format!(
            "guest: {what}; its console ended with:\n{}",
            self.console.tail()
        ))
    }
}

/// A deflated frame body ([`crate::guest::write_frame`]) inflated, at most
/// [`proto::MAX_FRAME`] bytes.
fn inflated(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(body)
        .take(proto::MAX_FRAME as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > proto::MAX_FRAME {
        return Err(format!("over {} bytes inflated", proto::MAX_FRAME));
    }
    Ok(out)
}

impl Drop for Guest {
    /// qemu is killed: the guest's tty sees no end of file when the
    /// host's socket closes, so only the kill stops it; nothing of a
    /// guest is kept.
    fn drop(&mut self) {
        self.kill();
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflated_frames_inflate_to_their_body() {
        let body: Vec<u8> = (0..2000u32).map(|i| (i % 7) as u8).collect();
        let d = crate::guest::deflated(&body).expect("a long, repetitive body deflates");
        assert!(d.len() < body.len() / 4, "{} bytes", d.len());
        assert_eq!(inflated(&d).unwrap(), body);
        // Twice: the guest keeps its compressor.
        assert_eq!(
            inflated(&crate::guest::deflated(&body).unwrap()).unwrap(),
            body
        );
        assert_eq!(
            crate::guest::deflated(&body[..100]),
            None,
            "short bodies go as they are"
        );
        // xorshift64: bytes deflate cannot shorten.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        assert_eq!(
            crate::guest::deflated(&noise),
            None,
            "not shorter: as it is"
        );
        assert!(inflated(b"\xff\xff not deflate").is_err());
    }
}
