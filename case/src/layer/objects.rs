//! Resolution of a layer's entries into objects (`LayerSpec::objects`).

use super::{Entry, LayerError, Markers, Object, ObjectKind, DEFAULT_MTIME, IMPLIED_DIR_MODE};
use crate::acl;
use crate::iflags::InodeFlags;
use crate::path::{Name, RelPath, PATH_MAX};
use std::collections::BTreeMap;

/// Longest xattr name (Linux `XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;

/// The file capability xattr (capability.h: `XATTR_NAME_CAPS`), the one
/// `security.*` name a layer entry may carry: copy-up keeps it, and a
/// write, truncate or chown drops it (docs/semantics.md, section 1.10).
pub const CAPABILITY_XATTR: &str = "security.capability";

/// Checks the value of a layer's [`CAPABILITY_XATTR`]: the kernel takes
/// only a well-formed `vfs_cap_data` (commoncap.c: cap_convert_nscap);
/// a layer carries revision 2 (`VFS_CAP_REVISION_2`, 20 bytes), what
/// setcap writes.
pub(crate) fn check_capability_value(value: &[u8]) -> Result<(), String> {
    let revision = value.get(..4).map(|m| m[3]);
    if value.len() == 20 && revision == Some(2) {
        Ok(())
    } else {
        Err(format!(
            "`{CAPABILITY_XATTR}` must be a VFS_CAP_REVISION_2 value: 20 bytes, the 4th 0x02 \
             (it has {} bytes)",
            value.len()
        ))
    }
}

/// Checks the value of an ACL xattr (crate::acl) a layer entry or a step
/// sets: its short text form. A layer's ACL must also be one the kernel
/// takes (posix_acl_valid), with ids that have a mapping (`u32::MAX` has
/// none); a step may set any, to see the kernel refuse it.
pub fn check_acl_value(value: &[u8], in_layer: bool) -> Result<(), String> {
    let text = std::str::from_utf8(value).map_err(|_| "an ACL is text".to_string())?;
    let a = acl::Acl::parse(text)?;
    if in_layer && (!a.valid() || a.ids().any(|id| id == u32::MAX)) {
        return Err(format!(
            "`{text}` is not an ACL the kernel keeps: the owner's entry, users, the owning \
             group's, groups, a mask when a user or group entry is there, others, in that order"
        ));
    }
    Ok(())
}

/// Checks the name of an ordinary layer xattr: `user.*`, `trusted.*` or
/// [`CAPABILITY_XATTR`], never an overlay-private one. The parser checks
/// `xattr` entries with it too, so a bad name is reported at its token.
pub(crate) fn check_layer_xattr_name(name: &str) -> Result<(), String> {
    if name == CAPABILITY_XATTR || acl::is_acl_name(name) {
        return Ok(());
    }
    for (prefix, entry) in [
        (
            "trusted.overlay.",
            "opaque, xwhiteouts, xwhiteout or redirect",
        ),
        ("user.overlay.", "opaque, xwhiteouts, xwhiteout or redirect"),
    ] {
        if name.starts_with(prefix) {
            return Err(format!(
                "xattr `{name}` is overlay-private: use the marker entries ({entry}) instead"
            ));
        }
    }
    let rest = name
        .strip_prefix("user.")
        .or_else(|| name.strip_prefix("trusted."));
    match rest {
        None => Err(format!(
            "xattr `{name}` must be in the `user.` or `trusted.` namespace, or be \
             `{CAPABILITY_XATTR}`, `{}` or `{}`",
            acl::ACCESS,
            acl::DEFAULT
        )),
        Some("") => Err(format!(
            "xattr `{name}` has an empty name after its namespace"
        )),
        Some(_) if name.contains('\0') => Err("xattr name contains a NUL byte".to_string()),
        Some(_) if name.len() > XATTR_NAME_MAX => Err(format!(
            "xattr name is {} bytes long (XATTR_NAME_MAX is {XATTR_NAME_MAX})",
            name.len()
        )),
        Some(_) => Ok(()),
    }
}

fn kind_word(k: &ObjectKind) -> &'static str {
    match k {
        ObjectKind::Dir => "a directory",
        ObjectKind::File(_) => "a regular file",
        ObjectKind::Symlink(_) => "a symlink",
        ObjectKind::Fifo => "a fifo",
        ObjectKind::Whiteout => "a whiteout",
        ObjectKind::Hardlink(_) => "a hard link",
    }
}

/// Objects in creation order (every parent before its children), indexed
/// by path slices borrowed from the spec, so lookups allocate nothing.
struct Builder<'a> {
    objs: Vec<Object>,
    index: BTreeMap<&'a [Name], usize>,
    /// Objects that are implied parent directories not (yet) written as `dir`.
    implied: Vec<bool>,
}

impl<'a> Builder<'a> {
    fn new_object(path: RelPath, kind: ObjectKind, mode: u32) -> Object {
        Object {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: DEFAULT_MTIME,
            xattrs: BTreeMap::new(),
            markers: Markers::default(),
            flags: InodeFlags::NONE,
        }
    }

    fn push(&mut self, key: &'a [Name], obj: Object, implied: bool) -> usize {
        let i = self.objs.len();
        self.index.insert(key, i);
        self.objs.push(obj);
        self.implied.push(implied);
        i
    }

    /// Creates `path` (parents implied as needed).
    fn create(&mut self, path: &'a RelPath, kind: ObjectKind, mode: u32) -> Result<usize, String> {
        let names = path.names();
        if let Some(&j) = self.index.get(names) {
            return Err(format!(
                "`{path}` already exists in this layer (as {})",
                kind_word(&self.objs[j].kind)
            ));
        }
        for depth in 1..names.len() {
            let parent = &names[..depth];
            match self.index.get(parent) {
                Some(&j) => {
                    if self.objs[j].kind != ObjectKind::Dir {
                        return Err(format!(
                            "parent `{}` of `{path}` is {}, not a directory",
                            self.objs[j].path,
                            kind_word(&self.objs[j].kind)
                        ));
                    }
                }
                None => {
                    let implied = RelPath::from_names(parent.to_vec());
                    let obj = Self::new_object(implied, ObjectKind::Dir, IMPLIED_DIR_MODE);
                    self.push(parent, obj, true);
                }
            }
        }
        Ok(self.push(names, Self::new_object(path.clone(), kind, mode), false))
    }

    /// The object an attribute entry on `path` changes (the original file
    /// for a hard link).
    fn inode(&self, path: &RelPath, what: &str) -> Result<usize, String> {
        let &j = self.index.get(path.names()).ok_or_else(|| {
            format!("{what} on `{path}`, which no earlier entry of this layer creates")
        })?;
        match &self.objs[j].kind {
            ObjectKind::Hardlink(orig) => Ok(self.index.get(orig.names()).copied().unwrap_or(j)),
            _ => Ok(j),
        }
    }

    /// The directory a marker entry on `path` changes.
    fn dir(&self, path: &RelPath, what: &str) -> Result<usize, String> {
        let j = self.inode(path, what)?;
        if self.objs[j].kind != ObjectKind::Dir {
            return Err(format!(
                "{what} needs a directory, but `{path}` is {}",
                kind_word(&self.objs[j].kind)
            ));
        }
        Ok(j)
    }
}

fn check_mode(mode: u32) -> Result<(), String> {
    if mode > 0o7777 {
        return Err(format!("mode {mode:o} is out of range (at most 07777)"));
    }
    Ok(())
}

fn check_target(target: &[u8]) -> Result<(), String> {
    if target.is_empty() {
        return Err("a symlink target cannot be empty".to_string());
    }
    if target.contains(&0) {
        return Err("a symlink target cannot contain a NUL byte".to_string());
    }
    if target.len() >= PATH_MAX {
        return Err(format!(
            "symlink target is {} bytes long (PATH_MAX is {PATH_MAX})",
            target.len()
        ));
    }
    Ok(())
}

/// [`objects`] of an escaped layer ([`super::LayerFormat::Escaped`]):
/// every object's markers written escaped; a char 0/0 whiteout, which the
/// overlay mounting the layer would take as its own, is refused.
pub(super) fn escaped_objects(entries: &[Entry]) -> Result<Vec<Object>, LayerError> {
    if let Some(i) = entries
        .iter()
        .position(|e| matches!(e, Entry::Whiteout { .. }))
    {
        return Err(LayerError {
            entry: i,
            message: "a char 0/0 whiteout cannot be escaped (the overlay that mounts an \
                      escaped layer takes it as its own): write `xwhiteouts DIR` and \
                      `xwhiteout DIR/NAME`"
                .to_string(),
        });
    }
    let mut objs = objects(entries.iter().enumerate())?;
    for o in &mut objs {
        o.markers.escaped = true;
    }
    Ok(objs)
}

/// See [`LayerSpec::objects`](super::LayerSpec::objects): overlay-format
/// entries, each with the index an error reports.
pub(super) fn objects<'a>(
    entries: impl IntoIterator<Item = (usize, &'a Entry)>,
) -> Result<Vec<Object>, LayerError> {
    let mut b = Builder {
        objs: Vec::new(),
        index: BTreeMap::new(),
        implied: Vec::new(),
    };
    for (i, e) in entries {
        entry(&mut b, e).map_err(|message| LayerError { entry: i, message })?;
    }
    let mut objs = b.objs;
    for o in &mut objs {
        access_acl_after_chmod(o);
    }
    // Hard links share the inode of their original file.
    for i in 0..objs.len() {
        if let ObjectKind::Hardlink(orig) = &objs[i].kind {
            if let Some(&j) = b.index.get(orig.names()) {
                let (mode, uid, gid, mtime) =
                    (objs[j].mode, objs[j].uid, objs[j].gid, objs[j].mtime);
                let xattrs = objs[j].xattrs.clone();
                let o = &mut objs[i];
                (o.mode, o.uid, o.gid, o.mtime, o.xattrs) = (mode, uid, gid, mtime, xattrs);
            }
        }
    }
    Ok(objs)
}

/// A layer object's access ACL as the layer holds it once written: the
/// ACL set first, then the object's mode (driver/src/store.rs). The mode
/// stands, and the ACL's owner, mask (else owning group) and other entries
/// take its bits (posix_acl_chmod); an ACL the mode says all of is not
/// kept (posix_acl_update_mode).
fn access_acl_after_chmod(o: &mut Object) {
    let Some(value) = o.xattrs.get(acl::ACCESS) else {
        return;
    };
    let text = std::str::from_utf8(value).expect("checked by check_acl_value");
    let mut a = acl::Acl::parse(text).expect("checked by check_acl_value");
    if a.equiv_mode(o.mode).1 {
        o.xattrs.remove(acl::ACCESS);
    } else {
        a.chmod(o.mode);
        o.xattrs
            .insert(acl::ACCESS.to_string(), a.to_string().into_bytes());
    }
}

fn entry<'a>(b: &mut Builder<'a>, e: &'a Entry) -> Result<(), String> {
    let path = e.path();
    if path.is_root() {
        return Err("an entry cannot name the layer root".to_string());
    }
    match e {
        Entry::Dir { mode, .. } => {
            check_mode(*mode)?;
            if let Some(&j) = b.index.get(path.names()) {
                if b.implied[j] {
                    // An explicit `dir` after a deeper entry implied it.
                    b.objs[j].mode = *mode;
                    b.implied[j] = false;
                    return Ok(());
                }
            }
            b.create(path, ObjectKind::Dir, *mode)?;
        }
        Entry::File { mode, data, .. } => {
            check_mode(*mode)?;
            b.create(path, ObjectKind::File(data.clone()), *mode)?;
        }
        Entry::Symlink { target, .. } => {
            check_target(target)?;
            b.create(path, ObjectKind::Symlink(target.clone()), 0o777)?;
        }
        Entry::Hardlink { existing, .. } => {
            let &j = b.index.get(existing.names()).ok_or_else(|| {
                format!("hard link target `{existing}` does not exist (earlier) in this layer")
            })?;
            let orig = match &b.objs[j].kind {
                // Any non-directory can have several names (OCI layer.md,
                // "Hardlinks"); a whiteout is a marker, not a file.
                ObjectKind::File(_) | ObjectKind::Symlink(_) | ObjectKind::Fifo => existing.clone(),
                ObjectKind::Hardlink(orig) => orig.clone(),
                k => {
                    return Err(format!(
                        "hard link target `{existing}` is {}, not a file, symlink or fifo",
                        kind_word(k)
                    ))
                }
            };
            let mode = b.objs[j].mode;
            b.create(path, ObjectKind::Hardlink(orig), mode)?;
        }
        Entry::Fifo { mode, .. } => {
            check_mode(*mode)?;
            b.create(path, ObjectKind::Fifo, *mode)?;
        }
        Entry::Whiteout { .. } => {
            b.create(path, ObjectKind::Whiteout, 0)?;
        }
        Entry::Xwhiteout { .. } => {
            let j = b.create(path, ObjectKind::File(Vec::new()), 0)?;
            b.objs[j].markers.xwhiteout = true;
        }
        Entry::Opaque { .. } | Entry::XwhiteoutDir { .. } => {
            let (what, c) = match e {
                Entry::Opaque { .. } => ("opaque", 'y'),
                _ => ("xwhiteouts", 'x'),
            };
            let j = b.dir(path, what)?;
            if b.objs[j].markers.opaque.is_some() {
                return Err(format!(
                    "`{path}` already has an opaque or xwhiteouts marker"
                ));
            }
            b.objs[j].markers.opaque = Some(c);
        }
        Entry::Redirect { target, .. } => {
            if target.is_empty() || target.contains('\0') {
                return Err("a redirect target must be non-empty and without NUL".to_string());
            }
            // A directory's, or a metacopy file's (which lookup follows to
            // its data; overlayfs.rst: "Data-only lower layers").
            let j = b.inode(path, "redirect")?;
            if !matches!(b.objs[j].kind, ObjectKind::Dir | ObjectKind::File(_))
                || b.objs[j].markers.xwhiteout
            {
                return Err(format!(
                    "redirect marks a directory or a (metacopy) regular file, `{path}` is {}",
                    kind_word(&b.objs[j].kind)
                ));
            }
            if b.objs[j].markers.redirect.is_some() {
                return Err(format!("`{path}` already has a redirect"));
            }
            b.objs[j].markers.redirect = Some(target.clone());
        }
        Entry::Metacopy { .. } => {
            let j = b.inode(path, "metacopy")?;
            let o = &mut b.objs[j];
            if !matches!(o.kind, ObjectKind::File(_)) || o.markers.xwhiteout {
                return Err(format!(
                    "`metacopy` marks a regular file, `{path}` is {}",
                    kind_word(&o.kind)
                ));
            }
            o.markers.metacopy = true;
        }
        Entry::Xattr { name, value, .. } => {
            check_layer_xattr_name(name)?;
            if name == CAPABILITY_XATTR {
                check_capability_value(value)?;
            }
            if acl::is_acl_name(name) {
                check_acl_value(value, true)?;
            }
            let j = b.inode(path, "xattr")?;
            let kind = &b.objs[j].kind;
            if acl::is_acl_name(name)
                && (matches!(kind, ObjectKind::Symlink(_) | ObjectKind::Whiteout)
                    || (name == acl::DEFAULT && *kind != ObjectKind::Dir))
            {
                return Err(format!(
                    "`{name}` goes on a directory{}, `{path}` is {}",
                    if name == acl::ACCESS {
                        ", a file or a fifo"
                    } else {
                        ""
                    },
                    kind_word(kind)
                ));
            }
            if name == CAPABILITY_XATTR && !matches!(kind, ObjectKind::File(_)) {
                return Err(format!(
                    "`{CAPABILITY_XATTR}` is a file capability: only on regular files, `{path}` is {}",
                    kind_word(kind)
                ));
            }
            if name.starts_with("user.") && !matches!(kind, ObjectKind::Dir | ObjectKind::File(_)) {
                return Err(format!(
                    "`user.*` xattrs can only be set on files and directories, `{path}` is {}",
                    kind_word(kind)
                ));
            }
            b.objs[j].xattrs.insert(name.clone(), value.clone());
        }
        Entry::Owner { uid, gid, .. } => {
            let j = b.inode(path, "owner")?;
            b.objs[j].uid = *uid;
            b.objs[j].gid = *gid;
        }
        Entry::Mtime { secs, .. } => {
            let j = b.inode(path, "mtime")?;
            b.objs[j].mtime = *secs;
        }
        Entry::Attr { flags, .. } => {
            let j = b.inode(path, "attr")?;
            let o = &mut b.objs[j];
            if !matches!(o.kind, ObjectKind::Dir | ObjectKind::File(_)) || o.markers.xwhiteout {
                return Err(format!(
                    "inode flags go on regular files and directories, `{path}` is {}",
                    kind_word(&o.kind)
                ));
            }
            o.flags = *flags;
        }
    }
    Ok(())
}
