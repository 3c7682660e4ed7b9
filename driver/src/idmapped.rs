//! Idmapped layers (the `idmapped` profile option): every layer directory
//! of a case is an idmapped bind mount of itself (open_tree(2),
//! mount_setattr(2) with `MOUNT_ATTR_IDMAP`, move_mount(2)), as
//! containerd's snapshotter and containers/storage hand idmapped lower
//! layers to the overlay; here the container layer (upper and work dir)
//! is one too, which the overlay also supports.
//!
//! The mounts' idmapping is a user namespace whose `uid_map` and `gid_map`
//! are `ON_DISK_BASE 0 COUNT`: an id `ON_DISK_BASE + n` stored in a layer
//! is seen as `n` through the mount, and an id written through it as `n`
//! is stored as `ON_DISK_BASE + n`. Layers are filled through the mounts,
//! so a case's owners are the ids the overlay shows, and the overlay's own
//! creations, copy-ups and chowns land on disk shifted: what is tested is
//! the overlay's use of each layer's idmapping (`ovl_upper_mnt_idmap`,
//! `mnt_idmap` of each lower path).
//!
//! A worker in a user namespace (`userxattr`, or a harness that is not
//! root) can store only the ids its namespace maps: where that is fewer
//! than `ON_DISK_BASE + COUNT`, as with a rootless user's 65,536
//! subordinate ids, the on-disk base is lowered to fit ([`on_disk_base`]);
//! what the overlay shows does not change.
//!
//! A layer owner from [`COUNT`] on cannot be written through a mount: it
//! is stored on disk as an id the mounts do not map (`base + id`, or below
//! `base` where the namespace has no room), through the layer directory as
//! it was before its mount
//! ([`store_unmapped`]). The overlay then shows the overflow id for it
//! (docs/semantics.md §1.16).

use ovlcheck_case::layer::{Object, ObjectKind};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

pub use ovlcheck_case::profile::{IDMAP_COUNT as COUNT, IDMAP_ON_DISK_BASE as ON_DISK_BASE};

/// `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_IDMAP` (include/uapi/linux/mount.h).
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// The user namespace that carries the mounts' idmapping, made once per
/// worker process.
fn userns() -> io::Result<BorrowedFd<'static>> {
    static NS: OnceLock<OwnedFd> = OnceLock::new();
    if NS.get().is_none() {
        let fd = new_userns()?;
        let _ = NS.set(fd);
    }
    Ok(NS.get().expect("set above").as_fd())
}

/// A new user namespace with the idmapping, held by its fd: a child
/// process unshares it and waits while this one writes its maps
/// (user_namespaces(7)) and opens `/proc/PID/ns/user`; the child then
/// exits, and the fd keeps the namespace.
fn new_userns() -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(io::Error::from)?;
    let (done_r, done_w) = nix::unistd::pipe().map_err(io::Error::from)?;
    // SAFETY: a worker is single-threaded; the child makes only raw
    // syscalls (unshare, write, read, _exit) before it exits.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            // A worker that changed its credentials to enter its user
            // namespace is not dumpable, nor is this child, whose /proc
            // files are then root's of the initial namespace, which the
            // worker cannot write there (proc(5): /proc/PID ownership).
            // SAFETY: prctl(PR_SET_DUMPABLE) takes no pointer.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, &[u8::from(ok)]);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&done_r, &mut b);
            // SAFETY: _exit ends the child without running the parent's
            // exit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut b = [0u8; 1];
            let n = nix::unistd::read(&ready_r, &mut b).map_err(io::Error::from)?;
            let made = if n == 1 && b[0] == 1 {
                write_maps(child.as_raw()).and_then(|()| {
                    std::fs::File::open(format!("/proc/{}/ns/user", child.as_raw()))
                        .map(OwnedFd::from)
                })
            } else {
                Err(io::Error::other(
                    "unshare(CLONE_NEWUSER) failed in the child",
                ))
            };
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            made
        }
    }
}

/// The maps of the namespace's child `pid`: inside `base..` is outside
/// `0..COUNT`, one line for each range of this process's own map that
/// holds those ids (a line's outside ids must lie in one range of the
/// parent's map, user_namespaces(7)).
fn write_maps(pid: i32) -> io::Result<()> {
    let base = on_disk_base()?;
    let proc = Path::new("/proc").join(pid.to_string());
    for file in ["uid_map", "gid_map"] {
        let own = std::fs::read_to_string(Path::new("/proc/self").join(file))?;
        let map = idmapping(&crate::idmap::map_ranges(&own), base);
        std::fs::write(proc.join(file), map)?;
    }
    Ok(())
}

/// The idmapping's map ([`write_maps`]) over `ranges`, this process's own
/// (`(inside, count)`, [`crate::idmap::map_ranges`]).
fn idmapping(ranges: &[(u64, u64)], base: u32) -> String {
    let count = u64::from(COUNT);
    ranges
        .iter()
        .filter(|(start, _)| *start < count)
        .map(|&(start, n)| {
            let n = n.min(count - start);
            format!("{} {start} {n}\n", u64::from(base) + start)
        })
        .collect()
}

/// Where this worker stores the ids a mount shows as `0..COUNT`:
/// [`ON_DISK_BASE`], or lower where this process's user namespace maps
/// fewer ids than `ON_DISK_BASE + COUNT` (both maps must cover the ids
/// stored on disk and the ids shown, user_namespaces(7)).
pub fn on_disk_base() -> io::Result<u32> {
    on_disk().map(|(base, _)| base)
}

/// [`on_disk_base`] and how many ids this process's namespace maps.
fn on_disk() -> io::Result<(u32, u64)> {
    static BASE: OnceLock<Result<(u32, u64), String>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mapped = mapped_here().map_err(|e| format!("reading /proc/self/*id_map: {e}"))?;
        let base = base_within(mapped).ok_or_else(|| {
            format!(
                "idmapped layers need {} ids mapped in the worker's user namespace, it maps {mapped}",
                u64::from(COUNT) + 1
            )
        })?;
        Ok((base, mapped))
    })
    .clone()
    .map_err(io::Error::other)
}

/// Where an id the mounts do not map (`id` from [`COUNT`] on) is stored:
/// at `base + id` where the namespace maps that, else just below the
/// mounts' range (a rootless user's namespace has no room above it).
fn unmapped_on_disk(id: u32, base: u32, mapped: u64) -> u32 {
    let above = u64::from(base) + u64::from(id);
    if above < mapped {
        above as u32
    } else {
        base - 1
    }
}

/// The on-disk base for a namespace that maps ids `0..mapped`: the
/// largest base up to [`ON_DISK_BASE`] that keeps `base + COUNT` mapped,
/// and at least 1, so that some id (0) stays unmapped through the mounts.
fn base_within(mapped: u64) -> Option<u32> {
    let room = mapped.checked_sub(u64::from(COUNT))?;
    let base = room.min(u64::from(ON_DISK_BASE));
    (base >= 1).then_some(base as u32)
}

/// How many ids from 0 on this process's user namespace maps, users and
/// groups alike (`/proc/self/uid_map` and `gid_map`; the initial namespace
/// maps them all).
fn mapped_here() -> io::Result<u64> {
    let mapped = |file: &str| -> io::Result<u64> {
        let map = std::fs::read_to_string(file)?;
        Ok(crate::idmap::mapped_from_zero(&crate::idmap::map_ranges(
            &map,
        )))
    };
    Ok(mapped("/proc/self/uid_map")?.min(mapped("/proc/self/gid_map")?))
}

/// Makes `dir` an idmapped bind mount of itself. `dir`'s own owner is set
/// first to the on-disk ids of root, so that through the mount it is
/// root's, as a layer directory is.
pub fn bind(dir: &Path) -> io::Result<()> {
    let step =
        |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let ns = userns().map_err(step("the idmapping's user namespace"))?;
    let id = Some(on_disk_base()?);
    std::os::unix::fs::chown(dir, id, id).map_err(step("chown"))?;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        dir,
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| step("open_tree")(e.into()))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr(2) reads `size` bytes of `attr`, which lives
    // across the call; the path is a NUL-terminated empty string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(step("mount_setattr")(io::Error::last_os_error()));
    }
    rustix::mount::move_mount(
        &tree,
        c"",
        rustix::fs::CWD,
        dir,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| step("move_mount")(e.into()))?;
    Ok(())
}

/// The layer directory `dir` as it is before its idmapped mount (an
/// `O_PATH` fd, whose paths stay on the filesystem below the mount), for
/// [`store_unmapped`].
pub fn raw_dir(dir: &Path) -> io::Result<OwnedFd> {
    crate::sys::openat(
        crate::sys::CWD,
        dir.as_os_str().as_encoded_bytes(),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(io::Error::from)
}

fn has_unmapped(o: &Object) -> bool {
    o.uid >= COUNT || o.gid >= COUNT
}

/// `objects` as written through a layer's idmapped mount: an owner the
/// mounts do not map is written as root's, for [`store_unmapped`] to set.
pub fn through_mount(objects: &[Object]) -> Vec<Object> {
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if has_unmapped(&o) {
                (o.uid, o.gid) = (0, 0);
            }
            o
        })
        .collect()
}

/// Stores on disk the owners of `objects` that the mounts do not map, below
/// `raw` (the layer directory before its mount, [`raw_dir`]) in `diff`:
/// both ids where `unmapped_on_disk` puts them, then the mode again,
/// since a chown drops the set-id bits.
pub fn store_unmapped(raw: BorrowedFd<'_>, diff: &str, objects: &[Object]) -> io::Result<()> {
    let (base, mapped) = on_disk()?;
    for o in objects.iter().filter(|o| has_unmapped(o)) {
        if matches!(o.kind, ObjectKind::Hardlink(_) | ObjectKind::Whiteout) {
            continue;
        }
        let path = format!("{diff}/{}", o.path.as_string());
        let on_disk = |id: u32| {
            if id < COUNT {
                base + id
            } else {
                unmapped_on_disk(id, base, mapped)
            }
        };
        crate::sys::fchownat(
            raw,
            path.as_bytes(),
            on_disk(o.uid),
            on_disk(o.gid),
            libc::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io::Error::other(format!("chown {path} on disk: {e}")))?;
        if !matches!(o.kind, ObjectKind::Symlink(_)) {
            crate::sys::fchmodat(raw, path.as_bytes(), o.mode & 0o7777)
                .map_err(|e| io::Error::other(format!("chmod {path} on disk: {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_on_disk_base_fits_the_namespace() {
        // The initial namespace, and a root harness's user namespaces.
        assert_eq!(base_within(u64::from(u32::MAX)), Some(ON_DISK_BASE));
        assert_eq!(base_within(1_000_000_000), Some(ON_DISK_BASE));
        // A rootless user's own id and 65,536 subordinate ids.
        assert_eq!(base_within(65_537), Some(1));
        assert_eq!(base_within(65_536), None);
        assert_eq!(base_within(1), None);
        assert_eq!(unmapped_on_disk(70_000, ON_DISK_BASE, 1 << 32), 170_000);
        assert_eq!(unmapped_on_disk(65_536, 1, 65_537), 0);
    }

    #[test]
    fn the_idmapping_follows_the_ranges_of_its_parent() {
        assert_eq!(
            idmapping(&[(0, u64::from(u32::MAX))], ON_DISK_BASE),
            format!("{ON_DISK_BASE} 0 {COUNT}\n")
        );
        assert_eq!(idmapping(&[(0, 1), (1, 65536)], 1), "1 0 1\n2 1 65535\n");
    }
}
