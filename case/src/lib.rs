//! The shared vocabulary of ovlcheck: what a test case is, what an operation
//! returns and how a tree is observed. No semantics and no I/O live here: the
//! model (pure overlay semantics) and the driver (real mounts) both speak
//! these types, and only the harness sees both.
//!
//! The modules form a layered graph, none importing one that imports it
//! back: `errno`, `path`, `sysctl`, `profile` and the token rendering in `quote` at the
//! bottom; `outcome`, `op`, `layer` and `view` above them; `case` (the
//! [`Case`] itself) above those; the `text` format, which reads and writes
//! all of them, and the test strategies in `arb`, on top. This root only
//! declares and re-exports.

#![forbid(unsafe_code)]

pub mod acl;
#[cfg(feature = "arbitrary")]
pub mod arb;
mod case;
pub mod errno;
pub mod iflags;
pub mod layer;
pub mod oci;
pub mod op;
pub mod outcome;
pub mod path;
pub mod profile;
mod quote;
pub mod signature;
pub mod sysctl;
pub mod text;
pub mod view;

pub use case::Case;
pub use errno::Errno;
pub use iflags::InodeFlags;
pub use layer::{Entry, LayerSpec};
pub use op::{
    check_fd_name, Access, Cred, OfflineChange, Op, OpenFlags, RenameFlags, Step, Whence,
};
pub use outcome::{FileKind, Fsid, Outcome, StatInfo, Value};
pub use path::{cmp_names, Name, OpPath, PathError, RelPath};
pub use profile::{Fsync, LowerFs, Profile, RedirectDir, Uuid, Xino};
pub use signature::{Class, Field, Known, Signature, ViewSig, Which};
pub use sysctl::Sysctls;
pub use text::{parse_case, print_case, print_step, ParseError};
pub use view::{DevClass, Node, NodeKind, View, ViewDiff};
