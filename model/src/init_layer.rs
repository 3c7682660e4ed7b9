//! Docker's `-init` layer, made again over a committed image. Every
//! container gets one between its image and its container layer; Docker
//! makes it by mounting a fresh layer over the image and running moby's
//! `initlayer.Setup` in that mount (docs/engines.md, "What Docker does
//! that the model is told"). So over an image that already has one of its
//! directories, the `-init` layer holds that directory copied up, with
//! the image's mode and owner, not a new one: the model runs the same
//! steps through its own overlay.

use crate::Model;
use ovlcheck_case::layer::DEFAULT_MTIME;
use ovlcheck_case::{Errno, Op, OpPath, Outcome, Step};

/// What moby's `initlayer.Setup` makes, and of which kind.
#[derive(Clone, Copy)]
enum Made {
    Dir,
    File,
    Symlink(&'static str),
}

/// The paths of moby daemon/initlayer/setup_unix.go, `Setup`.
const SETUP: [(&str, Made); 10] = [
    ("dev/pts", Made::Dir),
    ("dev/shm", Made::Dir),
    ("proc", Made::Dir),
    ("sys", Made::Dir),
    (".dockerenv", Made::File),
    ("etc/resolv.conf", Made::File),
    ("etc/hosts", Made::File),
    ("etc/hostname", Made::File),
    ("dev/console", Made::File),
    ("etc/mtab", Made::Symlink("/proc/mounts")),
];

/// The mode `Setup` gives what it makes (`MkdirAllAndChownNew(..., 0755)`,
/// `os.OpenFile(..., O_CREATE, 0755)`; dockerd's umask is 022).
const MODE: u32 = 0o755;

impl Model {
    /// This model, mounted on a committed image's layers with an empty
    /// upper layer, with Docker's `-init` layer made in that upper and
    /// rotated below a fresh container layer: the stack of a container
    /// created on the image.
    pub(crate) fn with_docker_init(&self) -> Model {
        let mut m = self.clone();
        for (path, made) in SETUP {
            m = m.setup_path(path, made);
        }
        m = m.commit();
        let init = m.lowers.len() - 1;
        let layer = &mut std::sync::Arc::make_mut(&mut m.lowers)[init];
        // The driver sets the mtime of every non-directory of an `-init`
        // layer to DEFAULT_MTIME (engine/src/api.rs, `normalize_init`).
        let files: Vec<_> = layer
            .inodes
            .iter()
            .filter(|(_, i)| !i.is_dir())
            .map(|(ino, _)| *ino)
            .collect();
        for ino in files {
            let inode = layer.get_mut(ino);
            inode.mtime = Some(DEFAULT_MTIME);
            inode.clock_here = false;
        }
        m
    }

    /// One path of `Setup`: every component unlinked (which removes a
    /// non-directory and fails on a directory), then, when the path is
    /// not there, its parents made where missing and the path itself.
    fn setup_path(&self, path: &str, made: Made) -> Model {
        let names: Vec<&str> = path.split('/').collect();
        let prefixes: Vec<String> = (1..=names.len()).map(|n| names[..n].join("/")).collect();
        let mut m = self.clone();
        for p in &prefixes {
            m = m.step(&op(Op::Unlink { path: at(p) })).1;
        }
        let (stat, next) = m.step(&op(Op::Stat { path: at(path) }));
        m = next;
        if stat != Outcome::Err(Errno::ENOENT) {
            return m;
        }
        for p in &prefixes[..prefixes.len() - 1] {
            m = m
                .step(&op(Op::Mkdir {
                    path: at(p),
                    mode: MODE,
                }))
                .1;
        }
        let last = at(path);
        let make = match made {
            Made::Dir => Op::Mkdir {
                path: last,
                mode: MODE,
            },
            Made::File => Op::Create {
                path: last,
                mode: MODE,
                excl: false,
                trunc: false,
            },
            Made::Symlink(target) => Op::Symlink {
                target: target.as_bytes().to_vec(),
                path: last,
            },
        };
        m.step(&op(make)).1
    }
}

fn op(op: Op) -> Step {
    Step::new(op)
}

fn at(path: &str) -> OpPath {
    OpPath::parse(path).expect("Setup's paths are valid")
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};
    use ovlcheck_case::View;

    /// The stack of a container of the image `lowers` (case text): its
    /// `-init` layer made over the image, then a fresh container layer.
    fn container_of(lowers: &str) -> crate::Model {
        // An empty changeset, applied: the image gains an empty layer.
        let image = model(&format!("{lowers}lower\n"));
        image
            .exported_beneath(&View::default(), true)
            .expect("applies")
    }

    #[test]
    fn over_an_empty_image_setup_makes_every_path() {
        let mut m = container_of("lower\n  file a 0644 \"a\"\n");
        assert_eq!(
            run(&mut m, "readdir ."),
            "[\".dockerenv\", \"a\", \"dev\", \"etc\", \"proc\", \"sys\"]"
        );
        assert_eq!(
            run(&mut m, "readdir dev"),
            "[\"console\", \"pts\", \"shm\"]"
        );
        // Made in the -init layer alone: its own link count.
        assert_eq!(run(&mut m, "stat etc"), "{dir 0755 0:0 size=0 nlink=2}");
        assert_eq!(
            run(&mut m, "lstat etc/hosts"),
            "{file 0755 0:0 size=0 nlink=1}"
        );
        assert_eq!(run(&mut m, "readlink etc/mtab"), "\"/proc/mounts\"");
    }

    #[test]
    fn a_directory_of_the_image_is_copied_up_not_made() {
        let mut m = container_of(
            "lower\n  dir etc 0700\n  file etc/hosts 0600 \"mine\"\n  dir proc 0500\n",
        );
        // Copied up to make files in it: a merged directory.
        assert_eq!(run(&mut m, "stat etc"), "{dir 0700 0:0 size=0 nlink=1}");
        // There already: not made at all.
        assert_eq!(run(&mut m, "stat proc"), "{dir 0500 0:0 size=0 nlink=2}");
        // A file of the image at one of its names is replaced.
        assert_eq!(run(&mut m, "read etc/hosts"), "\"\"");
        assert_eq!(
            run(&mut m, "lstat etc/hosts"),
            "{file 0755 0:0 size=0 nlink=1}"
        );
    }

    #[test]
    fn a_file_where_setup_wants_a_directory_is_replaced() {
        let mut m = container_of("lower\n  file dev 0644 \"x\"\n");
        // Made over the file's whiteout: an opaque directory of its own.
        assert_eq!(run(&mut m, "stat dev"), "{dir 0755 0:0 size=0 nlink=4}");
        assert_eq!(
            run(&mut m, "readdir dev"),
            "[\"console\", \"pts\", \"shm\"]"
        );
    }
}
