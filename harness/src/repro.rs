//! `ovlcheck repro CASE`: a standalone shell script that rebuilds the layers
//! with mkdir/printf/mknod/setfattr/chattr, mounts them as the driver does, and runs
//! the ops with the same syscalls (through a small embedded python3 helper,
//! since the shell has no renameat2 or pwrite), printing each outcome in the
//! `.ovl` syntax next to the one the case pins. Paste it into a bug report.

use ovlcheck_case::acl;
use ovlcheck_case::layer::{Object, ObjectKind};
use ovlcheck_case::profile::{IDMAP_COUNT, IDMAP_ON_DISK_BASE};
use ovlcheck_case::{print_step, Case, LowerFs, Op, Step};
use std::fmt::Write;

/// The python3 helper that performs one op and prints its outcome.
const OP_HELPER: &str = r#"
import ctypes, errno, fcntl, os, stat, struct, sys
a = sys.argv[1:]
def b(x):
    return bytes.fromhex(x[4:]) if x.startswith('hex:') else x.encode()
def kind(m):
    for t, n in ((stat.S_ISREG, 'file'), (stat.S_ISDIR, 'dir'), (stat.S_ISLNK, 'symlink'), (stat.S_ISFIFO, 'fifo'), (stat.S_ISCHR, 'char')):
        if t(m): return n
    return 'other'
def q(v):
    # Quoted as ovlcheck prints bytes (case/src/quote.rs).
    esc = {10: '\\n', 9: '\\t', 92: '\\\\', 34: '\\"'}
    return '"' + ''.join(esc.get(c) or (chr(c) if 32 <= c < 127 else '\\x%02x' % c) for c in v) + '"'
def acl_text(v):
    # A POSIX ACL xattr in the short text form ovlcheck prints.
    tag = {1: 'u', 2: 'u', 4: 'g', 8: 'g', 16: 'm', 32: 'o'}
    out = []
    for i in range(4, len(v), 8):
        t, perm, ident = struct.unpack('<HHI', v[i:i + 8])
        bits = ''.join(c if perm & m else '-' for c, m in (('r', 4), ('w', 2), ('x', 1)))
        out.append('%s:%s:%s' % (tag[t], ident if t in (2, 8) else '', bits))
    return ','.join(out).encode()
def parent(path):
    # The executor opens a name's parent first (its walk's errors come
    # first) and acts on the last name; the root is `/` itself.
    if path == '.': return -100, '/'
    d, _, n = path.rstrip('/').rpartition('/')
    n += '/' if path.endswith('/') else ''
    return os.open(d or '.', os.O_PATH | os.O_DIRECTORY), n
def run(a):
    op, p = a[0], a[1:]
    if op in ('stat', 'lstat'):
        s = (os.stat if op == 'stat' else os.lstat)(p[0])
        size = 0 if stat.S_ISDIR(s.st_mode) else s.st_size
        return '{%s %04o %d:%d size=%d nlink=%d}' % (kind(s.st_mode), stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, size, s.st_nlink)
    if op == 'statfs':
        # Whose fsid, as the executor tells: the upper's filesystem's,
        # the top lower's, zero, or else the overlay's own.
        f = os.statvfs(p[0]).f_fsid
        for name, fsid in LAYERS:
            if f == fsid: return '{fsid=%s}' % name
        return '{fsid=zero}' if f == 0 else '{fsid=own}'
    if op == 'read':
        fd = os.open(p[0], os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = b''
            while True:
                c = os.read(fd, 65536)
                if not c: return q(data)
                data += c
        finally: os.close(fd)
    if op == 'readlink': return q(os.readlink(p[0]).encode())
    if op == 'readdir': return '[' + ', '.join(q(n.encode()) for n in sorted(os.listdir(p[0]))) + ']'
    if op == 'getxattr':
        v = os.getxattr(p[0], p[1])
        return q(acl_text(v) if p[1].startswith('system.posix_acl_') else v)
    if op == 'listxattr': return '[' + ', '.join(q(n.encode()) for n in sorted(os.listxattr(p[0])) if n.startswith('user.')) + ']'
    if op == 'open':
        # O_NONBLOCK as ovlcheck's executor: a fifo fails or opens, never waits.
        fl = (os.O_RDWR if 'rdwr' in p[1:] else os.O_RDONLY) | os.O_NONBLOCK
        if 'trunc' in p[1:]: fl |= os.O_TRUNC
        os.close(os.open(p[0], fl)); return 'ok'
    if op == 'create':
        fl = os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK
        if 'excl' in p[2:]: fl |= os.O_EXCL
        if 'trunc' in p[2:]: fl |= os.O_TRUNC
        os.close(os.open(p[0], fl, int(p[1], 8))); return 'ok'
    if op == 'write':
        fd = os.open(p[0], os.O_WRONLY | os.O_NONBLOCK)
        data, off = b(p[2]), int(p[1])
        try:
            # Until all is written, as the executor: a short write goes on.
            while data:
                n = os.pwrite(fd, data, off)
                data, off = data[n:], off + n
        finally: os.close(fd)
        return 'ok'
    if op == 'truncate': os.truncate(p[0], int(p[1])); return 'ok'
    if op == 'mkdir': os.mkdir(p[0], int(p[1], 8)); return 'ok'
    if op == 'mkfifo': os.mkfifo(p[0], int(p[1], 8)); return 'ok'
    if op == 'symlink': os.symlink(b(p[0]), p[1]); return 'ok'
    if op == 'unlink': os.unlink(p[0]); return 'ok'
    if op == 'rmdir':
        # The root itself as `/` of the chroot, as the executor names it:
        # `rmdir /` is EBUSY where `rmdir .` would be EINVAL.
        os.rmdir('/' if p[0] == '.' else p[0]); return 'ok'
    if op == 'link':
        # As the executor: the old path in full first (not the root, which
        # takes no walk), then both parents, then linkat.
        if p[0] != '.':
            os.close(os.open(p[0], os.O_PATH | (0 if p[0].endswith('/') else os.O_NOFOLLOW)))
        (od, on), (nd, nn) = parent(p[0]), parent(p[1])
        os.link(on, nn, src_dir_fd=od, dst_dir_fd=nd, follow_symlinks=p[0].endswith('/'))
        return 'ok'
    if op == 'rename':
        fl = sum(v for k, v in (('noreplace', 1), ('exchange', 2), ('whiteout', 4)) if k in p[2:])
        (od, on), (nd, nn) = parent(p[0]), parent(p[1])
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.renameat2(od, on.encode(), nd, nn.encode(), fl) != 0:
            e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
        return 'ok'
    if op == 'chmod': os.chmod(p[0], int(p[1], 8)); return 'ok'
    if op == 'chown': os.chown(p[0], int(p[1]), int(p[2])); return 'ok'
    if op == 'utimes':
        if p[1] == 'now': os.utime(p[0], None); return 'ok'
        t = int(p[1]); os.utime(p[0], (t, t)); return 'ok'
    if op == 'openfd':
        # openfd PATH FLAGS MODE NAME|-: open(2) with the case's flags (an
        # fd already open under NAME is closed first); O_NONBLOCK as the
        # executor, but not beside O_PATH.
        fl = 0
        for n in p[1].split('|'): fl |= getattr(os, n)
        if not fl & os.O_PATH: fl |= os.O_NONBLOCK
        if p[3] in FDS: os.close(FDS.pop(p[3]))
        fd = os.open(p[0], fl, int(p[2], 8))
        if p[3] == '-': os.close(fd)
        else: FDS[p[3]] = fd
        return 'ok'
    if op in ('fstat', 'fread', 'freaddir', 'lseek', 'fsync', 'fwrite', 'close'):
        if p[0] not in FDS: raise OSError(errno.EBADF, 'no such fd')
        fd = FDS[p[0]]
    if op == 'close': os.close(FDS.pop(p[0])); return 'ok'
    if op == 'fstat':
        s = os.fstat(fd)
        size = 0 if stat.S_ISDIR(s.st_mode) else s.st_size
        return '{%s %04o %d:%d size=%d nlink=%d}' % (kind(s.st_mode), stat.S_IMODE(s.st_mode), s.st_uid, s.st_gid, size, s.st_nlink)
    if op == 'fsync': os.fsync(fd); return 'ok'
    if op == 'lseek': os.lseek(fd, int(p[1]), getattr(os, p[2])); return 'ok'
    if op == 'fread':
        # As the executor: at least one read, then on until the count or
        # the end; a fifo that runs dry after some data ends the read.
        limit = int(p[1]) if len(p) > 1 else 16 << 20
        data = b''
        while True:
            try: c = os.read(fd, min(limit - len(data), 65536))
            except BlockingIOError:
                if data: break
                raise
            if not c: break
            data += c
            if len(data) >= limit: break
        return q(data)
    if op == 'fwrite':
        data = b(p[2])
        while data:
            n = os.write(fd, data) if p[1] == '-' else os.pwrite(fd, data, int(p[1]))
            if p[1] != '-': p[1] = str(int(p[1]) + n)
            data = data[n:]
        return 'ok'
    if op == 'freaddir':
        # getdents64 from the fd's own position (python's listdir would
        # rewind, and glibc's readdir takes ENOENT of a removed directory
        # for the end).
        libc = ctypes.CDLL(None, use_errno=True)
        nr = {'x86_64': 217, 'aarch64': 61, 'riscv64': 61}[os.uname().machine]
        buf = ctypes.create_string_buffer(65536)
        names = []
        while True:
            n = libc.syscall(nr, fd, buf, len(buf))
            if n < 0:
                e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
            if n == 0: break
            raw, at = buf.raw[:n], 0
            while at < n:
                reclen = int.from_bytes(raw[at + 16:at + 18], 'little')
                name = raw[at + 19:at + reclen].split(b'\0', 1)[0]
                if name not in (b'.', b'..'): names.append(name)
                at += reclen
        return '[' + ', '.join(q(n) for n in sorted(names)) + ']'
    if op == 'setxattr': os.setxattr(p[0], p[1], b(p[2])); return 'ok'
    if op == 'removexattr': os.removexattr(p[0], p[1]); return 'ok'
    if op == 'chattr':
        # FS_IOC_SETFLAGS with exactly these flags, through an fd opened
        # for reading, keeping the layer filesystem's own flags (ext4's
        # extents flag), as ovlcheck's executor does.
        bits = {'i': 0x10, 'a': 0x20, 'd': 0x40, 'A': 0x80}
        fd = os.open(p[0], os.O_RDONLY | os.O_NONBLOCK)
        try:
            try: own = struct.unpack('i', fcntl.ioctl(fd, 0x80086601, struct.pack('i', 0)))[0] & ~0xf0
            except OSError: own = 0
            fcntl.ioctl(fd, 0x40086602, struct.pack('i', own | sum(bits[c] for c in p[1] if c in bits)))
        finally: os.close(fd)
        return 'ok'
    raise SystemExit('unknown op ' + op)
def main(a):
    try: return run(a)
    except OSError as e:
        # 95 is both; ovlcheck (like the kernel's own headers) says EOPNOTSUPP.
        return 'EOPNOTSUPP' if e.errno == errno.EOPNOTSUPP else errno.errorcode.get(e.errno, 'E%d' % e.errno)
FDS = {}
# The fsids of the upper and the top lower layer, for statfs, taken while
# their paths can be named (before the chroot); none while the layers are
# being made.
LAYERS = [(n, os.statvfs(d).f_fsid) for n, d in (
    ('upper', os.environ['S'] + '/' + os.environ['UP'] + '/U'),
    ('lower', os.environ['S'] + '/' + os.environ['LOWER'].split(':')[0]))
    if os.path.isdir(d)] if 'LOWER' in os.environ else []
def data_files(a):
    # Long data comes in a file outside the overlay: read it first.
    return [('hex:' + open(x[5:], 'rb').read().hex()) if x.startswith('file:') else x for x in a]
if a[0] == 'batch':
    # The ops of a case with open fds between two mounts, in one process
    # that holds the fds: each line is the step as shown, then its
    # arguments. Another user acts through the effective ids only, so that
    # root can switch back (and its fds stay).
    import shlex
    lines = [data_files(shlex.split(l)) for l in sys.stdin.read().splitlines() if l.strip()]
    os.chroot('.')
    groups = os.getgroups()
    for l in lines:
        shown, args = l[0], l[1:]
        if args[0] == 'as':
            uid, gid = map(int, args[1].split(':'))
            os.setgroups([gid]); os.setresgid(-1, gid, -1); os.setresuid(-1, uid, -1)
            try: out = main(args[2:])
            finally: os.setresuid(-1, 0, -1); os.setresgid(-1, 0, -1); os.setgroups(groups)
        else: out = main(args)
        print(shown + '  =>  ' + out, flush=True)
    sys.exit(0)
if a[0] == 'idmap':
    # An idmapped bind mount of directory a[1] on itself, as ovlcheck
    # makes each layer directory of an idmapped case: ids @BASE@ and up on
    # disk are seen as 0 and up (@COUNT@ of them).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    def check(r, what):
        if r < 0: sys.exit(what + ': ' + os.strerror(ctypes.get_errno()))
        return r
    r, w = os.pipe(); r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc.prctl(4, 1)  # PR_SET_DUMPABLE: its /proc files are ours to write
        check(libc.unshare(0x10000000), 'unshare')  # CLONE_NEWUSER
        os.write(w, b'u'); os.read(r2, 1); os._exit(0)
    os.read(r, 1)
    for name in ('uid_map', 'gid_map'):
        with open('/proc/%d/%s' % (pid, name), 'w') as f: f.write('@BASE@ 0 @COUNT@\n')
    ns = os.open('/proc/%d/ns/user' % pid, os.O_RDONLY)
    os.write(w2, b'g'); os.waitpid(pid, 0)
    d = a[1].encode()
    # open_tree(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC), mount_setattr(MOUNT_ATTR_IDMAP),
    # move_mount(MOVE_MOUNT_F_EMPTY_PATH): syscalls 428, 442, 429.
    tree = check(libc.syscall(428, -100, d, 1 | os.O_CLOEXEC), 'open_tree')
    attr = struct.pack('QQQQ', 0x100000, 0, 0, ns)
    check(libc.syscall(442, tree, b'', 0x1000, attr, len(attr)), 'mount_setattr')
    check(libc.syscall(429, tree, b'', -100, d, 4), 'move_mount')
    sys.exit(0)
if a[0] == 'walk':
    # The walk ovlcheck makes of a mount before its first op: each
    # directory listed in readdir order, each name lstat'ed (its lookup).
    def walk(d):
        try: names = os.listdir(d)
        except OSError: return
        for n in names:
            p = os.path.join(d, n)
            try: st = os.lstat(p)
            except OSError: continue
            if stat.S_ISDIR(st.st_mode): walk(p)
    walk('.')
    sys.exit(0)
if a[0] == 'offline':
    # An offline change in layer directory a[1], as ovlcheck's driver makes
    # it: the path walked without following symlinks; prints the outcome.
    import shutil
    base, what, names = a[1], a[2], a[3].split('/')
    def done(r):
        print(r)
        sys.exit(0)
    d = base
    for n in names[:-1]:
        d = os.path.join(d, n)
        try: st = os.lstat(d)
        except OSError as e: done(errno.errorcode[e.errno])
        if not stat.S_ISDIR(st.st_mode): done('ENOTDIR')
    p = os.path.join(d, names[-1])
    try: st = os.lstat(p)
    except FileNotFoundError: st = None
    if what == 'remove':
        if st is None: done('ENOENT')
        if stat.S_ISDIR(st.st_mode): shutil.rmtree(p)
        else: os.unlink(p)
        done('ok')
    if st is not None and stat.S_ISDIR(st.st_mode): done('EISDIR')
    if st is not None: os.unlink(p)
    # Made with its mode (the umask is 0), which a directory's default
    # ACL masks, as the driver makes it.
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, int(a[4], 8))
    os.write(fd, b(a[5]))
    os.close(fd)
    os.utime(p, (@MTIME@, @MTIME@))
    done('ok')
a = data_files(a)
# Paths resolve beneath the overlay root (the cwd), as ovlcheck's openat2
# with RESOLVE_IN_ROOT does: `..` and absolute symlinks stop there.
os.chroot('.')
if a[0] == 'as':
    uid, gid = map(int, a[1].split(':'))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r); os.setgroups([gid]); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)
        os.write(w, main(a[2:]).encode()); os._exit(0)
    os.close(w); out = b''
    while True:
        c = os.read(r, 65536)
        if not c: break
        out += c
    os.waitpid(pid, 0); print(out.decode())
else:
    print(main(a))
"#;

/// Single-quotes `s` for the shell.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Longest write data passed as an argument (hex doubles it; one argument
/// may be at most 128 KiB).
const BIG_ARG: usize = 32 * 1024;

/// Bytes as an argument of the python helper: plain when printable, else hex.
fn bytes_arg(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.starts_with("hex:") && s.bytes().all(|c| (32..127).contains(&c)) => sh(s),
        _ => sh(&format!(
            "hex:{}",
            v.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )),
    }
}

/// `printf` argument producing exactly these bytes.
fn printf_arg(v: &[u8]) -> String {
    let mut s = String::new();
    for b in v {
        let _ = write!(s, "\\{:03o}", b);
    }
    sh(&s)
}

fn xattr_name(profile: &ovlcheck_case::Profile, short: &str) -> String {
    format!("{}{short}", profile.xattr_prefix())
}

/// Shell lines that create one layer object under `dir`.
fn object_lines(case: &Case, dir: &str, o: &Object) -> Vec<String> {
    let p = sh(&format!("{dir}/{}", o.path));
    let mut v = match &o.kind {
        ObjectKind::Dir => vec![format!("mkdir {p}")],
        ObjectKind::File(data) => vec![format!("printf {} > {p}", printf_arg(data))],
        ObjectKind::Symlink(t) => vec![format!("ln -s {} {p}", sh(&String::from_utf8_lossy(t)))],
        ObjectKind::Fifo => vec![format!("mkfifo {p}")],
        ObjectKind::Whiteout => vec![format!("mknod {p} c 0 0")],
        ObjectKind::Hardlink(existing) => {
            return vec![format!("ln {} {p}", sh(&format!("{dir}/{existing}")))]
        }
    };
    // The owner first: a chown clears set-id bits.
    v.push(format!("chown -h {}:{} {p}", o.uid, o.gid));
    if !matches!(o.kind, ObjectKind::Symlink(_) | ObjectKind::Whiteout) {
        v.push(format!("chmod {:04o} {p}", o.mode));
    }
    // Default ACLs come after every object (`emit_layer`).
    for (name, value) in o.xattrs.iter().filter(|(k, _)| *k != acl::DEFAULT) {
        v.push(format!(
            "setfattr -h -n {} -v 0x{} {p}",
            sh(name),
            hex(&acl::to_kernel(name.as_bytes(), value))
        ));
    }
    if o.xattrs.contains_key(acl::ACCESS) {
        // The ACL set the mode from its entries; the object's mode stands.
        v.push(format!("chmod {:04o} {p}", o.mode));
    }
    let marker = |short: &str| xattr_name(&case.profile, &o.markers.short_name(short));
    if let Some(c) = o.markers.opaque {
        v.push(format!("setfattr -n {} -v {c} {p}", marker("opaque")));
    }
    if let Some(r) = &o.markers.redirect {
        v.push(format!(
            "setfattr -n {} -v {} {p}",
            marker("redirect"),
            sh(r)
        ));
    }
    for (marked, name) in [
        (o.markers.xwhiteout, "whiteout"),
        (o.markers.metacopy, "metacopy"),
    ] {
        if marked {
            v.push(format!("setfattr -n {} -v '' {p}", marker(name)));
        }
    }
    v
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// The op as arguments of the python helper: the words of the `.ovl` op
/// syntax, but in shell syntax (each argument single-quoted, bytes that are
/// not printable ASCII in the helper's `hex:` form, data too long for one
/// argument read from a file) and without credentials for root. The line
/// each op prints next to its outcome is the `.ovl` printer's own.
fn op_args(step: &Step) -> String {
    let p = |x: &ovlcheck_case::OpPath| sh(&x.to_string());
    let flags = |pairs: &[(bool, &str)]| {
        pairs
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| format!(" {w}"))
            .collect::<String>()
    };
    let body = match &step.op {
        Op::Lstat { path }
        | Op::Stat { path }
        | Op::Read { path }
        | Op::Readlink { path }
        | Op::Readdir { path }
        | Op::Listxattr { path }
        | Op::Statfs { path }
        | Op::Unlink { path }
        | Op::Rmdir { path } => format!("{} {}", step.op.keyword(), p(path)),
        Op::Getxattr { path, name } | Op::Removexattr { path, name } => {
            format!("{} {} {}", step.op.keyword(), p(path), sh(name))
        }
        Op::Open {
            path,
            flags: f,
            fd: None,
            ..
        } if f.is_plain() => format!(
            "open {}{}",
            p(path),
            flags(&[
                (f.access == ovlcheck_case::Access::Rdwr, "rdwr"),
                (f.trunc, "trunc")
            ])
        ),
        Op::Open {
            path,
            flags: f,
            mode,
            fd,
        } => format!(
            "openfd {} {} {mode:o} {}",
            p(path),
            sh(&f.names()),
            sh(fd.as_deref().unwrap_or("-"))
        ),
        Op::Fstat { fd } | Op::Freaddir { fd } | Op::Fsync { fd } | Op::Close { fd } => {
            format!("{} {}", step.op.keyword(), sh(fd))
        }
        Op::Fread { fd, len } => match len {
            Some(n) => format!("fread {} {n}", sh(fd)),
            None => format!("fread {}", sh(fd)),
        },
        Op::Lseek { fd, offset, whence } => {
            format!("lseek {} {offset} {}", sh(fd), whence.keyword())
        }
        Op::Fwrite { fd, offset, data } => {
            let off = offset.map_or("-".to_string(), |o| o.to_string());
            let data = if data.len() > BIG_ARG {
                "'file:data'".to_string()
            } else {
                bytes_arg(data)
            };
            format!("fwrite {} {off} {data}", sh(fd))
        }
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } => format!(
            "create {} {mode:o}{}",
            p(path),
            flags(&[(*excl, "excl"), (*trunc, "trunc")])
        ),
        Op::Write { path, offset, data } if data.len() > BIG_ARG => {
            format!("write {} {offset} \"file:$S/data\"", p(path))
        }
        Op::Write { path, offset, data } => {
            format!("write {} {offset} {}", p(path), bytes_arg(data))
        }
        Op::Truncate { path, size } => format!("truncate {} {size}", p(path)),
        Op::Mkdir { path, mode } | Op::Mkfifo { path, mode } | Op::Chmod { path, mode } => {
            format!("{} {} {mode:o}", step.op.keyword(), p(path))
        }
        Op::Symlink { target, path } => format!("symlink {} {}", bytes_arg(target), p(path)),
        Op::Link { old, new } => format!("link {} {}", p(old), p(new)),
        Op::Rename { old, new, flags: f } => format!(
            "rename {} {}{}",
            p(old),
            p(new),
            flags(&[
                (f.noreplace, "noreplace"),
                (f.exchange, "exchange"),
                (f.whiteout, "whiteout")
            ])
        ),
        Op::Chown { path, uid, gid } => format!("chown {} {uid} {gid}", p(path)),
        Op::Chattr { path, flags } => format!("chattr {} {}", p(path), sh(&flags.to_string())),
        Op::Utimes { path, mtime } => match mtime {
            Some(t) => format!("utimes {} {t}", p(path)),
            None => format!("utimes {} now", p(path)),
        },
        Op::Setxattr { path, name, value } => {
            let value = acl::to_kernel(name.as_bytes(), value);
            format!("setxattr {} {} {}", p(path), sh(name), bytes_arg(&value))
        }
        Op::Remount | Op::Commit | Op::Offline { .. } => {
            unreachable!("lifecycle ops are shell functions")
        }
    };
    match step.cred {
        Some(c) if !c.is_root() => format!("as {}:{} {body}", c.uid, c.gid),
        _ => body,
    }
}

/// How the script re-executes itself in its own namespaces: a private
/// mount namespace (`unshare -m`), and for `userxattr` cases the user
/// namespace ovlcheck's worker mounts them in (ids `0..` inside are
/// `ID_BASE..` outside; the script runs as root inside), because overlay
/// behaves differently there (e.g. no lookup takes an origin xattr). The
/// maps are written by a small python3 parent, as root may map any range
/// (util-linux `unshare --map-users` needs newuidmap and /etc/subuid).
fn reexec(case: &Case) -> String {
    if !case.profile.userxattr {
        return "[ -n \"${OVLREPRO_NS:-}\" ] || OVLREPRO_NS=1 exec unshare -m -- /bin/sh \"$0\" \"$@\"".into();
    }
    let map = format!(
        "0 {} {}",
        ovlcheck_driver::process::ID_BASE,
        ovlcheck_driver::process::ID_RANGE
    );
    USERNS_REEXEC.replace("@MAP@", &map)
}

/// [`reexec`] for `userxattr` cases: fork, the child unshares the user and
/// mount namespaces and waits until the parent has written its id maps,
/// then becomes root inside and runs the script again.
const USERNS_REEXEC: &str = r#"if [ -z "${OVLREPRO_NS:-}" ]; then
export OVLREPRO_NS=1
exec python3 - "$0" "$@" <<'PYEOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        sys.exit('unshare: ' + os.strerror(ctypes.get_errno()))
    os.write(ready_w, b'u')
    os.read(go_r, 1)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.execv('/bin/sh', ['/bin/sh'] + sys.argv[1:])
os.read(ready_r, 1)
for name in ('uid_map', 'gid_map'):
    with open('/proc/%d/%s' % (pid, name), 'w') as f:
        f.write('@MAP@\n')
os.write(go_w, b'g')
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PYEOF
fi"#;

/// Shell that says on stderr where this machine's `fs.protected_*`
/// sysctls differ from those the case's outcomes hold for (its profile's;
/// case/src/sysctl.rs): the VFS checks them on every filesystem, and the
/// script does not change the machine's settings itself.
fn sysctl_note(case: &Case) -> String {
    let want: Vec<String> = ovlcheck_case::Sysctls::NAMES
        .iter()
        .map(|(name, _)| {
            let v = case.profile.sysctls.get(name).unwrap_or_default();
            format!("{name}={v}")
        })
        .collect();
    format!(
        "for s in {}; do\n  n=${{s%=*}} v=${{s#*=}} h=$(cat /proc/sys/fs/$n 2>/dev/null || echo '?')\n  \
         [ \"$h\" = \"$v\" ] || echo \"note: fs.$n is $h here; the outcomes hold for $v \
         (sysctl -w fs.$n=$v)\" >&2\ndone",
        want.join(" ")
    )
}

/// The whole reproducer script for `case`.
pub fn script(case: &Case) -> Result<String, String> {
    let mut s = String::new();
    let _ = writeln!(s, "#!/bin/sh\n# ovlcheck reproducer (standalone). Run as root; needs unshare, mount, mknod,\n# setfattr (package attr) and python3.\n# Everything happens in a private mount namespace on tmpfs (userxattr cases:\n# in a user namespace, as ovlcheck runs them); nothing is left behind.");
    let _ = writeln!(s, "# profile: {}", case.profile);
    if let Some(k) = case.profile.kernel {
        let _ = writeln!(
            s,
            "# The pinned outcomes are Linux {k}'s: run this on that kernel."
        );
    }
    let _ = writeln!(s, "set -eu\n{}", reexec(case));
    let _ = writeln!(s, "{}", sysctl_note(case));
    let _ = writeln!(s, "mount --make-rprivate /\nS=$(mktemp -d /tmp/ovlrepro.XXXXXX)\nmount -t tmpfs tmpfs \"$S\"\ncd \"$S\"\numask 0");
    let helper = OP_HELPER
        .replace("@BASE@", &IDMAP_ON_DISK_BASE.to_string())
        .replace("@COUNT@", &IDMAP_COUNT.to_string())
        .replace("@MTIME@", &ovlcheck_case::layer::DEFAULT_MTIME.to_string());
    let _ = writeln!(
        s,
        "cat > op.py <<'PYEOF'{helper}PYEOF\nop() {{ python3 \"$S/op.py\" \"$@\"; }}"
    );
    let separate = case.profile.lower_fs == LowerFs::Separate;
    if separate {
        let _ = writeln!(s, "mkdir lowerfs && mount -t tmpfs tmpfs lowerfs");
    }
    let sized = sized_store(case);
    if sized {
        let _ = writeln!(
            s,
            "# the store: every layer on one tmpfs of upper_size bytes, as ovlcheck's\n\
             # store is with lower=same; each layer's overlay2 `link` file, and its\n\
             # `lower` file above another layer, takes a page of it\n\
             mkdir store && mount -t tmpfs{} tmpfs store",
            size_option(case)
        );
    }
    let lower_dir = |i: usize| format!("{}L{i}", lower_root(case));
    for (i, layer) in case.lowers.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n# lower layer {i}{}",
            if i == 0 { " (bottom)" } else { "" }
        );
        let dir = lower_dir(i);
        let _ = writeln!(s, "mkdir -m 0755 {dir}");
        idmap_layer_dir(&mut s, case, &dir);
        emit_layer(&mut s, case, &dir, layer)?;
        store_pages(&mut s, case, &dir, i > 0);
    }
    for (i, layer) in case.data.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n# data-only layer {i}{}",
            if i == 0 { " (bottom)" } else { "" }
        );
        let dir = format!("{}D{i}", data_root(case));
        let _ = writeln!(s, "mkdir -m 0755 {dir}");
        idmap_layer_dir(&mut s, case, &dir);
        emit_layer(&mut s, case, &dir, layer)?;
        store_pages(&mut s, case, &dir, false);
    }
    let upper = if case.profile.readonly {
        None
    } else {
        Some("U")
    };
    if let Some(u) = upper {
        let _ = writeln!(s, "\n# upper layer");
        let size = size_option(case);
        // The upper shares the lowers' filesystem unless they are apart
        // or it alone is sized, as ovlcheck's store lays them out (xino
        // counts filesystems).
        let up = upper_root(case);
        if case.profile.lower_fs == LowerFs::Same && (sized || case.profile.upper_size.is_none()) {
            let _ = writeln!(s, "mkdir {up}");
        } else {
            let _ = writeln!(s, "mkdir {up} && mount -t tmpfs{size} tmpfs {up}");
        }
        idmap_layer_dir(&mut s, case, &up);
        let _ = writeln!(s, "mkdir -m 0755 {up}/{u} && mkdir -m 0700 {up}/W");
        if case.profile.upper_size.is_some() {
            // The sized tmpfs holds the container layer's directory in the
            // overlay2 store: its `link` (and `lower`, above an image layer)
            // take a page each, as ovlcheck's store writes them.
            let files = if case.lowers.is_empty() {
                "link"
            } else {
                "link lower"
            };
            let _ = writeln!(
                s,
                "for f in {files}; do printf x > {up}/$f; done  # overlay2's files"
            );
        }
        if let Some(layer) = &case.upper {
            emit_layer(&mut s, case, &format!("{up}/{u}"), layer)?;
        }
    }
    let mut lowers: Vec<String> = (0..case.lowers.len()).rev().map(lower_dir).collect();
    if case.profile.lower_fs == LowerFs::Overlay {
        nested_lower(&mut s, case, &mut lowers);
    }
    if upper.is_none() {
        // Read-only: the container layer (with the case's upper contents)
        // is the top lower layer, as ovlcheck mounts it; overlay needs two
        // lower layers without an upper.
        let _ = writeln!(s, "\n# container layer (read-only: the top lower layer)");
        let _ = writeln!(s, "mkdir -m 0755 C");
        idmap_layer_dir(&mut s, case, "C");
        if let Some(layer) = &case.upper {
            emit_layer(&mut s, case, "C", layer)?;
        }
        lowers.insert(0, "C".to_string());
    }
    let opts = ovlcheck_driver::mount::kernel_options(&case.profile).join(",");
    // Data-only layers after `::`, top first; a commit adds on the left.
    let mut lowerdir = lowers.join(":");
    for i in (0..case.data.len()).rev() {
        lowerdir.push_str(&format!("::{}D{i}", data_root(case)));
    }
    let _ = writeln!(
        s,
        "\nLOWER={}\nN={}\nUP={}  # the container layer: its U (upper) and W (work)\n\
         export S LOWER UP  # statfs tells the layers' fsids apart\nmkdir M",
        sh(&lowerdir),
        case.lowers.len(),
        upper_root(case)
    );
    let upper_opts = if upper.is_some() {
        ",upperdir=$UP/U,workdir=$UP/W"
    } else {
        ""
    };
    let extra = if opts.is_empty() {
        String::new()
    } else {
        format!(",{opts}")
    };
    // Each mount is walked before its first op, as ovlcheck's driver does:
    // its lookups are cached for the ops that follow.
    let _ = writeln!(s, "ovl_mount() {{ cd \"$S\" && mount -t overlay overlay -o \"lowerdir=$LOWER{upper_opts}{extra}\" M && cd M && python3 \"$S/op.py\" walk; }}");
    if case.profile.volatile_upper() {
        let _ = writeln!(
            s,
            "# volatile: the next mount of this upper is refused (EINVAL) while\n\
             # W/work/incompat/volatile exists; removed as overlayfs.rst allows\n\
             # (\"Volatile mount\"), then mounted again"
        );
        let _ = writeln!(s, "remount() {{ cd \"$S\" && umount M && {{ ovl_mount || {{ echo 'remount  =>  EINVAL'; rm -r $UP/W/work/incompat/volatile && ovl_mount; }}; }}; }}");
    } else {
        let _ = writeln!(s, "remount() {{ cd \"$S\" && umount M && ovl_mount; }}");
    }
    let _ = writeln!(
        s,
        "# commit: the upper becomes the top lower layer, a fresh upper above it"
    );
    let _ = writeln!(
        s,
        "# offline LAYER_DIR CHANGE...: unmounted, the lower layer changed, mounted again\n\
         offline() {{ cd \"$S\" && umount M && r=$(python3 \"$S/op.py\" offline \"$@\"); ovl_mount; }}"
    );
    if upper.is_none() {
        commit_read_only(&mut s, case);
    } else if case.profile.idmapped || sized {
        commit_fresh(&mut s, case);
    } else {
        let _ = writeln!(s, "commit() {{ cd \"$S\" && umount M && mv upperfs/U L$N && mkdir -m 0755 upperfs/U && rm -rf upperfs/W && mkdir -m 0700 upperfs/W && LOWER=\"L$N:$LOWER\" && N=$((N+1)) && ovl_mount; }}");
    }
    let _ = writeln!(
        s,
        "ovl_mount\n\n# ops: each prints its outcome; `# pinned:` is what the case expects"
    );
    if case.steps.iter().any(|st| st.op.fd().is_some()) {
        batch_ops(&mut s, case);
    } else {
        single_ops(&mut s, case);
    }
    // A name the merged tree cannot stat or list (a refused redirect, a
    // metacopy file whose data is missing) makes ls fail, after printing
    // the rest: the script goes on to clean up.
    let _ = writeln!(s, "\necho '--- merged'; ls -laR \"$S/M\" || true\necho '--- upper'; ls -laR \"$S/$UP/U\" 2>/dev/null || true");
    let _ = writeln!(
        s,
        "getfattr -R -d -m - -e text \"$S/$UP/U\" 2>/dev/null || true\ncd /\numount -R \"$S\"\nrmdir \"$S\""
    );
    Ok(s)
}

/// A case with open fds: the ops between two mounts run in one helper
/// process (`batch`) that holds the fds, and its exit closes them before
/// the next unmount, as the worker closes them.
fn batch_ops(s: &mut String, case: &Case) {
    let mut batch: Vec<String> = Vec::new();
    let flush = |s: &mut String, batch: &mut Vec<String>| {
        if !batch.is_empty() {
            let _ = writeln!(s, "op batch <<'OPS'\n{}\nOPS", batch.join("\n"));
            batch.clear();
        }
    };
    for step in &case.steps {
        if let Some(line) = lifecycle_line(case, &step.op) {
            flush(s, &mut batch);
            let _ = writeln!(s, "{line}");
            continue;
        }
        // Long data goes through a file outside the overlay (`file:data`
        // is `$S/data` seen from the mount's root): one batch at a time.
        let big = match &step.op {
            Op::Write { data, .. } | Op::Fwrite { data, .. } if data.len() > BIG_ARG => Some(data),
            _ => None,
        };
        if let Some(data) = big {
            flush(s, &mut batch);
            let _ = writeln!(s, "printf {} > \"$S/data\"", printf_arg(data));
        }
        let args = op_args(step).replace("\"file:$S/data\"", "'file:../data'");
        let args = args.replace("'file:data'", "'file:../data'");
        batch.push(format!("{} {args}", sh(&print_step(&step.unpinned()))));
        if big.is_some() {
            flush(s, &mut batch);
        }
    }
    flush(s, &mut batch);
}

/// Each op as its own helper run, printing its outcome.
fn single_ops(s: &mut String, case: &Case) {
    for step in &case.steps {
        // Data too long for one argument (the kernel's MAX_ARG_STRLEN) goes
        // through a file the helper reads before it enters the overlay.
        if let Op::Write { data, .. } = &step.op {
            if data.len() > BIG_ARG {
                let _ = writeln!(s, "printf {} > \"$S/data\"", printf_arg(data));
            }
        }
        let line = lifecycle_line(case, &step.op).unwrap_or_else(|| {
            format!(
                "printf '%s\\n' \"{}  =>  $(op {})\"",
                escape_dq(&print_step(&step.unpinned())),
                op_args(step)
            )
        });
        let pin = step
            .expect
            .as_ref()
            .map(|o| format!("  # pinned: {o}"))
            .unwrap_or_default();
        let _ = writeln!(s, "{line}{pin}");
    }
}

/// The script line of a `remount` or `commit` step: the function, then
/// its outcome (the remount of a volatile upper prints its refusal
/// itself).
fn lifecycle_line(case: &Case, op: &Op) -> Option<String> {
    let k = op.keyword();
    match op {
        Op::Remount if case.profile.volatile_upper() => Some(k.to_string()),
        Op::Remount | Op::Commit => Some(format!("{k} && echo '{k}  =>  ok'")),
        Op::Offline { layer, change } => {
            let dir = format!("{}L{layer}", lower_root(case));
            let args = match change {
                ovlcheck_case::OfflineChange::Remove(p) => format!("remove {}", sh(&p.to_string())),
                ovlcheck_case::OfflineChange::File { path, mode, data } => format!(
                    "file {} {mode:o} {}",
                    sh(&path.to_string()),
                    bytes_arg(data)
                ),
            };
            let text = escape_dq(&print_step(&Step::new(op.clone())));
            Some(format!(
                "offline {dir} {args} && printf '%s\\n' \"{text}  =>  $r\""
            ))
        }
        _ => None,
    }
}

fn escape_dq(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('`', "\\`")
}

/// `lower=overlay`: mounts the lower layers (`lowers`, top first) as the
/// inner overlay `I`, read-only with the inner profile's options, and
/// makes it the only lower layer (model/src/nested.rs). A single layer
/// gets an empty one beneath it, as ovlcheck's store mounts it.
fn nested_lower(s: &mut String, case: &Case, lowers: &mut Vec<String>) {
    let _ = writeln!(
        s,
        "\n# the inner overlay (lower=overlay): the lower layers, read-only, are the\n\
         # only lower layer of the case's overlay"
    );
    if lowers.len() < 2 {
        let _ = writeln!(s, "mkdir -m 0755 E");
        lowers.push("E".to_string());
    }
    let opts = ovlcheck_driver::mount::kernel_options(&case.profile.inner_overlay()).join(",");
    let _ = writeln!(
        s,
        "mkdir -m 0755 I && mount -t overlay overlay -o lowerdir={},{opts} I",
        lowers.join(":")
    );
    *lowers = vec!["I".to_string()];
}

/// Whether the whole store is one tmpfs of the profile's `upper_size`
/// (with `lower=same`, driver/src/worker/mod.rs: `start`), so that every
/// layer's files and overlay2 files take its pages.
fn sized_store(case: &Case) -> bool {
    case.profile.upper_size.is_some() && case.profile.lower_fs == LowerFs::Same
}

/// The tmpfs mount option of the profile's `upper_size` (` -o size=N`), or
/// none.
fn size_option(case: &Case) -> String {
    case.profile
        .upper_size
        .map(|n| format!(" -o size={n}"))
        .unwrap_or_default()
}

/// The directory (relative to the script's scratch) the lower layers go
/// in: their own tmpfs (`lower=separate`), the sized store, or the scratch.
fn lower_root(case: &Case) -> &'static str {
    match case.profile.lower_fs {
        LowerFs::Separate => "lowerfs/",
        _ if sized_store(case) => "store/",
        _ => "",
    }
}

/// The directory data-only layers go in: the sized store, or the scratch.
fn data_root(case: &Case) -> &'static str {
    if sized_store(case) {
        "store/"
    } else {
        ""
    }
}

/// The container layer's directory (its `U` and `W`).
fn upper_root(case: &Case) -> String {
    format!("{}upperfs", data_root(case))
}

/// In a sized store, the pages layer `dir`'s overlay2 files take: `link`,
/// and `lower` when it is above another layer (driver/src/store.rs:
/// `fill_layer`), written beside it.
fn store_pages(s: &mut String, case: &Case, dir: &str, above: bool) {
    if sized_store(case) {
        let files = if above { "link lower" } else { "link" };
        let _ = writeln!(
            s,
            "for f in {files}; do printf x > {dir}.$f; done  # overlay2's files"
        );
    }
}

/// With idmapped layers, the commands that make a commit's fresh layer
/// directory `$new` an idmapped mount of itself, as [`idmap_layer_dir`]
/// makes the others.
fn idmap_fresh(case: &Case) -> String {
    if !case.profile.idmapped {
        return String::new();
    }
    format!(" && {}", idmap_commands("$new"))
}

/// The `commit` function without an upper layer (`readonly`): the
/// container layer stays the next lower layer and a fresh, empty one is
/// the top lower, as ovlcheck's store commits (driver/src/worker/case.rs:
/// `commit_layers`); idmapped like every layer, and on a tmpfs of its own
/// where the lowers are on another filesystem.
fn commit_read_only(s: &mut String, case: &Case) {
    let mut make = "new=C$N && mkdir -m 0755 $new".to_string();
    if case.profile.lower_fs == LowerFs::Separate {
        make.push_str(" && mount -t tmpfs tmpfs $new && chmod 0755 $new");
    }
    make.push_str(&idmap_fresh(case));
    let _ = writeln!(
        s,
        "commit() {{ cd \"$S\" && umount M && {make} && LOWER=\"$new:$LOWER\" && \
         N=$((N+1)) && ovl_mount; }}"
    );
}

/// The `commit` function where ovlcheck's store commits by making a new
/// container layer beside the old one (driver/src/worker/case.rs:
/// `commit_layers`), which stays where it is and whose `U` becomes the top
/// lower layer: with idmapped layers, each layer directory an idmapped
/// mount of itself; in a sized store, whose pages the new layer's overlay2
/// files need. The fresh container layer has an empty `U` and `W`, on a
/// tmpfs of its own where the lowers are on another filesystem. Where the
/// store has no page for its `link` or `lower` file the commit fails with
/// ENOSPC (writing a byte to a full tmpfs fails no other way) and the same
/// layers are mounted again, as the store removes a half-made layer.
fn commit_fresh(s: &mut String, case: &Case) {
    let size = size_option(case);
    let mut make = format!("new={}$N && mkdir $new", upper_root(case));
    if case.profile.lower_fs == LowerFs::Separate {
        let _ = write!(make, " && mount -t tmpfs{size} tmpfs $new");
    }
    make.push_str(&idmap_fresh(case));
    if case.profile.upper_size.is_some() {
        let _ = write!(
            make,
            " && {{ {{ printf x > $new/link && printf x > $new/lower; }} 2>/dev/null || \
             {{ umount $new raw/$new 2>/dev/null; rm -rf $new; N=$((N+1)); \
             echo 'commit  =>  ENOSPC'; ovl_mount; return 1; }}; }}"
        );
    }
    let _ = writeln!(
        s,
        "commit() {{ cd \"$S\" && umount M && {make} && mkdir -m 0755 $new/U && \
         mkdir -m 0700 $new/W && LOWER=\"$UP/U:$LOWER\" && UP=$new && N=$((N+1)) && ovl_mount; }}"
    );
}

/// Where layer directory `dir` of an idmapped case is seen from beneath
/// its idmapped mount ([`idmap_layer_dir`]).
fn raw_dir(dir: &str) -> String {
    format!("raw/{dir}")
}

/// For an idmapped case, makes layer directory `dir` an idmapped mount of
/// itself, as ovlcheck's store does (driver/src/idmapped.rs), after a
/// plain bind of it under `raw/` for what is written beneath the mount.
fn idmap_layer_dir(s: &mut String, case: &Case, dir: &str) {
    if !case.profile.idmapped {
        return;
    }
    let _ = writeln!(s, "{}", idmap_commands(dir));
}

/// The commands that make layer directory `dir` an idmapped mount of
/// itself, after a plain bind of it under `raw/`.
fn idmap_commands(dir: &str) -> String {
    let raw = raw_dir(dir);
    format!(
        "chown {IDMAP_ON_DISK_BASE}:{IDMAP_ON_DISK_BASE} {dir} && mkdir -p {raw} && \
         mount --bind {dir} {raw} && op idmap {dir}"
    )
}

fn emit_layer(
    s: &mut String,
    case: &Case,
    dir: &str,
    layer: &ovlcheck_case::LayerSpec,
) -> Result<(), String> {
    let objects = layer.objects().map_err(|e| e.message)?;
    let unmapped = |o: &Object| case.profile.unmapped(o.uid) || case.profile.unmapped(o.gid);
    // Below an idmapped mount an owner it does not map cannot be written
    // through it: such an object is written as root's, then given its
    // owner beneath the mount (driver/src/idmapped.rs: through_mount,
    // store_unmapped).
    let written: Vec<Object> = objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if unmapped(&o) {
                (o.uid, o.gid) = (0, 0);
            }
            o
        })
        .collect();
    for o in &written {
        for line in object_lines(case, dir, o) {
            let _ = writeln!(s, "{line}");
        }
    }
    // Default ACLs once every object is made: none of them inherits one.
    for o in &objects {
        if let Some(value) = o.xattrs.get(acl::DEFAULT) {
            let _ = writeln!(
                s,
                "setfattr -h -n {} -v 0x{} {}",
                acl::DEFAULT,
                hex(&acl::to_kernel(acl::DEFAULT.as_bytes(), value)),
                sh(&format!("{dir}/{}", o.path))
            );
        }
    }
    // Times last, deepest first, so creating children does not move them.
    for o in objects.iter().rev() {
        if !matches!(o.kind, ObjectKind::Whiteout | ObjectKind::Hardlink(_)) {
            let _ = writeln!(
                s,
                "touch -h -d @{} {}",
                o.mtime,
                sh(&format!("{dir}/{}", o.path))
            );
        }
    }
    let flags_dir = if case.profile.idmapped {
        raw_dir(dir)
    } else {
        dir.to_string()
    };
    for o in objects.iter().filter(|o| unmapped(o)) {
        if matches!(o.kind, ObjectKind::Hardlink(_) | ObjectKind::Whiteout) {
            continue;
        }
        let on_disk = |id: u32| IDMAP_ON_DISK_BASE + id;
        let p = sh(&format!("{flags_dir}/{}", o.path));
        let _ = writeln!(s, "chown -h {}:{} {p}", on_disk(o.uid), on_disk(o.gid));
        if !matches!(o.kind, ObjectKind::Symlink(_)) {
            let _ = writeln!(s, "chmod {:04o} {p}", o.mode);
        }
    }
    // Inode flags after everything else: an immutable inode takes no
    // other change. Below an idmapped mount they are set from beneath it,
    // as root may lack the capability over an inode through it.
    for o in objects.iter().filter(|o| !o.flags.is_empty()) {
        let _ = writeln!(
            s,
            "chattr ={} {}",
            o.flags,
            sh(&format!("{flags_dir}/{}", o.path))
        );
    }
    Ok(())
}
