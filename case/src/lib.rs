//! The shared vocabulary of ovlcheck: what a test case is, what an operation
//! returns and how a tree is observed. No semantics and no I/O live here: the
//! model (pure overlay semantics) and the driver (real mounts) both speak
//! these types, and only the harness sees both.

#[cfg(feature = "arbitrary")]
pub mod arb;
pub mod errno;
pub mod layer;
pub mod op;
pub mod outcome;
pub mod path;
pub mod profile;
pub mod signature;
pub mod text;
pub mod view;

pub use errno::Errno;
pub use layer::{Entry, LayerSpec};
pub use op::{Cred, Op, OpenFlags, RenameFlags, Step};
pub use outcome::{Allowed, FileKind, Outcome, StatInfo, Value};
pub use path::{cmp_names, Name, OpPath, PathError, RelPath};
pub use profile::{LowerFs, Profile};
pub use signature::{Class, Field, Known, Signature, ViewSig, Which};
pub use text::{parse_case, print_case, print_step, ParseError};
pub use view::{DevClass, Node, NodeKind, View, ViewDiff};

use serde::{Deserialize, Serialize};

/// One test case: a mount profile, the lower layers (bottom first, as in a
/// Dockerfile), an optional pre-existing upper layer, and the operations to
/// run on the merged tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Case {
    pub profile: Profile,
    /// Divergences this case is known to show on other implementations
    /// (`known` lines): corpus/known-*/ cases.
    pub known: Vec<signature::Known>,
    /// Lower layers, bottom (base image) first.
    pub lowers: Vec<LayerSpec>,
    /// Initial contents of the upper layer, if any.
    pub upper: Option<LayerSpec>,
    pub steps: Vec<Step>,
}

impl Case {
    /// Number of steps that are filesystem operations (not lifecycle ops).
    pub fn op_count(&self) -> usize {
        self.steps.len()
    }
}
