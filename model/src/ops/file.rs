//! Ops on an open file's data, as file.c does them: open (ovl_open, with
//! the copy-up for write access or O_TRUNC that copy_up.c:
//! ovl_open_need_copy_up asks for), write (ovl_write_iter to the upper
//! file), and truncate, which copies the data up like an open for write
//! (inode.c: ovl_setattr with ATTR_SIZE).

use crate::copy_up::CopyUp;
use crate::fs::{Ino, Kind};
use crate::perm::{may_open_append, mode_after_write, permission, MAY_READ, MAY_WRITE};
use crate::resolve::{Follow, Walk};
use crate::rules::Rule;
use crate::space;
use crate::Model;
use ovlcheck_case::layer::CAPABILITY_XATTR;
use ovlcheck_case::{Cred, Errno, OpPath, Value};
use std::sync::Arc;

/// The largest file the model writes (a model limit, not a kernel one):
/// writes or truncates beyond it fail with EFBIG.
const MODEL_MAX_FILE: u64 = 1 << 24;

impl Model {
    /// may_open and the open-time copy-up of an existing object: EISDIR
    /// for writing a directory, EROFS, permission, an append-only file's
    /// O_APPEND and O_TRUNC, then copy-up for write access or O_TRUNC
    /// except for special files (copy_up.c: ovl_open_need_copy_up);
    /// O_TRUNC copies size 0.
    pub(crate) fn open_file(
        &mut self,
        w: &mut Walk,
        acc: u32,
        trunc: bool,
        append: bool,
        cred: Cred,
    ) -> Result<(), Errno> {
        // O_WRONLY: a fifo without a reader fails in fifo_open (ENXIO, the
        // open is non-blocking), after may_open's permission check.
        let write_only = acc == MAY_WRITE;
        let acc = if trunc { acc | MAY_WRITE } else { acc };
        let a = self.attr(w.last()).clone();
        match a.kind {
            Kind::Dir(_) if acc & MAY_WRITE != 0 => return Err(Errno::EISDIR),
            Kind::Dir(_) => return permission(cred, &a, acc),
            Kind::Fifo => {
                permission(cred, &a, acc)?;
                return if write_only && !self.fifo_has_reader(w) {
                    Err(Errno::ENXIO)
                } else {
                    Ok(())
                };
            }
            _ => {}
        }
        if acc & MAY_WRITE != 0 {
            self.check_writable()?;
        }
        permission(cred, &a, acc)?;
        may_open_append(&a, acc & MAY_WRITE != 0, append, trunc)?;
        if acc & MAY_WRITE == 0 {
            // file.c: ovl_open, after may_open.
            return self.verify_lowerdata(w.last());
        }
        self.copy_up(w, if trunc { CopyUp::Trunc } else { CopyUp::Data })?;
        if trunc {
            let u = w.last().upper.expect("copied up");
            let inode = self.upper_mut().get_mut(u);
            inode.kind = Kind::File(Arc::new(Vec::new()));
            inode.pages = None;
            self.contents_changed(u, cred);
        }
        Ok(())
    }

    /// `open(P, O_RDONLY|O_RDWR [|O_TRUNC])`, close.
    pub(crate) fn op_open(
        &mut self,
        path: &OpPath,
        write: bool,
        trunc: bool,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let mut w = self.resolve_existing(path, Follow::Yes, cred)?;
        let acc = if write {
            MAY_READ | MAY_WRITE
        } else {
            MAY_READ
        };
        self.open_file(&mut w, acc, trunc, false, cred)?;
        Ok(Value::Unit)
    }

    /// open O_WRONLY, pwrite, close. A fifo without a reader: ENXIO (the
    /// open is non-blocking). On a sized upper the open's copy-up may fail
    /// with ENOSPC; so may the write, after it updated the times and
    /// dropped set-id bits (shmem.c: shmem_file_write_iter calls
    /// file_remove_privs and file_update_time before generic_perform_write),
    /// having written the pages that fit (see `space::write`).
    pub(crate) fn op_write(
        &mut self,
        path: &OpPath,
        offset: u64,
        data: &[u8],
        cred: Cred,
    ) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        match &self.attr(w.last()).kind {
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::Fifo => {
                // may_open checks permission before fifo_open's ENXIO; with
                // a reader (an open fd) the open works and pwrite on a pipe
                // is ESPIPE.
                permission(cred, self.attr(w.last()), MAY_WRITE)?;
                return Err(if self.fifo_has_reader(&w) {
                    Errno::ESPIPE
                } else {
                    Errno::ENXIO
                });
            }
            _ => {}
        }
        let u = self.copy_up_to_write(w, offset.saturating_add(data.len() as u64), cred)?;
        if data.is_empty() {
            return Ok(Value::Unit);
        }
        self.contents_changed(u, cred);
        let free = self.free_pages();
        let inode = self.upper_mut().get_mut(u);
        if space::write(inode, offset, data, free) < data.len() {
            self.hit(Rule::NoSpace);
            return Err(Errno::ENOSPC);
        }
        Ok(Value::Unit)
    }

    /// `truncate(2)`: EISDIR, EINVAL on non-regular files; always copies
    /// the data (inode.c: ovl_setattr with ATTR_SIZE), which may fail with
    /// ENOSPC on a sized upper even when the truncate would shrink it; the
    /// truncate itself allocates nothing (a larger size is a hole).
    pub(crate) fn op_truncate(
        &mut self,
        path: &OpPath,
        size: u64,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        match &self.attr(w.last()).kind {
            Kind::Dir(_) => return Err(Errno::EISDIR),
            Kind::File(_) => {}
            _ => return Err(Errno::EINVAL),
        }
        let u = self.copy_up_to_write(w, size, cred)?;
        let inode = self.upper_mut().get_mut(u);
        if inode.is_reg() {
            space::set_size(inode, size);
        }
        self.contents_changed(u, cred);
        Ok(Value::Unit)
    }

    /// What a write or truncate of the resolved object `w` up to byte `end`
    /// does before the data changes: EFBIG past [`MODEL_MAX_FILE`], then
    /// as [`Model::modify`] with write permission and a data copy-up (the
    /// walk is the one `modify` would make: nothing changed since).
    /// Returns the upper inode.
    fn copy_up_to_write(&mut self, w: Walk, end: u64, cred: Cred) -> Result<Ino, Errno> {
        if end > MODEL_MAX_FILE {
            return Err(Errno::EFBIG);
        }
        // An append-only file: open O_WRONLY (`write`) and vfs_truncate
        // are EPERM after the permission check.
        self.modify_walk(w, CopyUp::Data, |a| {
            permission(cred, a, MAY_WRITE)?;
            may_open_append(a, true, false, false)
        })
    }

    /// What changing a file's contents does to its upper inode `u` besides
    /// the data (file_remove_privs, file_update_time): the set-id bits go
    /// unless the writer has CAP_FSETID (see `perm::mode_after_write`), the
    /// file capability goes whoever writes ([`Model::kill_priv`]), and the
    /// times become now.
    pub(crate) fn contents_changed(&mut self, u: Ino, cred: Cred) {
        let init_caps = self.feat.init_caps;
        let inode = self.upper_mut().get_mut(u);
        inode.touch();
        inode.mode = mode_after_write(cred, inode.mode, init_caps);
        self.kill_priv(u);
    }

    /// Drops the file capability of upper inode `u` (security_inode_killpriv:
    /// cap_inode_killpriv removes `security.capability`): a write, truncate
    /// or chown does, even by root, who keeps only the set-id bits
    /// (verified on 6.18: corpus/rules/77-capability-killpriv.ovl).
    pub(crate) fn kill_priv(&mut self, u: Ino) {
        let inode = self.upper_mut().get_mut(u);
        if inode.xattrs.remove(CAPABILITY_XATTR).is_some() {
            self.hit(Rule::KillPrivCapability);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn truncate_kinds() {
        let mut m = model("lower\n  dir d 0755\n  fifo p 0644\n  file f 0644 \"abc\"\n");
        assert_eq!(run(&mut m, "truncate d 0"), "EISDIR");
        assert_eq!(run(&mut m, "truncate p 0"), "EINVAL");
        assert_eq!(run(&mut m, "truncate f 5"), "ok");
        assert_eq!(run(&mut m, "read f"), "\"abc\\x00\\x00\"");
    }
}
