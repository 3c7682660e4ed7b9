//! Running one op as another user. A case's `as UID:GID` step runs "without
//! capabilities, so permission checks apply" (case `Cred`). The worker is
//! single-threaded, so it switches its own filesystem credentials around the
//! op: `setgroups([gid])`, `setfsgid(gid)`, `setfsuid(uid)` and an empty
//! effective capability set (permitted kept, so root can come back). The
//! kernel checks DAC permissions against fsuid/fsgid and the supplementary
//! groups (credentials(7)); overlayfs itself does copy-up with the mounter's
//! credentials (`ovl_override_creds`), so only the caller's checks change.

use crate::sys::caps;
use nix::errno::Errno;
use ovlcheck_case::Cred;

/// The credentials the worker had before switching.
#[derive(Debug)]
pub struct Saved {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

fn setgroups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: `groups` is a valid slice of gids for its length.
    let ret = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn setfsuid(uid: u32) -> u32 {
    // SAFETY: plain syscall, no pointers.
    unsafe { libc::setfsuid(uid) as u32 }
}

fn setfsgid(gid: u32) -> u32 {
    // SAFETY: plain syscall, no pointers.
    unsafe { libc::setfsgid(gid) as u32 }
}

/// Switches to `cred` (no-op for root). `setfsuid` reports failure only by
/// not changing the id, so the result is read back; an id that the worker's
/// user namespace does not map fails with `EINVAL`.
pub fn switch(cred: Cred) -> Result<Option<Saved>, String> {
    if cred.is_root() && cred.gid == 0 {
        return Ok(None);
    }
    let (effective, permitted, inheritable) = caps::get().map_err(|e| format!("capget: {e}"))?;
    let saved = Saved {
        effective,
        permitted,
        inheritable,
    };
    setgroups(&[cred.gid]).map_err(|e| format!("setgroups([{}]): {e}", cred.gid))?;
    setfsgid(cred.gid);
    setfsuid(cred.uid);
    if setfsgid(u32::MAX) != cred.gid || setfsuid(u32::MAX) != cred.uid {
        restore(Some(saved))?;
        return Err(format!(
            "cannot run as {}:{}: the id is not mapped in the worker's user namespace (run as root)",
            cred.uid, cred.gid
        ));
    }
    if !cred.is_root() {
        caps::set(0, permitted, inheritable).map_err(|e| format!("capset: {e}"))?;
    }
    Ok(Some(saved))
}

/// Returns to root with the saved capabilities.
pub fn restore(saved: Option<Saved>) -> Result<(), String> {
    let Some(s) = saved else { return Ok(()) };
    caps::set(s.effective, s.permitted, s.inheritable).map_err(|e| format!("capset: {e}"))?;
    setfsuid(0);
    setfsgid(0);
    setgroups(&[]).map_err(|e| format!("setgroups([]): {e}"))?;
    Ok(())
}
