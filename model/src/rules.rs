//! The model's named rules, for coverage: every overlay behaviour the model
//! decides is one [`Rule`] with a stable id, the kernel function it follows
//! and the profiles that can reach it. The model records each rule that
//! decides an outcome (an op's result, or what a view shows) in the
//! [`RuleLog`] its states share, so a campaign can count how many cases
//! reached each rule and name the rules it never reached (README: "Rule
//! coverage").

use crate::features::{Features, InoMode, RedirectMode, UpperMode};
use ovlcheck_case::Profile;
use std::sync::atomic::{AtomicU64, Ordering};

/// One named rule. The discriminant is the rule's bit in a [`RuleSet`];
/// [`RULES`] lists them in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    LookupMerge,
    LookupWhiteout,
    LookupXwhiteout,
    LookupOpaque,
    LookupNonDirStops,
    LookupRedirectRelative,
    LookupRedirectAbsolute,
    LookupRedirectInvalid,
    LookupRedirectNofollow,
    LookupMetacopyData,
    LookupMetacopyRefused,
    LookupMetacopyNoData,
    LookupIndexAlias,
    LookupIndexRedirectRefused,
    LookupDataOnly,
    LookupDataRedirectWithoutMetacopy,
    LowerdataMissing,
    CopyUpData,
    CopyUpTrunc,
    CopyUpMeta,
    CopyUpMetacopyData,
    CopyUpDir,
    CopyUpImpure,
    CopyUpBrokenHardLink,
    CopyUpIndex,
    CopyUpNoSpace,
    FixOrigin,
    RenameFlagsRefused,
    RenameDirExdev,
    RenameDirRedirect,
    RenameOpaque,
    RenameWhiteout,
    RenameOverWhiteout,
    RenameNotEmpty,
    RenameSameInode,
    RenameStaleLink,
    RemoveWhiteout,
    RemoveNotEmpty,
    NlinkStart,
    CreateOverWhiteout,
    MkdirOpaqueInMerged,
    LinkMetacopyRedirect,
    ReaddirMerged,
    ReaddirXwhiteouts,
    ReaddirReal,
    ReaddirStaleEntry,
    ReaddirImpureCleared,
    StatOriginIno,
    StatXino,
    StatPseudoDev,
    StatMergedDirNlink,
    StatIndexNlink,
    StatMetacopySize,
    PrivateXattrsHidden,
    PrivateXattrEscaped,
    KillPrivCapability,
    UuidXattr,
    UuidOff,
    VolatileRemount,
    ReadOnly,
    NoSpace,
    UserxattrNoOrigin,
    NestedNoOrigin,
    OfflineChange,
    OfflineStaleOrigin,
    NestedLowerNlink,
    Commit,
    FdSeesCopyUp,
    FdReaddirCache,
    NoUuidXattrBefore66,
    NoXwhiteoutsBefore68,
    NoTmpfsUserXattrsBefore66,
    PrivateXattrsRefusedBefore67,
    StatfsOwnFsid,
    StatfsRealFsid,
    StatfsZeroFsid,
    StatfsUpperFsidBefore66,
    UpperMetacopyAloneEioBefore615,
    RedirectRefusedWhenFoundBefore615,
    StatUnmappedId,
    CopyUpUnmapped,
    LookupOriginUnmapped,
    ReaddirImpureLookupFails,
    CopyUpFileattr,
    FileattrSet,
    ProtattrBelow,
    FlagsInherited,
    PermAcl,
    AclSet,
    AclKillSgid,
    CreateDefaultAcl,
    ChmodAcl,
    AclChecksAfterCopyUpBefore62,
    MetacopyDataKeepsLower,
    StatMetacopyByName,
    LinkFreshInode,
    LinkLookedUpAfterCopyUp,
    IndexCleanup,
    IndexNlinkFallback,
    IndexNoUpperAlias,
    ReaddirBeforeFixOrigin,
    EmptyListingReadAgainBefore613,
}

/// What one rule is: its stable id (the name campaigns and `--json`
/// print), the kernel function or document it follows, and which mounts
/// can reach it.
#[derive(Clone, Copy, Debug)]
pub struct RuleInfo {
    pub rule: Rule,
    /// Stable id: `area.what`, never renamed.
    pub id: &'static str,
    /// Where the kernel decides it (fs/overlayfs file and function, or the
    /// overlayfs.rst section).
    pub kernel: &'static str,
    reach: Reach,
    /// Why generated cases cannot reach it even with a profile that can
    /// (only corpus cases do), or `None` when they can, which they do for
    /// every rule of this table (README: "Rule coverage").
    pub not_generated: Option<&'static str>,
}

/// Which mounts can reach a rule: a condition on the mount's behaviour
/// table, and the reason when it does not hold.
#[derive(Clone, Copy, Debug)]
struct Reach {
    when: fn(&Features) -> bool,
    needs: &'static str,
}

const ANY: Reach = Reach {
    when: |_| true,
    needs: "",
};
const WRITABLE: Reach = Reach {
    when: |f| !f.readonly(),
    needs: "an upper layer",
};
const REDIRECT_ON: Reach = Reach {
    when: |f| f.redirect == RedirectMode::On,
    needs: "redirect_dir=on",
};
const FOLLOWS: Reach = Reach {
    when: |f| f.follows_redirects(),
    needs: "redirects followed (not userxattr)",
};
const NOFOLLOW: Reach = Reach {
    when: |f| f.redirect == RedirectMode::NoFollow,
    needs: "redirect_dir=nofollow (or userxattr)",
};
const METACOPY: Reach = Reach {
    when: |f| f.metacopy,
    needs: "metacopy=on",
};
const NO_METACOPY: Reach = Reach {
    when: |f| !f.metacopy,
    needs: "metacopy=off",
};
const INDEX: Reach = Reach {
    when: |f| f.index && !f.readonly(),
    needs: "index=on",
};
const NO_INDEX: Reach = Reach {
    when: |f| !f.index && !f.readonly(),
    needs: "index=off and an upper layer",
};
const XWHITEOUTS: Reach = Reach {
    when: |f| f.xwhiteouts,
    needs: "kernel 6.8 or later",
};
const SIZED: Reach = Reach {
    when: |f| matches!(f.upper, UpperMode::Limited(_)),
    needs: "a sized upper (enospc)",
};
const XINO: Reach = Reach {
    when: |f| f.ino == InoMode::Xino,
    needs: "xino=on",
};
const PSEUDO_DEV: Reach = Reach {
    when: |f| f.ino == InoMode::PseudoDev,
    needs: "lower layers on another filesystem without xino",
};
const MKDIR_OPAQUE: Reach = Reach {
    when: |f| f.opaque_new_dirs && !f.readonly(),
    needs: "offline changes not allowed (index, metacopy, redirect_dir=on or xino)",
};
const D_INO_LOOKUPS: Reach = Reach {
    when: |f| f.ino != InoMode::PseudoDev && !f.readonly(),
    needs: "an upper layer, d_ino computed (one filesystem, or xino)",
};
const FLAGS: Reach = Reach {
    when: |f| !f.readonly() && f.init_caps,
    needs: "an upper layer, mounted in the initial user namespace (layers with immutable or append-only inodes need CAP_LINUX_IMMUTABLE)",
};
const IDMAPPED: Reach = Reach {
    when: |f| f.idmapped,
    needs: "idmapped layers (idmapped)",
};
const IDMAPPED_UPPER: Reach = Reach {
    when: |f| f.idmapped && !f.readonly(),
    needs: "idmapped layers (idmapped), an upper layer",
};
const READONLY: Reach = Reach {
    when: |f| f.readonly(),
    needs: "no upper layer (readonly)",
};
const FRESH_LINKS: Reach = Reach {
    when: |f| !f.origin_decoded || f.nested || f.metacopy,
    needs: "userxattr, lower=overlay or metacopy=on",
};
const USERXATTR: Reach = Reach {
    when: |f| f.user_xattr_ns,
    needs: "userxattr",
};
const OFFLINE: Reach = Reach {
    when: |f| f.offline_changes(),
    needs: "offline changes modelled (none of metacopy, redirect_dir=on, xino=on), \
            not lower=overlay, idmapped or volatile",
};
const OFFLINE_UPPER: Reach = Reach {
    when: |f| f.offline_changes() && !f.readonly(),
    needs: "offline changes modelled (none of metacopy, redirect_dir=on, xino=on), \
            not lower=overlay, idmapped or volatile; an upper layer",
};
const OFFLINE_INDEX: Reach = Reach {
    when: |f| f.offline_changes() && f.index,
    needs: "index=on and offline changes modelled (none of metacopy, redirect_dir=on, \
            xino=on, not lower=overlay, idmapped or volatile)",
};
const NESTED: Reach = Reach {
    when: |f| f.nested,
    needs: "an overlay as the lower layer (lower=overlay)",
};
const NESTED_UPPER: Reach = Reach {
    when: |f| f.nested && !f.readonly(),
    needs: "an overlay as the lower layer (lower=overlay), an upper layer",
};
const UUID: Reach = Reach {
    when: |f| f.uuid_xattr,
    needs: "kernel 6.6 or later, an upper layer",
};
const ESCAPED: Reach = Reach {
    when: |f| f.escaped_xattrs,
    needs: "kernel 6.7 or later",
};
const UUID_OFF: Reach = Reach {
    when: |f| f.uuid_off && !f.readonly(),
    needs: "uuid=null or uuid=off",
};
const VOLATILE: Reach = Reach {
    when: |f| f.volatile,
    needs: "volatile or fsync=volatile, an upper layer",
};
const OLD_UUID: Reach = Reach {
    when: |f| !f.uuid_xattr && !f.uuid_off && !f.readonly(),
    needs: "a kernel before 6.6",
};
const OWN_FSID: Reach = Reach {
    when: |f| f.uuid_xattr && !f.readonly(),
    needs: "kernel 6.6 or later, an upper layer, uuid=auto or uuid=on",
};
const REAL_FSID: Reach = Reach {
    when: |f| {
        f.fsid_from_uuid
            && if f.readonly() {
                !f.zero_fsid_without_upper
            } else {
                f.uuid_off
            }
    },
    needs: "uuid=null or uuid=off, or uuid=on without an upper layer",
};
const ZERO_FSID: Reach = Reach {
    when: |f| f.zero_fsid_without_upper && f.readonly(),
    needs: "kernel 6.6 or later, no upper layer, uuid=auto",
};
const OLD_FSID: Reach = Reach {
    when: |f| !f.fsid_from_uuid,
    needs: "a kernel before 6.6",
};
const OLD_METACOPY_REFUSAL: Reach = Reach {
    when: |f| !f.metacopy_refused_alone && !f.metacopy && !f.readonly(),
    needs: "a kernel before 6.15, metacopy=off, an upper layer",
};
const OLD_REDIRECT_REFUSAL: Reach = Reach {
    when: |f| !f.redirect_refused_unread && f.redirect == RedirectMode::NoFollow,
    needs: "a kernel before 6.15, redirect_dir=nofollow (or userxattr)",
};
const OLD_XWHITEOUTS: Reach = Reach {
    when: |f| !f.xwhiteouts,
    needs: "a kernel before 6.8",
};
const OLD_TMPFS: Reach = Reach {
    when: |f| !f.tmpfs_user_xattrs,
    needs: "a kernel before 6.6",
};
const OLD_TMPFS_EOD: Reach = Reach {
    when: |f| !f.tmpfs_eod && !f.readonly(),
    needs: "a kernel before 6.13, an upper layer",
};
const DATA_ONLY: Reach = Reach {
    when: |f| f.data_only,
    needs: "kernel 6.16 or later (data-only layers)",
};
const DATA_ONLY_NO_METACOPY: Reach = Reach {
    when: |f| f.data_only && !f.metacopy,
    needs: "kernel 6.16 or later (data-only layers), metacopy=off",
};
const INDEX_DATA_ONLY_NOFOLLOW: Reach = Reach {
    when: |f| f.index && !f.readonly() && f.data_only && f.redirect == RedirectMode::NoFollow,
    needs: "index=on, redirect_dir=nofollow, kernel 6.16 or later (data-only layers)",
};
const OLD_ACL: Reach = Reach {
    when: |f| !f.vfs_acl && !f.readonly(),
    needs: "a kernel before 6.2, an upper layer",
};
const OLD_ESCAPE: Reach = Reach {
    when: |f| !f.escaped_xattrs,
    needs: "a kernel before 6.7",
};

const fn info(rule: Rule, id: &'static str, kernel: &'static str, reach: Reach) -> RuleInfo {
    RuleInfo {
        rule,
        id,
        kernel,
        reach,
        not_generated: None,
    }
}

impl RuleInfo {
    /// The row with the reason generated cases cannot reach its rule.
    const fn not_generated(self, why: &'static str) -> RuleInfo {
        RuleInfo {
            not_generated: Some(why),
            ..self
        }
    }
}

/// Every rule, in [`Rule`] order.
pub const RULES: &[RuleInfo] = &[
    info(
        Rule::LookupMerge,
        "lookup.merge",
        "namei.c: ovl_lookup",
        ANY,
    ),
    info(
        Rule::LookupWhiteout,
        "lookup.whiteout",
        "namei.c: ovl_lookup_single",
        ANY,
    ),
    info(
        Rule::LookupXwhiteout,
        "lookup.xwhiteout",
        "util.c: ovl_path_is_whiteout",
        XWHITEOUTS,
    ),
    info(
        Rule::LookupOpaque,
        "lookup.opaque",
        "namei.c: ovl_lookup_single",
        ANY,
    ),
    info(
        Rule::LookupNonDirStops,
        "lookup.non-dir-stops",
        "namei.c: ovl_lookup_single",
        ANY,
    ),
    info(
        Rule::LookupRedirectRelative,
        "lookup.redirect-relative",
        "namei.c: ovl_check_redirect",
        FOLLOWS,
    ),
    info(
        Rule::LookupRedirectAbsolute,
        "lookup.redirect-absolute",
        "namei.c: ovl_check_redirect",
        FOLLOWS,
    ),
    info(
        Rule::LookupRedirectInvalid,
        "lookup.redirect-invalid",
        "namei.c: ovl_get_redirect_xattr",
        ANY,
    ),
    info(
        Rule::LookupRedirectNofollow,
        "lookup.redirect-nofollow",
        "namei.c: ovl_lookup",
        NOFOLLOW,
    ),
    info(
        Rule::LookupMetacopyData,
        "lookup.metacopy-data",
        "namei.c: ovl_lookup",
        METACOPY,
    ),
    info(
        Rule::LookupMetacopyRefused,
        "lookup.metacopy-refused",
        "namei.c: ovl_lookup",
        NO_METACOPY,
    ),
    info(
        Rule::LookupMetacopyNoData,
        "lookup.metacopy-no-data",
        "namei.c: ovl_lookup",
        METACOPY,
    ),
    info(
        Rule::LookupIndexAlias,
        "lookup.index-alias",
        "namei.c: ovl_lookup_index",
        INDEX,
    ),
    info(
        Rule::LookupIndexRedirectRefused,
        "lookup.index-redirect-refused",
        "namei.c: ovl_lookup, ovl_check_follow_redirect (a lower hard link found through its index entry on a mount that does not follow the redirect its lookup read: EPERM)",
        INDEX_DATA_ONLY_NOFOLLOW,
    ),
    info(
        Rule::LookupDataOnly,
        "lookup.data-only",
        "namei.c: ovl_lookup, ovl_lookup_data_layers",
        DATA_ONLY,
    ),
    info(
        Rule::LookupDataRedirectWithoutMetacopy,
        "lookup.data-redirect-without-metacopy",
        "namei.c: ovl_lookup (lower to data redirect, v6.16)",
        DATA_ONLY_NO_METACOPY,
    ),
    info(
        Rule::LowerdataMissing,
        "open.lowerdata-missing",
        "namei.c: ovl_maybe_lookup_lowerdata (file.c: ovl_open, copy_up.c: ovl_copy_up_flags)",
        DATA_ONLY,
    ),
    info(
        Rule::CopyUpData,
        "copy-up.data",
        "copy_up.c: ovl_copy_up_one",
        WRITABLE,
    ),
    info(
        Rule::CopyUpTrunc,
        "copy-up.trunc",
        "copy_up.c: ovl_copy_up_one (O_TRUNC)",
        WRITABLE,
    ),
    info(
        Rule::CopyUpMeta,
        "copy-up.metacopy",
        "copy_up.c: ovl_need_meta_copy_up",
        METACOPY,
    ),
    info(
        Rule::CopyUpMetacopyData,
        "copy-up.metacopy-data",
        "copy_up.c: ovl_copy_up_meta_inode_data",
        METACOPY,
    ),
    info(
        Rule::CopyUpDir,
        "copy-up.dir",
        "copy_up.c: ovl_copy_up_flags",
        WRITABLE,
    ),
    info(
        Rule::CopyUpImpure,
        "copy-up.impure",
        "copy_up.c: ovl_do_copy_up",
        WRITABLE,
    ),
    info(
        Rule::CopyUpBrokenHardLink,
        "copy-up.broken-hard-link",
        "overlayfs.rst: Index",
        NO_INDEX,
    ),
    info(
        Rule::CopyUpIndex,
        "copy-up.index",
        "copy_up.c: ovl_link_up, ovl_do_copy_up",
        INDEX,
    ),
    info(
        Rule::CopyUpNoSpace,
        "copy-up.enospc",
        "copy_up.c: ovl_copy_up_tmpfile",
        SIZED,
    ),
    info(
        Rule::FixOrigin,
        "mount.fix-origin",
        "namei.c: ovl_fix_origin",
        WRITABLE,
    ),
    info(
        Rule::RenameFlagsRefused,
        "rename.flags-refused",
        "dir.c: ovl_rename",
        ANY,
    ),
    info(
        Rule::RenameDirExdev,
        "rename.dir-exdev",
        "overlayfs.rst: Renaming directories",
        ANY,
    ),
    info(
        Rule::RenameDirRedirect,
        "rename.dir-redirect",
        "dir.c: ovl_set_redirect",
        REDIRECT_ON,
    ),
    info(
        Rule::RenameOpaque,
        "rename.opaque",
        "dir.c: ovl_rename (ovl_set_opaque_xerr)",
        WRITABLE,
    ),
    info(
        Rule::RenameWhiteout,
        "rename.whiteout",
        "dir.c: ovl_rename (RENAME_WHITEOUT)",
        WRITABLE,
    ),
    info(
        Rule::RenameOverWhiteout,
        "rename.over-whiteout",
        "dir.c: ovl_rename (cleanup_whiteout)",
        WRITABLE,
    ),
    info(
        Rule::RenameNotEmpty,
        "rename.not-empty",
        "readdir.c: ovl_check_empty_dir",
        WRITABLE,
    ),
    info(
        Rule::RenameSameInode,
        "rename.same-inode",
        "fs/namei.c: vfs_rename",
        WRITABLE,
    ),
    info(
        Rule::RenameStaleLink,
        "rename.stale-link",
        "dir.c: ovl_rename (two overlay inodes of one upper inode: a fresh link and the name it was made from)",
        FRESH_LINKS,
    ),
    info(
        Rule::RemoveWhiteout,
        "remove.whiteout",
        "dir.c: ovl_remove_and_whiteout",
        WRITABLE,
    ),
    info(
        Rule::RemoveNotEmpty,
        "remove.not-empty",
        "readdir.c: ovl_check_empty_dir",
        WRITABLE,
    ),
    info(
        Rule::NlinkStart,
        "remove.nlink-start",
        "util.c: ovl_nlink_start",
        INDEX,
    ),
    info(
        Rule::CreateOverWhiteout,
        "create.over-whiteout",
        "dir.c: ovl_create_over_whiteout",
        WRITABLE,
    ),
    info(
        Rule::MkdirOpaqueInMerged,
        "create.opaque-in-merged",
        "dir.c: ovl_create_upper",
        MKDIR_OPAQUE,
    ),
    info(
        Rule::LinkMetacopyRedirect,
        "link.metacopy-redirect",
        "dir.c: ovl_set_link_redirect",
        METACOPY,
    ),
    info(
        Rule::ReaddirMerged,
        "readdir.merged",
        "readdir.c: ovl_dir_read_merged",
        ANY,
    ),
    info(
        Rule::ReaddirXwhiteouts,
        "readdir.xwhiteouts",
        "readdir.c: ovl_iterate",
        XWHITEOUTS,
    ),
    info(
        Rule::ReaddirReal,
        "readdir.real",
        "readdir.c: ovl_iterate_real",
        ANY,
    ),
    info(
        Rule::ReaddirStaleEntry,
        "readdir.stale-entry",
        "readdir.c: ovl_cache_update",
        WRITABLE,
    ),
    info(
        Rule::ReaddirImpureCleared,
        "readdir.impure-cleared",
        "readdir.c: ovl_cache_get_impure",
        WRITABLE,
    ),
    info(
        Rule::StatOriginIno,
        "stat.origin-ino",
        "inode.c: ovl_getattr",
        WRITABLE,
    ),
    info(Rule::StatXino, "stat.xino", "inode.c: ovl_map_ino", XINO),
    info(
        Rule::StatPseudoDev,
        "stat.pseudo-dev",
        "inode.c: ovl_map_dev_ino",
        PSEUDO_DEV,
    ),
    info(
        Rule::StatMergedDirNlink,
        "stat.merged-dir-nlink",
        "inode.c: ovl_getattr",
        ANY,
    ),
    info(
        Rule::StatIndexNlink,
        "stat.index-nlink",
        "inode.c: ovl_get_nlink",
        INDEX,
    ),
    info(
        Rule::StatMetacopySize,
        "stat.metacopy-size",
        "inode.c: ovl_getattr; copy_up.c: ovl_copy_up_file, ovl_set_size",
        METACOPY,
    ),
    info(
        Rule::PrivateXattrsHidden,
        "xattr.private-hidden",
        "xattrs.c: ovl_listxattr",
        ANY,
    ),
    info(
        Rule::PrivateXattrEscaped,
        "xattr.escaped",
        "overlayfs.rst: Nesting overlayfs mounts",
        ESCAPED,
    ),
    info(
        Rule::KillPrivCapability,
        "xattr.killpriv",
        "inode.c: file_remove_privs; commoncap.c: cap_inode_killpriv",
        WRITABLE,
    ),
    info(
        Rule::UuidXattr,
        "mount.uuid-xattr",
        "super.c: ovl_init_uuid_xattr",
        UUID,
    ),
    info(
        Rule::UuidOff,
        "mount.uuid-off",
        "params.c: ovl_parameter_uuid (uuid=null|off)",
        UUID_OFF,
    ),
    info(
        Rule::VolatileRemount,
        "mount.volatile",
        "readdir.c: ovl_workdir_cleanup_recurse (work/incompat/volatile)",
        VOLATILE,
    ),
    info(
        Rule::ReadOnly,
        "mount.readonly",
        "overlayfs.rst: Upper and Lower",
        READONLY,
    ),
    info(
        Rule::NoSpace,
        "space.enospc",
        "mm/shmem.c: shmem_alloc_inode, shmem_get_folio",
        SIZED,
    ),
    info(
        Rule::UserxattrNoOrigin,
        "userxattr.no-origin",
        "namei.c: ovl_check_origin (userxattr)",
        USERXATTR,
    ),
    info(
        Rule::NestedNoOrigin,
        "nested.no-origin",
        "copy_up.c: ovl_set_origin_fh (no file handle: an empty origin); namei.c: ovl_check_origin",
        NESTED_UPPER,
    ),
    info(
        Rule::OfflineChange,
        "lifecycle.offline-change",
        "overlayfs.rst: Changes to underlying filesystems (ovl_allow_offline_changes)",
        OFFLINE,
    ),
    info(
        Rule::OfflineStaleOrigin,
        "lookup.origin-stale",
        "namei.c: ovl_check_origin (ESTALE ignored)",
        OFFLINE_UPPER,
    ),
    info(
        Rule::NestedLowerNlink,
        "nested.lower-nlink",
        "inode.c: ovl_getattr of the inner overlay (1 for a directory it merges)",
        NESTED,
    ),
    info(
        Rule::Commit,
        "lifecycle.commit",
        "overlayfs.rst: Changes to underlying filesystems",
        WRITABLE,
    ),
    info(
        Rule::FdSeesCopyUp,
        "fd.sees-copy-up",
        "file.c: ovl_real_fdget",
        WRITABLE,
    ),
    info(
        Rule::FdReaddirCache,
        "fd.readdir-cache",
        "readdir.c: ovl_dir_read_merged (per open)",
        ANY,
    ),
    info(
        Rule::NoUuidXattrBefore66,
        "version.no-uuid-xattr",
        "super.c: ovl_init_uuid_xattr (v6.6)",
        OLD_UUID,
    ),
    info(
        Rule::NoXwhiteoutsBefore68,
        "version.no-xwhiteouts",
        "commit 420332b94119 (v6.8)",
        OLD_XWHITEOUTS,
    ),
    info(
        Rule::NoTmpfsUserXattrsBefore66,
        "version.tmpfs-no-user-xattrs",
        "mm/shmem.c: shmem_user_xattr_handler (v6.6)",
        OLD_TMPFS,
    ),
    info(
        Rule::PrivateXattrsRefusedBefore67,
        "version.private-xattrs-refused",
        "xattrs.c: ovl_own_xattr_get (before v6.7)",
        OLD_ESCAPE,
    ),
    info(
        Rule::StatfsOwnFsid,
        "statfs.fsid-own",
        "super.c: ovl_statfs (uuid_to_fsid of the overlay's uuid)",
        OWN_FSID,
    ),
    info(
        Rule::StatfsRealFsid,
        "statfs.fsid-real",
        "super.c: ovl_statfs (vfs_statfs of the real root); params.c: uuid=on needs an upper",
        REAL_FSID,
    ),
    info(
        Rule::StatfsZeroFsid,
        "statfs.fsid-zero",
        "super.c: ovl_statfs, ovl_fill_super (no uuid without an upper)",
        ZERO_FSID,
    ),
    info(
        Rule::StatfsUpperFsidBefore66,
        "version.statfs-real-fsid",
        "super.c: ovl_statfs (before v6.6: the real root's fsid)",
        OLD_FSID,
    ),
    info(
        Rule::UpperMetacopyAloneEioBefore615,
        "version.upper-metacopy-alone-eio",
        "namei.c: ovl_lookup (before v6.15: an upper metacopy with nothing below is EIO without metacopy=on)",
        OLD_METACOPY_REFUSAL,
    ),
    info(
        Rule::RedirectRefusedWhenFoundBefore615,
        "version.redirect-refused-when-found",
        "namei.c: ovl_lookup (before v6.15: a redirect not followed is refused once a layer below has its target)",
        OLD_REDIRECT_REFUSAL,
    ),
    info(
        Rule::StatUnmappedId,
        "stat.unmapped-overflow-id",
        "inode.c: ovl_copyattr, ovl_getattr (an id the layer's idmapped mount does not map stats as the overflow id)",
        IDMAPPED,
    ),
    info(
        Rule::CopyUpUnmapped,
        "copy-up.unmapped-owner",
        "copy_up.c: ovl_copy_up_one (EOVERFLOW for an owner with no mapping, 4f11ada10d0a), ovl_do_copy_up (EPERM for a parent whose impure mark is refused)",
        IDMAPPED_UPPER,
    ),
    info(
        Rule::LookupOriginUnmapped,
        "lookup.origin-unmapped",
        "namei.c: ovl_lookup, ovl_fix_origin (the origin of an upper dir with an unmapped id cannot be set: EPERM)",
        IDMAPPED_UPPER,
    )
    .not_generated(
        "generated upper directories keep mapped ids: below one that does not, a merged \
         directory's first lookup fails and a later one stores its origin, which the model \
         does not follow (docs/semantics.md, section 2)",
    ),
    info(
        Rule::ReaddirImpureLookupFails,
        "readdir.impure-lookup-fails",
        "readdir.c: ovl_dir_read_impure, ovl_cache_update (a failing lookup fails the listing)",
        D_INO_LOOKUPS,
    ),
    info(
        Rule::CopyUpFileattr,
        "copy-up.fileattr",
        "copy_up.c: ovl_copy_fileattr (immutable and append-only to overlay.protattr, noatime to the upper inode, no-dump dropped)",
        FLAGS,
    ),
    info(
        Rule::FileattrSet,
        "fileattr.protattr",
        "inode.c: ovl_fileattr_set; util.c: ovl_set_protattr (chattr copies up; immutable and append-only go to overlay.protattr, which clearing them removes only where the overlay inode has them)",
        FLAGS,
    ),
    info(
        Rule::ProtattrBelow,
        "fileattr.protattr-below",
        "util.c: ovl_check_protattr (for upper inodes but the root only: a committed layer's protattr counts for nothing)",
        FLAGS,
    ),
    info(
        Rule::FlagsInherited,
        "create.flags-inherited",
        "dir.c: ovl_create_upper (made in the upper dir, whose no-dump and no-atime flags tmpfs gives it: shmem.c SHMEM_FL_INHERITED), ovl_create_over_whiteout (made in the work dir)",
        FLAGS,
    ),
    info(
        Rule::PermAcl,
        "perm.acl",
        "fs/namei.c: acl_permission_check, fs/posix_acl.c: posix_acl_permission (inode.c: ovl_get_inode_acl hands over the real inode's ACL)",
        ANY,
    ),
    info(
        Rule::AclSet,
        "acl.set",
        "inode.c: ovl_set_or_remove_acl (copy-up, ENODATA for an ACL a lower object lacks); fs/posix_acl.c: posix_acl_valid, posix_acl_update_mode",
        WRITABLE,
    ),
    info(
        Rule::AclKillSgid,
        "acl.kill-sgid",
        "inode.c: ovl_set_or_remove_acl (a caller outside the group without CAP_FSETID: ovl_setattr with ATTR_KILL_SGID, before the ENODATA check)",
        WRITABLE,
    ),
    info(
        Rule::CreateDefaultAcl,
        "create.default-acl",
        "fs/posix_acl.c: posix_acl_create, posix_acl_create_masq (the parent's default ACL; dir.c: ovl_create_over_whiteout sets the ACLs itself)",
        WRITABLE,
    ),
    info(
        Rule::ChmodAcl,
        "chmod.acl",
        "fs/posix_acl.c: posix_acl_chmod (the upper filesystem's setattr, after copy-up)",
        WRITABLE,
    ),
    info(
        Rule::AclChecksAfterCopyUpBefore62,
        "version.acl-checks-after-copy-up",
        "inode.c: ovl_posix_acl_xattr_set (before v6.2: the form after the immutable check, validity after the set-gid kill and copy-up, an empty ACL set)",
        OLD_ACL,
    ),
    info(
        Rule::MetacopyDataKeepsLower,
        "copy-up.metacopy-keeps-lower",
        "util.c: ovl_path_type (the overlay inode of an upper metacopy whose data was copied up keeps the lower stack its lookup found: OVL_TYPE_ORIGIN until the next mount; dir.c: ovl_link marks the new parent impure)",
        METACOPY,
    ),
    info(
        Rule::StatMetacopyByName,
        "stat.metacopy-by-name",
        "namei.c: ovl_lookup, inode.c: ovl_hash_bylower (an upper metacopy file without an origin xattr finds its lower by name; its overlay inode is hashed by that lower: OVL_CONST_INO, OVL_TYPE_ORIGIN, the lower's st_ino)",
        METACOPY,
    ),
    info(
        Rule::LinkFreshInode,
        "link.fresh-inode",
        "dir.c: ovl_instantiate (the new dentry of a link is dropped; its fresh lookup finds no lower where the linked overlay inode kept one no lookup finds: another overlay inode, the upper's st_ino)",
        FRESH_LINKS,
    ),
    info(
        Rule::LinkLookedUpAfterCopyUp,
        "link.looked-up-after-copy-up",
        "dir.c: ovl_instantiate, namei.c: ovl_lookup (a link of a metacopy found by name is first looked up after the data copy-up: the upper is no longer a metacopy, its redirect is not followed, and the name is another overlay inode)",
        METACOPY,
    ),
    info(
        Rule::IndexCleanup,
        "mount.index-cleanup",
        "readdir.c: ovl_indexdir_cleanup, namei.c: ovl_verify_index (at mount, an index entry no upper name links is removed when its origin is stale or its union count, inode.c: ovl_get_nlink, is 0)",
        OFFLINE_INDEX,
    ),
    info(
        Rule::IndexNlinkFallback,
        "stat.index-nlink-fallback",
        "inode.c: ovl_get_nlink (a lower inode with one link left: the union count is the upper inode's real count, the index entry's link included)",
        OFFLINE_INDEX,
    ),
    info(
        Rule::IndexNoUpperAlias,
        "remove.index-no-upper-alias",
        "dir.c: ovl_remove_and_whiteout, ovl_rename (ovl_matches_upper: an upper found through the index that ovl_nlink_start did not link up, its lower inode having one link left, is not the directory's entry: ESTALE)",
        OFFLINE_INDEX,
    ),
    info(
        Rule::ReaddirBeforeFixOrigin,
        "readdir.before-fix-origin",
        "readdir.c: ovl_iterate, namei.c: ovl_fix_origin (the mount's first walk lists a directory before its entries' lookups mark it impure: no d_ino lookups, stale names kept)",
        WRITABLE,
    )
    .not_generated(
        "a view before any op: generated cases have a step first, and the driver walks a mount before it",
    ),
    info(
        Rule::EmptyListingReadAgainBefore613,
        "version.empty-listing-read-again",
        "readdir.c: ovl_iterate of a directory of the upper alone reads the real one; libfs.c: dcache_readdir, offset_readdir (before v6.13: after a read that listed no entry, the next starts the tmpfs directory again)",
        OLD_TMPFS_EOD,
    ),
];

impl Rule {
    /// The rule's row in [`RULES`].
    pub fn info(self) -> &'static RuleInfo {
        &RULES[self as usize]
    }

    /// The stable id.
    pub fn id(self) -> &'static str {
        self.info().id
    }

    /// The rule with stable id `id`.
    pub fn by_id(id: &str) -> Option<Rule> {
        RULES.iter().find(|r| r.id == id).map(|r| r.rule)
    }

    /// Why a mount with `profile` cannot reach this rule, or `None` when it
    /// can.
    pub fn unreachable_with(self, profile: &Profile) -> Option<&'static str> {
        let reach = self.info().reach;
        let f = Features::from_profile(profile);
        (!(reach.when)(&f)).then_some(reach.needs)
    }

    fn bit(self) -> u128 {
        1u128 << (self as u32)
    }
}

/// A set of rules, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RuleSet(u128);

impl RuleSet {
    pub fn contains(self, r: Rule) -> bool {
        self.0 & r.bit() != 0
    }

    pub fn insert(&mut self, r: Rule) {
        self.0 |= r.bit();
    }

    pub fn union(self, other: RuleSet) -> RuleSet {
        RuleSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rules in the set, in [`RULES`] order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        RULES
            .iter()
            .map(|r| r.rule)
            .filter(move |r| self.contains(*r))
    }
}

/// The rules that decided something in a model state or any state derived
/// from it (every clone, step, view and commit of one `Model::new` shares
/// one log). Recording is idempotent, so the log does not depend on the
/// order in which states were explored.
#[derive(Debug, Default)]
pub struct RuleLog([AtomicU64; 2]);

impl RuleLog {
    pub(crate) fn record(&self, r: Rule) {
        let n = r as usize;
        let (word, mask) = (&self.0[n / 64], 1u64 << (n % 64));
        if word.load(Ordering::Relaxed) & mask == 0 {
            word.fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// The rules recorded so far.
    pub fn reached(&self) -> RuleSet {
        let lo = self.0[0].load(Ordering::Relaxed) as u128;
        let hi = self.0[1].load(Ordering::Relaxed) as u128;
        RuleSet(lo | hi << 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_with_unique_ids() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.rule as usize, i, "{} out of order", r.id);
            assert_eq!(Rule::by_id(r.id), Some(r.rule), "{} not unique", r.id);
        }
        assert!(RULES.len() <= 128, "a RuleSet holds 128 rules");
    }

    #[test]
    fn the_log_keeps_both_words() {
        let log = RuleLog::default();
        let last = RULES.last().unwrap().rule;
        log.record(Rule::LookupMerge);
        log.record(last);
        let got: Vec<Rule> = log.reached().iter().collect();
        assert_eq!(got, vec![Rule::LookupMerge, last]);
    }

    #[test]
    fn reach_follows_the_profile() {
        let p = |name| Profile::preset(name).unwrap();
        assert_eq!(Rule::CopyUpMeta.unreachable_with(&p("metacopy")), None);
        assert_eq!(
            Rule::CopyUpMeta.unreachable_with(&p("default")),
            Some("metacopy=on")
        );
        assert!(Rule::ReadOnly.unreachable_with(&p("default")).is_some());
        assert_eq!(Rule::ReadOnly.unreachable_with(&p("readonly")), None);
    }
}
