//! A layer store in the on-disk layout of moby's overlay2 graph driver
//! (`daemon/graphdriver/overlay2/overlay.go`; docs/architecture.md, "The layer store"):
//!
//! ```text
//! <home>/l/<LID> -> ../<id>/diff      relative short links (26 chars base32)
//! <home>/<id>/diff/                    the layer's own contents
//! <home>/<id>/link                     "<LID>"
//! <home>/<id>/lower                    "l/<parent LID>:l/<grandparent LID>..." (only with a parent)
//! <home>/<id>/work/                    overlay workdir (only with a parent)
//! <home>/<id>/merged/                  mount point, while mounted
//! <home>/<id>/committed                written into a parent when a child is created
//! ```
//!
//! Layer contents are written by [`write_objects`] from a case's
//! [`LayerSpec`](ovlcheck_case::LayerSpec) read through `objects()`.

use crate::ids::IdGen;
use crate::sys::{self, Follow};
use ovlcheck_case::layer::{Object, ObjectKind};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// overlay2 `linkDir`.
pub const LINK_DIR: &str = "l";
/// overlay2 `maxDepth`: the most lowers a classic mount carries.
pub const DOCKER_MAX_DEPTH: usize = 128;

/// One layer of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// 64-hex cache id (with `-init` for an init layer).
    pub id: String,
    /// The 26-character short link id (`l/<link>`).
    pub link: String,
    /// `l/<LID>` entries of the `lower` file, nearest parent first.
    pub lower: Vec<String>,
}

/// A Docker-overlay2-shaped layer store rooted at a directory.
#[derive(Debug)]
pub struct LayerStore {
    home: PathBuf,
    ids: IdGen,
    /// The umask of the process, when known (see [`LayerStore::known_umask`]).
    umask: Option<u32>,
}

fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    mkdir_umask(path, mode, None)
}

/// `mkdir` then `chmod`, unless the umask is known to leave `mode` whole.
/// Only for directories inside the store's own (never set-gid) ones.
fn mkdir_umask(path: &Path, mode: u32, umask: Option<u32>) -> io::Result<()> {
    fs::DirBuilder::new().mode(mode).create(path)?;
    if umask.is_some_and(|u| mode & u == 0) && mode & 0o7000 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)
}

fn errno_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl LayerStore {
    /// Creates (or reuses) the store at `home`: `home` mode 0710 and `l/`
    /// mode 0700 (overlay2 `Init`). Ids are derived from `seed`.
    pub fn init(home: &Path, seed: u64) -> io::Result<LayerStore> {
        if !home.exists() {
            mkdir(home, 0o710)?;
        }
        let l = home.join(LINK_DIR);
        if !l.exists() {
            mkdir(&l, 0o700)?;
        }
        Ok(LayerStore {
            home: home.to_path_buf(),
            ids: IdGen::new(seed),
            umask: None,
        })
    }

    /// Tells the store that the process's umask is `umask` (and stays so),
    /// so that directories made with a mode the umask leaves whole need no
    /// `chmod`.
    pub fn known_umask(mut self, umask: u32) -> LayerStore {
        self.umask = Some(umask);
        self
    }

    /// The umask given to [`LayerStore::known_umask`].
    pub fn umask(&self) -> Option<u32> {
        self.umask
    }

    /// The store's root directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A fresh deterministic 64-hex layer id.
    pub fn new_id(&mut self) -> String {
        self.ids.layer_id()
    }

    /// `<home>/<id>`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.home.join(id)
    }

    /// `<home>/<id>/diff`.
    pub fn diff(&self, layer: &Layer) -> PathBuf {
        self.dir(&layer.id).join("diff")
    }

    /// `<home>/<id>/work`.
    pub fn work(&self, layer: &Layer) -> PathBuf {
        self.dir(&layer.id).join("work")
    }

    /// `<home>/<id>/merged`.
    pub fn merged(&self, layer: &Layer) -> PathBuf {
        self.dir(&layer.id).join("merged")
    }

    /// Creates a layer with a fresh id above `parent` (overlay2 `create`).
    pub fn create(&mut self, parent: Option<&Layer>) -> io::Result<Layer> {
        let id = self.new_id();
        self.create_named(&id, parent)
    }

    /// Creates layer `id` above `parent`, like overlay2 `create`: `<id>/`
    /// 0710, `diff/` 0755, `l/<LID> -> ../<id>/diff`, `link`; with a parent
    /// also `work/` 0700, `committed` in the parent and `lower`.
    pub fn create_named(&mut self, id: &str, parent: Option<&Layer>) -> io::Result<Layer> {
        self.create_named_with(id, parent, &mut |_| Ok(false))
    }

    /// [`LayerStore::create_named`], calling `prepare` on the new `<id>/`
    /// before anything goes into it (e.g. to mount a tmpfs there, so the
    /// layer lives on its own filesystem); `prepare` says whether it
    /// replaced the directory (its mode is then set again).
    ///
    /// A failure part-way (ENOSPC on a full store) removes what was made,
    /// as overlay2 `create` does on error.
    pub fn create_named_with(
        &mut self,
        id: &str,
        parent: Option<&Layer>,
        prepare: &mut dyn FnMut(&Path) -> io::Result<bool>,
    ) -> io::Result<Layer> {
        let dir = self.dir(id);
        mkdir_umask(&dir, 0o710, self.umask)?;
        let link = self.ids.link_id();
        let made = self.fill_layer(id, &link, parent, prepare);
        if made.is_err() {
            let _ = fs::remove_file(self.home.join(LINK_DIR).join(&link));
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// [`LayerStore::create_named_with`] once `<id>/` exists.
    fn fill_layer(
        &mut self,
        id: &str,
        link: &str,
        parent: Option<&Layer>,
        prepare: &mut dyn FnMut(&Path) -> io::Result<bool>,
    ) -> io::Result<Layer> {
        let dir = self.dir(id);
        let umask = self.umask;
        if prepare(&dir)? {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o710))?;
        }
        mkdir_umask(&dir.join("diff"), 0o755, umask)?;
        symlink(format!("../{id}/diff"), self.home.join(LINK_DIR).join(link))?;
        write_file(&dir.join("link"), link.as_bytes(), 0o644)?;
        let mut lower = Vec::new();
        if let Some(p) = parent {
            mkdir_umask(&dir.join("work"), 0o700, umask)?;
            write_file(&self.dir(&p.id).join("committed"), b"", 0o600)?;
            lower.push(format!("{LINK_DIR}/{}", p.link));
            lower.extend(p.lower.iter().cloned());
            write_file(&dir.join("lower"), lower.join(":").as_bytes(), 0o644)?;
        }
        Ok(Layer {
            id: id.to_string(),
            link: link.to_string(),
            lower,
        })
    }

    /// Creates Docker's `-init` layer for container `container_id` above
    /// `parent` (moby `layer_store.go` `initMount`, contents from
    /// `daemon/initlayer/setup_unix.go`): directories `dev/pts`, `dev/shm`,
    /// `proc`, `sys`; empty files `.dockerenv`, `etc/resolv.conf`,
    /// `etc/hosts`, `etc/hostname`, `dev/console` (mode 0755, as Docker opens
    /// them); symlink `etc/mtab -> /proc/mounts`. Docker writes them through
    /// a mount of the layer; here they go straight into `diff/`.
    pub fn create_init_layer(
        &mut self,
        container_id: &str,
        parent: Option<&Layer>,
    ) -> io::Result<Layer> {
        let layer = self.create_named(&format!("{container_id}-init"), parent)?;
        let diff = self.diff(&layer);
        for d in ["dev", "dev/pts", "dev/shm", "proc", "sys", "etc"] {
            mkdir(&diff.join(d), 0o755)?;
        }
        for f in [
            ".dockerenv",
            "etc/resolv.conf",
            "etc/hosts",
            "etc/hostname",
            "dev/console",
        ] {
            write_file(&diff.join(f), b"", 0o755)?;
        }
        symlink("/proc/mounts", diff.join("etc/mtab"))?;
        Ok(layer)
    }

    /// Reads a layer back from disk (`link` and `lower` files).
    pub fn open(&self, id: &str) -> io::Result<Layer> {
        let dir = self.dir(id);
        let link = fs::read_to_string(dir.join("link"))?;
        let lower = match fs::read_to_string(dir.join("lower")) {
            Ok(s) if !s.is_empty() => s.split(':').map(str::to_string).collect(),
            Ok(_) => Vec::new(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Layer {
            id: id.to_string(),
            link,
            lower,
        })
    }

    /// The absolute directory an `l/<LID>` lower entry stands for, through
    /// the link (overlay2 `getLowerDirs`).
    pub fn resolve_lower(&self, entry: &str) -> io::Result<PathBuf> {
        let link = self.home.join(entry);
        let target = fs::read_link(&link)?;
        Ok(self.home.join(LINK_DIR).join(target))
    }

    /// Removes a layer: its `l/` link and its directory (overlay2 `Remove`).
    pub fn remove(&mut self, layer: &Layer) -> io::Result<()> {
        let _ = fs::remove_file(self.home.join(LINK_DIR).join(&layer.link));
        fs::remove_dir_all(self.dir(&layer.id))
    }
}

/// Which xattr namespace carries overlay markers (`trusted.overlay.` or,
/// with `userxattr`, `user.overlay.`; overlayfs.rst "User xattr").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerNames {
    pub prefix: &'static str,
}

/// Writes `objects` (in `LayerSpec::objects()` order, parents first) into
/// the directory `root`: files with data, dirs, symlinks, fifos, hard
/// links, whiteouts as char 0/0 devices (overlayfs.rst "whiteouts and opaque
/// directories"), xattr whiteouts as empty files with `overlay.whiteout`,
/// opaque/xwhiteouts/redirect markers as `<prefix>opaque` / `redirect`
/// xattrs; then owner (lchown), mode, ordinary xattrs and mtime
/// (`utimensat(AT_SYMLINK_NOFOLLOW)`). Directory mtimes are set once all
/// children exist, inode flags last of all ([`set_inode_flags`]).
pub fn write_objects(root: &Path, objects: &[Object], markers: &MarkerNames) -> io::Result<()> {
    write_objects_umask(root, objects, markers, None)?;
    set_inode_flags(root, objects)
}

/// Sets the inode flags of `objects` below `root` (FS_IOC_SETFLAGS), the
/// last thing done to a layer: an immutable inode takes no other change
/// (no new entry in a directory, no chown), and an append-only directory
/// no removal.
pub fn set_inode_flags(root: &Path, objects: &[Object]) -> io::Result<()> {
    for o in objects.iter().filter(|o| !o.flags.is_empty()) {
        let rel = o.path.as_string();
        let path = root.join(&rel);
        let fd = sys::openat(
            sys::CWD,
            path_bytes(&path),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
        .map_err(|e| annotate(errno_io(e), "open", &path))?;
        sys::set_iflags(&fd, o.flags.to_fs())
            .map_err(|e| annotate(errno_io(e), "set inode flags of", &path))?;
    }
    Ok(())
}

/// [`write_objects`] but the inode flags, by a process whose umask is known
/// to be `umask` (`None`: unknown); the caller sets the flags when it is
/// done with the layer. Calls that provably change nothing are left out: the
/// `lchown` of an object created with the wanted owner already, the
/// `chmod` of one whose create mode came out exact.
pub fn write_objects_umask(
    root: &Path,
    objects: &[Object],
    markers: &MarkerNames,
    umask: Option<u32>,
) -> io::Result<()> {
    let top = sys::openat(
        sys::CWD,
        path_bytes(root),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| annotate(errno_io(e), "open", root))?;
    let dir = top.as_fd();
    let top_st = sys::fstat(dir).map_err(|e| annotate(errno_io(e), "stat", root))?;
    let (uid, gid) = sys::effective_ids();
    let creator = Creator { uid, gid, umask };
    // Set-gid directories (relative path -> gid): new objects in them take
    // that group, new directories the set-gid bit.
    let mut setgid: HashMap<String, u32> = HashMap::new();
    if top_st.st_mode & libc::S_ISGID != 0 {
        setgid.insert(String::new(), top_st.st_gid);
    }
    for o in objects {
        let rel = o.path.as_string();
        let here = || root.join(&rel);
        let parent_gid = setgid.get(parent_of(&rel)).copied();
        let file = create_object(dir, &rel, o).map_err(|e| annotate(e, "create", &here()))?;
        if matches!(o.kind, ObjectKind::Hardlink(_)) {
            continue;
        }
        let target = Target {
            dir,
            rel: &rel,
            file: file.as_ref().map(|f| f.as_fd()),
            root,
        };
        set_attributes(&target, o, markers, &creator, parent_gid)
            .map_err(|e| annotate(e, "set attributes of", &here()))?;
        if o.kind == ObjectKind::Dir && o.mode & libc::S_ISGID != 0 {
            setgid.insert(rel, o.gid);
        }
    }
    // Default ACLs once every object is made: none of them inherits one
    // (posix_acl_create), as none of the layer's objects says.
    let name = ovlcheck_case::acl::DEFAULT;
    for o in objects.iter().filter(|o| o.kind == ObjectKind::Dir) {
        if let Some(value) = o.xattrs.get(name) {
            let rel = o.path.as_string();
            let path = CString::new(path_bytes(&root.join(&rel)))
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            let value = ovlcheck_case::acl::to_kernel(name.as_bytes(), value);
            sys::setxattr(&path, name.as_bytes(), &value, Follow::No)
                .map_err(|e| annotate(errno_io(e), "set the default ACL of", &root.join(&rel)))?;
        }
    }
    for o in objects.iter().filter(|o| o.kind == ObjectKind::Dir) {
        let rel = o.path.as_string();
        sys::utimensat(dir, rel.as_bytes(), o.mtime, libc::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| annotate(errno_io(e), "set mtime of", &root.join(&rel)))?;
    }
    Ok(())
}

/// The ids and umask new objects are made with.
struct Creator {
    uid: u32,
    gid: u32,
    umask: Option<u32>,
}

/// Where an object is: `rel` below the directory fd `dir` (`root` on
/// disk); `file` is an open fd for regular files.
struct Target<'a> {
    dir: BorrowedFd<'a>,
    rel: &'a str,
    file: Option<BorrowedFd<'a>>,
    root: &'a Path,
}

fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// Creates the object; a regular file stays open for its attributes.
fn create_object(dir: BorrowedFd<'_>, rel: &str, o: &Object) -> io::Result<Option<OwnedFd>> {
    let p = rel.as_bytes();
    let r = match &o.kind {
        ObjectKind::Dir => sys::mkdirat(dir, p, o.mode & 0o7777),
        ObjectKind::File(data) => {
            let fd = sys::openat(
                dir,
                p,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                o.mode & 0o7777,
            )
            .map_err(errno_io)?;
            sys::write_all(&fd, data).map_err(errno_io)?;
            return Ok(Some(fd));
        }
        ObjectKind::Symlink(target) => sys::symlinkat(target, dir, p),
        ObjectKind::Fifo => sys::mknodat(dir, p, sys::FileType::Fifo, o.mode & 0o7777, 0),
        ObjectKind::Whiteout => sys::mknodat(
            dir,
            p,
            sys::FileType::CharacterDevice,
            0,
            sys::makedev(0, 0),
        ),
        ObjectKind::Hardlink(existing) => {
            sys::linkat(dir, existing.as_string().as_bytes(), dir, p, 0)
        }
    };
    r.map(|_| None).map_err(errno_io)
}

fn set_attributes(
    t: &Target,
    o: &Object,
    markers: &MarkerNames,
    creator: &Creator,
    parent_gid: Option<u32>,
) -> io::Result<()> {
    let p = t.rel.as_bytes();
    let is_symlink = matches!(o.kind, ObjectKind::Symlink(_));
    let is_dir = o.kind == ObjectKind::Dir;
    // A new object belongs to the creator's fsuid and fsgid, or to the
    // parent's group when the parent is set-gid.
    if (o.uid, o.gid) != (creator.uid, parent_gid.unwrap_or(creator.gid)) {
        match t.file {
            Some(fd) => sys::fchown(fd, o.uid, o.gid).map_err(errno_io)?,
            None => sys::fchownat(t.dir, p, o.uid, o.gid, libc::AT_SYMLINK_NOFOLLOW)
                .map_err(errno_io)?,
        }
    }
    // chmod unless the create mode came out exact: no set-id or sticky bit
    // (chown clears set-id bits, mkdir ignores them and inherits set-gid
    // from the parent), nothing masked by the umask, and a create mode that
    // was the wanted one (whiteouts are made with mode 0).
    let perm = o.mode & 0o7777;
    let created = if o.kind == ObjectKind::Whiteout {
        0
    } else {
        perm
    };
    let exact = perm & 0o7000 == 0
        && !(is_dir && parent_gid.is_some())
        && creator.umask.is_some_and(|u| created & !u == perm);
    if !is_symlink && !exact {
        match t.file {
            Some(fd) => sys::fchmod(fd, perm).map_err(errno_io)?,
            None => sys::fchmodat(t.dir, p, perm).map_err(errno_io)?,
        }
    }
    let m = &o.markers;
    let prefixed = |short: &str| format!("{}{}", markers.prefix, m.short_name(short));
    // Default ACLs come after every object (`write_objects_umask`).
    let mut xattrs: Vec<Xattr> = o
        .xattrs
        .iter()
        .filter(|(k, _)| *k != ovlcheck_case::acl::DEFAULT)
        .map(|(k, v)| (k.as_bytes().into(), v.as_slice().into()))
        .collect();
    if let Some(ch) = m.opaque {
        let v = ch.to_string().into_bytes();
        xattrs.push((prefixed("opaque").into_bytes().into(), v.into()));
    }
    if let Some(r) = &m.redirect {
        xattrs.push((
            prefixed("redirect").into_bytes().into(),
            r.as_bytes().into(),
        ));
    }
    if m.xwhiteout {
        xattrs.push((prefixed("whiteout").into_bytes().into(), b"".into()));
    }
    if m.metacopy {
        xattrs.push((prefixed("metacopy").into_bytes().into(), b"".into()));
    }
    if !xattrs.is_empty() {
        let path = CString::new(path_bytes(&t.root.join(t.rel)))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        for (name, value) in &xattrs {
            let value = ovlcheck_case::acl::to_kernel(name, value);
            match t.file {
                Some(fd) => sys::fsetxattr(fd, name, &value).map_err(errno_io)?,
                None => sys::setxattr(&path, name, &value, Follow::No).map_err(errno_io)?,
            }
        }
    }
    // An access ACL set the mode from its entries; the object's mode
    // stands, and the ACL takes its bits (ovlcheck_case::layer: the
    // layer's objects say the same).
    if o.xattrs.contains_key(ovlcheck_case::acl::ACCESS) {
        match t.file {
            Some(fd) => sys::fchmod(fd, perm).map_err(errno_io)?,
            None => sys::fchmodat(t.dir, p, perm).map_err(errno_io)?,
        }
    }
    if !is_dir {
        match t.file {
            Some(fd) => sys::futimens(fd, o.mtime).map_err(errno_io)?,
            None => {
                sys::utimensat(t.dir, p, o.mtime, libc::AT_SYMLINK_NOFOLLOW).map_err(errno_io)?
            }
        }
    }
    Ok(())
}

/// An xattr to set: name and value.
type Xattr<'a> = (std::borrow::Cow<'a, [u8]>, std::borrow::Cow<'a, [u8]>);
