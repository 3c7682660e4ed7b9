//! Mounting a layer stack. The kernel backend follows moby's overlay2 `Get`
//! (docs/architecture.md, "The layer store"): absolute `lowerdir=` paths through the `l/` links
//! when the data fits in a page, otherwise paths relative to the store
//! (`mountFrom`: chdir to the home, then mount), and beyond that — past
//! Docker's 128-layer cap — the new mount API (`fsopen("overlay")`, one
//! `fsconfig(FSCONFIG_SET_STRING, "lowerdir+")` per layer, kernel 6.8+),
//! which takes up to the kernel's 500 lowers.

use crate::sys::newmount;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use ovlcheck_case::{Profile, RedirectDir, Uuid, Xino};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this kernel's overlay takes `lowerdir+` through the new mount
/// API (fs_context parameters, v6.8). True on the host; a guest worker
/// sets it from its probe (docs/vm.md), so that a stack too long for
/// `mount(2)`'s page fails with the reason instead of an opaque errno.
static LAYER_APPEND: AtomicBool = AtomicBool::new(true);

/// Says whether the running kernel's overlay takes `lowerdir+`
/// ([`mount_kernel`] uses it past a page of options).
pub fn set_layer_append(supported: bool) {
    LAYER_APPEND.store(supported, Ordering::Relaxed);
}

/// A page: the most mount data `mount(2)` copies (moby `pageSize`).
pub const PAGE_SIZE: usize = 4096;
/// overlayfs `OVL_MAX_STACK`: the most lower layers of one mount.
pub const OVL_MAX_STACK: usize = 500;

/// What to mount: directories relative to the store home, top lower first.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MountSpec {
    pub lowers: Vec<String>,
    /// Data-only lower layers below `lowers`, top first (`lowerdir=L::D1::D2`,
    /// or `datadir+`; overlayfs.rst: "Data-only lower layers").
    pub data: Vec<String>,
    pub upper: Option<String>,
    pub work: Option<String>,
    pub target: String,
    /// `key=value` or flag options besides the directories.
    pub options: Vec<String>,
}

/// How a kernel mount was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `mount(2)` with absolute paths.
    Absolute,
    /// `mount(2)` with paths relative to the store home (cwd).
    Relative,
    /// `fsopen`/`fsconfig`/`fsmount`/`move_mount`.
    NewApi,
}

/// A failed mount: the errno and what the kernel logged, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountError {
    pub errno: Errno,
    pub detail: String,
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.errno, self.detail)
    }
}

/// The overlay options for `profile`, always explicit so that module
/// parameters (`redirect_dir=N index=N metacopy=N xino_auto=N`) cannot
/// change a case: `redirect_dir=on|follow|off|nofollow`, `index=on|off`,
/// `metacopy=on|off`, `xino=on|off|auto`, `uuid=` when not `auto`, and
/// `volatile` or `fsync=` as the profile gives them. With `userxattr` there is no
/// `metacopy` option, and `redirect_dir` only when the profile sets one
/// (params.c forces nofollow/off and refuses an explicit value other than
/// `nofollow`, as `Profile::validate` does). What
/// `redirect_dir=off` means depends on the module parameter
/// `redirect_always_follow` ([`redirect_off_follows`]).
pub fn kernel_options(profile: &Profile) -> Vec<String> {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut v = Vec::new();
    if profile.userxattr {
        v.push("userxattr".to_string());
    }
    if !profile.userxattr || profile.redirect_dir != RedirectDir::Follow {
        v.push(format!("redirect_dir={}", profile.redirect_dir.as_str()));
    }
    v.push(format!("index={}", on(profile.index)));
    if !profile.userxattr {
        v.push(format!("metacopy={}", on(profile.metacopy)));
    }
    v.push(format!(
        "xino={}",
        match profile.xino {
            Xino::Off => "off",
            Xino::On => "on",
            Xino::Auto => "auto",
        }
    ));
    // Only when not the default: kernels before v6.6 have no uuid option.
    if profile.uuid != Uuid::Auto {
        v.push(format!("uuid={}", profile.uuid.as_str()));
    }
    // Only when given: kernels before v5.10 have no volatile, and fsync=
    // came later (upstream 1f6ee9be92f8, in the 6.12 and 6.18 stable series).
    if profile.volatile {
        v.push("volatile".to_string());
    }
    if let Some(f) = profile.fsync {
        v.push(format!("fsync={}", f.as_str()));
    }
    v
}

/// The module parameter that decides what `redirect_dir=off` is (params.c:
/// `ovl_parse_param`).
pub const REDIRECT_ALWAYS_FOLLOW: &str = "/sys/module/overlay/parameters/redirect_always_follow";

/// Whether this kernel's overlay turns `redirect_dir=off` into `follow`
/// (`redirect_always_follow=Y`, the model's reading of `off`) rather than
/// `nofollow`; `None` when the parameter cannot be read (no overlay module
/// loaded yet, or built without it).
pub fn redirect_off_follows() -> Option<bool> {
    let v = std::fs::read_to_string(REDIRECT_ALWAYS_FOLLOW).ok()?;
    Some(v.trim() == "Y")
}

/// `rel` under `home`; an absolute `rel` (a directory outside the store,
/// such as an engine session's mount point) stays as it is.
fn join_under(home: &Path, rel: &str) -> String {
    if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{}/{rel}", home.display())
    }
}

/// The mount data string with each directory mapped by `dir`.
pub fn mount_data(spec: &MountSpec, dir: impl Fn(&str) -> String) -> String {
    let mut lowerdir = spec
        .lowers
        .iter()
        .map(|l| dir(l))
        .collect::<Vec<_>>()
        .join(":");
    for d in &spec.data {
        lowerdir.push_str("::");
        lowerdir.push_str(&dir(d));
    }
    let mut parts = vec![format!("lowerdir={lowerdir}")];
    if let (Some(u), Some(w)) = (&spec.upper, &spec.work) {
        parts.push(format!("upperdir={}", dir(u)));
        parts.push(format!("workdir={}", dir(w)));
    }
    parts.extend(spec.options.iter().cloned());
    parts.join(",")
}

/// Mounts `spec` with the kernel's overlay; the thread's own cwd
/// ([`crate::sys::own_fs`]) is left at `home`.
pub fn mount_kernel(home: &Path, spec: &MountSpec) -> Result<Method, MountError> {
    let err = |errno: Errno, detail: String| MountError { errno, detail };
    crate::sys::own_fs().map_err(|e| err(e, format!("unshare(CLONE_FS): {e}")))?;
    std::env::set_current_dir(home).map_err(|e| {
        err(
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            format!("chdir {}: {e}", home.display()),
        )
    })?;
    let absolute = mount_data(spec, |d| join_under(home, d));
    let target = join_under(home, &spec.target);
    if absolute.len() < PAGE_SIZE {
        return classic(&target, &absolute)
            .map(|_| Method::Absolute)
            .map_err(|e| err(e, absolute));
    }
    let relative = mount_data(spec, str::to_string);
    if relative.len() < PAGE_SIZE {
        return classic(&spec.target, &relative)
            .map(|_| Method::Relative)
            .map_err(|e| err(e, relative));
    }
    if !LAYER_APPEND.load(Ordering::Relaxed) {
        return Err(err(
            Errno::E2BIG,
            format!(
                "{} layers do not fit in a page of mount options and this kernel's overlay \
                 has no lowerdir+ (v6.8)",
                spec.lowers.len() + spec.data.len()
            ),
        ));
    }
    new_api(spec).map(|_| Method::NewApi)
}

fn classic(target: &str, data: &str) -> Result<(), Errno> {
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data),
    )
}

/// Mounts with the new mount API, paths relative to the cwd (the home).
pub fn new_api(spec: &MountSpec) -> Result<(), MountError> {
    let fs = newmount::fsopen("overlay").map_err(|errno| MountError {
        errno,
        detail: "fsopen(overlay)".into(),
    })?;
    let fail = |errno: Errno, what: String| MountError {
        errno,
        detail: format!("{what}: {}", newmount::messages(&fs).join("; ")),
    };
    for l in &spec.lowers {
        newmount::set_string(&fs, "lowerdir+", l.as_bytes())
            .map_err(|e| fail(e, format!("lowerdir+={l}")))?;
    }
    for d in &spec.data {
        newmount::set_string(&fs, "datadir+", d.as_bytes())
            .map_err(|e| fail(e, format!("datadir+={d}")))?;
    }
    if let (Some(u), Some(w)) = (&spec.upper, &spec.work) {
        newmount::set_string(&fs, "upperdir", u.as_bytes())
            .map_err(|e| fail(e, "upperdir".into()))?;
        newmount::set_string(&fs, "workdir", w.as_bytes())
            .map_err(|e| fail(e, "workdir".into()))?;
    }
    for o in &spec.options {
        let r = match o.split_once('=') {
            Some((k, v)) => newmount::set_string(&fs, k, v.as_bytes()),
            None => newmount::set_flag(&fs, o),
        };
        r.map_err(|e| fail(e, o.clone()))?;
    }
    newmount::create(&fs).map_err(|e| fail(e, "FSCONFIG_CMD_CREATE".into()))?;
    let mnt = newmount::fsmount(&fs).map_err(|e| fail(e, "fsmount".into()))?;
    newmount::move_mount(&mnt, spec.target.as_bytes())
        .map_err(|e| fail(e, format!("move_mount to {}", spec.target)))
}

/// Unmounts `target` (plain `umount2`, lazily if still busy).
pub fn unmount(target: &Path) -> Result<(), Errno> {
    match umount2(target, MntFlags::empty()) {
        Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH),
        r => r,
    }
}

/// Mounts a tmpfs at `target` (`size=` when given).
pub fn mount_tmpfs(target: &Path, size: Option<u64>) -> Result<(), Errno> {
    let mut data = "mode=0755".to_string();
    if let Some(n) = size {
        data.push_str(&format!(",size={n}"));
    }
    mount(
        Some("ovlcheck"),
        target,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
}

/// The mountinfo lines of this process's namespace.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}
