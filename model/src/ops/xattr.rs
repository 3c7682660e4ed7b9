//! The xattr ops, as xattrs.c and fs/xattr.c do them: the syscalls'
//! name and permission checks (xattr_resolve_name, xattr_permission),
//! overlay's get, list, set and remove (ovl_xattr_get, ovl_listxattr,
//! ovl_xattr_set), and the overlay-private names set through the overlay
//! (ovl_is_private_xattr).

use crate::copy_up::CopyUp;
use crate::fs::Inode;
use crate::perm::{owner_or_capable, permission, MAY_READ, MAY_WRITE};
use crate::resolve::{Follow, Walk};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::acl;
use ovlcheck_case::{Cred, Errno, InodeFlags, OpPath, Value};

/// XATTR_NAME_MAX: the longest xattr name.
const XATTR_NAME_MAX: usize = 255;
/// XATTR_SIZE_MAX: the largest xattr value.
const XATTR_SIZE_MAX: usize = 65536;

/// The xattr namespaces Linux knows (fs/xattr.c: xattr_resolve_name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XattrNs {
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
fn xattr_ns(name: &str) -> Result<XattrNs, Errno> {
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

/// xattr_permission for reading: trusted.* needs CAP_SYS_ADMIN in the
/// initial user namespace (`capable()`, else ENODATA; `init_caps` is false
/// for root in the user namespace of a userxattr mount, observed on 6.18);
/// user.* exists only on regular files and directories and needs read
/// permission.
fn xattr_read_permission(cred: Cred, init_caps: bool, a: &Inode, ns: XattrNs) -> Result<(), Errno> {
    match ns {
        XattrNs::Trusted if !(cred.is_root() && init_caps) => Err(Errno::ENODATA),
        XattrNs::User if !(a.is_reg() || a.is_dir()) => Err(Errno::ENODATA),
        XattrNs::User | XattrNs::Unknown(_) => permission(cred, a, MAY_READ),
        _ => Ok(()),
    }
}

/// may_write_xattr: no xattr (nor ACL) is written on an immutable or
/// append-only inode, nor on one with an unmapped owner or group
/// (HAS_UNMAPPED_ID).
pub(super) fn may_write_xattr(a: &Inode) -> Result<(), Errno> {
    if !a.ids_mapped() || a.seen_flags().intersects(InodeFlags::PROTECTED) {
        Err(Errno::EPERM)
    } else {
        Ok(())
    }
}

/// xattr_permission for writing: never on an immutable or append-only
/// inode, nor on one with an unmapped owner or group (may_write_xattr:
/// HAS_UNMAPPED_ID); trusted.* needs
/// CAP_SYS_ADMIN in the initial user namespace (as for reading) and
/// security.* root; user.* only on regular files and directories, not on
/// a sticky directory one does not own, and needs write permission.
fn xattr_write_permission(
    cred: Cred,
    init_caps: bool,
    a: &Inode,
    ns: XattrNs,
) -> Result<(), Errno> {
    may_write_xattr(a)?;
    match ns {
        XattrNs::Trusted if !(cred.is_root() && init_caps) => Err(Errno::EPERM),
        XattrNs::Security if !cred.is_root() => Err(Errno::EPERM),
        XattrNs::User if !(a.is_reg() || a.is_dir()) => Err(Errno::EPERM),
        XattrNs::User if a.is_dir() && a.mode & 0o1000 != 0 && !owner_or_capable(cred, a) => {
            Err(Errno::EPERM)
        }
        XattrNs::User | XattrNs::Unknown(_) => permission(cred, a, MAY_WRITE),
        _ => Ok(()),
    }
}

impl Model {
    /// `getxattr` (fs/xattr.c: xattr_permission; xattrs.c: ovl_xattr_get).
    pub(crate) fn op_getxattr(
        &self,
        path: &OpPath,
        name: &str,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        if acl::is_acl_name(name) {
            return self.op_get_acl(path, name, cred);
        }
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let a = self.attr(w.last());
        xattr_read_permission(cred, self.feat.init_caps, a, ns)?;
        self.own_xattr_handler(name)?;
        self.xattr_handler(ns, name)?;
        match self.stored_name(name).get(a) {
            Some(v) => Ok(Value::Bytes(v.clone())),
            None => Err(Errno::ENODATA),
        }
    }

    /// `listxattr`: only `user.*` names are reported (the op's contract).
    /// Overlay's own markers never are (xattrs.c: ovl_can_list); a private
    /// name set through the overlay is listed as it was set, unescaped
    /// (ovl_listxattr; observed on 6.18 under userxattr).
    pub(crate) fn op_listxattr(&self, path: &OpPath, cred: Cred) -> Result<Value, Errno> {
        let w = self.resolve_existing(path, Follow::Yes, cred)?;
        let a = self.attr(w.last());
        if self.feat.user_xattr_ns && a.ovl != Default::default() {
            self.hit(Rule::PrivateXattrsHidden);
        }
        let mut names: Vec<String> = self
            .visible_xattrs(a)
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("user."))
            .collect();
        names.sort();
        Ok(Value::Names(names))
    }

    /// `setxattr(2)` with flags 0.
    pub(crate) fn op_setxattr(
        &mut self,
        path: &OpPath,
        name: &str,
        value: &[u8],
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        if acl::is_acl_name(name) {
            return self.op_set_acl(path, name, Some(value), cred);
        }
        let stored = self.stored_name(name);
        if let Err(e) = self.own_xattr_handler(name) {
            let w = self.resolve_existing(path, Follow::Yes, cred)?;
            self.check_writable()?;
            xattr_write_permission(cred, self.feat.init_caps, self.attr(w.last()), ns)?;
            return Err(e);
        }
        let caps = self.feat.init_caps;
        let u = self.modify_xattrs(path, cred, |a| xattr_write_permission(cred, caps, a, ns))?;
        // Overlay's catch-all handler (ovl_other_xattr_handler) copies up
        // before the upper filesystem refuses an unknown name (verified on
        // 6.18: the copy-up stays) or, on a tmpfs without them, a `user.*`
        // name (seen on 6.1).
        self.xattr_handler(ns, name)?;
        stored.set(self.upper_mut().get_mut(u), value);
        Ok(Value::Unit)
    }

    /// `removexattr(2)`: a missing xattr on a lower-only object is ENODATA
    /// without copy-up (xattrs.c: ovl_xattr_set).
    pub(crate) fn op_removexattr(
        &mut self,
        path: &OpPath,
        name: &str,
        cred: Cred,
    ) -> Result<Value, Errno> {
        let ns = xattr_ns(name)?;
        if acl::is_acl_name(name) {
            return self.op_set_acl(path, name, None, cred);
        }
        let stored = self.stored_name(name);
        let caps = self.feat.init_caps;
        let handlers = self
            .own_xattr_handler(name)
            .and_then(|()| self.xattr_handler(ns, name));
        let u = self.modify_xattrs(path, cred, |a| {
            xattr_write_permission(cred, caps, a, ns)?;
            handlers?;
            if stored.get(a).is_some() {
                Ok(())
            } else {
                Err(Errno::ENODATA)
            }
        })?;
        stored.remove(self.upper_mut().get_mut(u));
        Ok(Value::Unit)
    }

    /// [`Model::modify`] for xattr changes (xattrs.c: ovl_xattr_set): they
    /// go to the overlay inode's upper whenever it has one, even an index
    /// entry not yet linked at this name (index=on: a lower hard link whose
    /// inode another name copied up), so such a name is not linked up
    /// (observed on 6.18); only an inode without an upper is copied up.
    fn modify_xattrs(
        &mut self,
        path: &OpPath,
        cred: Cred,
        check: impl FnOnce(&Inode) -> Result<(), Errno>,
    ) -> Result<u32, Errno> {
        let w: Walk = self.resolve_existing(path, Follow::Yes, cred)?;
        self.xattr_upper(w, check)
    }

    /// [`Model::modify_xattrs`] of an object already resolved.
    pub(super) fn xattr_upper(
        &mut self,
        w: Walk,
        check: impl FnOnce(&Inode) -> Result<(), Errno>,
    ) -> Result<u32, Errno> {
        match w.last().upper {
            Some(u) => {
                self.check_writable()?;
                check(self.attr(w.last()))?;
                Ok(u)
            }
            None => self.modify_walk(w, CopyUp::Meta, check),
        }
    }

    /// The handler lookups after the overlay's own: an unknown namespace
    /// fails, `system.*` other than the ACLs (module `acl`) is unsupported,
    /// and every `user.` name, the bare prefix too, fails on a layer tmpfs
    /// without a user handler (`Features::tmpfs_user_xattrs`):
    /// overlay passes the layer's EOPNOTSUPP through (seen on 6.1).
    fn xattr_handler(&self, ns: XattrNs, name: &str) -> Result<(), Errno> {
        match ns {
            _ if name.starts_with("user.") && !self.feat.tmpfs_user_xattrs => {
                self.hit(Rule::NoTmpfsUserXattrsBefore66);
                Err(Errno::EOPNOTSUPP)
            }
            XattrNs::Unknown(e) => Err(e),
            XattrNs::System => Err(Errno::EOPNOTSUPP),
            _ => Ok(()),
        }
    }

    /// Before escaped names (`Features::escaped_xattrs`, v6.7) overlay's
    /// own handler takes every overlay-private name and answers
    /// EOPNOTSUPP (super.c of 6.1: ovl_own_xattr_get, ovl_own_xattr_set),
    /// after the permission check and with no copy-up.
    fn own_xattr_handler(&self, name: &str) -> Result<(), Errno> {
        if !self.feat.escaped_xattrs && self.is_private_xattr(name) {
            self.hit(Rule::PrivateXattrsRefusedBefore67);
            Err(Errno::EOPNOTSUPP)
        } else {
            Ok(())
        }
    }

    /// An overlay-private name in this mount's namespace
    /// (xattrs.c: ovl_is_private_xattr).
    fn is_private_xattr(&self, name: &str) -> bool {
        self.private_suffix(name).is_some()
    }

    /// For an overlay-private name, the part after the prefix. Set through
    /// the overlay it is stored escaped as `<prefix>overlay.<suffix>`
    /// (overlayfs.rst: "Nesting overlayfs mounts", v6.7; verified on 6.18).
    fn private_suffix<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.strip_prefix(self.private_prefix())
    }

    /// The xattrs of `a` that getxattr and listxattr through the overlay
    /// see, in no particular order: its ordinary ones, and the private
    /// names set through the overlay, unescaped (xattrs.c: ovl_listxattr).
    pub(crate) fn visible_xattrs<'a>(
        &self,
        a: &'a Inode,
    ) -> impl Iterator<Item = (String, &'a Vec<u8>)> + 'a {
        let prefix = self.private_prefix();
        let plain = a
            .xattrs
            .iter()
            .filter(move |(k, _)| !k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v));
        // Before v6.7 an escaped name is private too: hidden.
        let shown = self.feat.escaped_xattrs;
        let escaped = a
            .ovl
            .escaped
            .iter()
            .filter(move |_| shown)
            .map(move |(k, v)| (format!("{prefix}{k}"), v));
        plain.chain(escaped)
    }

    /// This mount's overlay-private prefix (overlayfs.rst: "User xattr").
    pub(crate) fn private_prefix(&self) -> &'static str {
        if self.feat.user_xattr_ns {
            "user.overlay."
        } else {
            "trusted.overlay."
        }
    }

    /// Where the xattr `name` set through the overlay is kept on an inode.
    fn stored_name<'n>(&self, name: &'n str) -> Stored<'n> {
        match self.private_suffix(name) {
            Some(suffix) => {
                if self.feat.escaped_xattrs {
                    self.hit(Rule::PrivateXattrEscaped);
                }
                Stored::Escaped(suffix)
            }
            None => Stored::Plain(name),
        }
    }
}

/// An xattr name as the upper inode keeps it: an overlay-private name
/// escaped, by its suffix (see [`Model::private_suffix`]), any other as is.
#[derive(Clone, Copy)]
enum Stored<'n> {
    Escaped(&'n str),
    Plain(&'n str),
}

impl Stored<'_> {
    fn get(self, a: &Inode) -> Option<&Vec<u8>> {
        match self {
            Stored::Escaped(k) => a.ovl.escaped.get(k),
            Stored::Plain(k) => a.xattrs.get(k),
        }
    }

    fn set(self, a: &mut Inode, value: &[u8]) {
        match self {
            Stored::Escaped(k) => a.ovl.escaped.insert(k.to_string(), value.to_vec()),
            Stored::Plain(k) => a.xattrs.insert(k.to_string(), value.to_vec()),
        };
    }

    fn remove(self, a: &mut Inode) {
        match self {
            Stored::Escaped(k) => a.ovl.escaped.remove(k),
            Stored::Plain(k) => a.xattrs.remove(k),
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run, upper};

    #[test]
    fn removing_a_missing_xattr_does_not_copy_up() {
        let mut m = model("lower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "removexattr f user.none"), "ENODATA");
        assert!(!upper(&m).contains("\nf "));
        assert_eq!(run(&mut m, "setxattr f user.k \"v\""), "ok");
        assert!(upper(&m).contains("user.k=\"v\""));
    }

    /// The two xattr version rules (corpus/versions/6.1-*.ovl): a
    /// private name is refused without copy-up, a user name on a tmpfs
    /// without them after it.
    #[test]
    fn before_6_6_and_6_7_xattrs_are_eopnotsupp() {
        let mut m = model("profile kernel=6.1\nlower\n  file f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "getxattr f trusted.overlay.x"), "EOPNOTSUPP");
        assert_eq!(
            run(&mut m, "setxattr f trusted.overlay.x \"1\""),
            "EOPNOTSUPP"
        );
        assert_eq!(run(&mut m, "removexattr f user.k"), "EOPNOTSUPP");
        assert!(!upper(&m).contains("\nf "));
        assert_eq!(run(&mut m, "setxattr f user.k \"1\""), "EOPNOTSUPP");
        assert!(upper(&m).contains("\nf "));
        assert_eq!(run(&mut m, "setxattr f trusted.k \"1\""), "ok");
    }
}
