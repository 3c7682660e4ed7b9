//! Real container engines as ovlcheck backends (docs/engines.md). An
//! engine's own code lays out, applies, diffs and commits the layers; the
//! case's ops run on a kernel overlay mount of the engine's layers, made
//! the way the engine's storage driver mounts them. The harness judges it
//! all against the model like any other backend.
//!
//! - [`daemon`]: a running engine, or a private one started and stopped
//!   here.
//! - [`archive`]: Docker image archives (`docker load` / `docker save`).
//! - `api` (private): the flow both engines share, and what differs as
//!   data.
//! - [`docker`]: the `docker` backend ([`DockerBackend`]).
//! - [`podman`]: the `podman` backend ([`PodmanBackend`]).
//! - [`containerd`]: the `containerd` backend ([`ContainerdBackend`]),
//!   through `ctr`.

mod api;
pub mod archive;
pub mod containerd;
pub mod daemon;
pub mod docker;
mod naive_apply;
pub mod podman;

pub use containerd::ContainerdBackend;
pub use docker::DockerBackend;
pub use podman::PodmanBackend;
