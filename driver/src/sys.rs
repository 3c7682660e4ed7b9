//! The driver's syscall wrappers. They sit on the `rustix` crate (safe,
//! direct syscalls): `openat2`, byte-path `*at` calls, xattrs,
//! `getdents64`, the new mount API, `capget`/`capset`. What rustix does not
//! offer (`truncate` by path, `close_range`, `setfsuid`/`setfsgid`, `execv`,
//! `_exit`) goes through `libc` in the only `unsafe` blocks of the module.
//! The rest of the driver makes its syscalls through these wrappers (or
//! `nix`); its only other `unsafe` is `fork`, at the two places that fork.
//!
//! Every wrapper returns the kernel's errno untranslated: a rustix error
//! becomes the [`Errno`] of the same number.

use nix::errno::Errno;
use rustix::fs::XattrFlags;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::FdFlags;
use rustix::process::{Gid, Uid};
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub use rustix::fs::{major, makedev, minor, FileType, Stat, CWD};

/// Result of a raw syscall.
pub type SysResult<T> = Result<T, Errno>;

/// The errno of a rustix call, number for number.
fn sys<T>(r: rustix::io::Result<T>) -> SysResult<T> {
    r.map_err(|e| Errno::from_raw(e.raw_os_error()))
}

fn oflags(flags: i32) -> OFlags {
    OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32)
}

fn at_flags(flags: i32) -> AtFlags {
    AtFlags::from_bits_retain(flags as u32)
}

/// `{secs, 0}` for both atime and mtime.
fn both_times(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// `openat2(dirfd, path, {flags | O_CLOEXEC, mode, resolve})`, retried on
/// `EAGAIN` (which `RESOLVE_IN_ROOT` returns when a concurrent rename
/// anywhere in the system raced with a `..` step; openat2(2)). The mode is
/// passed only with `O_CREAT`/`O_TMPFILE`: openat2 refuses one otherwise.
pub fn openat2(
    dirfd: impl AsFd,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
) -> SysResult<OwnedFd> {
    let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode
    } else {
        0
    };
    let (flags, mode) = (oflags(flags), Mode::from_bits_retain(mode));
    let resolve = ResolveFlags::from_bits_retain(resolve);
    for _ in 0..64 {
        match rustix::fs::openat2(dirfd.as_fd(), path, flags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) => continue,
            r => return sys(r),
        }
    }
    Err(Errno::EAGAIN)
}

/// `openat(dirfd, path, flags | O_CLOEXEC, mode)`.
pub fn openat(dirfd: impl AsFd, path: &[u8], flags: i32, mode: u32) -> SysResult<OwnedFd> {
    sys(rustix::fs::openat(
        dirfd,
        path,
        oflags(flags),
        Mode::from_bits_retain(mode),
    ))
}

/// `fstatat(dirfd, path, flags)`.
pub fn fstatat(dirfd: impl AsFd, path: &[u8], flags: i32) -> SysResult<Stat> {
    sys(rustix::fs::statat(dirfd, path, at_flags(flags)))
}

/// `ioctl(fd, FS_IOC_GETFLAGS)`: the inode flags word.
pub fn get_iflags(fd: impl AsFd) -> SysResult<u32> {
    sys(rustix::fs::ioctl_getflags(fd)).map(|f| f.bits())
}

/// `ioctl(fd, FS_IOC_SETFLAGS, word)`.
pub fn set_iflags(fd: impl AsFd, word: u32) -> SysResult<()> {
    sys(rustix::fs::ioctl_setflags(
        fd,
        rustix::fs::IFlags::from_bits_retain(word),
    ))
}

/// `fstat(fd)` (an `O_PATH` fd too).
pub fn fstat(fd: impl AsFd) -> SysResult<Stat> {
    sys(rustix::fs::fstat(fd))
}

/// `lseek(fd, offset, whence)` with `whence` one of `libc::SEEK_SET`,
/// `SEEK_CUR`, `SEEK_END`: the new position. Every offset goes to the
/// kernel as it is, a negative one too: whether it is EINVAL or, on a
/// fifo, ESPIPE is the kernel's answer.
pub fn lseek(fd: impl AsFd, offset: i64, whence: i32) -> SysResult<u64> {
    use nix::unistd::Whence;
    let whence = match whence {
        libc::SEEK_SET => Whence::SeekSet,
        libc::SEEK_CUR => Whence::SeekCur,
        _ => Whence::SeekEnd,
    };
    let at = nix::unistd::lseek(fd, offset, whence)?;
    Ok(u64::try_from(at).expect("lseek(2) gives no negative position"))
}

/// `fsync(fd)`.
pub fn fsync(fd: impl AsFd) -> SysResult<()> {
    sys(rustix::fs::fsync(fd))
}

/// `pidfd_open(pid, 0)` (Linux 5.3): an fd that polls readable once the
/// process has exited, so a parent can wait for a child with a timeout
/// without a sleep loop. A pid that is not positive is `EINVAL`, as the
/// kernel has it.
pub fn pidfd_open(pid: libc::pid_t) -> SysResult<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::EINVAL)?;
    sys(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    ))
}

thread_local! {
    /// Whether this thread has its own working directory and root.
    static OWN_FS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `unshare(CLONE_FS)`, once per thread: gives the calling thread its own
/// working directory, root and umask, so that an `fchdir` or `chroot` made
/// here does not move the other threads of the process (the tests run
/// walks, mounts and confined ops on many threads at once). In a
/// single-threaded worker it changes nothing.
pub fn own_fs() -> SysResult<()> {
    if !OWN_FS.get() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
        OWN_FS.set(true);
    }
    Ok(())
}

/// `fstatfs(fd)`'s `f_fsid`, its two words as one number (an O_PATH fd
/// will do: open(2)).
pub fn fsid(fd: impl AsFd) -> SysResult<u64> {
    sys(rustix::fs::fstatvfs(fd)).map(|st| st.f_fsid)
}

/// `fchdir(fd)`.
pub fn fchdir(fd: impl AsFd) -> SysResult<()> {
    sys(rustix::process::fchdir(fd))
}

/// `chroot(path)`.
pub fn chroot(path: &CStr) -> SysResult<()> {
    sys(rustix::process::chroot(path))
}

/// `mkdirat(dirfd, path, mode)`.
pub fn mkdirat(dirfd: impl AsFd, path: &[u8], mode: u32) -> SysResult<()> {
    sys(rustix::fs::mkdirat(
        dirfd,
        path,
        Mode::from_bits_retain(mode),
    ))
}

/// `mknodat(dirfd, path, kind | perm, dev)`.
pub fn mknodat(
    dirfd: impl AsFd,
    path: &[u8],
    kind: FileType,
    perm: u32,
    dev: u64,
) -> SysResult<()> {
    let perm = Mode::from_bits_retain(perm & !libc::S_IFMT);
    sys(rustix::fs::mknodat(dirfd, path, kind, perm, dev))
}

/// `symlinkat(target, dirfd, path)`.
pub fn symlinkat(target: &[u8], dirfd: impl AsFd, path: &[u8]) -> SysResult<()> {
    sys(rustix::fs::symlinkat(target, dirfd, path))
}

/// `linkat(olddirfd, old, newdirfd, new, flags)`.
pub fn linkat(
    olddir: impl AsFd,
    old: &[u8],
    newdir: impl AsFd,
    new: &[u8],
    flags: i32,
) -> SysResult<()> {
    sys(rustix::fs::linkat(
        olddir,
        old,
        newdir,
        new,
        at_flags(flags),
    ))
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)`.
pub fn renameat2(
    olddir: impl AsFd,
    old: &[u8],
    newdir: impl AsFd,
    new: &[u8],
    flags: u32,
) -> SysResult<()> {
    let flags = RenameFlags::from_bits_retain(flags);
    sys(rustix::fs::renameat_with(olddir, old, newdir, new, flags))
}

/// `unlinkat(dirfd, path, flags)`.
pub fn unlinkat(dirfd: impl AsFd, path: &[u8], flags: i32) -> SysResult<()> {
    sys(rustix::fs::unlinkat(dirfd, path, at_flags(flags)))
}

/// `readlinkat(dirfd, path)`: the whole target (at most `PATH_MAX` bytes,
/// the most a symlink holds), read into the stack and copied out once.
pub fn readlinkat(dirfd: impl AsFd, path: &[u8]) -> SysResult<Vec<u8>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); libc::PATH_MAX as usize];
    let (target, _) = sys(rustix::fs::readlinkat_raw(dirfd, path, &mut buf[..]))?;
    Ok(target.to_vec())
}

/// `fchownat(dirfd, path, uid, gid, flags)`.
pub fn fchownat(dirfd: impl AsFd, path: &[u8], uid: u32, gid: u32, flags: i32) -> SysResult<()> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    sys(rustix::fs::chownat(dirfd, path, uid, gid, at_flags(flags)))
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd: impl AsFd, uid: u32, gid: u32) -> SysResult<()> {
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    sys(rustix::fs::fchown(fd, uid, gid))
}

/// `fchmodat(dirfd, path, mode, 0)` (follows; the form every kernel has,
/// without `fchmodat2`).
pub fn fchmodat(dirfd: impl AsFd, path: &[u8], mode: u32) -> SysResult<()> {
    let mode = Mode::from_bits_retain(mode);
    sys(rustix::fs::chmodat(dirfd, path, mode, AtFlags::empty()))
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: impl AsFd, mode: u32) -> SysResult<()> {
    sys(rustix::fs::fchmod(fd, Mode::from_bits_retain(mode)))
}

/// `utimensat(dirfd, path, {secs, secs}, flags)`: atime and mtime.
pub fn utimensat(dirfd: impl AsFd, path: &[u8], secs: i64, flags: i32) -> SysResult<()> {
    sys(rustix::fs::utimensat(
        dirfd,
        path,
        &both_times(secs),
        at_flags(flags),
    ))
}

/// `utimensat(AT_FDCWD, path, NULL, 0)`: atime and mtime set to now.
pub fn utimes_now(path: &[u8]) -> SysResult<()> {
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    sys(rustix::fs::utimensat(CWD, path, &times, AtFlags::empty()))
}

/// `futimens(fd, {secs, secs})`: atime and mtime.
pub fn futimens(fd: impl AsFd, secs: i64) -> SysResult<()> {
    sys(rustix::fs::futimens(fd, &both_times(secs)))
}

/// `truncate(path, size)`.
pub fn truncate(path: &CStr, size: u64) -> SysResult<()> {
    let size = libc::off_t::try_from(size).map_err(|_| Errno::EINVAL)?;
    // SAFETY: rustix has only `ftruncate`, and an fd opened for writing
    // would change the errno of a path truncate (a fifo, a directory, a
    // read-only file); `path` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::truncate(path.as_ptr(), size) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The effective uid and gid of the calling thread.
pub fn effective_ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// `pwrite` of the whole buffer from `offset` on.
pub fn pwrite_all(fd: impl AsFd, data: &[u8], offset: u64) -> SysResult<()> {
    write_loop(data, |rest, done| {
        sys(rustix::io::pwrite(fd.as_fd(), rest, offset + done))
    })
}

/// Writes the whole buffer to `fd`.
pub fn write_all(fd: impl AsFd, data: &[u8]) -> SysResult<()> {
    write_loop(data, |rest, _| sys(rustix::io::write(fd.as_fd(), rest)))
}

/// `send(fd, data, MSG_NOSIGNAL)` of the whole buffer: a dead peer is
/// `EPIPE`, never a `SIGPIPE` that would kill the process.
pub fn send_nosignal(fd: impl AsFd, data: &[u8]) -> SysResult<()> {
    let flags = rustix::net::SendFlags::NOSIGNAL;
    write_loop(data, |rest, _| {
        sys(rustix::net::send(fd.as_fd(), rest, flags))
    })
}

/// One `read` into `buf` (EINTR retried): the byte count, 0 at EOF.
pub fn read_some(fd: impl AsFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        match rustix::io::read(fd.as_fd(), &mut *buf) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return sys(r),
        }
    }
}

/// Calls `write(rest, done)` until all of `data` is written, `rest` being
/// what is left and `done` how many bytes went before it; EINTR is retried.
fn write_loop(
    mut data: &[u8],
    mut write: impl FnMut(&[u8], u64) -> SysResult<usize>,
) -> SysResult<()> {
    let mut done = 0u64;
    while !data.is_empty() {
        match write(data, done) {
            Ok(n) => {
                data = &data[n..];
                done += n as u64;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `limit` bytes from `fd` (until EOF).
pub fn read_to_end(fd: impl AsFd, limit: usize) -> SysResult<Vec<u8>> {
    read_until_eof(fd.as_fd(), limit, None)
}

/// [`read_to_end`] of a regular file whose `st_size` is `expect`: one
/// `read` sized for it. A read that comes back short exactly at that size
/// is at the end of the file, so no second read has to see EOF.
pub fn read_to_end_sized(fd: impl AsFd, limit: usize, expect: usize) -> SysResult<Vec<u8>> {
    read_until_eof(fd.as_fd(), limit, Some(expect))
}

/// Reads into the spare capacity of one vector, growing it by `expect + 1`
/// first, then by 64 KiB steps; what a read brings past `limit` is cut.
fn read_until_eof(fd: BorrowedFd<'_>, limit: usize, expect: Option<usize>) -> SysResult<Vec<u8>> {
    const CHUNK: usize = 65536;
    let mut out: Vec<u8> = Vec::new();
    while out.len() < limit {
        if out.len() == out.capacity() {
            let want = match expect {
                Some(size) if out.is_empty() => size.saturating_add(1),
                _ => CHUNK,
            };
            out.reserve(want.min(limit - out.len()));
        }
        let room = out.capacity() - out.len();
        let n = match rustix::io::read(fd, rustix::buffer::spare_capacity(&mut out)) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return sys(Err(e)),
        };
        if n == 0 || (n < room && Some(out.len()) == expect) {
            break;
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// The names in directory `fd` (not `.` and `..`), in `getdents64` order.
/// `fd` must be freshly opened (at offset 0); it is read to the end.
pub fn read_dir(fd: impl AsFd) -> SysResult<Vec<CString>> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    let mut names = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = sys(entry)?;
        let name = entry.file_name();
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Which xattr call: path-following, or `l*` (not following).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    Yes,
    No,
}

/// `getxattr`/`lgetxattr`: the whole value (one call when it fits a small
/// buffer; otherwise the size is asked first).
pub fn getxattr(path: &CStr, name: &[u8], follow: Follow) -> SysResult<Vec<u8>> {
    let get = |buf: &mut [u8]| {
        sys(match follow {
            Follow::Yes => rustix::fs::getxattr(path, name, buf),
            Follow::No => rustix::fs::lgetxattr(path, name, buf),
        })
    };
    let size = || {
        sys(match follow {
            Follow::Yes => rustix::fs::getxattr_query(path, name),
            Follow::No => rustix::fs::lgetxattr_query(path, name),
        })
    };
    let mut small = [0u8; 256];
    match get(&mut small) {
        Ok(got) => return Ok(small[..got].to_vec()),
        Err(Errno::ERANGE) => {}
        Err(e) => return Err(e),
    }
    loop {
        let mut buf = vec![0u8; size()?];
        match get(&mut buf) {
            Ok(got) => {
                buf.truncate(got);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `listxattr`/`llistxattr`: the names, unsorted (one call when they fit a
/// small buffer; otherwise the size is asked first).
pub fn listxattr(path: &CStr, follow: Follow) -> SysResult<Vec<Vec<u8>>> {
    let list = |buf: &mut [u8]| {
        sys(match follow {
            Follow::Yes => rustix::fs::listxattr(path, buf),
            Follow::No => rustix::fs::llistxattr(path, buf),
        })
    };
    let size = || {
        sys(match follow {
            Follow::Yes => rustix::fs::listxattr_query(path),
            Follow::No => rustix::fs::llistxattr_query(path),
        })
    };
    let split = |buf: &[u8]| -> Vec<Vec<u8>> {
        buf.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut small = [0u8; 1024];
    match list(&mut small) {
        Ok(got) => return Ok(split(&small[..got])),
        Err(Errno::ERANGE) => {}
        Err(e) => return Err(e),
    }
    loop {
        let mut buf = vec![0u8; size()?];
        match list(&mut buf) {
            Ok(got) => return Ok(split(&buf[..got])),
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `setxattr`/`lsetxattr` with flags 0.
pub fn setxattr(path: &CStr, name: &[u8], value: &[u8], follow: Follow) -> SysResult<()> {
    let flags = XattrFlags::empty();
    sys(match follow {
        Follow::Yes => rustix::fs::setxattr(path, name, value, flags),
        Follow::No => rustix::fs::lsetxattr(path, name, value, flags),
    })
}

/// `fsetxattr(fd, name, value, 0)`.
pub fn fsetxattr(fd: impl AsFd, name: &[u8], value: &[u8]) -> SysResult<()> {
    sys(rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()))
}

/// `removexattr` (follows).
pub fn removexattr(path: &CStr, name: &[u8]) -> SysResult<()> {
    sys(rustix::fs::removexattr(path, name))
}

/// `/proc/self/fd/N`: a magic link to the object `fd` refers to, so that
/// path-based calls (xattrs, chmod, truncate) act on an `O_PATH` fd with the
/// same permission checks as on the original path.
pub fn proc_fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// The new mount API (fsopen(2), fsconfig(2), fsmount(2), move_mount(2)).
pub mod newmount {
    use super::*;
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};

    /// `fsopen(fstype, FSOPEN_CLOEXEC)`.
    pub fn fsopen(fstype: &str) -> SysResult<OwnedFd> {
        sys(rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC))
    }

    /// `fsconfig(fd, FSCONFIG_SET_STRING, key, value, 0)`.
    pub fn set_string(fd: &OwnedFd, key: &str, value: &[u8]) -> SysResult<()> {
        sys(rustix::mount::fsconfig_set_string(fd, key, value))
    }

    /// `fsconfig(fd, FSCONFIG_SET_FLAG, key, NULL, 0)`.
    pub fn set_flag(fd: &OwnedFd, key: &str) -> SysResult<()> {
        sys(rustix::mount::fsconfig_set_flag(fd, key))
    }

    /// `fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0)`.
    pub fn create(fd: &OwnedFd) -> SysResult<()> {
        sys(rustix::mount::fsconfig_create(fd))
    }

    /// `fsmount(fd, FSMOUNT_CLOEXEC, 0)`.
    pub fn fsmount(fd: &OwnedFd) -> SysResult<OwnedFd> {
        sys(rustix::mount::fsmount(
            fd,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        ))
    }

    /// `move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`.
    pub fn move_mount(mnt: &OwnedFd, target: &[u8]) -> SysResult<()> {
        sys(rustix::mount::move_mount(
            mnt,
            c"",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        ))
    }

    /// The messages the filesystem logged into the context (`e ...` lines),
    /// read until `ENODATA`.
    pub fn messages(fd: &OwnedFd) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = rustix::io::read(fd, &mut buf[..]) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// Capability sets of the calling thread via `capget`/`capset`
/// (capabilities(7), v3 ABI), as 64-bit masks.
pub mod caps {
    use super::*;
    use rustix::thread::{CapabilitySet, CapabilitySets};

    /// The calling thread's (effective, permitted, inheritable) sets.
    pub fn get() -> SysResult<(u64, u64, u64)> {
        let s = sys(rustix::thread::capabilities(None))?;
        Ok((s.effective.bits(), s.permitted.bits(), s.inheritable.bits()))
    }

    /// Sets the calling thread's capability sets.
    pub fn set(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
        sys(rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: CapabilitySet::from_bits_retain(effective),
                permitted: CapabilitySet::from_bits_retain(permitted),
                inheritable: CapabilitySet::from_bits_retain(inheritable),
            },
        ))
    }
}

/// `setgroups` of the calling thread only (the raw syscall, not glibc's
/// all-threads broadcast): the single group `gid`, or none.
pub fn set_thread_groups(gid: Option<u32>) -> SysResult<()> {
    let groups = gid.map(Gid::from_raw);
    sys(rustix::thread::set_thread_groups(groups.as_slice()))
}

/// `setfsuid(uid)`: the previous fsuid. The call reports failure only by
/// leaving the id unchanged (so `setfsuid(-1)` reads it).
pub fn setfsuid(uid: u32) -> u32 {
    // SAFETY: rustix has no setfsuid; a plain syscall with an integer
    // argument, no pointers.
    unsafe { libc::setfsuid(uid) as u32 }
}

/// `setfsgid(gid)`: the previous fsgid, as [`setfsuid`].
pub fn setfsgid(gid: u32) -> u32 {
    // SAFETY: rustix has no setfsgid; a plain syscall with an integer
    // argument, no pointers.
    unsafe { libc::setfsgid(gid) as u32 }
}

/// `close_range(first, ~0, 0)`: closes every fd from `first` up.
pub fn close_from(first: u32) {
    close_range(first, u32::MAX);
}

/// `close_range(first, last, 0)`.
fn close_range(first: u32, last: u32) {
    // SAFETY: rustix has no close_range (closing fds by number is outside
    // its I/O-safety model). The caller no longer uses any fd in the
    // range; no pointers are involved.
    unsafe {
        libc::syscall(libc::SYS_close_range, first, last, 0);
    }
}

/// `fd` renumbered to `target`, close-on-exec; `fd` itself is closed.
/// Whatever `target` held is closed first, then `fcntl(F_DUPFD_CLOEXEC,
/// target)` takes the lowest free number from `target` on: `target`
/// itself, as long as no other thread opens an fd meanwhile (the caller is
/// a freshly forked, single-threaded child). Should one have, `EBUSY`, as
/// `dup2` has it for that race. (rustix's `dup3` needs the target as an
/// owned fd already.)
pub fn move_fd(fd: OwnedFd, target: RawFd) -> SysResult<OwnedFd> {
    if fd.as_raw_fd() == target {
        sys(rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC))?;
        return Ok(fd);
    }
    let number = u32::try_from(target).map_err(|_| Errno::EBADF)?;
    close_range(number, number);
    let moved = sys(rustix::io::fcntl_dupfd_cloexec(&fd, target))?;
    if moved.as_raw_fd() != target {
        return Err(Errno::EBUSY);
    }
    Ok(moved)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)`.
pub fn socketpair() -> SysResult<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    sys(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    ))
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the calling process is killed when
/// the thread that forked it exits (prctl(2)).
pub fn die_with_parent() -> SysResult<()> {
    sys(rustix::process::set_parent_process_death_signal(Some(
        rustix::process::Signal::KILL,
    )))
}

/// Points stdin and stdout at `/dev/null` (opened read-write). A step that
/// fails is skipped: the process then keeps what it had.
pub fn null_stdin_stdout() {
    if let Ok(null) = openat(CWD, b"/dev/null", libc::O_RDWR, 0) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

/// `umask(mask)`: the previous mask.
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(Mode::from_bits_retain(mask)).bits()
}

/// `_exit(code)`: ends the process at once, without atexit handlers,
/// destructors or stdio flushing, none of which a forked child may run (they
/// belong to the parent's copy of the state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: rustix offers exit only in its unstable `runtime` module.
    // `_exit` takes no pointers and never returns; skipping destructors is
    // sound (it is leaking).
    unsafe { libc::_exit(code) }
}

/// A command line made ready for `execv` before a fork, so that the child
/// allocates nothing: the strings and the NULL-terminated pointer array
/// into them.
pub struct Argv {
    args: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Argv {
    /// `args[0]` is the program's path.
    pub fn new(args: Vec<CString>) -> Argv {
        let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Argv { args, ptrs }
    }
}

/// The child side of a helper spawn, right after `fork`: dies with its
/// parent (`PR_SET_PDEATHSIG(SIGKILL)`), stdin from `/dev/null`, stdout and
/// stderr to `out`, working directory `cwd`, then `execv`. A step that
/// fails is skipped; when the exec fails the child `_exit`s with 127.
pub fn exec_child(argv: &Argv, cwd: &CStr, out: BorrowedFd<'_>) -> ! {
    let _ = die_with_parent();
    if let Ok(null) = rustix::fs::open(
        c"/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    let _ = rustix::stdio::dup2_stdout(out);
    let _ = rustix::stdio::dup2_stderr(out);
    let _ = rustix::process::chdir(cwd);
    if let Some(path) = argv.args.first() {
        // SAFETY: rustix offers exec only in its unstable `runtime` module.
        // `ptrs` is a NULL-terminated array of pointers into `args`, which
        // outlives the call.
        unsafe { libc::execv(path.as_ptr(), argv.ptrs.as_ptr()) };
    }
    exit_now(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that changed into a directory after [`own_fs`] leaves the
    /// other threads where they were.
    #[test]
    fn own_fs_keeps_a_threads_cwd_to_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let before = std::env::current_dir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (entered, left) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                own_fs().unwrap();
                std::env::set_current_dir(&dir).unwrap();
                entered.wait();
                left.wait();
                assert_eq!(std::env::current_dir().unwrap(), dir);
            });
            entered.wait();
            let meanwhile = std::env::current_dir();
            left.wait();
            assert_eq!(meanwhile.unwrap(), before);
        });
        assert_eq!(std::env::current_dir().unwrap(), before);
    }

    /// Whatever size the caller expects, the whole file comes back (a
    /// stale `st_size` never truncates or pads the data).
    #[test]
    fn sized_reads_return_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 5, 4096, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            for expect in [0, len.saturating_sub(1), len, len + 1, 2 * len + 3] {
                let f = std::fs::File::open(&p).unwrap();
                let got = read_to_end_sized(&f, 1 << 24, expect).unwrap();
                assert_eq!(got, data, "len {len} expect {expect}");
            }
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(read_to_end(&f, 1 << 24).unwrap(), data);
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(read_to_end_sized(&f, 3, len).unwrap(), data[..len.min(3)]);
        }
    }

    /// A read stops at `limit` even when the file goes on and the vector
    /// grew past it.
    #[test]
    fn reads_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
        let p = dir.path().join("big");
        std::fs::write(&p, &data).unwrap();
        for limit in [1, 65_536, 65_537, 100_000, 199_999] {
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(read_to_end(&f, limit).unwrap(), data[..limit], "{limit}");
        }
    }

    fn dir_fd(dir: &tempfile::TempDir) -> OwnedFd {
        let path = dir.path().as_os_str().as_encoded_bytes();
        openat(CWD, path, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap()
    }

    /// The kernel's errno comes back as the same number, including the
    /// ones rustix spells differently (`EOPNOTSUPP` for `ENOTSUP`) and the
    /// `EINVAL` of a path with a NUL inside.
    #[test]
    fn errnos_pass_through_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir_fd(&dir);
        mkdirat(&d, b"sub", 0o755).unwrap();
        let f = openat(&d, b"f", libc::O_CREAT | libc::O_WRONLY, 0o644).unwrap();
        write_all(&f, b"x").unwrap();
        let f_path = CString::new(dir.path().join("f").as_os_str().as_encoded_bytes()).unwrap();
        let o = libc::O_RDONLY;
        assert_eq!(openat(&d, b"missing", o, 0).unwrap_err(), Errno::ENOENT);
        assert_eq!(openat(&d, b"f\0x", o, 0).unwrap_err(), Errno::EINVAL);
        assert_eq!(openat2(&d, b"f/", o, 0, 0).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(
            openat2(&d, b"../x", o, 0, libc::RESOLVE_BENEATH).unwrap_err(),
            Errno::EXDEV
        );
        assert_eq!(mkdirat(&d, b"sub", 0o755).unwrap_err(), Errno::EEXIST);
        assert_eq!(unlinkat(&d, b"sub", 0).unwrap_err(), Errno::EISDIR);
        assert_eq!(
            unlinkat(&d, b"f", libc::AT_REMOVEDIR).unwrap_err(),
            Errno::ENOTDIR
        );
        let both = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE;
        assert_eq!(
            renameat2(&d, b"f", &d, b"g", both).unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(
            renameat2(&d, b"f", &d, b"sub", libc::RENAME_NOREPLACE).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(readlinkat(&d, b"f").unwrap_err(), Errno::EINVAL);
        assert_eq!(linkat(&d, b"sub", &d, b"l", 0).unwrap_err(), Errno::EPERM);
        assert_eq!(fchmodat(&d, b"missing", 0o600).unwrap_err(), Errno::ENOENT);
        assert_eq!(truncate(c"/", 0).unwrap_err(), Errno::EISDIR);
        assert_eq!(
            getxattr(&f_path, b"user.absent", Follow::Yes).unwrap_err(),
            Errno::ENODATA
        );
        assert_eq!(
            setxattr(&f_path, b"nosuchns.x", b"v", Follow::Yes).unwrap_err(),
            Errno::EOPNOTSUPP
        );
        assert_eq!(
            removexattr(&f_path, b"user.absent").unwrap_err(),
            Errno::ENODATA
        );
        assert_eq!(pidfd_open(0).unwrap_err(), Errno::EINVAL);
        assert_eq!(read_dir(&d).unwrap_err(), Errno::EBADF);
    }

    /// Whiteouts (char 0/0) and fifos come out with the asked type, mode
    /// and device; timestamps and owners as set.
    #[test]
    fn nodes_and_attributes_are_made_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir_fd(&dir);
        mknodat(&d, b"wh", FileType::CharacterDevice, 0, makedev(0, 0)).unwrap();
        mknodat(&d, b"fifo", FileType::Fifo, 0o640, 0).unwrap();
        let wh = fstatat(&d, b"wh", libc::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(wh.st_mode & libc::S_IFMT, libc::S_IFCHR);
        assert_eq!((major(wh.st_rdev), minor(wh.st_rdev)), (0, 0));
        let fifo = fstatat(&d, b"fifo", 0).unwrap();
        assert_eq!(fifo.st_mode & libc::S_IFMT, libc::S_IFIFO);
        fchownat(&d, b"fifo", 12, 34, libc::AT_SYMLINK_NOFOLLOW).unwrap();
        fchmodat(&d, b"fifo", 0o4751).unwrap();
        utimensat(&d, b"fifo", 1_000_000, libc::AT_SYMLINK_NOFOLLOW).unwrap();
        let fifo = fstatat(&d, b"fifo", 0).unwrap();
        assert_eq!(fifo.st_mode & 0o7777, 0o4751);
        assert_eq!((fifo.st_uid, fifo.st_gid), (12, 34));
        assert_eq!((fifo.st_mtime, fifo.st_atime), (1_000_000, 1_000_000));
        let long = vec![b'x'; 4000];
        symlinkat(&long, &d, b"link").unwrap();
        assert_eq!(readlinkat(&d, b"link").unwrap(), long);
    }

    /// Xattr values and name lists too large for the first small buffer
    /// come back whole.
    #[test]
    fn large_xattrs_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let path = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let value: Vec<u8> = (0..600).map(|i| (i % 251) as u8).collect();
        setxattr(&path, b"trusted.big", &value, Follow::No).unwrap();
        assert_eq!(getxattr(&path, b"trusted.big", Follow::No).unwrap(), value);
        let mut names: Vec<Vec<u8>> = (0..32)
            .map(|i| format!("trusted.attribute-name-number-{i:03}").into_bytes())
            .collect();
        for n in &names {
            setxattr(&path, n, b"", Follow::Yes).unwrap();
        }
        names.push(b"trusted.big".to_vec());
        let mut got = listxattr(&path, Follow::Yes).unwrap();
        got.retain(|n| n.starts_with(b"trusted."));
        got.sort();
        names.sort();
        assert_eq!(got, names);
    }

    /// A directory whose entries fill several `getdents64` buffers is
    /// listed in full, without `.` and `..`.
    #[test]
    fn read_dir_lists_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut want: Vec<String> = (0..400)
            .map(|i| format!("entry-number-{i:04}-{}", "n".repeat(30)))
            .collect();
        for n in &want {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let path = dir.path().as_os_str().as_encoded_bytes();
        let fd = openat(CWD, path, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        let mut got: Vec<String> = read_dir(&fd)
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    /// What `send_nosignal` sends, `read_some` reads; a closed peer is
    /// `EPIPE` and a closed writer EOF.
    #[test]
    fn socket_send_and_read() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..100_000).map(|i| (i % 249) as u8).collect();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match read_some(&b, &mut buf).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        send_nosignal(&a, &data).unwrap();
        let (a2, b2) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b2);
        assert_eq!(send_nosignal(&a2, b"x").unwrap_err(), Errno::EPIPE);
        drop(a);
        assert_eq!(reader.join().unwrap(), data);
    }

    /// A moved fd lands on the asked number, close-on-exec, and is the same
    /// socket; an fd already there only gains close-on-exec.
    #[test]
    fn move_fd_renumbers_close_on_exec() {
        use rustix::io::{fcntl_getfd, fcntl_setfd};
        let (a, b) = socketpair().unwrap();
        let target = 700;
        let a = move_fd(a, target).unwrap();
        assert_eq!(a.as_raw_fd(), target);
        assert_eq!(fcntl_getfd(&a).unwrap(), FdFlags::CLOEXEC);
        send_nosignal(&a, b"ping").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read_some(&b, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        fcntl_setfd(&b, FdFlags::empty()).unwrap();
        let raw = b.as_raw_fd();
        let b = move_fd(b, raw).unwrap();
        assert_eq!(b.as_raw_fd(), raw);
        assert_eq!(fcntl_getfd(&b).unwrap(), FdFlags::CLOEXEC);
        assert_eq!(move_fd(b, -1).unwrap_err(), Errno::EBADF);
    }

    /// A capability dropped from the effective set reads back as dropped
    /// (and nothing else changes); the saved sets come back whole.
    #[test]
    fn capabilities_round_trip() {
        let (e, p, i) = caps::get().unwrap();
        let chown = rustix::thread::CapabilitySet::CHOWN.bits();
        caps::set(e & !chown, p, i).unwrap();
        let dropped = caps::get().unwrap();
        caps::set(e, p, i).unwrap();
        assert_eq!(dropped, (e & !chown, p, i));
        assert_eq!(caps::get().unwrap(), (e, p, i));
    }
}
