//! The real half of every differential check: an overlay2 layer store, real
//! mounts behind one `Backend` trait, a confined executor and an observer.
//! Depends on `case` only, never on the model.
//!
//! API contract (used by the harness; keep it):
//! - `trait Backend: Send + Sync { fn name(&self) -> &str; fn start(&self, case: &Case) -> Result<Box<dyn Session>, DriverError>; }`
//!   `start` builds the case's layers in a fresh overlay2 store on a private
//!   scratch tmpfs, mounts them with the case's profile and takes the
//!   mount-time inode snapshot that `View::ino` labels refer to.
//! - `trait Session { fn apply(&mut self, step: &Step) -> Result<Outcome, DriverError>;
//!   fn merged_view(&mut self) -> Result<View, DriverError>;
//!   fn upper_view(&mut self) -> Result<Option<View>, DriverError>;
//!   fn lower_views(&mut self) -> Result<Vec<View>, DriverError>;
//!   fn finish(self: Box<Self>) -> Result<(), DriverError>; }`
//!   `apply` runs lifecycle steps (`Remount`, `Commit`) too.
//! - `DriverError` distinguishes an unusable environment (exit status 2 in
//!   the CLI) from a hung or dead backend.
