//! The operations: each op is resolved on the merged tree, checked like the
//! VFS does (fs/namei.c, fs/open.c, fs/xattr.c), then applied to the raw
//! upper layer as overlayfs does (dir.c, inode.c, copy_up.c, file.c).

mod acl;
mod attr;
mod create;
mod file;
mod read;
mod remove;
pub(crate) mod rename;
mod xattr;

use crate::Model;
use ovlcheck_case::{Access, Cred, Errno, Op, Outcome, Step, Value};

impl Model {
    /// The outcome of `step` and the state that follows: every rule
    /// decides one outcome. An op that fails keeps the effects the kernel
    /// made before the failure (ENOSPC part-way: see `space`).
    pub fn step(&self, step: &Step) -> (Outcome, Model) {
        match &step.op {
            Op::Offline { layer, change } => {
                return match self.offline(*layer, change) {
                    Ok(m) => (Outcome::OK, m),
                    Err(e) => {
                        let mut closed = self.clone();
                        closed.close_all_fds();
                        (Outcome::Err(e), closed.remount())
                    }
                };
            }
            Op::Remount | Op::Commit => {
                // Every fd is closed before the unmount (module `fds`).
                let mut closed = self.clone();
                closed.close_all_fds();
                if step.op == Op::Remount {
                    if self.feat.volatile {
                        // The mount is refused (work/incompat/volatile);
                        // the driver removes that directory, as
                        // overlayfs.rst lets a user who knows the system
                        // did not crash, and mounts the same layers again.
                        self.hit(crate::rules::Rule::VolatileRemount);
                        return (Outcome::Err(Errno::EINVAL), closed.remount());
                    }
                    return (Outcome::OK, closed.remount());
                }
                let committed = closed.commit();
                return if committed.over_capacity() {
                    // The driver removes the half-made layer and mounts the
                    // same layers again.
                    (Outcome::Err(Errno::ENOSPC), closed.remount())
                } else {
                    (Outcome::OK, committed)
                };
            }
            _ => {}
        }
        let mut next = self.clone();
        // The driver walks the mount before its first op.
        next.walked = true;
        let paths: Vec<String> = step.op.paths().iter().map(|p| p.as_string()).collect();
        next.look_up_pending(&paths);
        crate::perm::take_acl_decided();
        let res = run(&mut next, &step.op, step.cred());
        if crate::perm::take_acl_decided() {
            self.hit(crate::rules::Rule::PermAcl);
        }
        let outcome = match res {
            Ok(v) => Outcome::Ok(v),
            Err(e) => Outcome::Err(e),
        };
        (outcome, next)
    }
}

fn run(m: &mut Model, op: &Op, cred: Cred) -> Result<Value, Errno> {
    match op {
        Op::Lstat { path } => m.op_stat(path, false, cred),
        Op::Stat { path } => m.op_stat(path, true, cred),
        Op::Read { path } => m.op_read(path, cred),
        Op::Readlink { path } => m.op_readlink(path, cred),
        Op::Readdir { path } => m.op_readdir(path, cred),
        Op::Getxattr { path, name } => m.op_getxattr(path, name, cred),
        Op::Listxattr { path } => m.op_listxattr(path, cred),
        Op::Statfs { path } => m.op_statfs(path, cred),
        Op::Open {
            path,
            flags,
            mode,
            fd,
        } => {
            if flags.is_plain() && fd.is_none() {
                m.op_open(path, flags.access == Access::Rdwr, flags.trunc, cred)
            } else {
                m.op_open_flags(path, *flags, *mode, fd.as_deref(), cred)
            }
        }
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } => m.op_create(path, *mode, *excl, *trunc, cred),
        Op::Write { path, offset, data } => m.op_write(path, *offset, data, cred),
        Op::Truncate { path, size } => m.op_truncate(path, *size, cred),
        Op::Mkdir { path, mode } => m.op_mkdir(path, *mode, cred),
        Op::Mkfifo { path, mode } => m.op_mkfifo(path, *mode, cred),
        Op::Symlink { target, path } => m.op_symlink(target, path, cred),
        Op::Unlink { path } => m.op_unlink(path, cred),
        Op::Rmdir { path } => m.op_rmdir(path, cred),
        Op::Link { old, new } => m.op_link(old, new, cred),
        Op::Rename { old, new, flags } => {
            let v = m.op_rename(old, new, *flags, cred)?;
            m.held_renamed(&old.path.as_string(), &new.path.as_string(), flags.exchange);
            Ok(v)
        }
        Op::Chmod { path, mode } => m.op_chmod(path, *mode, cred),
        Op::Chown { path, uid, gid } => m.op_chown(path, *uid, *gid, cred),
        Op::Chattr { path, flags } => m.op_chattr(path, *flags, cred),
        Op::Utimes {
            path,
            mtime: Some(t),
        } => m.op_utimes(path, *t, cred),
        Op::Utimes { path, mtime: None } => m.op_utimes_now(path, cred),
        Op::Fstat { fd } => m.op_fstat(fd),
        Op::Fread { fd, len } => m.op_fread(fd, *len),
        Op::Freaddir { fd } => m.op_freaddir(fd),
        Op::Lseek { fd, offset, whence } => m.op_lseek(fd, *offset, *whence),
        Op::Fsync { fd } => m.op_fsync(fd),
        Op::Fwrite { fd, offset, data } => m.op_fwrite(fd, *offset, data, cred),
        Op::Close { fd } => {
            if m.close_fd(fd) {
                Ok(Value::Unit)
            } else {
                Err(Errno::EBADF)
            }
        }
        Op::Setxattr { path, name, value } => m.op_setxattr(path, name, value, cred),
        Op::Removexattr { path, name } => m.op_removexattr(path, name, cred),
        Op::Remount | Op::Commit | Op::Offline { .. } => {
            unreachable!("lifecycle ops are handled by apply")
        }
    }
}
