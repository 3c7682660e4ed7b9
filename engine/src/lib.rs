//! Real container engines as ovlcheck backends (docs/engines.md). An
//! engine's own code lays out, applies, diffs and commits the layers; the
//! case's ops run on a kernel overlay mount of the engine's layers, made
//! the way the engine's storage driver mounts them. The harness judges it
//! all against the model like any other backend.
//!
//! - [`daemon`]: a running engine, or a private one started and stopped
//!   here.
//! - [`archive`]: Docker image archives (`docker load` / `docker save`).
//! - [`docker`]: the `docker` backend ([`DockerBackend`]).

pub mod archive;
pub mod daemon;
pub mod docker;

pub use docker::DockerBackend;
