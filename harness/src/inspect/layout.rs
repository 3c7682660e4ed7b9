//! Which kind of store a directory is, told by what it holds
//! (docs/inspect.md, "Stores").

use std::path::{Path, PathBuf};

/// A store kind and the directory its records are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A Docker data-root: `overlay2/` (the driver home) and
    /// `image/overlay2/` (imagedb and layerdb).
    Docker { root: PathBuf },
    /// A driver home alone: `l/` and the layer directories.
    Overlay2 { home: PathBuf },
    /// A containers/storage root (podman, CRI-O, buildah): `overlay/` and
    /// `overlay-layers/`, `overlay-images/`, `overlay-containers/`.
    ContainersStorage { root: PathBuf },
    /// containerd's overlayfs snapshotter directory (`snapshots/N/fs`,
    /// `metadata.db`), given as itself or as the containerd root holding
    /// `io.containerd.snapshotter.v1.overlayfs/`.
    Containerd { root: PathBuf },
}

/// The snapshotter's directory name in a containerd root.
pub const CONTAINERD_OVERLAYFS: &str = "io.containerd.snapshotter.v1.overlayfs";

/// Tells the layout of `dir`; an error is one line naming what was
/// expected.
pub fn detect(dir: &Path) -> Result<Layout, String> {
    let is_dir = |p: &Path| p.is_dir();
    if !is_dir(dir) {
        return Err(format!("{}: not a directory", dir.display()));
    }
    if is_dir(&dir.join("overlay2")) && is_dir(&dir.join("image/overlay2")) {
        return Ok(Layout::Docker {
            root: dir.to_path_buf(),
        });
    }
    if is_dir(&dir.join("overlay")) && is_dir(&dir.join("overlay-layers")) {
        return Ok(Layout::ContainersStorage {
            root: dir.to_path_buf(),
        });
    }
    if is_dir(&dir.join(CONTAINERD_OVERLAYFS).join("snapshots")) {
        return Ok(Layout::Containerd {
            root: dir.join(CONTAINERD_OVERLAYFS),
        });
    }
    if is_dir(&dir.join("snapshots")) && dir.join("metadata.db").is_file() {
        return Ok(Layout::Containerd {
            root: dir.to_path_buf(),
        });
    }
    if is_dir(&dir.join("l")) {
        return Ok(Layout::Overlay2 {
            home: dir.to_path_buf(),
        });
    }
    Err(format!(
        "{}: not a store ovlcheck knows: expected a Docker data-root (overlay2/ and image/overlay2/), \
         an overlay2 folder (l/), a containers/storage root (overlay/ and overlay-layers/) \
         or a containerd root ({CONTAINERD_OVERLAYFS}/snapshots/)",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn each_layout_by_what_it_holds() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        assert!(detect(&d.join("nope")).is_err());
        let e = detect(d).unwrap_err();
        assert!(e.contains("not a store") && !e.contains('\n'), "{e}");
        fs::create_dir_all(d.join("l")).unwrap();
        assert_eq!(detect(d).unwrap(), Layout::Overlay2 { home: d.into() });
        fs::create_dir_all(d.join("snapshots")).unwrap();
        fs::write(d.join("metadata.db"), b"").unwrap();
        assert_eq!(detect(d).unwrap(), Layout::Containerd { root: d.into() });
        fs::create_dir_all(d.join(CONTAINERD_OVERLAYFS).join("snapshots")).unwrap();
        assert_eq!(
            detect(d).unwrap(),
            Layout::Containerd {
                root: d.join(CONTAINERD_OVERLAYFS)
            }
        );
        fs::create_dir_all(d.join("overlay")).unwrap();
        fs::create_dir_all(d.join("overlay-layers")).unwrap();
        assert_eq!(
            detect(d).unwrap(),
            Layout::ContainersStorage { root: d.into() }
        );
        fs::create_dir_all(d.join("overlay2")).unwrap();
        fs::create_dir_all(d.join("image/overlay2")).unwrap();
        assert_eq!(detect(d).unwrap(), Layout::Docker { root: d.into() });
    }
}
