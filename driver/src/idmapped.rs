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
//! A layer owner from [`COUNT`] on cannot be written through a mount: it
//! is stored on disk as `ON_DISK_BASE + id`, which the mounts do not map,
//! through the layer directory as it was before its mount
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

/// The maps of the namespace's child `pid`: inside `ON_DISK_BASE..` is
/// outside `0..`.
fn write_maps(pid: i32) -> io::Result<()> {
    let map = format!("{ON_DISK_BASE} 0 {COUNT}\n");
    let proc = Path::new("/proc").join(pid.to_string());
    std::fs::write(proc.join("uid_map"), &map)?;
    std::fs::write(proc.join("gid_map"), &map)
}

/// Makes `dir` an idmapped bind mount of itself. `dir`'s own owner is set
/// first to the on-disk ids of root, so that through the mount it is
/// root's, as a layer directory is.
pub fn bind(dir: &Path) -> io::Result<()> {
    let ns = userns()?;
    let id = Some(ON_DISK_BASE);
    std::os::unix::fs::chown(dir, id, id)?;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        dir,
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
            | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
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
        return Err(io::Error::last_os_error());
    }
    rustix::mount::move_mount(
        &tree,
        c"",
        rustix::fs::CWD,
        dir,
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
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
/// both ids at `ON_DISK_BASE + id`, then the mode again, since a chown
/// drops the set-id bits.
pub fn store_unmapped(raw: BorrowedFd<'_>, diff: &str, objects: &[Object]) -> io::Result<()> {
    for o in objects.iter().filter(|o| has_unmapped(o)) {
        if matches!(o.kind, ObjectKind::Hardlink(_) | ObjectKind::Whiteout) {
            continue;
        }
        let path = format!("{diff}/{}", o.path.as_string());
        let on_disk = |id: u32| ON_DISK_BASE.saturating_add(id);
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
