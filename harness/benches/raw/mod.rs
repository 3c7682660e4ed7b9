//! The raw-syscall work of one differential case, shared by the
//! `baseline` and `ratios` benches: two lower layers with a handful of
//! entries on tmpfs, an overlay mount, a dozen ops, a walk of the merged
//! tree and the upper (lstat every entry, read every file, list xattrs),
//! unmount, remove the scratch tree; with `lifecycle`, also the raw form of
//! the remount and commit checks, and with [`one_case_exported`] the raw
//! form of the export check too. No harness, no model, no driver.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL")
}

fn mount(src: &str, target: &Path, fstype: &str, data: &str) {
    let (s, t, f, d) = (
        CString::new(src).unwrap(),
        c(target),
        CString::new(fstype).unwrap(),
        CString::new(data).unwrap(),
    );
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, d.as_ptr().cast()) };
    assert_eq!(
        r,
        0,
        "mount {fstype} on {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

fn umount(target: &Path) {
    // SAFETY: valid NUL-terminated string.
    let r = unsafe { libc::umount2(c(target).as_ptr(), 0) };
    assert_eq!(
        r,
        0,
        "umount {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

fn file(p: &Path, data: &[u8], mode: u32) {
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Walks a tree: lstat every entry, read every regular file, list xattrs.
fn walk(dir: &Path, bytes: &mut usize) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        *bytes += xattr_list_len(&p);
        if m.is_dir() {
            walk(&p, bytes);
        } else if m.is_file() {
            *bytes += fs::read(&p).unwrap().len();
        } else if m.file_type().is_symlink() {
            *bytes += fs::read_link(&p).unwrap().as_os_str().len();
        }
    }
}

fn xattr_list_len(p: &Path) -> usize {
    let mut buf = [0u8; 4096];
    // SAFETY: buffer is valid for its length; path is NUL-terminated.
    let n = unsafe { libc::llistxattr(c(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n.max(0) as usize
}

/// [`one_case`]'s work as a case file (without `lifecycle`): two lowers, a
/// dozen ops. Keep the two in step.
pub const BASELINE_CASE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "x"
  file a 0644 "lower a"
  symlink s "a"
lower
  file a 0644 "upper a"
  file b 0644 "b"
  dir d 0755
  file d/y 0644 "y"
ops
  lstat a
  read s
  create e 0644
  write a 0 "W"
  truncate b 0
  mkdir f 0755
  unlink d/x
  rename b c
  chmod d/y 0600
  setxattr a user.k "v"
  readdir d
  symlink "d" t
"#;

/// One case's worth of raw work under `root` (a tmpfs).
pub fn one_case(root: &Path, lifecycle: bool) -> usize {
    one_case_with(root, lifecycle, true)
}

/// [`one_case`] with the lifecycle checks and the raw form of the export
/// check (docs/images.md) between them: the upper layer copied entry by
/// entry into a new layer directory (contents, modes, mtimes, whiteouts,
/// `user.*` xattrs and the opaque mark: what applying its layer tar
/// writes), that image mounted read-only above the lowers, walked,
/// unmounted. The tar's bytes are not made: in-memory work the harness
/// adds on top.
pub fn one_case_exported(root: &Path) -> usize {
    work(root, true, true, true)
}

/// [`one_case`], its `setxattr a user.k` op only when `user_xattr`: a
/// tmpfs before v6.6 has no `user.*` xattrs, and the vm backend refuses a
/// case that uses them there (vm/benches/guest_rate.rs).
pub fn one_case_with(root: &Path, lifecycle: bool, user_xattr: bool) -> usize {
    work(root, lifecycle, false, user_xattr)
}

fn work(root: &Path, lifecycle: bool, export: bool, user_xattr: bool) -> usize {
    let (made, bytes) = checks(root, &[""], lifecycle, export, user_xattr);
    for d in &made {
        fs::remove_dir_all(d).unwrap();
    }
    bytes
}

/// The raw bound's case `n` at a time in one mount, as `--pack n` runs
/// them (docs/performance.md, "Packing"): case `i` in directory `pack{i}`
/// of every layer, the upper included, its ops beneath that directory, and
/// every check (the walks, the remount, with `export` the export, the
/// commit) made once for the whole pack, on a tmpfs of its own that is
/// unmounted rather than emptied. The yardstick of the third target.
pub fn pack_of_cases(root: &Path, n: usize, export: bool) -> usize {
    let scratch = root.join("pack");
    fs::create_dir(&scratch).unwrap();
    mount("tmpfs", &scratch, "tmpfs", "");
    let dirs: Vec<String> = (0..n).map(|i| format!("pack{i}")).collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (_, bytes) = checks(&scratch, &dirs, true, export, true);
    umount(&scratch);
    fs::remove_dir(&scratch).unwrap();
    bytes
}

/// The floor's work for the cases in directories `dirs` of every layer
/// (`""`: one case at the layers' roots), with the checks `lifecycle` and
/// `export` ask for; returns the directories it made under `root` and the
/// bytes its walks read.
fn checks(
    root: &Path,
    dirs: &[&str],
    lifecycle: bool,
    export: bool,
    user_xattr: bool,
) -> (Vec<std::path::PathBuf>, usize) {
    let (l0, l1, u, w, m) = (
        root.join("l0"),
        root.join("l1"),
        root.join("u"),
        root.join("w"),
        root.join("m"),
    );
    for d in [&l0, &l1, &u, &w, &m] {
        fs::create_dir(d).unwrap();
    }
    for dir in dirs.iter().filter(|d| !d.is_empty()) {
        for layer in [&l0, &l1, &u] {
            fs::create_dir(layer.join(dir)).unwrap();
        }
    }
    for dir in dirs {
        lowers(&l0.join(dir), &l1.join(dir));
    }
    let opts = overlay_options(&[&l1, &l0], Some((&u, &w)));
    mount("overlay", &m, "overlay", &opts);
    for dir in dirs {
        ops(&m.join(dir), user_xattr);
    }
    let mut bytes = 0;
    walk(&m, &mut bytes);
    walk(&u, &mut bytes);
    umount(&m);
    let mut made = vec![l0, l1, u, w, m];
    if lifecycle {
        let [l0, l1, u, m] = [0, 1, 2, 4].map(|i| made[i].clone());
        mount("overlay", &m, "overlay", &opts);
        walk(&m, &mut bytes);
        umount(&m);
        if export {
            let x = root.join("x");
            copy_layer(&u, &x);
            mount(
                "overlay",
                &m,
                "overlay",
                &overlay_options(&[&x, &l1, &l0], None),
            );
            walk(&m, &mut bytes);
            umount(&m);
            made.push(x);
        }
        let (u2, w2) = (root.join("u2"), root.join("w2"));
        fs::create_dir(&u2).unwrap();
        fs::create_dir(&w2).unwrap();
        let opts = overlay_options(&[&u, &l1, &l0], Some((&u2, &w2)));
        mount("overlay", &m, "overlay", &opts);
        walk(&m, &mut bytes);
        umount(&m);
        made.extend([u2, w2]);
    }
    (made, bytes)
}

/// The floor's two lower layers, in directories `l0` and `l1`.
fn lowers(l0: &Path, l1: &Path) {
    fs::create_dir(l0.join("d")).unwrap();
    file(&l0.join("d/x"), b"x", 0o644);
    file(&l0.join("a"), b"lower a", 0o644);
    symlink("a", l0.join("s")).unwrap();
    file(&l1.join("a"), b"upper a", 0o644);
    file(&l1.join("b"), b"b", 0o644);
    fs::create_dir(l1.join("d")).unwrap();
    file(&l1.join("d/y"), b"y", 0o644);
}

/// The floor's dozen ops beneath `m`, each with its syscall, errors
/// tolerated like a case's.
fn ops(m: &Path, user_xattr: bool) {
    let _ = fs::symlink_metadata(m.join("a"));
    let _ = fs::read(m.join("s"));
    let _ = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(m.join("e"));
    if let Ok(mut f) = fs::OpenOptions::new().write(true).open(m.join("a")) {
        let _ = f.write_all(b"W");
    }
    let _ = fs::OpenOptions::new()
        .write(true)
        .open(m.join("b"))
        .and_then(|f| f.set_len(0));
    let _ = fs::create_dir(m.join("f"));
    let _ = fs::remove_file(m.join("d/x"));
    let _ = fs::rename(m.join("b"), m.join("c"));
    let _ = fs::set_permissions(m.join("d/y"), fs::Permissions::from_mode(0o600));
    if user_xattr {
        // SAFETY: valid strings and buffer.
        unsafe {
            libc::setxattr(
                c(&m.join("a")).as_ptr(),
                c"user.k".as_ptr(),
                b"v".as_ptr().cast(),
                1,
                0,
            );
        }
    }
    let _ = fs::read_dir(m.join("d")).map(|d| d.count());
    let _ = symlink("d", m.join("t"));
}

/// The overlay mount options of `lowers` (top first) and, when given, an
/// upper and work directory: Docker overlay2's defaults.
fn overlay_options(lowers: &[&Path], upper: Option<(&Path, &Path)>) -> String {
    let lowers: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    let upper = upper
        .map(|(u, w)| format!(",upperdir={},workdir={}", u.display(), w.display()))
        .unwrap_or_default();
    format!(
        "lowerdir={}{upper},redirect_dir=follow,index=off,metacopy=off,xino=off",
        lowers.join(":")
    )
}

/// Copies layer directory `from` to a new `to` as applying its layer tar
/// would make it ([`one_case_exported`]).
fn copy_layer(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    copy_meta(from, to);
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = fs::symlink_metadata(&src).unwrap();
        let t = m.file_type();
        if t.is_dir() {
            copy_layer(&src, &dst);
            continue;
        }
        if t.is_file() {
            file(
                &dst,
                &fs::read(&src).unwrap(),
                m.permissions().mode() & 0o7777,
            );
        } else if t.is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            // A whiteout (character device 0/0).
            use std::os::unix::fs::MetadataExt;
            // SAFETY: valid NUL-terminated path.
            let r = unsafe { libc::mknod(c(&dst).as_ptr(), m.mode(), m.rdev()) };
            assert_eq!(r, 0, "mknod {}", dst.display());
        }
        copy_meta(&src, &dst);
    }
}

/// The xattrs a layer tar carries (`user.*`, the opaque mark) and the
/// mtime of `from`, onto `to` (not following symlinks).
fn copy_meta(from: &Path, to: &Path) {
    let mut names = [0u8; 4096];
    let (f, t) = (c(from), c(to));
    // SAFETY: buffers valid for their lengths; paths NUL-terminated.
    unsafe {
        let n = libc::llistxattr(f.as_ptr(), names.as_mut_ptr().cast(), names.len());
        for name in names[..n.max(0) as usize].split(|&b| b == 0) {
            if !(name.starts_with(b"user.") || name == b"trusted.overlay.opaque") {
                continue;
            }
            let name = CString::new(name).unwrap();
            let mut v = [0u8; 4096];
            let len = libc::lgetxattr(f.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len());
            if len >= 0 {
                libc::lsetxattr(
                    t.as_ptr(),
                    name.as_ptr(),
                    v.as_ptr().cast(),
                    len as usize,
                    0,
                );
            }
        }
        let mut st: libc::stat = std::mem::zeroed();
        libc::lstat(f.as_ptr(), &mut st);
        let times = [
            libc::timespec {
                tv_sec: st.st_atime,
                tv_nsec: st.st_atime_nsec,
            },
            libc::timespec {
                tv_sec: st.st_mtime,
                tv_nsec: st.st_mtime_nsec,
            },
        ];
        libc::utimensat(
            libc::AT_FDCWD,
            t.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

/// Enters a private mount namespace with a tmpfs scratch root.
pub fn scratch() -> std::path::PathBuf {
    // SAFETY: plain syscalls; CLONE_FS first so NEWNS works with threads.
    unsafe {
        assert_eq!(
            libc::unshare(libc::CLONE_FS),
            0,
            "unshare(CLONE_FS) needs root"
        );
        assert_eq!(
            libc::unshare(libc::CLONE_NEWNS),
            0,
            "unshare(CLONE_NEWNS) needs root"
        );
        let none = CString::new("none").unwrap();
        let root = CString::new("/").unwrap();
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
    }
    let dir = std::env::temp_dir().join(format!("ovlcheck-baseline-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    mount("tmpfs", &dir, "tmpfs", "");
    dir
}
