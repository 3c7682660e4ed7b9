//! The guest side: the ovlcheck binary as the guest kernel's init (pid 1).
//! It mounts what a worker needs, opens its channel (a virtio-console
//! port, else the second serial port), loads the overlay module, probes
//! what the kernel's overlay can do, says so in a [`Hello`] frame and then
//! serves the same [`Request`]s as a host worker, with the same
//! [`WorkerState`] (docs/vm.md).

use nix::mount::{mount, MsFlags};
use ovlcheck_driver::proto::{self, Request, Response};
use ovlcheck_driver::worker::{WorkerState, WORKER_UMASK};
use ovlcheck_driver::DriverError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The environment variable (a `KEY=VALUE` word of the kernel command
/// line, which the kernel hands to init) that makes the binary a guest.
pub const GUEST_ENV: &str = "OVLCHECK_GUEST";

/// The guest's serial channel to the host: the second 8250 port, built
/// in everywhere; used when the guest has no virtio-console port.
pub const SERIAL: &str = "/dev/ttyS1";

/// The name of the guest's virtio-console port (qemu's `virtserialport`,
/// `machine::Guest::boot`).
pub const PORT_NAME: &str = "org.ovlcheck.channel";

/// How long the guest waits for its virtio-console port to show up once
/// the console driver is there (the host adds ports asynchronously, and a
/// loaded host slows an emulated guest down) before it falls back to
/// [`SERIAL`].
const PORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The guest's end of its channel to the host.
#[derive(Debug)]
pub struct Channel {
    /// The open device.
    pub file: std::fs::File,
    /// Which one: [`PORT_NAME`]'s device, or [`SERIAL`].
    pub kind: ChannelKind,
}

/// The two channels a guest can talk over (docs/vm.md, "The channel").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelKind {
    /// A virtio-console port: a frame is a buffer or two on a virtqueue.
    VirtioConsole,
    /// The 8250 serial port: an I/O port access per byte under TCG, so
    /// long frames go deflated ([`DEFLATE_FROM`]).
    Serial,
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelKind::VirtioConsole => "virtio-console",
            ChannelKind::Serial => "serial 8250",
        })
    }
}

/// The guest's first frame: who it is and what its overlay can do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `uname -r` of the guest kernel.
    pub release: String,
    /// The overlay's features, or why the guest has no overlay.
    pub overlay: Result<OverlayFeatures, String>,
    /// The channel it talks over.
    pub channel: ChannelKind,
}

/// What the guest kernel's overlay does, probed by mounting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayFeatures {
    /// The module was loaded from the initramfs (else built in).
    pub module_loaded: bool,
    /// `lowerdir+` through the new mount API (fs_context parameters,
    /// v6.8): stacks longer than a page of options mount.
    pub layer_append: bool,
    /// A first mount over a fresh upper writes `trusted.overlay.uuid` on
    /// the upper root (super.c: ovl_init_uuid_xattr, v6.6).
    pub uuid_xattr: bool,
    /// The layers' filesystem (tmpfs) keeps `user.*` xattrs (v6.6: "tmpfs,
    /// xattr: enable limited user extended attributes"); without them a
    /// case with user xattrs cannot be laid out.
    pub layer_user_xattrs: bool,
    /// The overlay takes `fsync=auto|strict|volatile` (params.c:
    /// `ovl_parameter_fsync`, upstream 1f6ee9be92f8): probed, because it
    /// came to the 6.12 and 6.18 stable series in an update, which a
    /// release's version does not tell.
    pub fsync_option: bool,
    /// tmpfs keeps a directory read to its end there, also after a read
    /// that listed no entry (libfs.c: `DIR_OFFSET_EOD`, v6.13, and in the
    /// 6.6 and 6.12 stable series from early 2025): probed, because the
    /// version does not tell it for those series.
    pub tmpfs_keeps_end: bool,
}

/// True in the guest's init: pid 1 with [`GUEST_ENV`]`=1` (pid 1 alone
/// could be a container's).
pub fn is_guest() -> bool {
    std::process::id() == 1 && std::env::var(GUEST_ENV).is_ok_and(|v| v == "1")
}

/// The guest's init. Never returns: when the host closes the channel (or
/// anything fails, said on the console first) the guest powers off.
pub fn main() -> ! {
    if let Err(e) = run() {
        let _ = writeln!(std::io::stderr(), "ovlcheck guest: {e}");
    }
    power_off()
}

/// Syncs and powers the guest off (qemu runs with `-no-reboot`, so it
/// exits). Never returns.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // reboot(2) does not return when it works; init may not exit.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// What every guest init does first: [`mount_filesystems`], then
/// [`load_module`].
pub fn setup() -> Result<bool, String> {
    mount_filesystems()?;
    load_module()
}

/// Mounts proc, sysfs, devtmpfs and a tmpfs on `/tmp`.
pub fn mount_filesystems() -> Result<(), String> {
    let fs = |src: &str, target: &str, fstype: &str| {
        mount(
            Some(src),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID,
            None::<&str>,
        )
        .map_err(|e| format!("mount {fstype} on {target}: {e}"))
    };
    fs("proc", "/proc", "proc")?;
    fs("sysfs", "/sys", "sysfs")?;
    fs("devtmpfs", "/dev", "devtmpfs")?;
    fs("tmpfs", "/tmp", "tmpfs")
}

/// The guest's end of its channel: its virtio-console port when the
/// kernel has one (built in, or the modules under
/// [`crate::image::CHANNEL_MODULES`] load), else [`SERIAL`]. Why the port
/// is not used is said on the console.
pub fn open_channel() -> Result<Channel, String> {
    match virtio_port() {
        Ok(file) => {
            return Ok(Channel {
                file,
                kind: ChannelKind::VirtioConsole,
            })
        }
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "ovlcheck guest: serial channel: {why}");
        }
    }
    Ok(Channel {
        file: open_serial()?,
        kind: ChannelKind::Serial,
    })
}

/// Loads the channel's modules, then opens the port named [`PORT_NAME`]
/// once it shows up in `/sys/class/virtio-ports`.
fn virtio_port() -> Result<std::fs::File, String> {
    load_channel_modules()?;
    if !Path::new("/sys/bus/virtio/drivers/virtio_console").is_dir() {
        return Err("the kernel has no virtio-console driver".into());
    }
    let started = std::time::Instant::now();
    loop {
        let ports = std::fs::read_dir("/sys/class/virtio-ports")
            .into_iter()
            .flatten();
        for port in ports.flatten() {
            let name = std::fs::read_to_string(port.path().join("name")).unwrap_or_default();
            if name.trim_end() == PORT_NAME {
                let dev = Path::new("/dev").join(port.file_name());
                if let Ok(f) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&dev)
                {
                    return Ok(f);
                }
            }
        }
        if started.elapsed() >= PORT_PATIENCE {
            return Err(format!(
                "no virtio-console port {PORT_NAME} in {} s",
                PORT_PATIENCE.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Loads the modules under [`crate::image::CHANNEL_MODULES`] in name
/// order (EEXIST: built in or loaded). None is not an error: the kernel
/// may have the drivers built in.
fn load_channel_modules() -> Result<(), String> {
    let dir = Path::new("/").join(crate::image::CHANNEL_MODULES);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        insert_module(&p)?;
    }
    Ok(())
}

/// `finit_module` of `path`; `Ok(false)` when the kernel has it already.
fn insert_module(path: &Path) -> Result<bool, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(e) => Err(format!(
            "finit_module({}): {e} (a module of another kernel build? give --modules)",
            path.display()
        )),
    }
}

/// [`SERIAL`] in raw mode at 115200 baud, the receive FIFO's interrupt at
/// 14 bytes. qemu moves bytes as fast as it can whatever the rate, but
/// times the receive FIFO's timeout interrupt by it: at the tty's default
/// 9600 baud the tail of every request short of the trigger level waited
/// 4 ms for it. And each receive interrupt costs about 65 µs under TCG,
/// so 14 bytes an interrupt take requests in at about two thirds of the
/// cost of the driver's default 8 (docs/vm.md, "Figures").
fn open_serial() -> Result<std::fs::File, String> {
    use nix::sys::termios::{cfmakeraw, cfsetspeed, tcgetattr, tcsetattr, BaudRate, SetArg};
    let channel = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(SERIAL)
        .map_err(|e| format!("{SERIAL}: {e}"))?;
    let mut t = tcgetattr(&channel).map_err(|e| format!("tcgetattr: {e}"))?;
    cfmakeraw(&mut t);
    cfsetspeed(&mut t, BaudRate::B115200).map_err(|e| format!("cfsetspeed: {e}"))?;
    tcsetattr(&channel, SetArg::TCSANOW, &t).map_err(|e| format!("tcsetattr: {e}"))?;
    // Only a UART with a FIFO has the attribute (qemu's is a 16550A); a
    // port without it works, with more interrupts.
    let _ = std::fs::write(RX_TRIGGER, "14");
    Ok(channel)
}

/// The receive FIFO's trigger level of [`SERIAL`] (8250 driver, bytes).
const RX_TRIGGER: &str = "/sys/class/tty/ttyS1/rx_trig_bytes";

/// The guest's uptime in seconds (`/proc/uptime`'s first field), `"?"`
/// when it cannot be read.
pub fn uptime() -> String {
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    uptime.split_whitespace().next().unwrap_or("?").to_string()
}

fn run() -> Result<(), String> {
    mount_filesystems()?;
    let channel = open_channel()?;
    let release = ovlcheck_driver::kernel_release();
    let overlay = load_module().and_then(|loaded| probe(Path::new("/tmp/probe"), loaded));
    if let Ok(f) = &overlay {
        ovlcheck_driver::mount::set_layer_append(f.layer_append);
    }
    let usable = overlay.is_ok();
    // On the console, so that every failure report's tail starts here;
    // the uptime says how much of a boot is the kernel's.
    let uptime = uptime();
    let _ = writeln!(
        std::io::stderr(),
        "ovlcheck guest: {release}, up {uptime} s, channel {}: {overlay:?}",
        channel.kind
    );
    let hello = Hello {
        release,
        overlay,
        channel: channel.kind,
    };
    write_frame(&channel, &hello)?;
    if !usable {
        return Ok(());
    }
    ovlcheck_driver::sys::umask(WORKER_UMASK);
    std::fs::create_dir("/tmp/w").map_err(|e| format!("/tmp/w: {e}"))?;
    serve(&channel, WorkerState::new(PathBuf::from("/tmp/w"), false))
}

/// Loads `/lib/modules/overlay.ko` when the initramfs has it (EEXIST: the
/// kernel has it already). `Ok(true)` when loaded.
pub fn load_module() -> Result<bool, String> {
    let path = Path::new("/").join(crate::image::GUEST_MODULE);
    if !path.exists() {
        return Ok(false);
    }
    insert_module(&path)
}

/// Mounts overlays in `dir` to see what this kernel's overlay does.
fn probe(dir: &Path, module_loaded: bool) -> Result<OverlayFeatures, String> {
    let mk = |d: &str| {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| format!("{}/{d}: {e}", dir.display()))
    };
    for d in ["l1", "l2", "u", "w", "m"] {
        mk(d)?;
    }
    let spec = |upper: bool| ovlcheck_driver::mount::MountSpec {
        lowers: vec!["l1".into(), "l2".into()],
        upper: upper.then(|| "u".into()),
        work: upper.then(|| "w".into()),
        target: "m".into(),
        options: Vec::new(),
        ..Default::default()
    };
    let target = dir.join("m");
    ovlcheck_driver::mount::mount_kernel(dir, &spec(true)).map_err(|e| {
        let listed = std::fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .lines()
            .any(|l| l.ends_with("\toverlay"));
        if listed {
            format!("a trial overlay mount failed: {e}")
        } else {
            "the guest kernel has no overlay filesystem (not built in, and no overlay.ko found: \
             give --modules DIR)"
                .to_string()
        }
    })?;
    let uuid_xattr = xattr_present(&dir.join("u"), "trusted.overlay.uuid");
    ovlcheck_driver::mount::unmount(&target).map_err(|e| format!("unmount probe: {e}"))?;
    let mut with_fsync = spec(true);
    with_fsync.options.push("fsync=auto".into());
    let fsync_option = ovlcheck_driver::mount::mount_kernel(dir, &with_fsync).is_ok();
    if fsync_option {
        ovlcheck_driver::mount::unmount(&target).map_err(|e| format!("unmount probe: {e}"))?;
    }
    std::env::set_current_dir(dir).map_err(|e| format!("chdir {}: {e}", dir.display()))?;
    let layer_append = ovlcheck_driver::mount::new_api(&spec(false)).is_ok();
    if layer_append {
        let _ = ovlcheck_driver::mount::unmount(&target);
    }
    let _ = std::env::set_current_dir("/");
    let file = dir.join("l1/x");
    std::fs::write(&file, b"").map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(OverlayFeatures {
        module_loaded,
        layer_append,
        uuid_xattr,
        layer_user_xattrs: set_xattr(&file, "user.ovlcheck"),
        fsync_option,
        tmpfs_keeps_end: tmpfs_keeps_end(&dir.join("eod"))?,
    })
}

/// Whether a read of the empty tmpfs directory made at `path` leaves it
/// where the next read lists nothing, not even an entry made since.
fn tmpfs_keeps_end(path: &Path) -> Result<bool, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    std::fs::create_dir(path).map_err(|e| err(&e))?;
    let bytes = path.as_os_str().as_encoded_bytes();
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let fd = ovlcheck_driver::sys::openat(ovlcheck_driver::sys::CWD, bytes, flags, 0)
        .map_err(|e| err(&e))?;
    let first = ovlcheck_driver::sys::read_dir(&fd).map_err(|e| err(&e))?;
    std::fs::write(path.join("x"), b"").map_err(|e| err(&e))?;
    let again = ovlcheck_driver::sys::read_dir(&fd).map_err(|e| err(&e))?;
    Ok(first.is_empty() && again.is_empty())
}

/// Whether `name` can be set on `path` (a one-byte value).
fn set_xattr(path: &Path, name: &str) -> bool {
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let Ok(n) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and the value is one byte
    // that outlives the call.
    let r = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    r == 0
}

fn xattr_present(path: &Path, name: &str) -> bool {
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let Ok(n) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0
    // asks only for the value's size.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
    r >= 0
}

/// A frame body this long or longer is sent deflated when that makes it
/// shorter: the guest's 8250 sends about 6 µs a byte under TCG (a write
/// to the host's socket per byte), and a case's answer, its views much
/// alike, deflates to a fifth of its size (the baseline case's 1,436
/// bytes to 295) in far less time.
pub const DEFLATE_FROM: usize = 256;

/// The bit of a frame's length word that says its body is deflated (raw
/// deflate, RFC 1951); frames are at most [`proto::MAX_FRAME`] bytes.
pub const DEFLATED: u32 = 1 << 31;

/// One frame as [`proto::send`] writes it, with `write(2)`: the channel is
/// a device, not a socket. On the serial port a body of [`DEFLATE_FROM`]
/// bytes or more goes deflated when that is shorter, its length word
/// marked [`DEFLATED`] (`machine::Guest` inflates it).
pub fn write_frame<T: Serialize>(channel: &Channel, msg: &T) -> Result<(), String> {
    let body = postcard::to_allocvec(msg).map_err(|e| format!("encode: {e}"))?;
    let squeezed = match channel.kind {
        ChannelKind::Serial => deflated(&body),
        ChannelKind::VirtioConsole => None,
    };
    let (word, body) = match squeezed {
        Some(d) => (d.len() as u32 | DEFLATED, d),
        None => (body.len() as u32, body),
    };
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&word.to_le_bytes());
    frame.extend_from_slice(&body);
    (&channel.file)
        .write_all(&frame)
        .map_err(|e| format!("write to the {} channel: {e}", channel.kind))
}

/// `body` deflated, when it is long enough to be worth it and comes out
/// shorter. The compressor is kept: setting one up costs the guest a
/// fraction of a millisecond under TCG.
pub(crate) fn deflated(body: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false));
    }
    if body.len() < DEFLATE_FROM {
        return None;
    }
    DEFLATE.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        // Room for no more than the body: longer is not worth sending.
        let mut out = Vec::with_capacity(body.len() - 1);
        let status = c
            .compress_vec(body, &mut out, flate2::FlushCompress::Finish)
            .ok()?;
        (status == flate2::Status::StreamEnd).then_some(out)
    })
}

/// The case a request starts, if it starts one (a pack's cases share
/// one profile).
fn request_case(req: &Request) -> Option<&ovlcheck_case::Case> {
    match req {
        Request::RunCase(r) => Some(&r.case),
        Request::RunPack(r) => r.cases.first(),
        Request::Start { case, .. } => Some(case),
        _ => None,
    }
}

/// Sets the guest's `fs.protected_*` sysctls to `sysctls`, the settings
/// the case's outcomes hold for: the guest is this process's machine
/// alone, so unlike the host it can run each case with its own (and a
/// distribution kernel's own defaults do not leak into the outcomes).
fn set_sysctls(sysctls: ovlcheck_case::Sysctls) -> Result<(), String> {
    for (name, _) in ovlcheck_case::Sysctls::NAMES {
        let path = format!("/proc/sys/fs/{name}");
        let value = sysctls.get(name).unwrap_or_default().to_string();
        std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// Answers requests until qemu is killed (the backend dropped this guest;
/// a tty reads no end of file when the host's socket closes).
fn serve(channel: &Channel, mut state: WorkerState) -> Result<(), String> {
    loop {
        let req: Request = match proto::recv(channel.file.as_fd()) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("reading a request: {e}")),
        };
        let sysctls = request_case(&req).map_or(Ok(()), |c| set_sysctls(c.profile.sysctls));
        let resp = match sysctls {
            Err(e) => Response::Failed(DriverError::Io(e)),
            Ok(()) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| state.handle(req))) {
                    Ok(r) => r,
                    Err(_) => Response::Failed(DriverError::Io("guest worker panicked".into())),
                }
            }
        };
        write_frame(channel, &resp)?;
        state.settle();
    }
}
