//! A test case: what is mounted and what is done on the mount.

use crate::layer::LayerSpec;
use crate::op::Step;
use crate::profile::Profile;
use serde::{Deserialize, Serialize};

/// One test case: a mount profile, the data-only and lower layers (bottom
/// first, as in a Dockerfile), an optional pre-existing upper layer, and
/// the operations to run on the merged tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Case {
    pub profile: Profile,
    /// Divergences this case is known to show on other implementations
    /// (`known` lines): corpus/known-*/ cases.
    pub known: Vec<crate::signature::Known>,
    /// Data-only lower layers (`lowerdir=...::DATA`), bottom first: below
    /// every lower layer, never merged, reached only through the absolute
    /// redirect of a metacopy file (overlayfs.rst: "Data-only lower
    /// layers"). `data` sections of the case text.
    #[serde(default)]
    pub data: Vec<LayerSpec>,
    /// Lower layers, bottom (base image) first.
    pub lowers: Vec<LayerSpec>,
    /// Initial contents of the upper layer, if any.
    pub upper: Option<LayerSpec>,
    pub steps: Vec<Step>,
}

impl Case {
    /// Every entry of every layer: the data-only layers and the lowers
    /// bottom first, then the initial upper.
    pub fn layer_entries(&self) -> impl Iterator<Item = &crate::layer::Entry> {
        self.data
            .iter()
            .chain(&self.lowers)
            .chain(&self.upper)
            .flat_map(|l| &l.entries)
    }

    /// [`Case::layer_entries`] but for the marker entries of escaped
    /// layers ([`crate::layer::LayerFormat::Escaped`]), which are ordinary
    /// xattrs to the overlay that mounts them.
    pub fn marking_entries(&self) -> impl Iterator<Item = &crate::layer::Entry> {
        use crate::layer::{Entry, LayerFormat};
        self.data
            .iter()
            .chain(&self.lowers)
            .chain(&self.upper)
            .flat_map(|l| l.entries.iter().map(move |e| (l.format, e)))
            .filter(|(format, e)| {
                *format != LayerFormat::Escaped
                    || !matches!(
                        e,
                        Entry::Opaque { .. }
                            | Entry::XwhiteoutDir { .. }
                            | Entry::Xwhiteout { .. }
                            | Entry::Redirect { .. }
                            | Entry::Metacopy { .. }
                    )
            })
            .map(|(_, e)| e)
    }

    /// The same case with every pinned outcome dropped (see
    /// [`Step::unpinned`]): what a generator or shrinker hands on, so no
    /// outcome observed on one run steers the next.
    pub fn unpinned(&self) -> Case {
        Case {
            profile: self.profile.clone(),
            known: self.known.clone(),
            data: self.data.clone(),
            lowers: self.lowers.clone(),
            upper: self.upper.clone(),
            steps: self.steps.iter().map(Step::unpinned).collect(),
        }
    }
}
