//! The profile switches, as one table of behaviours. Rules read these
//! fields; no rule looks at the [`Profile`] itself, so every option- or
//! version-dependent behaviour is in one place.

use ovlcheck_case::profile::{KernelVersion, DATA_ONLY_SINCE};
use ovlcheck_case::{LowerFs, Profile, RedirectDir, Uuid, Xino};

/// The release that started writing `overlay.uuid` on a fresh upper root
/// (super.c: ovl_init_uuid_xattr, `uuid=auto`; the uuid=null/auto/on
/// options came in v6.6, as fstests overlay/081 says). Seen in a 6.1
/// guest: no uuid xattr (docs/vm.md).
const UUID_XATTR_SINCE: KernelVersion = KernelVersion::new(6, 6);

/// The release whose lookup and readdir honour xattr whiteouts in the
/// format the case text writes (`overlay.opaque="x"` on the directory):
/// xwhiteouts came in v6.7 (commit bc8df7a3) marked with
/// `overlay.whiteouts`, and v6.8-rc2 changed the mark to `opaque="x"`
/// (commit 420332b94119, backported to 6.7.y). Seen in a 6.1 guest: an
/// xwhiteout is an empty file, listed and found (docs/vm.md).
const XWHITEOUTS_SINCE: KernelVersion = KernelVersion::new(6, 8);

/// The release whose tmpfs keeps `user.*` xattrs (mm/shmem.c:
/// shmem_user_xattr_handler, "tmpfs,xattr: enable limited user extended
/// attributes", v6.6). Before it tmpfs has trusted.* and security.* only,
/// and a `user.*` name is EOPNOTSUPP from the layer's handler lookup. Seen
/// in a 6.1 guest (docs/vm.md).
const TMPFS_USER_XATTRS_SINCE: KernelVersion = KernelVersion::new(6, 6);

/// The release that escapes overlay-private names set through the overlay
/// (`trusted.overlay.x` kept as `trusted.overlay.overlay.x`; overlayfs.rst:
/// "Nesting overlayfs mounts", the escaped-xattr series for composefs,
/// v6.7). Before it the overlay's own handler (super.c:
/// ovl_own_xattr_get/set) answers EOPNOTSUPP for every such name. Seen in
/// a 6.1 guest (docs/vm.md).
const ESCAPED_XATTRS_SINCE: KernelVersion = KernelVersion::new(6, 7);

/// The release whose VFS sets POSIX ACLs itself (fs/posix_acl.c:
/// vfs_set_acl, set_posix_acl, the POSIX ACL API series, v6.2): the
/// value's form is checked before the immutable and ownership checks, an
/// ACL's validity before overlay's set-gid kill and copy-up, and an ACL
/// with no entries removes. Before it overlay's xattr handler (6.1 inode.c:
/// ovl_posix_acl_xattr_set) checks the form after them, copies up, and
/// leaves validity to the upper filesystem, after the copy-up; an empty
/// ACL is set on the copied-up object. Seen in a 6.1 guest
/// (corpus/versions/6.1-posix-acl-checks-after-copy-up.ovl).
const VFS_ACL_SINCE: KernelVersion = KernelVersion::new(6, 2);

/// The release whose lookup refuses an upper metacopy file without
/// metacopy=on even when nothing lies below it (namei.c: ovl_lookup, the
/// patch "ovl: make redirect/metacopy rejection consistent", posted in
/// March 2025 after v6.14 was released). Before it only a metacopy that
/// found a file below was refused (EPERM) and one alone in the upper was
/// EIO ("metacopy with no lower data found"). Seen: EIO in a 6.1 guest,
/// EPERM on 6.18 (corpus/versions/6.1-upper-metacopy-alone-is-eio.ovl,
/// corpus/rules/91-metacopy-refused-anywhere.ovl); the release in between
/// is the patch's, not observed.
const CONSISTENT_REFUSAL_SINCE: KernelVersion = KernelVersion::new(6, 15);

/// The release whose tmpfs keeps a directory read to its end there
/// (libfs.c: offset_readdir sets the position to `DIR_OFFSET_EOD`, "libfs:
/// Replace simple_offset end-of-directory detection", v6.13, and in the
/// 6.6 and 6.12 stable series from early 2025, which the version cannot
/// tell). Before it a read that listed no entry leaves the position just
/// past `.` and `..`, where the next read starts the directory again (6.1
/// libfs.c: dcache_readdir from the list head at position 2; 6.6 to 6.12:
/// offset_readdir forgets its end mark at that position), so it lists the
/// entries made since. Seen in a 6.1 guest
/// (corpus/versions/6.1-readdir-empty-listing-read-again.ovl).
const TMPFS_EOD_SINCE: KernelVersion = KernelVersion::new(6, 13);

/// Whether the model has the profile's kernel's data-only lower layers
/// ([`DATA_ONLY_SINCE`], observed on 6.18:
/// corpus/rules/100-data-only-layers.ovl): a case generator adds none for
/// an older kernel.
pub fn data_only_layers(p: &Profile) -> bool {
    kernel_at_least(p, DATA_ONLY_SINCE)
}

/// Whether a mount of the profile follows the redirects it finds in its
/// layers (not with redirect_dir=nofollow or userxattr): a case generator
/// gives the layers well-formed redirects only where they are refused.
pub fn follows_redirects(p: &Profile) -> bool {
    Features::from_profile(p).follows_redirects()
}

/// Whether the layers, tmpfs of the profile's kernel, keep `user.*`
/// xattrs (since v6.6, `TMPFS_USER_XATTRS_SINCE`): a case generator puts none in
/// the layers it makes for a kernel without them.
pub fn layer_user_xattrs(p: &Profile) -> bool {
    kernel_at_least(p, TMPFS_USER_XATTRS_SINCE)
}

/// Whether the profile's kernel's tmpfs keeps a directory read to its
/// end there, also after a read that listed no entry (`TMPFS_EOD_SINCE`,
/// v6.13; the 6.6 and 6.12 stable series took it in an update, which the
/// version does not tell, so the vm backend probes it and says where the
/// guest differs).
pub fn tmpfs_keeps_end(p: &Profile) -> bool {
    kernel_at_least(p, TMPFS_EOD_SINCE)
}

/// Whether the profile's kernel (the host's when it names none) is at
/// least `v`.
fn kernel_at_least(p: &Profile, v: KernelVersion) -> bool {
    p.kernel.is_none_or(|k| k >= v)
}

/// How redirects are treated (overlayfs.rst: "Redirect dir"; params.c:
/// ovl_redirect_mode). `redirect_dir=off` maps to `follow` on this kernel
/// (module parameter redirect_always_follow=Y; params.c: ovl_parse_param);
/// the driver refuses `off` where the parameter is N.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RedirectMode {
    /// `redirect_dir=on`: created on directory rename and followed.
    On,
    /// `redirect_dir=follow`: followed, never created.
    Follow,
    /// `redirect_dir=nofollow` (forced by userxattr): a redirect found below
    /// the upper layer makes lookup fail with EPERM (namei.c: ovl_lookup,
    /// "refusing to follow redirect"; observed on 6.18 with and without
    /// userxattr).
    NoFollow,
}

/// Where `st_ino`/`st_dev` come from (overlayfs.rst: "Inode properties";
/// inode.c: ovl_map_dev_ino).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum InoMode {
    /// All layers on one filesystem: the overlay st_dev for everything.
    SameFs,
    /// xino=on: the overlay st_dev for everything, st_ino with fsid bits.
    Xino,
    /// Layers on different filesystems without xino: non-directories
    /// report a per-filesystem pseudo st_dev.
    PseudoDev,
}

/// The upper layer: absent (read-only overlay), unlimited, or a tmpfs of
/// limited size on which allocating ops may fail with ENOSPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UpperMode {
    ReadOnly,
    Unlimited,
    Limited(u64),
}

/// The behaviour table of one mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Features {
    pub redirect: RedirectMode,
    /// index=on: lower hard links survive copy-up (overlayfs.rst: "Index").
    pub index: bool,
    /// metacopy=on: metadata-only copy-up (overlayfs.rst: "Metadata only copy up").
    pub metacopy: bool,
    pub ino: InoMode,
    /// `user.overlay.` instead of `trusted.overlay.` (userxattr).
    pub user_xattr_ns: bool,
    pub upper: UpperMode,
    /// New directories in a merged parent get `opaque=y` unless offline
    /// changes are allowed (overlayfs.h: ovl_allow_offline_changes; dir.c:
    /// ovl_create_upper; commit 1fc31aac96d7, v5.15).
    pub opaque_new_dirs: bool,
    /// metacopy, redirect_dir=on or xino=on: the features beside index that
    /// make the kernel refuse to allow offline changes, whose outcome the
    /// kernel's code leaves undefined (overlayfs.rst: "Changes to
    /// underlying filesystems").
    pub offline_undefined: bool,
    /// uuid=auto (the default) and uuid=on write `overlay.uuid` on the root
    /// of a fresh upper (super.c: ovl_init_uuid_xattr, v6.6); uuid=null and
    /// uuid=off write none (params.c: ovl_parameter_uuid). Observed on 6.18
    /// (auto with and without userxattr; on, null, off:
    /// corpus/rules/67-uuid-xattr.ovl and the `uuid-off` preset); absent on
    /// 6.1 ([`UUID_XATTR_SINCE`]). auto writes none on an upper whose root
    /// is already impure, which no mount of a case has.
    pub uuid_xattr: bool,
    /// uuid=null or uuid=off: no uuid xattr, whatever the kernel.
    pub uuid_off: bool,
    /// `statfs` reports an fsid the uuid option decides (super.c:
    /// ovl_statfs, `ovl_has_fsid`, v6.6): with a uuid on the upper root
    /// the overlay's own, otherwise the real root's filesystem's (the
    /// upper, or the top lower without one). Before v6.6 always the real
    /// root's. Observed on 6.18 (corpus/rules/85–89) and in a 6.1 guest
    /// (corpus/versions/6.1-statfs-upper-fsid.ovl).
    pub fsid_from_uuid: bool,
    /// Without metacopy=on, an upper metacopy file is refused (EPERM)
    /// even with nothing below it; before v6.15 that one was EIO
    /// ([`CONSISTENT_REFUSAL_SINCE`]).
    pub metacopy_refused_alone: bool,
    /// A redirect the mount does not follow is refused (EPERM) before the
    /// next layer is searched. Before v6.15 (the same patch as
    /// [`CONSISTENT_REFUSAL_SINCE`]) the layers below were searched
    /// for its target, and the lookup refused only when one had it, after
    /// ovl_fix_origin had stored that directory as origin; a redirect
    /// whose target no layer below had left a directory of the upper or
    /// that layer alone. Seen in a 6.1 guest
    /// (corpus/versions/6.1-nofollow-redirect-refused-when-found.ovl).
    pub redirect_refused_unread: bool,
    /// uuid=auto without an upper layer (v6.6 on): `ovl_has_fsid` holds
    /// but `ovl_fill_super` sets a uuid only with an upper, so `statfs`
    /// reports a zero fsid, where overlayfs.rst says auto falls back to
    /// null ("fsid is taken from upper most filesystem"). Observed on 6.18
    /// (corpus/rules/89-statfs-zero-fsid.ovl).
    pub zero_fsid_without_upper: bool,
    /// A volatile mount (overlayfs.rst: "Volatile mount", v5.10; the
    /// `volatile` option or `fsync=volatile`, params.c: `ovl_is_volatile`)
    /// with an upper layer (`ovl_fs_params_verify` ignores it without
    /// one). Its work dir keeps `work/incompat/volatile/dirty` (super.c:
    /// `ovl_create_volatile_dirty`), so the next mount of the same upper
    /// and work dir, volatile or not, is refused with EINVAL (readdir.c:
    /// `ovl_workdir_cleanup_recurse`, from `ovl_make_workdir`) until that
    /// directory is removed. Observed on 6.18 (corpus/rules/79, 80, 83,
    /// 84) and in a 6.1 guest (rules/79). The
    /// syncs it skips, like `fsync=strict`'s extra ones, are not
    /// observable: the tree is the same.
    pub volatile: bool,
    /// Xattr whiteouts hide names (overlayfs.rst: "Whiteouts and opaque
    /// directories"; [`XWHITEOUTS_SINCE`]).
    pub xwhiteouts: bool,
    /// The layers' tmpfs keeps `user.*` xattrs ([`TMPFS_USER_XATTRS_SINCE`]).
    pub tmpfs_user_xattrs: bool,
    /// A tmpfs directory read to its end stays at its end, also when the
    /// read listed no entry ([`TMPFS_EOD_SINCE`]).
    pub tmpfs_eod: bool,
    /// Overlay-private names set or got through the overlay are escaped
    /// ([`ESCAPED_XATTRS_SINCE`]); before, they are EOPNOTSUPP.
    pub escaped_xattrs: bool,
    /// The VFS checks a POSIX ACL before overlay copies up
    /// ([`VFS_ACL_SINCE`]).
    pub vfs_acl: bool,
    /// The lower layers share the (sized) filesystem with the upper, so
    /// their data counts against `UpperMode::Limited` too.
    pub shared_space: bool,
    /// The op's root has capabilities in the initial user namespace. Not
    /// with userxattr: the driver mounts such an overlay inside a user
    /// namespace, whose root is capable there only (`capable()` checks
    /// fail, `ns_capable`/`capable_wrt_inode_uidgid` ones pass).
    pub init_caps: bool,
    /// The layers are idmapped mounts (`idmapped`): layer owners from
    /// `IDMAP_COUNT` on have no mapping (docs/semantics.md §1.16).
    pub idmapped: bool,
    /// A lookup decodes an `origin` file handle to find the lower of an
    /// upper non-directory (namei.c: ovl_check_origin). Not in a user
    /// namespace (userxattr: no `CAP_DAC_READ_SEARCH` in the initial one);
    /// for the one layer an overlay as the lower makes, see
    /// `Model::decodes_origin`. Where it does not, only the dentry cached
    /// since the copy-up keeps its lower ([`crate::Model::known_origin`]).
    pub origin_decoded: bool,
    /// The lowers are an overlay of their own (`lower=overlay`): one lower
    /// layer, the inner overlay's merged tree (`crate::nested`).
    pub nested: bool,
    /// Data-only lower layers as the model has them ([`DATA_ONLY_SINCE`]):
    /// a case with `data` layers is refused for an older kernel
    /// ([`data_only_layers`]).
    pub data_only: bool,
    /// The VFS's `fs.protected_*` settings (the profile's; crate::perm:
    /// may_follow_link, may_linkat, may_create_in_sticky).
    pub sysctls: ovlcheck_case::Sysctls,
}

impl Features {
    /// The behaviour table for a profile.
    pub fn from_profile(p: &Profile) -> Features {
        // params.c: ovl_parse_param (off is follow with
        // redirect_always_follow=Y), ovl_fs_params_verify (metacopy implies
        // on, userxattr forces nofollow).
        let redirect = if p.userxattr {
            RedirectMode::NoFollow
        } else if p.metacopy {
            RedirectMode::On
        } else {
            match p.redirect_dir {
                RedirectDir::On => RedirectMode::On,
                RedirectDir::Follow | RedirectDir::Off => RedirectMode::Follow,
                RedirectDir::NoFollow => RedirectMode::NoFollow,
            }
        };
        // super.c: ovl_get_layers (layers on one filesystem need no xino;
        // xino=auto applies where the upper's file handles hold 32-bit inode
        // numbers, ovl_make_workdir: FILEID_INO32_GEN, which tmpfs's do).
        // Observed on 6.18: xino=auto with lowers on another tmpfs gives
        // the overlay st_dev and st_ino with fsid bits, as xino=on.
        // An overlay as the lower has no file handles: with an upper layer
        // xino=auto falls back to off ("fs on ... does not support file
        // handles, falling back to xino=off"); without one it is enabled
        // ("xino" feature enabled), as xino=on is (observed on 6.18).
        // xino=on with every layer on one filesystem is ignored ("xino=on"
        // is useless with all layers on same fs, ignore).
        let one_fs = p.lower_fs == LowerFs::Same && p.upper_size.is_none();
        let ino = match (p.xino, p.lower_fs) {
            (Xino::On, _) if one_fs => InoMode::SameFs,
            (Xino::On, _) | (Xino::Auto, LowerFs::Separate) => InoMode::Xino,
            (Xino::Auto, LowerFs::Overlay) if p.readonly => InoMode::Xino,
            (Xino::Off | Xino::Auto, LowerFs::Same) => InoMode::SameFs,
            (Xino::Off, LowerFs::Separate) | (Xino::Off | Xino::Auto, LowerFs::Overlay) => {
                InoMode::PseudoDev
            }
        };
        let upper = match (p.readonly, p.upper_size) {
            (true, _) => UpperMode::ReadOnly,
            (false, Some(n)) => UpperMode::Limited(n),
            (false, None) => UpperMode::Unlimited,
        };
        // No index without an upper layer, nor in a userxattr mount: that
        // is made in a user namespace, where the upper's file handles
        // cannot be decoded (CAP_DAC_READ_SEARCH in the initial one,
        // ovl_can_decode_fh), so ovl_make_workdir falls back to index=off
        // ("upper fs does not support file handles", observed on 6.18).
        // An overlay as the lower cannot encode file handles either
        // (ovl_can_decode_fh is false for overlayfs without nfs_export):
        // "falling back to index=off,nfs_export=off", observed on 6.18.
        let nested = p.lower_fs == LowerFs::Overlay;
        let index = p.index && !p.readonly && !p.userxattr && !nested;
        let offline_undefined = p.metacopy || redirect == RedirectMode::On || p.xino == Xino::On;
        Features {
            sysctls: p.sysctls,
            redirect,
            index,
            metacopy: p.metacopy && !p.userxattr,
            ino,
            user_xattr_ns: p.userxattr,
            upper,
            // overlayfs.h: ovl_allow_offline_changes tests xino=on only,
            // so xino=auto makes no opaque marker (observed on 6.18).
            opaque_new_dirs: index || offline_undefined,
            offline_undefined,
            uuid_off: matches!(p.uuid, Uuid::Null | Uuid::Off),
            fsid_from_uuid: kernel_at_least(p, UUID_XATTR_SINCE),
            metacopy_refused_alone: kernel_at_least(p, CONSISTENT_REFUSAL_SINCE),
            redirect_refused_unread: kernel_at_least(p, CONSISTENT_REFUSAL_SINCE),
            zero_fsid_without_upper: kernel_at_least(p, UUID_XATTR_SINCE) && p.uuid == Uuid::Auto,
            volatile: p.volatile_upper(),
            uuid_xattr: kernel_at_least(p, UUID_XATTR_SINCE)
                && matches!(p.uuid, Uuid::Auto | Uuid::On),
            xwhiteouts: kernel_at_least(p, XWHITEOUTS_SINCE),
            tmpfs_user_xattrs: layer_user_xattrs(p),
            tmpfs_eod: tmpfs_keeps_end(p),
            escaped_xattrs: kernel_at_least(p, ESCAPED_XATTRS_SINCE),
            vfs_acl: kernel_at_least(p, VFS_ACL_SINCE),
            shared_space: p.lower_fs != LowerFs::Separate,
            origin_decoded: !p.userxattr,
            nested,
            init_caps: !p.userxattr,
            idmapped: p.idmapped,
            data_only: data_only_layers(p),
        }
    }

    /// Redirects are set on rename of merged/lower directories.
    pub fn creates_redirects(&self) -> bool {
        self.redirect == RedirectMode::On
    }

    pub fn follows_redirects(&self) -> bool {
        self.redirect != RedirectMode::NoFollow
    }

    pub fn readonly(&self) -> bool {
        self.upper == UpperMode::ReadOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feat(preset: &str) -> Features {
        Features::from_profile(&Profile::preset(preset).expect("preset"))
    }

    #[test]
    fn presets_map_to_behaviours() {
        assert_eq!(feat("default").redirect, RedirectMode::Follow);
        assert!(!feat("default").opaque_new_dirs);
        assert_eq!(feat("redirect").redirect, RedirectMode::On);
        assert!(feat("redirect").opaque_new_dirs);
        assert!(feat("index").opaque_new_dirs);
        assert!(feat("metacopy").metacopy && feat("metacopy").creates_redirects());
        assert_eq!(feat("userxattr").redirect, RedirectMode::NoFollow);
        assert_eq!(feat("nofollow").redirect, RedirectMode::NoFollow);
        assert!(!feat("nofollow").opaque_new_dirs && !feat("nofollow").user_xattr_ns);
        assert_eq!(feat("redirect-off").redirect, RedirectMode::Follow);
        assert!(!feat("redirect-off").opaque_new_dirs);
        assert!(feat("userxattr").user_xattr_ns);
        assert_eq!(feat("xino").ino, InoMode::Xino);
        assert_eq!(feat("xino-auto").ino, InoMode::Xino);
        assert!(feat("xino").opaque_new_dirs && !feat("xino-auto").opaque_new_dirs);
        let mut same = Profile::default();
        same.set_option("xino=auto").unwrap();
        assert_eq!(Features::from_profile(&same).ino, InoMode::SameFs);
        // xino=on on one filesystem is ignored; on a sized upper it counts.
        same.set_option("xino=on").unwrap();
        assert_eq!(Features::from_profile(&same).ino, InoMode::SameFs);
        same.set_option("upper_size=12288").unwrap();
        assert_eq!(Features::from_profile(&same).ino, InoMode::Xino);
        let mut userns = Profile::preset("index").unwrap();
        userns.set_option("userxattr").unwrap();
        let f = Features::from_profile(&userns);
        assert!(!f.index && !f.opaque_new_dirs);
        assert_eq!(feat("xdev").ino, InoMode::PseudoDev);
        assert!(feat("readonly").readonly());
        assert!(matches!(feat("enospc").upper, UpperMode::Limited(_)));
        assert!(!feat("enospc").shared_space);
        assert!(feat("default").uuid_xattr);
        assert!(!feat("uuid-off").uuid_xattr);
        for (opt, xattr) in [("uuid=on", true), ("uuid=null", false), ("uuid=auto", true)] {
            let mut p = Profile::default();
            p.set_option(opt).unwrap();
            assert_eq!(Features::from_profile(&p).uuid_xattr, xattr, "{opt}");
        }
        assert!(feat("volatile").volatile);
        assert!(!feat("default").volatile);
        for (opts, volatile) in [
            (&["fsync=volatile"][..], true),
            (&["fsync=strict"], false),
            (&["fsync=auto"], false),
            (&["volatile", "fsync=strict"], false),
            (&["fsync=strict", "volatile"], true),
            (&["volatile", "readonly"], false),
        ] {
            let mut p = Profile::default();
            for o in opts {
                p.set_option(o).unwrap();
            }
            assert_eq!(Features::from_profile(&p).volatile, volatile, "{opts:?}");
        }
        let mut old = Profile::default();
        old.set_option("kernel=6.1").unwrap();
        assert!(!Features::from_profile(&old).uuid_xattr);
        assert!(!Features::from_profile(&old).xwhiteouts);
        assert!(!Features::from_profile(&old).tmpfs_user_xattrs);
        assert!(!Features::from_profile(&old).escaped_xattrs);
        assert!(!layer_user_xattrs(&old) && layer_user_xattrs(&Profile::default()));
        old.set_option("kernel=6.6").unwrap();
        assert!(Features::from_profile(&old).uuid_xattr);
        assert!(Features::from_profile(&old).tmpfs_user_xattrs);
        assert!(!Features::from_profile(&old).escaped_xattrs);
        assert!(!Features::from_profile(&old).xwhiteouts);
        old.set_option("kernel=6.7").unwrap();
        assert!(Features::from_profile(&old).escaped_xattrs);
        old.set_option("kernel=6.8").unwrap();
        assert!(Features::from_profile(&old).xwhiteouts);
        assert_eq!(feat("enospc").ino, InoMode::PseudoDev);
    }
}
