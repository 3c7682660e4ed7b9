//! Ops that only read: stat, lstat, read, readlink, readdir, getxattr,
//! listxattr. None of them copies up (overlayfs.rst: "Non-directories";
//! copy_up.c: ovl_open_flags_need_copy_up).

use crate::fs::{Inode, Kind};
use crate::perm::{permission, MAY_READ};
use crate::resolve::{Follow, Resolved};
use crate::Model;
use ovlcheck_case::{Cred, Errno, OpPath, Value};

/// XATTR_NAME_MAX and XATTR_SIZE_MAX.
pub(crate) const XATTR_NAME_MAX: usize = 255;
pub(crate) const XATTR_SIZE_MAX: usize = 65536;

/// The xattr namespaces Linux knows (fs/xattr.c: xattr_resolve_name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XattrNs {
    User,
    Trusted,
    Security,
    System,
    /// No known prefix, or a bare prefix: the handler lookup fails after
    /// the path lookup and the permission check.
    Unknown(Errno),
}

/// Checks an xattr name like the syscalls do on entry: empty or longer
/// than XATTR_NAME_MAX is ERANGE (before the path is looked up). An unknown
/// namespace (EOPNOTSUPP) or a bare prefix (EINVAL) only fails later, in
/// the handler lookup.
pub(crate) fn xattr_ns(name: &str) -> Result<XattrNs, Errno> {
    if name.is_empty() || name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    let ns = [
        ("user.", XattrNs::User),
        ("trusted.", XattrNs::Trusted),
        ("security.", XattrNs::Security),
        ("system.", XattrNs::System),
    ];
    for (p, ns) in ns {
        if let Some(rest) = name.strip_prefix(p) {
            return Ok(if rest.is_empty() {
                XattrNs::Unknown(Errno::EINVAL)
            } else {
                ns
            });
        }
    }
    Ok(XattrNs::Unknown(Errno::EOPNOTSUPP))
}

/// The handler lookup: fails for unknown namespaces. `system.*` is
/// modelled as unsupported (POSIX ACLs are not modelled).
pub(crate) fn xattr_handler(ns: XattrNs) -> Result<(), Errno> {
    match ns {
        XattrNs::Unknown(e) => Err(e),
        XattrNs::System => Err(Errno::EOPNOTSUPP),
        _ => Ok(()),
    }
}

impl Model {
    /// `stat`/`lstat`.
    pub(crate) fn op_stat(&self, path: &OpPath, follow: bool, cred: Cred) -> Result<Value, Errno> {
        let r = if follow {
            self.resolve(path, Follow::Yes, cred)?
        } else {
            self.resolve_last(path, Follow::No, cred)?
        };
        let Resolved::Found(w) = r else {
            return Err(Errno::ENOENT);
        };
        Ok(Value::Stat(self.stat_info(w.last())))
    }

    /// open O_RDONLY, read everything. A fifo without writers reads empty.
    pub(crate) fn op_read(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let d = w.last();
        let a = self.attr(d);
        permission(cred, a, MAY_READ)?;
        match &a.kind {
            Kind::Dir(_) => Err(Errno::EISDIR),
            Kind::File(_) => Ok(Value::Bytes(self.file_data(d).to_vec())),
            _ => Ok(Value::Bytes(Vec::new())),
        }
    }

    /// `readlink`: EINVAL on anything but a symlink.
    pub(crate) fn op_readlink(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let Resolved::Found(w) = self.resolve_last(path, Follow::No, cred)? else {
            return Err(Errno::ENOENT);
        };
        match &self.attr(w.last()).kind {
            Kind::Symlink(t) => Ok(Value::Bytes(t.to_vec())),
            _ => Err(Errno::EINVAL),
        }
    }

    /// open O_DIRECTORY and getdents: the merged listing
    /// (overlayfs.rst: "readdir").
    /// Reading may drop a stale `impure` xattr (readdir_clears_impure).
    pub(crate) fn op_readdir(&mut self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let d = w.last();
        if !d.is_dir {
            return Err(Errno::ENOTDIR);
        }
        permission(cred, self.attr(d), MAY_READ)?;
        let names = self.readdir_names(d);
        let dir_path = w.names().join("/");
        if let Some(u) = self.readdir_clears_impure(&dir_path, d) {
            self.upper_mut().get_mut(u).ovl.impure = false;
        }
        Ok(Value::Names(names))
    }

    /// `getxattr` (fs/xattr.c: xattr_permission; inode.c: ovl_xattr_get).
    pub(crate) fn op_getxattr(
        &self,
        path: &OpPath,
        name: &str,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let a = self.attr(w.last());
        xattr_read_permission(cred, a, ns)?;
        xattr_handler(ns)?;
        let value = match self.private_suffix(name) {
            Some(k) => a.ovl.escaped.get(k),
            None => a.xattrs.get(name),
        };
        match value {
            Some(v) => Ok(Value::Bytes(v.clone())),
            None => Err(Errno::ENODATA),
        }
    }

    /// `listxattr`: only `user.*` names are reported (the op's contract);
    /// overlay-private ones never are (inode.c: ovl_can_list).
    pub(crate) fn op_listxattr(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let a = self.attr(w.last());
        let names = a
            .xattrs
            .keys()
            .filter(|k| k.starts_with("user.") && !self.is_private_xattr(k))
            .cloned()
            .collect();
        Ok(Value::Names(names))
    }

    /// An overlay-private name in this mount's namespace
    /// (overlayfs.h: ovl_is_private_xattr).
    pub(crate) fn is_private_xattr(&self, name: &str) -> bool {
        self.private_suffix(name).is_some()
    }

    /// For an overlay-private name, the part after the prefix. Set through
    /// the overlay it is stored escaped as `<prefix>overlay.<suffix>`
    /// (overlayfs.rst: "Nesting overlayfs mounts", v6.7; verified on 6.18).
    pub(crate) fn private_suffix<'n>(&self, name: &'n str) -> Option<&'n str> {
        let prefix = if self.feat.user_xattr_ns {
            "user.overlay."
        } else {
            "trusted.overlay."
        };
        name.strip_prefix(prefix)
    }
}

/// xattr_permission for reading: trusted.* needs CAP_SYS_ADMIN (else
/// ENODATA); user.* exists only on regular files and directories and needs
/// read permission.
fn xattr_read_permission(cred: Cred, a: &Inode, ns: XattrNs) -> Result<(), Errno> {
    match ns {
        XattrNs::Trusted if !cred.is_root() => Err(Errno::ENODATA),
        XattrNs::User if !(a.is_reg() || a.is_dir()) => Err(Errno::ENODATA),
        XattrNs::User | XattrNs::Unknown(_) => permission(cred, a, MAY_READ),
        _ => Ok(()),
    }
}
