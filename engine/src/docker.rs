//! The `docker` backend: Docker's overlay2 graph driver judged through the
//! engine's own API (docs/engines.md), by the flow of `api.rs`. What
//! is Docker's own: the store at `<DockerRootDir>/overlay2`, the `-init`
//! layer of every container, the `index=off` mount option, and commit tars
//! that carry `security.capability` alone.

use crate::api::{EngineBackend, Flavor};
use crate::daemon;
use ovlcheck_case::oci::TarXattrs;
use ovlcheck_case::LayerSpec;
use ovlcheck_driver::{BackendKind, BackendOptions, DriverError};

/// Docker's overlay2, as data.
pub(crate) const DOCKER: Flavor = Flavor {
    kind: BackendKind::Docker,
    name: "Docker",
    program: daemon::DOCKER,
    driver: "overlay2",
    home: "overlay2",
    // The overlay options overlay2 `Get` passes besides the directories
    // when `/sys/module/overlay/parameters/index` exists (moby overlay2
    // driver; docs/engines.md).
    options: &["index=off"],
    init_layer: true,
    // moby's archive package reads no xattr but `security.capability`
    // into a tar header (`ReadSecurityXattrToTarHeader`).
    tar_xattrs: TarXattrs::Capability,
    // moby overlay2 makes every layer's diff 0755, as a case's layer root
    // is.
    layer_root_mode: None,
    // moby archive `overlayWhiteoutConverter.ConvertWrite`: 0600.
    whiteout_mode: 0o600,
    serial_images: false,
    max_layers: Some(125),
    // moby overlay2 only reports metacopy; it never mounts with it.
    refuse_metacopy: false,
};

/// A Docker engine as a backend. Cloning shares the engine connection.
#[derive(Clone, Debug)]
pub struct DockerBackend(EngineBackend);

impl DockerBackend {
    /// Connects to the engine at `socket` (or `DOCKER_HOST`), or starts a
    /// private one; checks that it stores with overlay2 and learns its
    /// `-init` layer.
    pub fn new(socket: Option<&str>, opts: BackendOptions) -> Result<DockerBackend, DriverError> {
        EngineBackend::new(DOCKER, socket, opts).map(DockerBackend)
    }

    /// The `-init` layer every container of this engine gets (normalized
    /// mtimes), as a case layer.
    pub fn init_layer(&self) -> &LayerSpec {
        self.0
            .init_layer()
            .expect("a Docker engine's containers have an -init layer")
    }
}

crate::api::engine_backend!(DockerBackend);
