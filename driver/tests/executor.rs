//! The confined executor gives the same outcome as the plain syscall on an
//! ordinary tree (no hostile symlinks): `openat2(RESOLVE_IN_ROOT)` + `*at`
//! must not change any errno.

mod common;
use common::*;
use ovlcheck_case::{
    Access, Cred, Errno, FileKind, Fsid, Op, OpPath, OpenFlags, Outcome, RenameFlags, StatInfo,
    Value, Whence,
};
use ovlcheck_driver::exec;
use ovlcheck_driver::store::{write_objects, MarkerNames};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;

const TREE: &str = r#"
lower
  dir d 0755
  file d/f 0644 "data"
  dir d/sub 0700
  file d/sub/g 0600 "g"
  dir e 0755
  file a 0644 "hello"
  file ro 0444 "ro"
  symlink l "d"
  symlink lf "a"
  symlink dangling "nope"
  symlink loop1 "loop2"
  symlink loop2 "loop1"
  symlink up "d/.."
  fifo p 0644
  hardlink h a
  xattr a user.k "v"
"#;

fn build(dir: &Path) {
    let c = case(TREE);
    let objs = c.lowers[0].objects().unwrap();
    write_objects(
        dir,
        &objs,
        &MarkerNames {
            prefix: "trusted.overlay.",
        },
    )
    .unwrap();
}

fn path_of(dir: &Path, p: &OpPath) -> CString {
    let mut s = format!("{}/{}", dir.display(), p.path);
    if p.trailing_slash {
        s.push('/');
    }
    CString::new(s).unwrap()
}

fn errno() -> Errno {
    Errno::from_code(std::io::Error::last_os_error().raw_os_error().unwrap())
}

fn res(r: libc::c_int) -> Result<(), Errno> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The deterministic fields of a plain `stat`, as the executor reports
/// them (size 0 for directories).
fn stat_of(st: &libc::stat) -> Value {
    let kind = exec::file_kind(st.st_mode);
    Value::Stat(StatInfo {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: if kind == FileKind::Dir {
            0
        } else {
            st.st_size as u64
        },
        nlink: st.st_nlink as u32,
    })
}

fn open_plain(p: &CString, flags: i32, mode: u32) -> Result<i32, Errno> {
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

fn close(fd: i32) {
    // SAFETY: closing an fd this test opened.
    unsafe { libc::close(fd) };
}

/// `open(2)`'s flag bits for the case's flags, as a program writes them.
fn flag_bits(f: &OpenFlags) -> i32 {
    let mut bits = match f.access {
        Access::Rdonly => libc::O_RDONLY,
        Access::Wronly => libc::O_WRONLY,
        Access::Rdwr => libc::O_RDWR,
    };
    for (set, b) in [
        (f.creat, libc::O_CREAT),
        (f.excl, libc::O_EXCL),
        (f.trunc, libc::O_TRUNC),
        (f.append, libc::O_APPEND),
        (f.directory, libc::O_DIRECTORY),
        (f.nofollow, libc::O_NOFOLLOW),
        (f.path, libc::O_PATH),
    ] {
        if set {
            bits |= b;
        }
    }
    bits
}

/// An fd op as plain syscalls on the fds of `fds`.
fn plain_fd(dir: &Path, fds: &mut BTreeMap<String, i32>, op: &Op) -> Result<Value, Errno> {
    let get = |fds: &BTreeMap<String, i32>, n: &str| fds.get(n).copied().ok_or(Errno::EBADF);
    // SAFETY (all blocks below): the fds are this test's, buffers sized.
    unsafe {
        match op {
            Op::Open {
                path,
                flags,
                mode,
                fd,
            } => {
                if let Some(old) = fd.as_ref().and_then(|n| fds.remove(n)) {
                    close(old);
                }
                let f = open_plain(&path_of(dir, path), flag_bits(flags), *mode)?;
                match fd {
                    Some(n) => {
                        fds.insert(n.clone(), f);
                    }
                    None => close(f),
                }
                Ok(Value::Unit)
            }
            Op::Close { fd } => {
                close(fds.remove(fd).ok_or(Errno::EBADF)?);
                Ok(Value::Unit)
            }
            Op::Fstat { fd } => {
                let mut st: libc::stat = std::mem::zeroed();
                res(libc::fstat(get(fds, fd)?, &mut st)).map(|_| stat_of(&st))
            }
            Op::Fsync { fd } => res(libc::fsync(get(fds, fd)?)).map(|_| Value::Unit),
            Op::Fread { fd, len } => {
                let f = get(fds, fd)?;
                let mut buf = vec![0u8; len.unwrap_or(1 << 16) as usize];
                let n = libc::read(f, buf.as_mut_ptr().cast(), buf.len());
                if n < 0 {
                    return Err(errno());
                }
                buf.truncate(n as usize);
                Ok(Value::Bytes(buf))
            }
            Op::Fwrite { fd, offset, data } => {
                let f = get(fds, fd)?;
                let n = match offset {
                    Some(o) => libc::pwrite(f, data.as_ptr().cast(), data.len(), *o as i64),
                    None => libc::write(f, data.as_ptr().cast(), data.len()),
                };
                if n < 0 {
                    Err(errno())
                } else {
                    Ok(Value::Unit)
                }
            }
            Op::Lseek { fd, offset, whence } => {
                let w = match whence {
                    Whence::Set => libc::SEEK_SET,
                    Whence::Cur => libc::SEEK_CUR,
                    Whence::End => libc::SEEK_END,
                };
                if libc::lseek(get(fds, fd)?, *offset, w) < 0 {
                    Err(errno())
                } else {
                    Ok(Value::Unit)
                }
            }
            Op::Freaddir { fd } => {
                let d = libc::fdopendir(libc::dup(get(fds, fd)?));
                if d.is_null() {
                    return Err(errno());
                }
                let mut names = Vec::new();
                loop {
                    *libc::__errno_location() = 0;
                    let e = libc::readdir(d);
                    if e.is_null() {
                        let err = *libc::__errno_location();
                        libc::closedir(d);
                        if err != 0 {
                            return Err(Errno::from_code(err));
                        }
                        break;
                    }
                    let n = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                        .to_string_lossy()
                        .into_owned();
                    if n != "." && n != ".." {
                        names.push(n);
                    }
                }
                names.sort();
                Ok(Value::Names(names))
            }
            _ => unreachable!("not an fd op"),
        }
    }
}

/// The op as a plain path-based syscall on `dir`.
fn plain(dir: &Path, fds: &mut BTreeMap<String, i32>, op: &Op) -> Outcome {
    if op.fd().is_some() || matches!(op, Op::Open { flags, .. } if !flags.is_plain()) {
        return match plain_fd(dir, fds, op) {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        };
    }
    let r: Result<Value, Errno> = (|| {
        // SAFETY (all blocks below): C strings are valid and buffers sized.
        unsafe {
            match op {
                Op::Lstat { path } | Op::Stat { path } => {
                    let mut st: libc::stat = std::mem::zeroed();
                    let p = path_of(dir, path);
                    let r = if matches!(op, Op::Lstat { .. }) {
                        libc::lstat(p.as_ptr(), &mut st)
                    } else {
                        libc::stat(p.as_ptr(), &mut st)
                    };
                    res(r).map(|_| stat_of(&st))
                }
                Op::Read { path } => {
                    let fd = open_plain(&path_of(dir, path), libc::O_RDONLY, 0)?;
                    let mut buf = vec![0u8; 1 << 16];
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    let e = errno();
                    close(fd);
                    if n < 0 {
                        return Err(e);
                    }
                    buf.truncate(n as usize);
                    Ok(Value::Bytes(buf))
                }
                Op::Readlink { path } => {
                    let mut buf = vec![0u8; 4096];
                    let n = libc::readlink(
                        path_of(dir, path).as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    );
                    if n < 0 {
                        return Err(errno());
                    }
                    buf.truncate(n as usize);
                    Ok(Value::Bytes(buf))
                }
                Op::Readdir { path } => {
                    let d = libc::opendir(path_of(dir, path).as_ptr());
                    if d.is_null() {
                        return Err(errno());
                    }
                    let mut names = Vec::new();
                    loop {
                        let e = libc::readdir(d);
                        if e.is_null() {
                            break;
                        }
                        let n = std::ffi::CStr::from_ptr((*e).d_name.as_ptr())
                            .to_string_lossy()
                            .into_owned();
                        if n != "." && n != ".." {
                            names.push(n);
                        }
                    }
                    libc::closedir(d);
                    names.sort();
                    Ok(Value::Names(names))
                }
                Op::Getxattr { path, name } => {
                    let n = CString::new(name.as_str()).unwrap();
                    let mut buf = vec![0u8; 65536];
                    let got = libc::getxattr(
                        path_of(dir, path).as_ptr(),
                        n.as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    );
                    if got < 0 {
                        return Err(errno());
                    }
                    buf.truncate(got as usize);
                    Ok(Value::Bytes(buf))
                }
                Op::Listxattr { path } => {
                    let mut buf = vec![0u8; 65536];
                    let got = libc::listxattr(
                        path_of(dir, path).as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    );
                    if got < 0 {
                        return Err(errno());
                    }
                    buf.truncate(got as usize);
                    let mut v: Vec<String> = buf
                        .split(|b| *b == 0)
                        .filter(|s| s.starts_with(b"user."))
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    v.sort();
                    Ok(Value::Names(v))
                }
                Op::Open { path, flags, .. } => {
                    open_plain(&path_of(dir, path), flag_bits(flags), 0).map(|fd| {
                        close(fd);
                        Value::Unit
                    })
                }
                Op::Create {
                    path,
                    mode,
                    excl,
                    trunc,
                } => {
                    let mut f = libc::O_CREAT | libc::O_WRONLY;
                    f |= if *excl { libc::O_EXCL } else { 0 };
                    f |= if *trunc { libc::O_TRUNC } else { 0 };
                    open_plain(&path_of(dir, path), f, *mode).map(|fd| {
                        close(fd);
                        Value::Unit
                    })
                }
                Op::Write { path, offset, data } => {
                    let fd = open_plain(&path_of(dir, path), libc::O_WRONLY, 0)?;
                    let n = libc::pwrite(fd, data.as_ptr().cast(), data.len(), *offset as i64);
                    let e = errno();
                    close(fd);
                    if n < 0 {
                        Err(e)
                    } else {
                        Ok(Value::Unit)
                    }
                }
                Op::Truncate { path, size } => {
                    res(libc::truncate(path_of(dir, path).as_ptr(), *size as i64))
                        .map(|_| Value::Unit)
                }
                Op::Mkdir { path, mode } => {
                    res(libc::mkdir(path_of(dir, path).as_ptr(), *mode)).map(|_| Value::Unit)
                }
                Op::Mkfifo { path, mode } => res(libc::mknod(
                    path_of(dir, path).as_ptr(),
                    libc::S_IFIFO | mode,
                    0,
                ))
                .map(|_| Value::Unit),
                Op::Symlink { target, path } => {
                    let t = CString::new(target.clone()).unwrap();
                    res(libc::symlink(t.as_ptr(), path_of(dir, path).as_ptr())).map(|_| Value::Unit)
                }
                Op::Unlink { path } => {
                    res(libc::unlink(path_of(dir, path).as_ptr())).map(|_| Value::Unit)
                }
                Op::Rmdir { path } => {
                    res(libc::rmdir(path_of(dir, path).as_ptr())).map(|_| Value::Unit)
                }
                Op::Link { old, new } => res(libc::linkat(
                    libc::AT_FDCWD,
                    path_of(dir, old).as_ptr(),
                    libc::AT_FDCWD,
                    path_of(dir, new).as_ptr(),
                    0,
                ))
                .map(|_| Value::Unit),
                Op::Rename { old, new, flags } => {
                    let mut f = 0;
                    if flags.noreplace {
                        f |= libc::RENAME_NOREPLACE;
                    }
                    if flags.exchange {
                        f |= libc::RENAME_EXCHANGE;
                    }
                    res(libc::renameat2(
                        libc::AT_FDCWD,
                        path_of(dir, old).as_ptr(),
                        libc::AT_FDCWD,
                        path_of(dir, new).as_ptr(),
                        f,
                    ))
                    .map(|_| Value::Unit)
                }
                Op::Chmod { path, mode } => {
                    res(libc::chmod(path_of(dir, path).as_ptr(), *mode)).map(|_| Value::Unit)
                }
                Op::Chown { path, uid, gid } => {
                    res(libc::chown(path_of(dir, path).as_ptr(), *uid, *gid)).map(|_| Value::Unit)
                }
                Op::Utimes { path, mtime } => {
                    let ts = match mtime {
                        Some(t) => libc::timespec {
                            tv_sec: *t,
                            tv_nsec: 0,
                        },
                        None => libc::timespec {
                            tv_sec: 0,
                            tv_nsec: libc::UTIME_NOW,
                        },
                    };
                    res(libc::utimensat(
                        libc::AT_FDCWD,
                        path_of(dir, path).as_ptr(),
                        [ts, ts].as_ptr(),
                        0,
                    ))
                    .map(|_| Value::Unit)
                }
                Op::Setxattr { path, name, value } => {
                    let n = CString::new(name.as_str()).unwrap();
                    res(libc::setxattr(
                        path_of(dir, path).as_ptr(),
                        n.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    ))
                    .map(|_| Value::Unit)
                }
                Op::Removexattr { path, name } => {
                    let n = CString::new(name.as_str()).unwrap();
                    res(libc::removexattr(path_of(dir, path).as_ptr(), n.as_ptr()))
                        .map(|_| Value::Unit)
                }
                _ => unreachable!("not a path op"),
            }
        }
    })();
    match r {
        Ok(v) => Outcome::Ok(v),
        Err(e) => Outcome::Err(e),
    }
}

/// Every op kind, with the error cases of each (ENOENT, EEXIST, ENOTDIR,
/// EISDIR, ENOTEMPTY, EINVAL, ELOOP, trailing slashes).
const OPS: &str = r#"
  lstat a
  lstat l
  lstat l/
  lstat missing
  lstat a/x
  lstat loop1/x
  stat l
  stat lf
  stat dangling
  stat loop1
  stat a/
  stat d/
  stat up/a
  read a
  read lf
  read d
  read missing
  read p
  read loop1
  readlink l
  readlink a
  readlink l/
  readlink missing
  readdir d
  readdir l
  readdir a
  readdir l/sub
  getxattr a user.k
  getxattr lf user.k
  getxattr a user.none
  listxattr a
  listxattr lf
  listxattr missing
  open a rdwr
  open d rdwr
  open ro trunc
  open missing
  create a 0644
  create new1 0640
  create a 0644 excl
  create lf 0644 excl
  create dangling 0600
  create d 0644
  create new2/ 0644
  create missing/x 0644
  write a 2 "XY"
  write d 0 "x"
  write missing 0 "x"
  truncate a 1
  truncate d 0
  truncate missing 0
  mkdir a 0755
  mkdir d 0755
  mkdir nd 0700
  mkdir nd2/ 0700
  mkdir missing/x 0755
  mkdir a/x 0755
  mkdir dangling 0755
  mkfifo a 0644
  mkfifo p2 0600
  symlink "x" a
  symlink "x" s2
  symlink "x" s3/
  unlink a
  unlink d
  unlink missing
  unlink l/
  unlink h
  rmdir a
  rmdir d
  rmdir nd
  rmdir missing
  rmdir e/
  rmdir l
  link lf lnk
  link d dlnk
  link missing x
  link ro lf
  link ro missing/x
  rename ro ro2
  rename ro2 d
  rename d/sub d/sub/x
  rename e d
  rename missing x
  rename d/f d/f2 noreplace
  rename d/f2 l noreplace
  rename lf l exchange
  rename a/ z
  chmod ro2 0600
  chmod missing 0600
  chmod l 0700
  chown ro2 1 2
  chown lf 3 4
  chown missing 0 0
  utimes ro2 1000
  utimes lf 2000
  utimes missing 1
  setxattr ro2 user.a "1"
  setxattr lf user.b "2"
  setxattr missing user.c "3"
  setxattr p user.d "4"
  removexattr ro2 user.a
  removexattr ro2 user.a
  lstat ro2
  stat lf
  readdir d
  utimes ro2 now
  utimes lf now
  open d O_RDONLY|O_CREAT|O_DIRECTORY 0755
  open lf O_RDONLY|O_NOFOLLOW
  open lf O_PATH|O_NOFOLLOW as s
  fstat s
  fread s
  open d/f O_RDONLY|O_DIRECTORY
  open d/f O_RDONLY|O_EXCL
  open d O_PATH|O_CREAT|O_EXCL 0644
  open n3 O_WRONLY|O_CREAT|O_EXCL|O_APPEND 0600 as w
  fwrite w "abc"
  fwrite w 0 "de"
  fread w
  open n3 O_RDWR as r
  fread r 2
  fread r
  lseek r -1 SEEK_END
  fread r
  lseek r -9 SEEK_CUR
  fstat r
  fsync r
  unlink n3
  fstat r
  lseek r 0 SEEK_SET
  fread r
  close r
  close r
  fread r
  open d O_RDONLY|O_DIRECTORY as dd
  freaddir dd
  freaddir dd
  lseek dd 0 SEEK_SET
  freaddir dd
  lseek dd 0 SEEK_END
  fwrite dd "x"
  fread dd
  open p O_WRONLY as pw
  open p O_RDONLY as pr
  open p O_WRONLY as pw
  fwrite pw "pipe"
  fwrite pw 0 "pipe"
  fread pr 2
  lseek pr 0 SEEK_SET
  fsync pr
  close w
"#;

#[test]
fn confined_ops_match_plain_syscalls() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("\n*** SKIP confined_ops_match_plain_syscalls: needs root (chown, trusted xattrs) ***\n");
        if std::env::var("OVL_REQUIRE_KERNEL").as_deref() == Ok("1") {
            panic!("OVL_REQUIRE_KERNEL=1 but not root");
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("confined"), tmp.path().join("plain"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        build(d);
    }
    let root = std::fs::File::open(&a).unwrap();
    let mut mismatches = Vec::new();
    let (mut confined_fds, mut plain_fds) = (exec::FdTable::new(), BTreeMap::new());
    for op in ops(OPS) {
        let layers = exec::LayerFsids::default();
        let got = exec::apply_as(&root, &mut confined_fds, &op, Cred::ROOT, &layers).unwrap();
        let want = plain(&b, &mut plain_fds, &op);
        if got != want {
            mismatches.push(format!("{op:?}: confined {got:?}, plain {want:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
}

/// `statfs` names the filesystem whose fsid it got: the upper layer's
/// before the top lower's (they share one when the layers do), zero, or
/// else the overlay's own.
#[test]
fn statfs_names_whose_fsid_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::File::open(tmp.path()).unwrap();
    let here = ovlcheck_driver::sys::fsid(&root).unwrap();
    let op = Op::Statfs {
        path: OpPath::parse(".").unwrap(),
    };
    let class = |upper, lower| {
        let layers = exec::LayerFsids { upper, lower };
        match exec::apply_as(&root, &mut exec::FdTable::new(), &op, Cred::ROOT, &layers) {
            Ok(Outcome::Ok(Value::Fsid(f))) => f,
            other => panic!("statfs: {other:?}"),
        }
    };
    assert_eq!(class(Some(here), Some(here)), Fsid::Upper);
    assert_eq!(class(None, Some(here)), Fsid::Lower);
    assert_eq!(class(Some(here ^ 1), Some(here ^ 2)), Fsid::Own);
    let layers = exec::LayerFsids::default();
    assert_eq!(layers.class(0), Fsid::Zero);
    let missing = Op::Statfs {
        path: OpPath::parse("nothing").unwrap(),
    };
    assert_eq!(exec::apply(&root, &missing), Outcome::Err(Errno::ENOENT));
}

#[test]
fn stat_info_reports_size_zero_for_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::File::open(tmp.path()).unwrap();
    std::fs::create_dir(tmp.path().join("d")).unwrap();
    let op = Op::Stat {
        path: OpPath::parse("d").unwrap(),
    };
    match exec::apply(&root, &op) {
        Outcome::Ok(Value::Stat(StatInfo {
            kind: FileKind::Dir,
            size: 0,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    let _ = RenameFlags::default();
}
