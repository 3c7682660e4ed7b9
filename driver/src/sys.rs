//! Thin wrappers around the raw syscalls the driver needs and `nix` does not
//! cover (or covers with a less convenient shape): `openat2`, the new mount
//! API, `capget`/`capset`, `close_range`, byte-path `*at` calls and xattrs.
//! Every wrapper returns the kernel's errno untranslated.

use nix::errno::Errno;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Result of a raw syscall.
pub type SysResult<T> = Result<T, Errno>;

/// A NUL-terminated copy of `bytes`; an interior NUL is `EINVAL`, as the
/// kernel would never see such a path.
pub fn cstr(bytes: &[u8]) -> SysResult<CString> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

fn check(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn check_int(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a fresh fd returned by a syscall.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful syscall that creates a
    // new file descriptor, and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// `struct open_how` (openat2(2)); libc's is non-exhaustive.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dirfd, path, {flags, mode, resolve})`, retried on `EAGAIN`
/// (which `RESOLVE_IN_ROOT` returns when a concurrent rename anywhere in the
/// system raced with a `..` step; openat2(2)).
pub fn openat2(
    dirfd: RawFd,
    path: &[u8],
    flags: i32,
    mode: u32,
    resolve: u64,
) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    let mut how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            mode as u64
        } else {
            0
        },
        resolve,
    };
    for _ in 0..64 {
        // SAFETY: `c` is a valid NUL-terminated string and `how` a valid
        // `open_how` of the size we pass; both outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &mut how as *mut OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(ret) {
            Ok(fd) => return Ok(owned(fd)),
            Err(Errno::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// `openat(dirfd, path, flags, mode)` with `O_CLOEXEC`.
pub fn openat(dirfd: RawFd, path: &[u8], flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let ret = unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    check_int(ret).map(|fd| owned(fd as libc::c_long))
}

/// `fstatat(dirfd, path, flags)`.
pub fn fstatat(dirfd: RawFd, path: &[u8], flags: i32) -> SysResult<libc::stat> {
    let c = cstr(path)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `c` is NUL-terminated and `st` points to writable memory of
    // the right size.
    let ret = unsafe { libc::fstatat(dirfd, c.as_ptr(), st.as_mut_ptr(), flags) };
    check_int(ret)?;
    // SAFETY: fstatat succeeded, so it filled in the struct (and it was
    // zero-initialised anyway).
    Ok(unsafe { st.assume_init() })
}

/// `pidfd_open(pid, 0)` (Linux 5.3): an fd that polls readable once the
/// process has exited, so a parent can wait for a child with a timeout
/// without a sleep loop.
pub fn pidfd_open(pid: libc::pid_t) -> SysResult<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(owned)
}

/// `fchdir(fd)`.
pub fn fchdir(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall on an integer fd.
    check_int(unsafe { libc::fchdir(fd) }).map(drop)
}

/// `fstat(fd)`.
pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    fstatat(fd, b"", libc::AT_EMPTY_PATH)
}

/// `mkdirat(dirfd, path, mode)`.
pub fn mkdirat(dirfd: RawFd, path: &[u8], mode: u32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode) }).map(drop)
}

/// `mknodat(dirfd, path, mode, dev)`.
pub fn mknodat(dirfd: RawFd, path: &[u8], mode: u32, dev: u64) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::mknodat(dirfd, c.as_ptr(), mode, dev) }).map(drop)
}

/// `symlinkat(target, dirfd, path)`.
pub fn symlinkat(target: &[u8], dirfd: RawFd, path: &[u8]) -> SysResult<()> {
    let t = cstr(target)?;
    let c = cstr(path)?;
    // SAFETY: both strings are valid and NUL-terminated.
    check_int(unsafe { libc::symlinkat(t.as_ptr(), dirfd, c.as_ptr()) }).map(drop)
}

/// `linkat(olddirfd, old, newdirfd, new, flags)`.
pub fn linkat(olddir: RawFd, old: &[u8], newdir: RawFd, new: &[u8], flags: i32) -> SysResult<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are valid and NUL-terminated.
    check_int(unsafe { libc::linkat(olddir, o.as_ptr(), newdir, n.as_ptr(), flags) }).map(drop)
}

/// `renameat2(olddirfd, old, newdirfd, new, flags)`.
pub fn renameat2(
    olddir: RawFd,
    old: &[u8],
    newdir: RawFd,
    new: &[u8],
    flags: u32,
) -> SysResult<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    // SAFETY: both strings are valid and NUL-terminated.
    check_int(unsafe { libc::renameat2(olddir, o.as_ptr(), newdir, n.as_ptr(), flags) }).map(drop)
}

/// `unlinkat(dirfd, path, flags)`.
pub fn unlinkat(dirfd: RawFd, path: &[u8], flags: i32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::unlinkat(dirfd, c.as_ptr(), flags) }).map(drop)
}

/// `readlinkat(dirfd, path)`: the whole target.
pub fn readlinkat(dirfd: RawFd, path: &[u8]) -> SysResult<Vec<u8>> {
    let c = cstr(path)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: `c` is NUL-terminated and `buf` is writable for its length.
    let n = unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `fchownat(dirfd, path, uid, gid, flags)`.
pub fn fchownat(dirfd: RawFd, path: &[u8], uid: u32, gid: u32, flags: i32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::fchownat(dirfd, c.as_ptr(), uid, gid, flags) }).map(drop)
}

/// `fchmodat(dirfd, path, mode, 0)` (follows; the only form glibc supports
/// without `fchmodat2`).
pub fn fchmodat(dirfd: RawFd, path: &[u8], mode: u32) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::fchmodat(dirfd, c.as_ptr(), mode, 0) }).map(drop)
}

/// `utimensat(dirfd, path, {secs, secs}, flags)`: atime and mtime.
pub fn utimensat(dirfd: RawFd, path: &[u8], secs: i64, flags: i32) -> SysResult<()> {
    let c = cstr(path)?;
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: `c` is NUL-terminated and `times` is an array of two timespecs.
    check_int(unsafe { libc::utimensat(dirfd, c.as_ptr(), times.as_ptr(), flags) }).map(drop)
}

/// `truncate(path, size)`.
pub fn truncate(path: &[u8], size: u64) -> SysResult<()> {
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    check_int(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) }).map(drop)
}

/// `pwrite` of the whole buffer.
pub fn pwrite_all(fd: RawFd, data: &[u8], offset: u64) -> SysResult<()> {
    write_whole(data, |rest, done| {
        let at = (offset + done) as libc::off_t;
        // SAFETY: `rest` is readable for its length.
        unsafe { libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), at) }
    })
}

/// Calls `write(rest, done)` until all of `data` is written, `rest` being
/// what is left and `done` how many bytes went before it; EINTR is retried.
pub(crate) fn write_whole(
    mut data: &[u8],
    mut write: impl FnMut(&[u8], u64) -> isize,
) -> SysResult<()> {
    let mut done = 0u64;
    while !data.is_empty() {
        let n = write(data, done);
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
        done += n as u64;
    }
    Ok(())
}

/// Reads up to `limit` bytes from `fd` (until EOF).
pub fn read_to_end(fd: RawFd, limit: usize) -> SysResult<Vec<u8>> {
    read_until_eof(fd, limit, None)
}

/// [`read_to_end`] of a regular file whose `st_size` is `expect`: one
/// `read` sized for it. A read that comes back short exactly at that size
/// is at the end of the file, so no second read has to see EOF.
pub fn read_to_end_sized(fd: RawFd, limit: usize, expect: usize) -> SysResult<Vec<u8>> {
    read_until_eof(fd, limit, Some(expect))
}

fn read_until_eof(fd: RawFd, limit: usize, expect: Option<usize>) -> SysResult<Vec<u8>> {
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
        let want = (out.capacity() - out.len()).min(limit - out.len());
        // SAFETY: the spare capacity of `out` is writable for `want` bytes;
        // `set_len` below only covers the bytes the kernel wrote.
        let n = unsafe { libc::read(fd, out.as_mut_ptr().add(out.len()).cast(), want) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        // SAFETY: the kernel initialised `n <= want` bytes past `len`.
        unsafe { out.set_len(out.len() + n as usize) };
        if (n as usize) < want && Some(out.len()) == expect {
            break;
        }
    }
    Ok(out)
}

/// The names in directory `fd` (not `.` and `..`), in `getdents64` order.
/// `fd` must be freshly opened (at offset 0); it is read to the end.
pub fn read_dir(fd: RawFd) -> SysResult<Vec<CString>> {
    #[repr(C, align(8))]
    struct Buf([u8; 8192]);
    let mut buf = Buf([0; 8192]);
    let mut names = Vec::new();
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = check(unsafe {
            libc::syscall(libc::SYS_getdents64, fd, buf.0.as_mut_ptr(), buf.0.len())
        })? as usize;
        if n == 0 {
            return Ok(names);
        }
        // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen;
        // u8 d_type; char d_name[]; }
        let mut off = 0;
        while off < n {
            let rec = &buf.0[off..n];
            let reclen = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            let name = CStr::from_bytes_until_nul(&rec[19..reclen]).map_err(|_| Errno::EIO)?;
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                names.push(name.to_owned());
            }
            off += reclen;
        }
    }
}

/// Writes the whole buffer to `fd`.
pub fn write_all(fd: RawFd, data: &[u8]) -> SysResult<()> {
    // SAFETY: `rest` is readable for its length.
    write_whole(data, |rest, _| unsafe {
        libc::write(fd, rest.as_ptr().cast(), rest.len())
    })
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
    let n = cstr(name)?;
    let get = |buf: *mut libc::c_void, size: usize| {
        // SAFETY: both strings are NUL-terminated; `buf` is writable for
        // `size` bytes (or NULL with size 0, which asks for the size).
        let r = unsafe {
            match follow {
                Follow::Yes => libc::getxattr(path.as_ptr(), n.as_ptr(), buf, size),
                Follow::No => libc::lgetxattr(path.as_ptr(), n.as_ptr(), buf, size),
            }
        };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r as usize)
        }
    };
    let mut small = [0u8; 256];
    match get(small.as_mut_ptr().cast(), small.len()) {
        Ok(got) => return Ok(small[..got].to_vec()),
        Err(Errno::ERANGE) => {}
        Err(e) => return Err(e),
    }
    loop {
        let size = get(std::ptr::null_mut(), 0)?;
        let mut buf = vec![0u8; size];
        match get(buf.as_mut_ptr().cast(), buf.len()) {
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
    let list = |buf: *mut libc::c_char, size: usize| {
        // SAFETY: NUL-terminated path; `buf` is writable for `size` bytes
        // (or NULL with size 0, which asks for the size).
        let r = unsafe {
            match follow {
                Follow::Yes => libc::listxattr(path.as_ptr(), buf, size),
                Follow::No => libc::llistxattr(path.as_ptr(), buf, size),
            }
        };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r as usize)
        }
    };
    let split = |buf: &[u8]| -> Vec<Vec<u8>> {
        buf.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let mut small = [0u8; 1024];
    match list(small.as_mut_ptr().cast(), small.len()) {
        Ok(got) => return Ok(split(&small[..got])),
        Err(Errno::ERANGE) => {}
        Err(e) => return Err(e),
    }
    loop {
        let size = list(std::ptr::null_mut(), 0)?;
        let mut buf = vec![0u8; size];
        match list(buf.as_mut_ptr().cast(), buf.len()) {
            Ok(got) => return Ok(split(&buf[..got])),
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `setxattr`/`lsetxattr` with flags 0.
pub fn setxattr(path: &CStr, name: &[u8], value: &[u8], follow: Follow) -> SysResult<()> {
    let n = cstr(name)?;
    // SAFETY: strings are NUL-terminated; `value` is readable for its length.
    let ret = unsafe {
        match follow {
            Follow::Yes => libc::setxattr(
                path.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ),
            Follow::No => libc::lsetxattr(
                path.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            ),
        }
    };
    check_int(ret).map(drop)
}

/// `removexattr` (follows).
pub fn removexattr(path: &CStr, name: &[u8]) -> SysResult<()> {
    let n = cstr(name)?;
    // SAFETY: both strings are NUL-terminated.
    check_int(unsafe { libc::removexattr(path.as_ptr(), n.as_ptr()) }).map(drop)
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

    /// `fsopen(fstype, FSOPEN_CLOEXEC)`.
    pub fn fsopen(fstype: &str) -> SysResult<OwnedFd> {
        let c = cstr(fstype.as_bytes())?;
        // SAFETY: `c` is a valid NUL-terminated string.
        let ret = unsafe { libc::syscall(libc::SYS_fsopen, c.as_ptr(), libc::FSOPEN_CLOEXEC) };
        check(ret).map(owned)
    }

    /// `fsconfig(fd, FSCONFIG_SET_STRING, key, value, 0)`.
    pub fn set_string(fd: &OwnedFd, key: &str, value: &[u8]) -> SysResult<()> {
        let k = cstr(key.as_bytes())?;
        let v = cstr(value)?;
        // SAFETY: key and value are valid NUL-terminated strings.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                libc::FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        check(ret).map(drop)
    }

    /// `fsconfig(fd, FSCONFIG_SET_FLAG, key, NULL, 0)`.
    pub fn set_flag(fd: &OwnedFd, key: &str) -> SysResult<()> {
        let k = cstr(key.as_bytes())?;
        // SAFETY: `k` is a valid NUL-terminated string; value must be NULL.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                libc::FSCONFIG_SET_FLAG,
                k.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        check(ret).map(drop)
    }

    /// `fsconfig(fd, FSCONFIG_CMD_CREATE, NULL, NULL, 0)`.
    pub fn create(fd: &OwnedFd) -> SysResult<()> {
        // SAFETY: no pointers are passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                libc::FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        check(ret).map(drop)
    }

    /// `fsmount(fd, FSMOUNT_CLOEXEC, 0)`.
    pub fn fsmount(fd: &OwnedFd) -> SysResult<OwnedFd> {
        // SAFETY: no pointers are passed.
        let ret =
            unsafe { libc::syscall(libc::SYS_fsmount, fd.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0) };
        check(ret).map(owned)
    }

    /// `move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`.
    pub fn move_mount(mnt: &OwnedFd, target: &[u8]) -> SysResult<()> {
        let t = cstr(target)?;
        let empty = c"";
        // SAFETY: both strings are valid and NUL-terminated.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        check(ret).map(drop)
    }

    /// The messages the filesystem logged into the context (`e ...` lines),
    /// read until `ENODATA`.
    pub fn messages(fd: &OwnedFd) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.push(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
        }
    }
}

/// Capability sets via `capget`/`capset` (capabilities(7), v3 ABI).
pub mod caps {
    use super::*;

    const VERSION_3: u32 = 0x2008_0522;

    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    /// The calling thread's (effective, permitted, inheritable) sets as
    /// 64-bit masks.
    pub fn get() -> SysResult<(u64, u64, u64)> {
        let mut h = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut d = [Data::default(); 2];
        // SAFETY: header and a 2-element data array, as the v3 ABI requires.
        check(unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) })?;
        let join = |f: fn(&Data) -> u32| u64::from(f(&d[0])) | (u64::from(f(&d[1])) << 32);
        Ok((
            join(|x| x.effective),
            join(|x| x.permitted),
            join(|x| x.inheritable),
        ))
    }

    /// Sets the calling thread's capability sets.
    pub fn set(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
        let mut h = Header {
            version: VERSION_3,
            pid: 0,
        };
        let split = |v: u64| [v as u32, (v >> 32) as u32];
        let (e, p, i) = (split(effective), split(permitted), split(inheritable));
        let d = [
            Data {
                effective: e[0],
                permitted: p[0],
                inheritable: i[0],
            },
            Data {
                effective: e[1],
                permitted: p[1],
                inheritable: i[1],
            },
        ];
        // SAFETY: header and a 2-element data array, as the v3 ABI requires.
        check(unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) })
            .map(drop)
    }
}

/// `close_range(first, ~0, 0)`: closes every fd from `first` up.
pub fn close_from(first: u32) {
    // SAFETY: closing fds the caller no longer uses; no pointers involved.
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
                let got = read_to_end_sized(f.as_raw_fd(), 1 << 24, expect).unwrap();
                assert_eq!(got, data, "len {len} expect {expect}");
            }
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(read_to_end(f.as_raw_fd(), 1 << 24).unwrap(), data);
            let f = std::fs::File::open(&p).unwrap();
            assert_eq!(
                read_to_end_sized(f.as_raw_fd(), 3, len).unwrap(),
                data[..len.min(3)]
            );
        }
    }
}
