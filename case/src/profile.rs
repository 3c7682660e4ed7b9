//! Mount profiles: the overlay options that change semantics. Version- or
//! option-dependent behaviour is a switch here, never an `if` scattered
//! through the model (docs/architecture.md, "Profiles").

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the lower layers live relative to the upper layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LowerFs {
    /// All layers on one filesystem ("samefs"): overlay reports the origin's
    /// st_ino and its own st_dev for everything (overlayfs.rst: inode properties).
    #[default]
    Same,
    /// Lower layers on another filesystem than the upper (non-samefs).
    Separate,
    /// The lower layers are a read-only overlay of their own, mounted on
    /// the store's filesystem, and that overlay is the only lower layer of
    /// the case's mount (overlayfs.rst: "Nesting overlayfs mounts"; an
    /// overlay as the lower of another, as composefs and containers inside
    /// containers stack them).
    Overlay,
}

/// `redirect_dir=` (overlayfs.rst: "Redirect dir"; params.c:
/// `ovl_parameter_redirect_dir`). What the model makes of each is
/// `model/src/features.rs`'s `RedirectMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum RedirectDir {
    /// `redirect_dir=follow`: redirects are followed, never made (Docker's
    /// overlay2 mounts with the module's default, which is this one on
    /// kernels built with `CONFIG_OVERLAY_FS_REDIRECT_ALWAYS_FOLLOW=y`).
    #[default]
    Follow,
    /// `redirect_dir=on`: made on directory rename and followed.
    On,
    /// `redirect_dir=off`: never made; params.c (`ovl_parse_param`) turns it
    /// into `follow` when the module parameter `redirect_always_follow` is
    /// set, as on this host, else into `nofollow`.
    Off,
    /// `redirect_dir=nofollow`: never made, and a redirect found on disk
    /// makes lookup fail (namei.c: `ovl_lookup`).
    NoFollow,
}

impl RedirectDir {
    /// The option's value as the kernel spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectDir::Follow => "follow",
            RedirectDir::On => "on",
            RedirectDir::Off => "off",
            RedirectDir::NoFollow => "nofollow",
        }
    }
}

/// `uuid=` (overlayfs.rst: "UUID and fsid"; params.c: `ovl_parameter_uuid`,
/// v6.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Uuid {
    /// `uuid=auto`, the default: a persistent uuid in `overlay.uuid` on the
    /// upper root of a new overlay.
    #[default]
    Auto,
    /// `uuid=on`: a persistent uuid, written if missing.
    On,
    /// `uuid=null`: no uuid; the upper filesystem's fsid.
    Null,
    /// `uuid=off`: as null, and file handles carry a null uuid.
    Off,
}

impl Uuid {
    /// The option's value as the kernel spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Uuid::Auto => "auto",
            Uuid::On => "on",
            Uuid::Null => "null",
            Uuid::Off => "off",
        }
    }
}

/// `fsync=` (overlayfs.rst: "Durability and copy up"; params.c:
/// `ovl_parameter_fsync`, upstream commit 1f6ee9be92f8, also in the 6.12
/// and 6.18 stable series): what overlayfs syncs on copy-up. Not
/// observable by ovlcheck but for `volatile`, whose work dir marks the
/// upper as possibly inconsistent ([`Profile::volatile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fsync {
    /// `fsync=auto`, the default: the upper file is synced before a data
    /// copy-up completes.
    Auto,
    /// `fsync=strict`: upper files and directories are synced before any
    /// copy-up completes.
    Strict,
    /// `fsync=volatile`: nothing is synced; the same as `volatile`.
    Volatile,
}

impl Fsync {
    /// The option's value as the kernel spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Auto => "auto",
            Fsync::Strict => "strict",
            Fsync::Volatile => "volatile",
        }
    }
}

/// `xino=` (overlayfs.rst: "Inode properties"; params.c:
/// `ovl_parameter_xino`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Xino {
    /// `xino=off`.
    #[default]
    Off,
    /// `xino=on`: unique st_ino across filesystems.
    On,
    /// `xino=auto`: as on where the layers allow it (super.c:
    /// ovl_get_layers, ovl_make_workdir), without making the mount refuse
    /// offline changes.
    Auto,
}

/// The mount options of one case. `Profile::default()` is what Docker's
/// overlay2 driver mounts on this kernel: `index=off`, redirect_dir off
/// (follow), no metacopy, no xino, all layers on one filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Profile {
    /// `redirect_dir=`: with `on` merged/lower directories may be renamed.
    pub redirect_dir: RedirectDir,
    /// `index=on`: lower hard links survive copy-up.
    pub index: bool,
    /// `metacopy=on`: metadata-only copy-up (implies redirect_dir=on).
    pub metacopy: bool,
    /// `xino=`: with `on` (or `auto` where it applies) unique st_ino
    /// across filesystems.
    pub xino: Xino,
    pub lower_fs: LowerFs,
    /// `userxattr`: `user.overlay.*` xattrs, redirect_dir=nofollow; mounted in
    /// an unprivileged user namespace.
    pub userxattr: bool,
    /// No upper layer: every write fails with EROFS.
    pub readonly: bool,
    /// `uuid=`: whether the overlay keeps a persistent uuid.
    pub uuid: Uuid,
    /// `volatile` (overlayfs.rst: "Volatile mount", v5.10): no syncs, and
    /// the work dir keeps `work/incompat/volatile` so that the next mount
    /// of the same upper and work dir is refused until it is removed.
    /// Never set together with [`Profile::fsync`]: the later option wins,
    /// as in the kernel.
    pub volatile: bool,
    /// `fsync=` when given ([`Fsync`]); `None`: the option is not passed.
    pub fsync: Option<Fsync>,
    /// Upper layer on a tmpfs of this many bytes (`enospc` profile): with
    /// `lower=separate` the container layer's own tmpfs, else the one
    /// holding the whole store.
    pub upper_size: Option<u64>,
    /// The kernel release whose overlay behaviour the model follows
    /// (`kernel=6.1`): set by the vm backend to the guest's (docs/vm.md).
    /// `None`: the host kernel, whose behaviour is the model's default.
    pub kernel: Option<KernelVersion>,
    /// `idmapped`: every layer directory, the lowers and the container
    /// layer's `diff` and `work`, is reached through an idmapped mount
    /// (mount_setattr(2) `MOUNT_ATTR_IDMAP`), as containerd, podman and
    /// Kubernetes user namespaces give a container its lower layers; the
    /// overlay uses each layer's own idmapping. The layers' ids are stored
    /// shifted on disk and seen unshifted through the mounts, so a case's
    /// owners are the ids the overlay shows, but those from
    /// [`IDMAP_COUNT`] on (driver/src/idmapped.rs).
    pub idmapped: bool,
    /// The VFS's `fs.protected_*` settings the case's outcomes hold for
    /// (`protected_symlinks=1`, ...; crate::sysctl). A backend on the
    /// host's kernel runs a case with the host's; the vm backend sets the
    /// guest's to the case's.
    #[serde(default)]
    pub sysctls: crate::Sysctls,
}

/// The first release whose data-only lower layers the model describes
/// (`data` sections): they came in v6.5 (commit 37ebf056d6cf, "ovl:
/// introduce data-only lower layers") needing metacopy=on, and v6.16 let a
/// metacopy file of the lowest lower layer redirect into them without
/// metacopy=on and with userxattr ("ovl: relax redirect/metacopy
/// requirements for lower -> data redirect"; fstests
/// `_require_scratch_overlay_datadir_without_metacopy`). A case with data
/// layers is refused for an older kernel.
pub const DATA_ONLY_SINCE: KernelVersion = KernelVersion::new(6, 16);

/// A kernel release, major and minor (`6.1`): the behaviours the model
/// keys by version change between releases, not stable updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KernelVersion {
    pub major: u16,
    pub minor: u16,
}

impl KernelVersion {
    pub const fn new(major: u16, minor: u16) -> KernelVersion {
        KernelVersion { major, minor }
    }

    /// The version of a release string such as `6.1.0-57-amd64` or `6.18`.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A named profile, as `--profile` and the `profile` line of a case take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Preset {
    pub name: &'static str,
    pub help: &'static str,
}

/// The presets `fuzz --profile all` rotates through, in order.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "default",
        help: "Docker overlay2 defaults: index=off, redirect_dir follow, samefs",
    },
    Preset {
        name: "redirect",
        help: "redirect_dir=on",
    },
    Preset {
        name: "nofollow",
        help: "redirect_dir=nofollow: a redirect found on disk makes lookup fail with EPERM",
    },
    Preset {
        name: "redirect-off",
        help: "redirect_dir=off (follow on a kernel with redirect_always_follow=Y)",
    },
    Preset {
        name: "uuid-off",
        help: "uuid=off: no overlay.uuid on the upper root, null uuids in file handles",
    },
    Preset {
        name: "volatile",
        help: "volatile: no syncs; a remount of the same upper is refused (EINVAL) until work/incompat/volatile is removed",
    },
    Preset {
        name: "index",
        help: "index=on",
    },
    Preset {
        name: "metacopy",
        help: "metacopy=on (implies redirect_dir=on)",
    },
    Preset {
        name: "xino",
        help: "xino=on, lower layers on another tmpfs",
    },
    Preset {
        name: "xino-auto",
        help: "xino=auto, lower layers on another tmpfs",
    },
    Preset {
        name: "xdev",
        help: "lower layers on another tmpfs, xino off",
    },
    Preset {
        name: "userxattr",
        help: "userxattr in an unprivileged user namespace",
    },
    Preset {
        name: "idmapped",
        help: "every layer on an idmapped mount (on-disk ids shifted), as user-namespaced containers get their lower layers; owners from 65536 on unmapped",
    },
    Preset {
        name: "nested",
        help: "the lower layers are a read-only overlay of their own, the only lower layer of the case's overlay",
    },
    Preset {
        name: "readonly",
        help: "no upper layer: writes fail with EROFS",
    },
    Preset {
        name: "enospc",
        help: "upper and work dir on their own 12 KiB tmpfs (one page free): copy-ups and writes hit ENOSPC",
    },
];

/// The ids an `idmapped` profile's mounts map ([`Profile::idmapped`]):
/// a case's ids below this are seen as themselves; a layer owner at or
/// above it is stored on disk where the mounts do not map it, and the
/// overlay shows it as [`OVERFLOW_ID`].
pub const IDMAP_COUNT: u32 = 65_536;

/// Where an `idmapped` profile's layers store the ids: `IDMAP_ON_DISK_BASE
/// + n` on disk is `n` through the mounts, for `n` below [`IDMAP_COUNT`].
pub const IDMAP_ON_DISK_BASE: u32 = 100_000;

/// The id stat reports for an owner with no mapping (the kernel's
/// `overflowuid` and `overflowgid`, 65534 by default).
pub const OVERFLOW_ID: u32 = 65_534;

/// Size of the tmpfs holding the container layer (upper and work dir) in
/// the `enospc` preset, the lowers being on another filesystem: three
/// pages, two of them taken by the overlay2 `link` and `lower` files, so
/// the first page of data that copy-ups and writes allocate fits and the
/// next fails with ENOSPC.
pub const ENOSPC_UPPER_BYTES: u64 = 12 * 1024;

impl Profile {
    /// The profile a preset name stands for.
    pub fn preset(name: &str) -> Option<Profile> {
        let mut p = Profile::default();
        match name {
            "default" => {}
            "redirect" => p.redirect_dir = RedirectDir::On,
            "nofollow" => p.redirect_dir = RedirectDir::NoFollow,
            "redirect-off" => p.redirect_dir = RedirectDir::Off,
            "uuid-off" => p.uuid = Uuid::Off,
            "volatile" => p.volatile = true,
            "index" => p.index = true,
            "metacopy" => {
                p.metacopy = true;
                p.redirect_dir = RedirectDir::On;
            }
            "xino" => {
                p.xino = Xino::On;
                p.lower_fs = LowerFs::Separate;
            }
            "xino-auto" => {
                p.xino = Xino::Auto;
                p.lower_fs = LowerFs::Separate;
            }
            "xdev" => p.lower_fs = LowerFs::Separate,
            "userxattr" => p.userxattr = true,
            "idmapped" => p.idmapped = true,
            "nested" => p.lower_fs = LowerFs::Overlay,
            "readonly" => p.readonly = true,
            "enospc" => {
                p.lower_fs = LowerFs::Separate;
                p.upper_size = Some(ENOSPC_UPPER_BYTES);
            }
            _ => return None,
        }
        Some(p)
    }

    /// The preset this profile equals, if any.
    pub fn preset_name(&self) -> Option<&'static str> {
        PRESETS
            .iter()
            .find(|p| Profile::preset(p.name).as_ref() == Some(self))
            .map(|p| p.name)
    }

    /// Whether a layer owner `id` has no mapping through the layers'
    /// mounts: only on idmapped layers, for ids from [`IDMAP_COUNT`] on.
    pub fn unmapped(&self, id: u32) -> bool {
        self.idmapped && id >= IDMAP_COUNT
    }

    /// The profile known divergences are matched by: without
    /// [`Profile::idmapped`], which changes no outcome of a case whose ids
    /// are all mapped (driver/src/idmapped.rs), so a profile's known cases
    /// also stand for it on idmapped layers.
    pub fn modelled(&self) -> Profile {
        Profile {
            idmapped: false,
            ..self.clone()
        }
    }

    /// With `lower=overlay`, the profile of the inner overlay the lower
    /// layers make: read-only (no upper), with the case's lookup options
    /// (`redirect_dir`, `metacopy`), `userxattr` (in a user namespace both
    /// mounts take it), `idmapped` (its layers are idmapped mounts too),
    /// kernel and sysctls, the rest the defaults.
    pub fn inner_overlay(&self) -> Profile {
        Profile {
            redirect_dir: self.redirect_dir,
            metacopy: self.metacopy,
            userxattr: self.userxattr,
            idmapped: self.idmapped,
            readonly: true,
            kernel: self.kernel,
            sysctls: self.sysctls,
            ..Profile::default()
        }
    }

    /// Whether the mount is volatile: `volatile` or `fsync=volatile`
    /// (params.c: `ovl_is_volatile`). Without an upper layer the kernel
    /// ignores it (`ovl_fs_params_verify`).
    pub fn is_volatile(&self) -> bool {
        self.volatile || self.fsync == Some(Fsync::Volatile)
    }

    /// Whether the container layer is mounted volatile: [`Profile::is_volatile`]
    /// with an upper layer, the mount that leaves `work/incompat/volatile`
    /// behind (overlayfs.rst, "Volatile mount").
    pub fn volatile_upper(&self) -> bool {
        self.is_volatile() && !self.readonly
    }

    /// The overlay xattr namespace prefix on disk: `trusted.overlay.` or,
    /// with userxattr, `user.overlay.` (overlayfs.rst: user xattr).
    pub fn xattr_prefix(&self) -> &'static str {
        if self.userxattr {
            "user.overlay."
        } else {
            "trusted.overlay."
        }
    }

    /// The key=value options this profile sets, in canonical order.
    pub fn options(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.redirect_dir != RedirectDir::Follow
            && !(self.metacopy && self.redirect_dir == RedirectDir::On)
        {
            v.push(format!("redirect_dir={}", self.redirect_dir.as_str()));
        }
        if self.index {
            v.push("index=on".to_string());
        }
        if self.metacopy {
            v.push("metacopy=on".to_string());
        }
        match self.xino {
            Xino::Off => {}
            Xino::On => v.push("xino=on".to_string()),
            Xino::Auto => v.push("xino=auto".to_string()),
        }
        match self.lower_fs {
            LowerFs::Same => {}
            LowerFs::Separate => v.push("lower=separate".to_string()),
            LowerFs::Overlay => v.push("lower=overlay".to_string()),
        }
        if self.userxattr {
            v.push("userxattr".to_string());
        }
        if self.idmapped {
            v.push("idmapped".to_string());
        }
        if self.readonly {
            v.push("readonly".to_string());
        }
        if self.uuid != Uuid::Auto {
            v.push(format!("uuid={}", self.uuid.as_str()));
        }
        if self.volatile {
            v.push("volatile".to_string());
        }
        if let Some(f) = self.fsync {
            v.push(format!("fsync={}", f.as_str()));
        }
        if let Some(n) = self.upper_size {
            v.push(format!("upper_size={n}"));
        }
        if let Some(k) = self.kernel {
            v.push(format!("kernel={k}"));
        }
        v.extend(self.sysctls.options());
        v
    }

    /// Applies one `key=value` (or bare flag) option; `Err` says why not.
    pub fn set_option(&mut self, opt: &str) -> Result<(), String> {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        let on_off = |v: Option<&str>| -> Result<bool, String> {
            match v {
                Some("on") | None => Ok(true),
                Some("off") => Ok(false),
                Some(other) => Err(format!("expected `on` or `off`, found `{other}`")),
            }
        };
        match k {
            "redirect_dir" => {
                self.redirect_dir = match v {
                    Some("on") | None => RedirectDir::On,
                    Some("follow") => RedirectDir::Follow,
                    Some("off") => RedirectDir::Off,
                    Some("nofollow") => RedirectDir::NoFollow,
                    Some(other) => {
                        return Err(format!(
                            "expected `on`, `follow`, `off` or `nofollow`, found `{other}`"
                        ))
                    }
                }
            }
            "index" => self.index = on_off(v)?,
            "metacopy" => {
                self.metacopy = on_off(v)?;
                // metacopy=on implies redirect_dir=on unless another
                // redirect_dir was asked for (validate refuses that).
                if self.metacopy && self.redirect_dir == RedirectDir::Follow {
                    self.redirect_dir = RedirectDir::On;
                }
            }
            "xino" => {
                self.xino = match v {
                    Some("auto") => Xino::Auto,
                    _ if on_off(v)? => Xino::On,
                    _ => Xino::Off,
                }
            }
            "lower" => {
                self.lower_fs = match v {
                    Some("same") => LowerFs::Same,
                    Some("separate") => LowerFs::Separate,
                    Some("overlay") => LowerFs::Overlay,
                    _ => {
                        return Err("expected `lower=same`, `lower=separate` or `lower=overlay`"
                            .to_string())
                    }
                }
            }
            "userxattr" => self.userxattr = on_off(v)?,
            "idmapped" => self.idmapped = on_off(v)?,
            "readonly" => self.readonly = on_off(v)?,
            "uuid" => {
                self.uuid = match v {
                    Some("auto") => Uuid::Auto,
                    Some("on") => Uuid::On,
                    Some("null") => Uuid::Null,
                    Some("off") => Uuid::Off,
                    _ => return Err("expected `uuid=auto`, `on`, `null` or `off`".to_string()),
                }
            }
            "volatile" => {
                if v.is_some() {
                    return Err("`volatile` takes no value".to_string());
                }
                self.volatile = true;
                self.fsync = None;
            }
            "fsync" => {
                self.fsync = Some(match v {
                    Some("auto") => Fsync::Auto,
                    Some("strict") => Fsync::Strict,
                    Some("volatile") => Fsync::Volatile,
                    _ => return Err("expected `fsync=auto`, `strict` or `volatile`".to_string()),
                });
                self.volatile = false;
            }
            "upper_size" => {
                let n = v
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|n| *n >= 4096)
                    .ok_or("expected `upper_size=BYTES` (at least 4096)")?;
                self.upper_size = Some(n);
            }
            "kernel" => {
                let k = v
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                    .and_then(KernelVersion::parse)
                    .ok_or("expected `kernel=MAJOR.MINOR`, e.g. `kernel=6.1`")?;
                self.kernel = Some(k);
            }
            _ if k.starts_with("protected_") => self.sysctls.set(k, v.unwrap_or_default())?,
            _ => return Err(format!("unknown profile option or preset `{opt}`")),
        }
        Ok(())
    }

    /// Rejects combinations the kernel refuses at mount time with EINVAL
    /// (params.c: ovl_fs_params_verify), so a case never asks for one, and
    /// the one ovlcheck does not run (a volatile upper of a given size).
    pub fn validate(&self) -> Result<(), String> {
        let redirect = self.redirect_dir;
        // params.c: ovl_fs_params_verify, "conflicting options". By then
        // redirect_dir=off is follow (redirect_always_follow=Y).
        if self.userxattr && self.metacopy {
            return Err("userxattr conflicts with metacopy=on".into());
        }
        if self.userxattr && matches!(redirect, RedirectDir::On | RedirectDir::Off) {
            return Err(format!(
                "userxattr conflicts with redirect_dir={}",
                redirect.as_str()
            ));
        }
        if self.metacopy && redirect != RedirectDir::On {
            return Err(format!(
                "metacopy=on conflicts with redirect_dir={}",
                redirect.as_str()
            ));
        }
        if self.readonly && self.upper_size.is_some() {
            return Err("readonly has no upper layer to size".into());
        }
        if self.is_volatile() && self.upper_size.is_some() {
            // Not the kernel's refusal: a commit that fails on a full store
            // mounts the same volatile upper again, which the kernel
            // refuses; ovlcheck does not model that recovery.
            return Err("volatile with upper_size is not run: a failed commit would remount the same volatile upper".into());
        }
        if self.volatile && self.fsync.is_some() {
            return Err("`volatile` is `fsync=volatile`: give one of them".into());
        }
        if self.xino != Xino::Off && self.userxattr {
            return Err("xino is not supported together with userxattr here".into());
        }
        if self.lower_fs == LowerFs::Overlay {
            // Not the kernel's refusal: ovlcheck does not model a sized
            // store, whose space the inner's layers share.
            if self.upper_size.is_some() {
                return Err("lower=overlay with upper_size is not modelled".into());
            }
        }
        Ok(())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.preset_name() {
            Some(name) => f.write_str(name),
            None => f.write_str(&self.options().join(" ")),
        }
    }
}
