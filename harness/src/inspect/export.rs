//! A container's layers as a `.ovl` case (`ovlcheck inspect DIR --case
//! CONTAINER`; docs/inspect.md, "Exporting a container").
//!
//! The lower layers are the directories the container's read-write layer
//! stacks on, bottom first (Docker's `-init` layer is the top one, a lower
//! layer like any other); the upper is the read-write layer's `diff`. Each
//! layer directory is read into case entries: directories, files with
//! their data, symlinks, fifos, hard links (names of one inode within the
//! layer), whiteouts (char 0/0), modes, owners, mtimes of non-directories,
//! ordinary `user.*` and `trusted.*` xattrs, and the overlay markers
//! `opaque`, `xwhiteouts`, `xwhiteout` and `redirect`. What a case cannot
//! hold is left out with a warning: other devices and sockets,
//! `security.*` and `system.*` xattrs, the data of a file over the case
//! format's 16 MiB, and the layer root's own attributes; the overlay-private
//! xattrs that record history rather than meaning (`origin`, `impure`,
//! `uuid`, `nlink`, ...) are dropped silently. The profile is
//! Docker's overlay2 mount (`Profile::default()`: `index=off`).

use super::{Container, Store};
use ovlcheck_case::layer::Entry;
use ovlcheck_case::text::limits::MAX_FILE_DATA;
use ovlcheck_case::{Case, LayerSpec, Name, Profile, RelPath};
use ovlcheck_driver::sys::{self, Follow};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The overlay xattr namespaces: the kernel's (`trusted.overlay.`) and the
/// one unprivileged mounts use (`user.overlay.`).
pub const OVERLAY_PREFIXES: [&str; 2] = ["trusted.overlay.", "user.overlay."];

/// Every xattr of `path` (not following a symlink), name and value; an
/// unreadable list is empty.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let Ok(names) = sys::listxattr(&c, Follow::No) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| {
            let v = sys::getxattr(&c, &n, Follow::No).ok()?;
            Some((String::from_utf8_lossy(&n).into_owned(), v))
        })
        .collect()
}

/// The overlay-private xattr `short` (`opaque`, `whiteout`, ...) of `path`
/// in either namespace.
pub fn overlay_xattr(path: &Path, short: &str) -> Option<Vec<u8>> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    OVERLAY_PREFIXES
        .iter()
        .find_map(|p| sys::getxattr(&c, format!("{p}{short}").as_bytes(), Follow::No).ok())
}

/// What of a layer directory is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Everything a case can hold, file data included: `--case`.
    Whole,
    /// Files read as empty: the shape of the tree, enough for a table
    /// (`inspect` draws every container without reading every file).
    Shape,
}

/// Reads the layer directory `dir` into a layer spec, with a warning for
/// each thing left out. Errors: `dir` cannot be listed.
pub fn read_layer(dir: &Path) -> Result<(LayerSpec, Vec<String>), String> {
    read_layer_as(dir, Contents::Whole)
}

/// [`read_layer`], with file data only when `contents` is
/// [`Contents::Whole`].
pub fn read_layer_as(dir: &Path, contents: Contents) -> Result<(LayerSpec, Vec<String>), String> {
    let mut r = Reader {
        contents,
        entries: Vec::new(),
        warnings: Vec::new(),
        inodes: HashMap::new(),
        top: dir.to_path_buf(),
    };
    fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(v) = overlay_xattr(dir, "opaque") {
        r.warnings.push(format!(
            "{}: opaque={} on the layer root left out (a case has no entry for a layer's root)",
            dir.display(),
            String::from_utf8_lossy(&v)
        ));
    }
    r.dir(dir, &RelPath::root());
    let mut spec = LayerSpec::new(r.entries);
    // What the case crate still refuses (a marker where overlay ignores
    // it) is dropped one entry at a time.
    for _ in 0..10_000 {
        match spec.objects() {
            Ok(_) => break,
            Err(e) => {
                let bad = spec.entries.remove(e.entry);
                r.warnings.push(format!(
                    "{}: {} left out: {}",
                    dir.join(bad.path().as_string()).display(),
                    entry_word(&bad),
                    e.message
                ));
            }
        }
    }
    Ok((spec, r.warnings))
}

fn entry_word(e: &Entry) -> &'static str {
    match e {
        Entry::Dir { .. } => "directory",
        Entry::File { .. } => "file",
        Entry::Symlink { .. } => "symlink",
        Entry::Hardlink { .. } => "hard link",
        Entry::Fifo { .. } => "fifo",
        Entry::Whiteout { .. } => "whiteout",
        Entry::Opaque { .. } => "opaque marker",
        Entry::XwhiteoutDir { .. } => "xwhiteouts marker",
        Entry::Xwhiteout { .. } => "xattr whiteout",
        Entry::Redirect { .. } => "redirect",
        Entry::Metacopy { .. } => "metacopy marker",
        Entry::Xattr { .. } => "xattr",
        Entry::Owner { .. } => "owner",
        Entry::Mtime { .. } => "mtime",
        Entry::Attr { .. } => "inode flags",
    }
}

struct Reader {
    contents: Contents,
    entries: Vec<Entry>,
    warnings: Vec<String>,
    /// (dev, ino) of each multiply-linked file met, with its first path.
    inodes: HashMap<(u64, u64), RelPath>,
    top: std::path::PathBuf,
}

impl Reader {
    fn warn(&mut self, rel: &RelPath, what: impl std::fmt::Display) {
        self.warnings.push(format!(
            "{}: {what}",
            self.top.join(rel.as_string()).display()
        ));
    }

    /// The entries beneath `dir` (the layer path `rel`), names in byte
    /// order, parents before children.
    fn dir(&mut self, dir: &Path, rel: &RelPath) {
        let mut names: Vec<std::ffi::OsString> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).map(|e| e.file_name()).collect(),
            Err(e) => {
                self.warn(rel, format!("unreadable directory left empty: {e}"));
                return;
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for os in names {
            let p = dir.join(&os);
            let name = match os.to_str().map(Name::new) {
                Some(Ok(n)) => n,
                _ => {
                    self.warnings
                        .push(format!("{}: left out: a case cannot name it", p.display()));
                    continue;
                }
            };
            let child = rel.join(&name);
            self.entry(&p, &child);
        }
    }

    fn entry(&mut self, p: &Path, rel: &RelPath) {
        let m = match fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) => {
                self.warn(rel, format!("left out: {e}"));
                return;
            }
        };
        let ft = m.file_type();
        let mode = m.mode() & 0o7777;
        let path = rel.clone();
        let xattrs = xattrs(p);
        let overlay = |short: &str| {
            xattrs.iter().find_map(|(n, v)| {
                OVERLAY_PREFIXES
                    .iter()
                    .any(|pre| n.strip_prefix(pre) == Some(short))
                    .then(|| v.clone())
            })
        };
        let mut hardlink = false;
        if ft.is_dir() {
            self.entries.push(Entry::Dir {
                path: path.clone(),
                mode,
            });
            match overlay("opaque").as_deref() {
                Some(b"y") => self.entries.push(Entry::Opaque { path: path.clone() }),
                Some(b"x") => self
                    .entries
                    .push(Entry::XwhiteoutDir { path: path.clone() }),
                Some(v) => self.warn(
                    rel,
                    format!(
                        "opaque={} left out (overlay knows y and x)",
                        String::from_utf8_lossy(v)
                    ),
                ),
                None => {}
            }
            if let Some(t) = overlay("redirect") {
                self.entries.push(Entry::Redirect {
                    path: path.clone(),
                    target: String::from_utf8_lossy(&t).into_owned(),
                });
            }
        } else if ft.is_file() {
            if overlay("whiteout").is_some() {
                self.entries.push(Entry::Xwhiteout { path: path.clone() });
            } else if m.nlink() > 1 && self.inodes.contains_key(&(m.dev(), m.ino())) {
                let existing = self.inodes[&(m.dev(), m.ino())].clone();
                self.entries.push(Entry::Hardlink {
                    path: path.clone(),
                    existing,
                });
                hardlink = true;
            } else {
                if m.nlink() > 1 {
                    self.inodes.insert((m.dev(), m.ino()), path.clone());
                }
                let too_big = m.len() > MAX_FILE_DATA;
                if too_big && self.contents == Contents::Whole {
                    self.warn(
                        rel,
                        format!(
                            "{} bytes, over the case format's {MAX_FILE_DATA}: written empty",
                            m.len()
                        ),
                    );
                }
                let data = match self.contents {
                    Contents::Whole if !too_big => fs::read(p),
                    _ => Ok(Vec::new()),
                };
                let data = match data {
                    Ok(d) => d,
                    Err(e) => {
                        self.warn(rel, format!("unreadable file, written empty: {e}"));
                        Vec::new()
                    }
                };
                self.entries.push(Entry::File {
                    path: path.clone(),
                    mode,
                    data,
                });
                if overlay("metacopy").is_some() {
                    self.entries.push(Entry::Metacopy { path: path.clone() });
                }
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(p)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .unwrap_or_default();
            self.entries.push(Entry::Symlink {
                path: path.clone(),
                target,
            });
        } else if ft.is_fifo() {
            self.entries.push(Entry::Fifo {
                path: path.clone(),
                mode,
            });
        } else if ft.is_char_device() && m.rdev() == 0 {
            self.entries.push(Entry::Whiteout { path: path.clone() });
        } else {
            let what = if ft.is_char_device() || ft.is_block_device() {
                format!(
                    "{} device {},{}",
                    if ft.is_char_device() { "char" } else { "block" },
                    major(m.rdev()),
                    minor(m.rdev())
                )
            } else {
                "socket".to_string()
            };
            self.warn(rel, format!("left out: a {what} (a case cannot hold it)"));
            return;
        }
        if hardlink {
            return;
        }
        if (m.uid(), m.gid()) != (0, 0) {
            self.entries.push(Entry::Owner {
                path: path.clone(),
                uid: m.uid(),
                gid: m.gid(),
            });
        }
        let whiteout = ft.is_char_device();
        if !ft.is_dir() && !whiteout {
            self.entries.push(Entry::Mtime {
                path: path.clone(),
                secs: m.mtime(),
            });
        }
        for (n, v) in &xattrs {
            if OVERLAY_PREFIXES.iter().any(|pre| n.starts_with(pre)) {
                continue;
            }
            let user_ok = ft.is_dir() || ft.is_file();
            if (n.starts_with("user.") && user_ok) || n.starts_with("trusted.") {
                self.entries.push(Entry::Xattr {
                    path: path.clone(),
                    name: n.clone(),
                    value: v.clone(),
                });
            } else {
                self.warn(
                    rel,
                    format!("xattr {n} left out (a case holds user.* and trusted.* xattrs)"),
                );
            }
        }
        if ft.is_dir() {
            self.dir(p, rel);
        }
    }
}

fn major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// The case of `container`: its lower layers bottom first and its
/// read-write layer as the upper, with Docker's overlay2 profile and no
/// steps; and the warnings for what was left out.
pub fn container_case(store: &Store, container: &Container) -> Result<(Case, Vec<String>), String> {
    container_case_as(store, container, Contents::Whole)
}

/// [`container_case`], with file data only when `contents` is
/// [`Contents::Whole`].
pub fn container_case_as(
    store: &Store,
    container: &Container,
    contents: Contents,
) -> Result<(Case, Vec<String>), String> {
    let label = if container.name.is_empty() {
        super::short_id(&container.id).to_string()
    } else {
        container.name.clone()
    };
    let upper = container
        .layer
        .as_deref()
        .ok_or_else(|| format!("container {label} has no read-write layer on record"))?;
    let mut warnings = Vec::new();
    let mut lowers = Vec::new();
    for id in &container.lowers {
        let (spec, w) = read_layer_as(&store.diff_path(id), contents)?;
        lowers.push(spec);
        warnings.extend(w);
    }
    let (upper, w) = read_layer_as(&store.diff_path(upper), contents)?;
    warnings.extend(w);
    Ok((
        Case {
            profile: Profile::default(),
            known: Vec::new(),
            data: Vec::new(),
            lowers,
            upper: Some(upper),
            steps: Vec::new(),
        },
        warnings,
    ))
}
