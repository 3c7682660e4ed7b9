//! The `podman` backend: containers/storage's overlay driver judged
//! through podman's Docker-compatible API (`podman system service`), by
//! the flow of `api.rs` (docs/engines.md, "podman"). What is podman's
//! own: the store at `<GraphRoot>/overlay`, no `-init` layer, the mount
//! options, and commit tars that carry `user.*` xattrs besides
//! `security.capability`.

use crate::api::{EngineBackend, Flavor};
use crate::daemon;
use ovlcheck_case::oci::TarXattrs;
use ovlcheck_driver::{BackendKind, BackendOptions, DriverError};

/// containers/storage's overlay driver (podman 4.3), as data.
pub(crate) const PODMAN: Flavor = Flavor {
    kind: BackendKind::Podman,
    name: "podman",
    program: daemon::PODMAN_SERVICE,
    driver: "overlay",
    home: "overlay",
    // drivers/overlay `get`: the directories, then the storage.conf
    // `mountopt` (none without a storage.conf), `metacopy=on` only when
    // the driver uses metacopy (refused below); no `index=off`: the
    // module's default decides (docs/engines.md, "podman").
    options: &[],
    // libpod creates the container layer right on the image's top layer.
    init_layer: false,
    tar_xattrs: TarXattrs::CapabilityAndUser,
    // drivers/overlay `create` makes a base layer's diff with
    // `defaultPerms` (0555) and a child layer's with its parent's diff
    // mode (containers/storage #743, #772); podman 4.3 leaves it so even
    // when the layer tar has a `./` entry (docs/engines.md, "podman").
    layer_root_mode: Some(0o555),
    // containers/storage pkg/archive archive_linux.go
    // `overlayWhiteoutConverter.ConvertWrite` writes a whiteout as a
    // regular entry of mode 0 (moby's writes 0600).
    whiteout_mode: 0,
    max_layers: None,
    // Seen with `fuzz --jobs 2`: a load, and a commit of an empty diff,
    // failed with "locating layer for blob ...: layer not known" while
    // another case's image, holding the layer of the same (empty) diff,
    // was removed.
    serial_images: true,
    refuse_metacopy: true,
};

/// A podman service as a backend. Cloning shares the connection.
#[derive(Clone, Debug)]
pub struct PodmanBackend(EngineBackend);

impl PodmanBackend {
    /// Connects to the service at `socket` (or `CONTAINER_HOST`), or
    /// starts a private `podman system service`; checks that it stores
    /// with the overlay driver and does not mount with metacopy.
    pub fn new(socket: Option<&str>, opts: BackendOptions) -> Result<PodmanBackend, DriverError> {
        EngineBackend::new(PODMAN, socket, opts).map(PodmanBackend)
    }
}

crate::api::engine_backend!(PodmanBackend);
