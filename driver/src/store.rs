//! A layer store in the on-disk layout of moby's overlay2 graph driver
//! (`daemon/graphdriver/overlay2/overlay.go`; research notes §1.2):
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
use std::ffi::CString;
use std::fs;
use std::io;
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
}

fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    fs::DirBuilder::new().mode(mode).create(path)?;
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
        })
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
        self.create_named_with(id, parent, &mut |_| Ok(()))
    }

    /// [`LayerStore::create_named`], calling `prepare` on the new `<id>/`
    /// before anything goes into it (e.g. to mount a tmpfs there, so the
    /// layer lives on its own filesystem).
    pub fn create_named_with(
        &mut self,
        id: &str,
        parent: Option<&Layer>,
        prepare: &mut dyn FnMut(&Path) -> io::Result<()>,
    ) -> io::Result<Layer> {
        let dir = self.dir(id);
        mkdir(&dir, 0o710)?;
        prepare(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o710))?;
        mkdir(&dir.join("diff"), 0o755)?;
        let link = self.ids.link_id();
        symlink(
            format!("../{id}/diff"),
            self.home.join(LINK_DIR).join(&link),
        )?;
        write_file(&dir.join("link"), link.as_bytes(), 0o644)?;
        let mut lower = Vec::new();
        if let Some(p) = parent {
            mkdir(&dir.join("work"), 0o700)?;
            write_file(&self.dir(&p.id).join("committed"), b"", 0o600)?;
            lower.push(format!("{LINK_DIR}/{}", p.link));
            lower.extend(p.lower.iter().cloned());
            write_file(&dir.join("lower"), lower.join(":").as_bytes(), 0o644)?;
        }
        Ok(Layer {
            id: id.to_string(),
            link,
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
/// (`utimensat(AT_SYMLINK_NOFOLLOW)`). Directory mtimes are set last, once
/// all children exist.
pub fn write_objects(root: &Path, objects: &[Object], markers: &MarkerNames) -> io::Result<()> {
    for o in objects {
        let path = root.join(o.path.as_string());
        create_object(root, &path, o).map_err(|e| annotate(e, "create", &path))?;
        if matches!(o.kind, ObjectKind::Hardlink(_)) {
            continue;
        }
        set_attributes(&path, o, markers).map_err(|e| annotate(e, "set attributes of", &path))?;
    }
    for o in objects.iter().filter(|o| o.kind == ObjectKind::Dir) {
        let path = root.join(o.path.as_string());
        set_mtime(&path, o.mtime).map_err(|e| annotate(e, "set mtime of", &path))?;
    }
    Ok(())
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn path_bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

fn create_object(root: &Path, path: &Path, o: &Object) -> io::Result<()> {
    let p = path_bytes(path);
    let cwd = libc::AT_FDCWD;
    let r = match &o.kind {
        ObjectKind::Dir => sys::mkdirat(cwd, p, o.mode & 0o7777),
        ObjectKind::File(data) => {
            let fd = sys::openat(
                cwd,
                p,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                o.mode & 0o7777,
            )
            .map_err(errno_io)?;
            sys::write_all(std::os::fd::AsRawFd::as_raw_fd(&fd), data)
        }
        ObjectKind::Symlink(target) => sys::symlinkat(target, cwd, p),
        ObjectKind::Fifo => sys::mknodat(cwd, p, libc::S_IFIFO | (o.mode & 0o7777), 0),
        ObjectKind::Whiteout => sys::mknodat(cwd, p, libc::S_IFCHR, libc::makedev(0, 0)),
        ObjectKind::Hardlink(existing) => {
            let old = root.join(existing.as_string());
            sys::linkat(cwd, path_bytes(&old), cwd, p, 0)
        }
    };
    r.map_err(errno_io)
}

fn set_attributes(path: &Path, o: &Object, markers: &MarkerNames) -> io::Result<()> {
    let p = path_bytes(path);
    let nofollow = libc::AT_SYMLINK_NOFOLLOW;
    sys::fchownat(libc::AT_FDCWD, p, o.uid, o.gid, nofollow).map_err(errno_io)?;
    let is_symlink = matches!(o.kind, ObjectKind::Symlink(_));
    if !is_symlink {
        // After chown, which clears set-id bits.
        sys::fchmodat(libc::AT_FDCWD, p, o.mode & 0o7777).map_err(errno_io)?;
    }
    let c = CString::new(p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    for (name, value) in &o.xattrs {
        sys::setxattr(&c, name.as_bytes(), value, Follow::No).map_err(errno_io)?;
    }
    let m = &o.markers;
    let prefixed = |short: &str| format!("{}{short}", markers.prefix);
    if let Some(ch) = m.opaque {
        let v = ch.to_string();
        sys::setxattr(&c, prefixed("opaque").as_bytes(), v.as_bytes(), Follow::No)
            .map_err(errno_io)?;
    }
    if let Some(r) = &m.redirect {
        sys::setxattr(
            &c,
            prefixed("redirect").as_bytes(),
            r.as_bytes(),
            Follow::No,
        )
        .map_err(errno_io)?;
    }
    if m.xwhiteout {
        sys::setxattr(&c, prefixed("whiteout").as_bytes(), b"", Follow::No).map_err(errno_io)?;
    }
    if o.kind != ObjectKind::Dir {
        set_mtime(path, o.mtime)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    sys::utimensat(
        libc::AT_FDCWD,
        path_bytes(path),
        secs,
        libc::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(errno_io)
}
