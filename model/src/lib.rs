//! Pure overlay semantics. No I/O, no clock, no randomness.
//!
//! API contract (used by the harness; keep it):
//! - `Model::new(&Case) -> Result<Model, ModelError>` builds the raw layers
//!   from the case's layer specs and "mounts" them (takes the inode snapshot
//!   that `View::ino` labels refer to).
//! - `Model::step(&self, &Step) -> (Outcome, Model)`: the outcome of the
//!   step and the state that follows it. Lifecycle ops (`Remount`,
//!   `Commit`) are steps too.
//! - `Model::merged_view(&self) -> View`, `Model::upper_view(&self) ->
//!   Option<View>` (raw upper; `None` for read-only), `Model::lower_view(i)`.
//! - `Model::canonical_hash(&self) -> u64`: equal for equal raw states.
//! - `Clone` is O(1) (imbl).
//!
//! The model stores only the raw layers (each lower and the upper) exactly
//! as on disk, whiteouts and overlay xattrs included, and derives everything
//! users see from them with the kernel's lookup rules (module `lookup`). Each rule
//! is a named function citing overlayfs.rst or the kernel source; profile
//! switches are one table (`features::Features`).

#![forbid(unsafe_code)]

mod build;
mod changeset;
mod copy_up;
mod fds;
mod features;
mod fs;
mod hash;
mod index;
mod init_layer;
mod lookup;
mod mount;
mod names;
mod nested;
mod offline;
mod ops;
mod perm;
mod readdir;
mod resolve;
mod rules;
mod space;
#[cfg(test)]
mod testutil;
mod view;

use fs::{Ino, Inode, Layer, LayerId, LowerRef};
use imbl::{OrdMap, OrdSet};
use ovlcheck_case::{Case, Errno};
use std::sync::Arc;

pub use features::{data_only_layers, follows_redirects, layer_user_xattrs, tmpfs_keeps_end};
pub use fs::Ident;
pub use index::index_on;
pub use lookup::redirect_fails;
pub use offline::offline_changes;
pub use rules::{Rule, RuleInfo, RuleSet, RULES};

/// Why a case cannot be modelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// A layer spec that does not describe a tree (`layer` counts the
    /// data-only layers and then the lowers, bottom first; the upper is
    /// the last).
    Layer { layer: usize, message: String },
    /// A profile the kernel refuses to mount.
    Profile(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Layer { layer, message } => write!(f, "layer {layer}: {message}"),
            ModelError::Profile(m) => write!(f, "profile: {m}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// The state of one overlay mount: its raw layers and the mount-time inode
/// snapshot. Cloning is O(1).
#[derive(Clone, Debug)]
pub struct Model {
    pub(crate) feat: features::Features,
    /// Lower layers, bottom first: the [`Model::data_layers`] data-only
    /// layers, then the regular ones. Shared (O(1) clone) and read by index
    /// on every lookup; changed only by a commit, which adds on top, so a
    /// [`LowerRef`]'s index stays valid.
    pub(crate) lowers: Arc<Vec<Layer>>,
    /// How many of `lowers`, from the bottom, are data-only layers
    /// (overlayfs.rst: "Data-only lower layers"): never merged, searched
    /// only for the data of a metacopy file with an absolute redirect.
    pub(crate) data_layers: usize,
    /// The upper layer; `None` for a read-only overlay.
    pub(crate) upper: Option<Layer>,
    /// index=on: `workdir/index` entries, by copy-up origin.
    pub(crate) index: OrdMap<LowerRef, Ino>,
    /// Mount-time snapshot: the smallest merged path each inode had
    /// (computed on first need from the layers as mounted).
    pub(crate) snapshot: Arc<mount::MountSnapshot>,
    /// Upper non-directories copied up during this mount whose `origin` a
    /// lookup does not decode (userxattr, `lower=overlay`: see
    /// `Features::origin_decoded`), by their lower: the in-memory overlay
    /// inode keeps its lower stack, so st_ino stays the lower's until the
    /// next mount (inode.c: ovl_getattr uses ovl_path_lower; verified on
    /// 6.18).
    pub(crate) mem_lower: OrdMap<Ino, LowerRef>,
    /// Upper metacopy files without an `origin` xattr whose data was
    /// copied up during this mount, by the lower their lookup found by
    /// name: the overlay inode keeps that lower stack, so the file stays
    /// OVL_TYPE_ORIGIN (util.c: ovl_path_type) until the next mount and a
    /// `link` of it marks the new parent impure (observed on 6.18:
    /// corpus/rules/109-metacopy-data-keeps-lower.ovl). A fresh lookup would
    /// find no lower.
    pub(crate) kept_lower: OrdMap<Ino, LowerRef>,
    /// Merged paths made by `link` during this mount from a file whose
    /// overlay inode is hashed by a lower that a lookup of the new name
    /// does not find: userxattr's in-memory lower of a file with a copy-up
    /// origin (the lookup in the user namespace does not take the origin),
    /// or the lower found by name of a metacopy file whose data was copied
    /// up ([`Model::kept_lower`]). overlay drops the new dentry (dir.c:
    /// ovl_instantiate), and the fresh lookup finds no lower (st_ino is the
    /// upper's), so such a name is another overlay inode than the linked
    /// name until the next mount: its st_ino differs and renaming one onto
    /// the other is ESTALE (observed on 6.18).
    pub(crate) fresh_links: OrdSet<String>,
    /// Merged paths made by `link` during this mount from an upper
    /// metacopy file found by name (no `origin` xattr) whose data is still
    /// below, not looked up since, by the linked upper inode. The new
    /// dentry was dropped (dir.c: ovl_instantiate), so the name's first
    /// lookup decides its overlay inode: before the data copy-up it
    /// follows the absolute redirect the link set and joins the inode
    /// hashed by the lower; after it the upper is no longer a metacopy,
    /// nothing below is found, and the name is a fresh link
    /// ([`Model::fresh_links`]; observed on 6.18:
    /// corpus/rules/112-link-looked-up-after-data-copy-up.ovl).
    pub(crate) pending_links: OrdMap<String, Ino>,
    /// The open fds (module `fds`).
    pub(crate) fds: fds::Fds,
    /// Whether this mount was walked: the driver walks the merged tree
    /// once before a mount's first op, so a view taken before any op is
    /// that first walk, which lists each directory before the lookups of
    /// its entries mark it impure ([`mount::MountSnapshot::marked_impure`]).
    pub(crate) walked: bool,
    /// The rules that decided something in this state or any state of the
    /// same case (module `rules`); not part of the state.
    pub(crate) rules: Arc<rules::RuleLog>,
}

impl Model {
    /// Builds the raw layers of `case` and mounts them.
    pub fn new(case: &Case) -> Result<Model, ModelError> {
        case.profile.validate().map_err(ModelError::Profile)?;
        let feat = features::Features::from_profile(&case.profile);
        if let Some(why) = offline::case_refusal(case, &feat) {
            return Err(ModelError::Profile(why.into()));
        }
        let mut lowers = Vec::with_capacity(case.data.len() + case.lowers.len() + 1);
        let unmapped = |id: u32| case.profile.unmapped(id);
        // lower=overlay: the data-only layers, then the inner overlay as
        // the one regular lower layer.
        let regular: &[ovlcheck_case::LayerSpec] = if feat.nested { &[] } else { &case.lowers };
        for (i, spec) in case.data.iter().chain(regular).enumerate() {
            lowers.push(build::layer_from_spec_mapped(spec, &unmapped).map_err(|m| {
                ModelError::Layer {
                    layer: i,
                    message: m,
                }
            })?);
        }
        if feat.nested {
            lowers.push(nested::lower_layer(case)?);
        }
        let empty = ovlcheck_case::LayerSpec::default();
        let spec = case.upper.as_ref().unwrap_or(&empty);
        let container =
            build::layer_from_spec_mapped(spec, &unmapped).map_err(|m| ModelError::Layer {
                layer: case.data.len() + case.lowers.len(),
                message: m,
            })?;
        // Read-only: the container layer (with the case's upper contents)
        // is mounted as the top lower layer, as the driver does; overlay
        // needs two lower layers without an upper.
        let upper = if feat.readonly() {
            lowers.push(container);
            None
        } else {
            Some(container)
        };
        let mut m = Model {
            feat,
            lowers: Arc::new(lowers),
            data_layers: case.data.len(),
            upper,
            index: OrdMap::new(),
            snapshot: Arc::new(mount::MountSnapshot::default()),
            mem_lower: OrdMap::new(),
            kept_lower: OrdMap::new(),
            fresh_links: OrdSet::new(),
            pending_links: OrdMap::new(),
            fds: fds::Fds::default(),
            walked: false,
            rules: Arc::default(),
        };
        m.mount();
        Ok(m)
    }

    /// Number of lower (image) layers (grows by one on `commit`). With a
    /// read-only profile the container layer mounted as the top lower is
    /// not counted.
    pub fn lower_count(&self) -> usize {
        self.lowers.len() - self.data_layers - usize::from(self.feat.readonly())
    }

    pub(crate) fn layer(&self, id: LayerId) -> &Layer {
        match id {
            LayerId::Lower(i) => &self.lowers[i],
            LayerId::Upper => self.upper.as_ref().expect("upper layer"),
        }
    }

    pub(crate) fn upper_mut(&mut self) -> &mut Layer {
        self.upper.as_mut().expect("upper layer")
    }

    pub(crate) fn upper_inode(&self, ino: Ino) -> &Inode {
        self.layer(LayerId::Upper).get(ino)
    }

    pub(crate) fn lower_inode(&self, r: LowerRef) -> &Inode {
        self.lowers[r.layer as usize].get(r.ino)
    }

    /// The rules that decided an outcome or a view so far, in this state
    /// and every state derived from the same `Model::new`.
    pub fn rules_reached(&self) -> RuleSet {
        self.rules.reached()
    }

    /// Records that `rule` decided something.
    pub(crate) fn hit(&self, rule: rules::Rule) {
        self.rules.record(rule);
    }

    /// Errors that ops report as-is.
    pub(crate) fn check_writable(&self) -> Result<(), Errno> {
        if self.feat.readonly() {
            self.hit(rules::Rule::ReadOnly);
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }
}
