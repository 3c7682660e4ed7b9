//! Running one op as another user. A case's `as UID:GID` step runs "without
//! capabilities, so permission checks apply" (case `Cred`). The worker is
//! single-threaded, so it switches its own filesystem credentials around the
//! op: `setgroups([gid])`, `setfsgid(gid)`, `setfsuid(uid)` and an empty
//! effective capability set (permitted kept, so root can come back), each a
//! per-thread syscall (see [`crate::sys`]). The
//! kernel checks DAC permissions against fsuid/fsgid and the supplementary
//! groups (credentials(7)); overlayfs itself does copy-up with the mounter's
//! credentials (`ovl_override_creds`), so only the caller's checks change.

use crate::sys::{self, caps};
use ovlcheck_case::Cred;

/// The credentials the worker had before switching.
#[derive(Debug)]
pub struct Saved {
    effective: u64,
    permitted: u64,
    inheritable: u64,
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
    sys::set_thread_groups(Some(cred.gid))
        .map_err(|e| format!("setgroups([{}]): {e}", cred.gid))?;
    sys::setfsgid(cred.gid);
    sys::setfsuid(cred.uid);
    if sys::setfsgid(u32::MAX) != cred.gid || sys::setfsuid(u32::MAX) != cred.uid {
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
    sys::setfsuid(0);
    sys::setfsgid(0);
    sys::set_thread_groups(None).map_err(|e| format!("setgroups([]): {e}"))?;
    Ok(())
}
