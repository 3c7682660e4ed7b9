//! Which profiles each implementation can run, and how. A profile option an
//! implementation does not have is either refused with the reason or turned
//! off in the case's profile, so the model is told the feature is off; it is
//! never passed on and silently ignored (docs/architecture.md, "Adding a
//! backend").

use crate::BackendKind;
use ovlcheck_case::{LowerFs, Profile, RedirectDir, Sysctls, Uuid, Xino};
use std::os::unix::fs::PermissionsExt;

/// The FUSE device a user namespace must be able to open.
const DEV_FUSE: &str = "/dev/fuse";

/// The profile `kind` runs for `profile`, or why it cannot run it. An
/// implementation on the host's kernel runs every case with the host's
/// `fs.protected_*` settings ([`host_sysctls`]): the VFS checks them on
/// any filesystem, and the harness cannot change them for one case
/// without changing them for the whole machine.
pub fn adapt_profile(kind: BackendKind, profile: &Profile) -> Result<Profile, String> {
    let mut p = mount_profile(kind, profile)?;
    if let Some(host) = host_sysctls().filter(|_| !kind.runs_own_sysctls()) {
        p.sysctls = host;
    }
    Ok(p)
}

/// The host's `fs.protected_*` settings (`/proc/sys/fs`), read once;
/// `None` when they cannot be read (a case then keeps its own).
pub fn host_sysctls() -> Option<Sysctls> {
    static HOST: std::sync::OnceLock<Option<Sysctls>> = std::sync::OnceLock::new();
    *HOST.get_or_init(|| {
        let mut s = Sysctls::default();
        for (name, _) in Sysctls::NAMES {
            let v = std::fs::read_to_string(format!("/proc/sys/fs/{name}")).ok()?;
            s.set(name, v.trim()).ok()?;
        }
        Some(s)
    })
}

/// [`adapt_profile`]'s mount options.
fn mount_profile(kind: BackendKind, profile: &Profile) -> Result<Profile, String> {
    if profile.lower_fs == LowerFs::Overlay
        && !matches!(kind, BackendKind::Kernel | BackendKind::Model)
    {
        return Err(format!(
            "lower=overlay (an overlay as the lower layer) is modelled for the host kernel's \
             overlay on both levels only, not for {}",
            kind.name()
        ));
    }
    match kind {
        BackendKind::FuseOverlayfs | BackendKind::Exec if profile.kernel.is_some() => {
            Err(other_kernel(kind, profile))
        }
        BackendKind::FuseOverlayfs => fuse_overlayfs(profile),
        // The host kernel is the one the model follows by default.
        BackendKind::Kernel => {
            if let Some(why) = needs_root(profile) {
                return Err(why);
            }
            if profile.redirect_dir == RedirectDir::Off
                && crate::mount::redirect_off_follows() == Some(false)
            {
                return Err(redirect_off_nofollow());
            }
            Ok(Profile {
                kernel: None,
                ..profile.clone()
            })
        }
        BackendKind::Exec | BackendKind::Model => Ok(profile.clone()),
        BackendKind::Docker | BackendKind::Podman | BackendKind::Containerd => {
            engine(kind, profile)
        }
        BackendKind::Vm => vm(profile),
    }
}

/// A case whose profile names a kernel version (`kernel=6.1`: pinned on
/// that kernel, corpus/versions/) describes that kernel's overlay; an
/// implementation other than a kernel is judged by the host kernel's
/// rules, which the case's pins do not follow.
fn other_kernel(kind: BackendKind, profile: &Profile) -> String {
    let k = profile.kernel.map(|k| k.to_string()).unwrap_or_default();
    format!(
        "the case describes the overlay of kernel {k} (profile kernel={k}); {} is judged by \
         the host kernel's rules",
        kind.name()
    )
}

/// `redirect_dir=off` on a kernel whose `redirect_always_follow` is off:
/// there it is `nofollow`, and the model reads `off` as `follow`.
fn redirect_off_nofollow() -> String {
    format!(
        "redirect_dir=off is nofollow where {} is N; the model reads it as follow \
         (redirect_always_follow=Y): use the nofollow profile",
        crate::mount::REDIRECT_ALWAYS_FOLLOW
    )
}

/// A guest kernel (docs/vm.md): its worker is the guest's init, root in the
/// guest's only user namespace, so it has no user-namespace worker for
/// `userxattr`. What the guest kernel itself lacks is refused by the vm
/// backend from the features the guest reports; the guest's
/// `redirect_always_follow` is not among them, so `redirect_dir=off` is
/// refused.
fn vm(profile: &Profile) -> Result<Profile, String> {
    if profile.redirect_dir == RedirectDir::Off {
        return Err(format!(
            "the guest's redirect_always_follow is not probed: {}",
            redirect_off_nofollow()
        ));
    }
    if profile.userxattr {
        return Err(
            "the vm backend's worker is the guest's init and runs no user-namespace \
                    worker, which the userxattr profile needs"
                .into(),
        );
    }
    Ok(profile.clone())
}

/// A container engine mounts with options of its own (moby overlay2 `Get`:
/// `index=off` and nothing else; containers/storage's overlay `get`:
/// nothing without a storage.conf `mountopt`, docs/engines.md, "podman";
/// containerd's overlayfs snapshotter: `index=off`), so
/// the overlay module's defaults decide the rest, on one filesystem,
/// always with an upper layer: that is [`engine_profile`], and only that.
fn engine(kind: BackendKind, profile: &Profile) -> Result<Profile, String> {
    let own = Profile {
        sysctls: profile.sysctls,
        ..engine_profile(kind)
    };
    if *profile == own {
        Ok(own)
    } else {
        Err(format!(
            "{} mounts its own way (its driver's options, the overlay module's defaults): only the \
             {} profile describes it",
            kind.name(),
            own.preset_name().unwrap_or("default")
        ))
    }
}

/// The overlay module's default `redirect_dir` (a kernel built with
/// `CONFIG_OVERLAY_FS_REDIRECT_DIR`, or `redirect_dir=Y` given to the
/// module), which a mount without the option gets.
pub const MODULE_REDIRECT_DIR: &str = "/sys/module/overlay/parameters/redirect_dir";

/// The profile of a container engine's mounts: the `default` preset; for
/// Docker, `redirect` where the overlay module turns `redirect_dir` on by
/// default ([`MODULE_REDIRECT_DIR`], read once): Docker passes no
/// `redirect_dir` option, and its overlay2 driver then diffs naively (moby
/// overlay2 check.go `doesSupportNativeDiff`; docs/engines.md, "The naive
/// differ"). The engine backends refuse the module defaults their profile
/// does not follow.
pub fn engine_profile(kind: BackendKind) -> Profile {
    let preset = match kind == BackendKind::Docker && module_redirect_dir_on() {
        true => "redirect",
        false => "default",
    };
    Profile::preset(preset).expect("the default and redirect presets exist")
}

/// Whether the overlay module turns `redirect_dir` on by default
/// ([`MODULE_REDIRECT_DIR`], read once).
fn module_redirect_dir_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::fs::read_to_string(MODULE_REDIRECT_DIR).is_ok_and(|v| v.trim() == "Y"))
}

/// fuse-overlayfs (its `-o` options: lowerdir, upperdir, workdir and
/// options of its own; none of the kernel's redirect_dir, index, metacopy
/// or xino).
fn fuse_overlayfs(profile: &Profile) -> Result<Profile, String> {
    let refuse = |what: &str| Err(format!("fuse-overlayfs has no {what} option"));
    if profile.metacopy {
        return refuse("metacopy");
    }
    if profile.index {
        return refuse("index");
    }
    if profile.xino != Xino::Off {
        return refuse("xino");
    }
    if profile.upper_size.is_some() {
        // A FUSE file is released asynchronously, so the space of a
        // copy-up's temporary file comes back at a time of the kernel's
        // choosing: a copy-up that fills the upper gave ENOSPC in one
        // replay in ten under load (corpus/regressions/
        // enospc-copy-up-is-atomic.ovl), which no model can predict.
        return Err("fuse-overlayfs on a full upper gives ENOSPC at steps that depend on                     when FUSE releases files, so the enospc profile cannot be judged"
            .into());
    }
    if profile.userxattr {
        let mode = std::fs::metadata(DEV_FUSE)
            .map(|m| m.permissions().mode() & 0o777)
            .map_err(|e| format!("{DEV_FUSE}: {e}"))?;
        if mode & 0o006 != 0o006 {
            return Err(format!(
                "fuse-overlayfs in a user namespace (the userxattr profile) must open \
                 {DEV_FUSE}, which is mode {mode:04o} here: it needs mode 0666, as udev \
                 sets it on distributions where rootless containers run"
            ));
        }
    }
    if profile.redirect_dir == RedirectDir::NoFollow {
        return refuse("redirect_dir=nofollow");
    }
    if profile.uuid != Uuid::Auto {
        return refuse("uuid");
    }
    if profile.fsync.is_some() {
        // Its `fsync=` takes a number (observed with 1.10: `fsync=0`
        // mounts, `fsync=strict` is an "invalid parameter").
        return Err(
            "fuse-overlayfs has no fsync=auto|strict|volatile option (its fsync= takes a number)"
                .into(),
        );
    }
    if profile.volatile {
        // Observed with 1.10: `-o volatile` mounts, leaves no
        // work/incompat/volatile and mounts the same upper again, so the
        // kernel's refusal of the next mount, which every case's remount
        // checks, does not apply.
        return Err(
            "fuse-overlayfs's volatile only skips syncs: it leaves no work/incompat/volatile \
             and mounts the same upper again, so the kernel's volatile (a remount refused with \
             EINVAL) cannot be judged on it"
                .into(),
        );
    }
    let mut p = profile.clone();
    // No redirect_dir=on: renaming a directory that has lower layers gives
    // EXDEV, as the kernel's redirect_dir=follow does.
    p.redirect_dir = RedirectDir::Follow;
    Ok(p)
}

/// Why a harness that is not root cannot run `profile`: its overlay
/// xattrs are `trusted.overlay.*`, which need CAP_SYS_ADMIN in the initial
/// user namespace (overlayfs.rst, "User xattr"); `userxattr`, which an
/// unprivileged user mounts in its own namespace, is the exception. The
/// `idmapped` option in a user-namespace worker needs the namespace to map
/// the ids the mounts show and some to store them as
/// (driver/src/idmapped.rs: `on_disk_base`): a subordinate range of
/// [`ovlcheck_case::profile::IDMAP_COUNT`] ids does. `None` where the
/// profile can run.
pub fn needs_root(profile: &Profile) -> Option<String> {
    let root = nix::unistd::geteuid().is_root();
    if !root && !profile.userxattr {
        return Some(
            "needs root (trusted.overlay xattrs need CAP_SYS_ADMIN in the initial user namespace); \
             an unprivileged user runs the userxattr profile"
                .to_string(),
        );
    }
    let map = crate::idmap::IdMap::current();
    let few = map.mapped() <= ovlcheck_case::profile::IDMAP_COUNT;
    (profile.idmapped && in_user_namespace(profile) && few).then(|| {
        format!(
            "idmapped layers in a user namespace need {} ids mapped, to show ids 0-{} and \
             store them as others ({})",
            u64::from(ovlcheck_case::profile::IDMAP_COUNT) + 1,
            ovlcheck_case::profile::IDMAP_COUNT - 1,
            map.describe()
        )
    })
}

/// Why a worker cannot build `case`'s layers, when they give inodes the
/// immutable or append-only flag and the worker runs in a user namespace:
/// setting those needs CAP_LINUX_IMMUTABLE in the initial one
/// (fileattr_set_prepare).
pub fn protected_flags(case: &ovlcheck_case::Case) -> Option<String> {
    use ovlcheck_case::{Entry, InodeFlags};
    if !in_user_namespace(&case.profile) {
        return None;
    }
    case.layer_entries().find_map(|e| match e {
        Entry::Attr { path, flags } if flags.intersects(InodeFlags::PROTECTED) => Some(format!(
            "`{path}` is given inode flags {flags}: immutable and append-only need \
             CAP_LINUX_IMMUTABLE, which a worker in a user namespace lacks"
        )),
        _ => None,
    })
}

/// Whether a worker runs `profile`'s cases in a user namespace of its
/// own: `userxattr` cases always do, and everything does when the harness
/// is not root.
pub fn in_user_namespace(profile: &Profile) -> bool {
    profile.userxattr || !nix::unistd::geteuid().is_root()
}

/// Why `kind` cannot read the layers of `case`, if it cannot:
/// fuse-overlayfs has neither metacopy nor redirects, and reads a layer's
/// metacopy file (`overlay.metacopy`) as a plain file, its own size and
/// data instead of the data below, and a redirected directory
/// (`overlay.redirect`) as a plain one; it does not honour inode flags
/// (observed with 1.10; corpus/known-fuse-overlayfs/README.md).
pub fn unreadable_layers(kind: BackendKind, case: &ovlcheck_case::Case) -> Option<String> {
    use ovlcheck_case::Entry;
    if kind == BackendKind::Exec {
        return has_inode_flags(case).then(|| {
            "inode flags are observed through the kernel's overlay only: on a FUSE filesystem \
             FS_IOC_GETFLAGS makes the daemon open the file itself, which can block the walk \
             (driver/src/observe.rs: merged_view)"
                .to_string()
        });
    }
    if kind != BackendKind::FuseOverlayfs {
        return None;
    }
    let unmapped = |id: u32| case.profile.unmapped(id);
    case.marking_entries()
        .find_map(|e| match e {
            Entry::Owner { path, uid, gid } if unmapped(*uid) || unmapped(*gid) => Some(format!(
                "fuse-overlayfs does not honour an owner the idmapped layers' mounts do not map \
             ({path}): it writes, changes and copies up such an entry as root, translating its \
             owner to 65534 (corpus/known-fuse-overlayfs/README.md)"
            )),
            Entry::Metacopy { path } => Some(format!(
                "fuse-overlayfs has no metacopy: it reads metacopy file {path} of the layers \
                 as a plain file"
            )),
            Entry::Redirect { path, .. } => Some(format!(
                "fuse-overlayfs follows no redirect: it reads redirected directory {path} of \
                 the layers as a plain one"
            )),
            Entry::Attr { path, flags } => {
                Some(format!("{path} has inode flags {flags}: {NO_FLAGS}"))
            }
            _ => None,
        })
        .or_else(|| {
            has_inode_flags(case).then(|| format!("the case sets inode flags (chattr): {NO_FLAGS}"))
        })
}

/// Why `kind` cannot run `case`'s data-only layers, if it has some: the
/// kernel's overlay has them as the model does from v6.16 on
/// ([`ovlcheck_case::profile::DATA_ONLY_SINCE`]); fuse-overlayfs has no
/// such layers, and an `exec` mount command is given `{lowerdir}` only.
pub fn data_only_layers(kind: BackendKind, case: &ovlcheck_case::Case) -> Option<String> {
    use ovlcheck_case::profile::DATA_ONLY_SINCE;
    if case.data.is_empty() {
        return None;
    }
    match kind {
        BackendKind::Kernel | BackendKind::Vm | BackendKind::Model => {
            let k = case.profile.kernel.filter(|k| *k < DATA_ONLY_SINCE)?;
            Some(format!(
                "kernel {k}: the model has data-only layers as kernel {DATA_ONLY_SINCE} and later \
                 have them (a metacopy file of the lowest layer redirects into them without \
                 metacopy=on)"
            ))
        }
        BackendKind::FuseOverlayfs => Some("fuse-overlayfs has no data-only layers".into()),
        BackendKind::Exec => Some(
            "an exec mount command is given {lowerdir} only: it has no data-only layers".into(),
        ),
        BackendKind::Docker | BackendKind::Podman | BackendKind::Containerd => Some(format!(
            "{} images have no data-only layers (a layer tar is an ordinary layer)",
            kind.name()
        )),
    }
}

/// Whether `case` gives inodes flags: in its layers (`attr`) or with a
/// `chattr` step.
fn has_inode_flags(case: &ovlcheck_case::Case) -> bool {
    case.layer_entries()
        .any(|e| matches!(e, ovlcheck_case::Entry::Attr { .. }))
        || case
            .steps
            .iter()
            .any(|s| matches!(s.op, ovlcheck_case::Op::Chattr { .. }))
}

/// What fuse-overlayfs does with inode flags (observed with 1.10;
/// corpus/known-fuse-overlayfs/README.md, "Inode flags").
const NO_FLAGS: &str = "fuse-overlayfs does not honour inode flags: it writes, changes and \
     removes immutable and append-only files, drops every flag at copy-up, and answers \
     FS_IOC_SETFLAGS with ENOTTY";

/// Why a case of the `idmapped` profile cannot be laid out or judged, if
/// it cannot (driver/src/idmapped.rs): its steps' credentials and `chown`
/// targets must be ids the mounts map (the model does not predict the
/// EOVERFLOW of an id the upper's mount cannot store), and an entry whose
/// owner the mounts do not map can carry no file capability (storing that
/// owner on disk is a chown, which drops it).
pub fn idmapped_case(case: &ovlcheck_case::Case) -> Option<String> {
    use ovlcheck_case::profile::IDMAP_COUNT;
    use ovlcheck_case::Entry;
    if !case.profile.idmapped {
        return None;
    }
    let out = |id: u32| id >= IDMAP_COUNT;
    if let Some(what) = step_id(case, &out) {
        return Some(format!(
            "{what} is not mapped by the idmapped layers' mounts (ids below {IDMAP_COUNT})"
        ));
    }
    case.lowers.iter().chain(&case.upper).find_map(|layer| {
        let unmapped: Vec<_> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Owner { path, uid, gid } if out(*uid) || out(*gid) => Some(path),
                _ => None,
            })
            .collect();
        layer.entries.iter().find_map(|e| match e {
            Entry::Xattr { path, name, .. }
                if name == "security.capability" && unmapped.contains(&path) =>
            {
                Some(format!(
                    "{path} has an owner the idmapped layers' mounts do not map and a file \
                     capability, which storing that owner on disk would drop"
                ))
            }
            _ => None,
        })
    })
}

/// The first id a step of `case` names for which `out` holds: its
/// credentials or a `chown` target, said as a reason.
fn step_id(case: &ovlcheck_case::Case, out: &dyn Fn(u32) -> bool) -> Option<String> {
    use ovlcheck_case::Op;
    case.steps.iter().find_map(|s| match (&s.cred, &s.op) {
        (Some(c), _) if out(c.uid) || out(c.gid) => {
            Some(format!("the credentials {}:{} of a step", c.uid, c.gid))
        }
        (_, Op::Chown { uid, gid, .. }) if out(*uid) || out(*gid) => {
            Some(format!("the chown target {uid}:{gid}"))
        }
        _ => None,
    })
}

/// The first id a POSIX ACL value names that `out` rejects.
fn acl_id(name: &str, value: &[u8], out: &impl Fn(u32) -> bool) -> Option<u32> {
    if !ovlcheck_case::acl::is_acl_name(name) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    ovlcheck_case::acl::Acl::parse(text)
        .ok()?
        .ids()
        .find(|id| out(*id))
}

/// The first id `case` needs that a user namespace mapping inside ids
/// `[0, mapped)` lacks (a layer entry's owner, a step's credentials, a
/// `chown` target, an id a POSIX ACL names), as the reason the case cannot
/// run there.
pub fn unmapped_id(case: &ovlcheck_case::Case, mapped: u32) -> Option<String> {
    use ovlcheck_case::Entry;
    let out = |id: u32| id >= mapped && id != u32::MAX;
    let owners = case.layer_entries().find_map(|e| match e {
        Entry::Owner { path, uid, gid } if out(*uid) || out(*gid) => {
            Some(format!("the owner {uid}:{gid} of {path}"))
        }
        Entry::Xattr { path, name, value } => {
            acl_id(name, value, &out).map(|id| format!("the id {id} in the ACL of {path}"))
        }
        _ => None,
    });
    let acls = || {
        case.steps.iter().find_map(|s| match &s.op {
            ovlcheck_case::Op::Setxattr { name, value, .. } => {
                acl_id(name, value, &out).map(|id| format!("the id {id} in a step's ACL"))
            }
            _ => None,
        })
    };
    owners
        .or_else(|| step_id(case, &out))
        .or_else(acls)
        .map(|what| {
            format!(
                "{what} is not mapped in this user's user namespace ({})",
                crate::idmap::IdMap::current().describe()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_overlayfs_refuses_or_turns_off_what_it_lacks() {
        // As a backend on the host's kernel runs it: with the host's sysctls.
        let p = |name: &str| Profile {
            sysctls: host_sysctls().unwrap_or_default(),
            ..Profile::preset(name).unwrap()
        };
        let fuse = |name: &str| adapt_profile(BackendKind::FuseOverlayfs, &p(name));
        assert_eq!(fuse("default"), Ok(p("default")));
        assert_eq!(
            fuse("redirect"),
            Ok(p("default")),
            "redirect_dir turned off"
        );
        for name in ["metacopy", "index", "xino"] {
            let e = fuse(name).unwrap_err();
            assert!(e.contains("no ") && e.contains("option"), "{name}: {e}");
        }
        for name in ["xdev", "readonly"] {
            assert_eq!(fuse(name), Ok(p(name)));
        }
        assert!(fuse("enospc").unwrap_err().contains("full upper"));
        assert_eq!(
            adapt_profile(BackendKind::Kernel, &p("redirect")),
            Ok(p("redirect"))
        );
        let mut old = p("default");
        old.set_option("kernel=6.1").unwrap();
        assert_eq!(adapt_profile(BackendKind::Kernel, &old), Ok(p("default")));
        assert!(adapt_profile(BackendKind::FuseOverlayfs, &old)
            .unwrap_err()
            .contains("kernel 6.1"));
        assert_eq!(adapt_profile(BackendKind::Model, &old), Ok(old.clone()));
        assert!(adapt_profile(BackendKind::Vm, &p("userxattr")).is_err());
        assert!(adapt_profile(BackendKind::Vm, &p("redirect-off"))
            .unwrap_err()
            .contains("redirect_always_follow"));
        assert!(fuse("nofollow")
            .unwrap_err()
            .contains("no redirect_dir=nofollow"));
        assert_eq!(fuse("redirect-off"), Ok(p("default")));
        assert!(fuse("uuid-off").unwrap_err().contains("no uuid option"));
        assert!(fuse("volatile")
            .unwrap_err()
            .contains("cannot be judged on it"));
        let mut strict = p("default");
        strict.set_option("fsync=strict").unwrap();
        assert!(fuse_overlayfs(&strict)
            .unwrap_err()
            .contains("no fsync=auto|strict|volatile option"));
    }

    #[test]
    fn a_case_runs_with_the_host_sysctls_on_the_host_and_its_own_elsewhere() {
        let host = host_sysctls().expect("/proc/sys/fs is readable");
        let mut own = Profile::preset("default").unwrap();
        own.sysctls.protected_symlinks = 1 - host.protected_symlinks;
        own.sysctls.protected_regular = 2;
        for kind in [
            BackendKind::Kernel,
            BackendKind::FuseOverlayfs,
            BackendKind::Exec,
            BackendKind::Docker,
        ] {
            let adapted = adapt_profile(kind, &own).unwrap();
            assert_eq!(adapted.sysctls, host, "{kind:?}");
            assert_eq!(
                Profile {
                    sysctls: own.sysctls,
                    ..adapted
                },
                own,
                "{kind:?}: nothing else changes"
            );
        }
        for kind in [BackendKind::Model, BackendKind::Vm] {
            assert_eq!(adapt_profile(kind, &own).unwrap().sysctls, own.sysctls);
        }
    }

    #[test]
    fn data_only_layers_run_on_kernels_that_have_them_as_the_model_does() {
        let mut case: ovlcheck_case::Case = ovlcheck_case::parse_case(
            "t.ovl",
            "data\n  file o/a 0644 \"d\"\nlower\n  file f 0644 \"\"\nops\n",
        )
        .unwrap();
        for kind in [BackendKind::Kernel, BackendKind::Vm, BackendKind::Model] {
            assert_eq!(data_only_layers(kind, &case), None, "{kind:?}");
        }
        for kind in [
            BackendKind::FuseOverlayfs,
            BackendKind::Exec,
            BackendKind::Docker,
            BackendKind::Podman,
            BackendKind::Containerd,
        ] {
            assert!(data_only_layers(kind, &case).is_some(), "{kind:?}");
        }
        case.profile.set_option("kernel=6.1").unwrap();
        let why = data_only_layers(BackendKind::Vm, &case).unwrap();
        assert!(why.contains("kernel 6.1") && why.contains("6.16"), "{why}");
        case.profile.set_option("kernel=6.16").unwrap();
        assert_eq!(data_only_layers(BackendKind::Vm, &case), None);
        case.data.clear();
        case.profile.set_option("kernel=6.1").unwrap();
        assert_eq!(data_only_layers(BackendKind::FuseOverlayfs, &case), None);
    }
}
