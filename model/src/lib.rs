//! Pure overlay semantics. No I/O, no clock, no randomness.
//!
//! API contract (used by the harness; keep it):
//! - `Model::new(&Case) -> Result<Model, ModelError>` builds the raw layers
//!   from the case's layer specs and "mounts" them (takes the inode snapshot
//!   that `View::ino` labels refer to).
//! - `Model::apply(&self, &Step) -> Vec<(Outcome, Model)>`: every allowed
//!   outcome of the step with the state that follows it (never empty).
//!   Lifecycle ops (`Remount`, `Commit`) are steps too.
//! - `Model::merged_view(&self) -> View`, `Model::upper_view(&self) ->
//!   Option<View>` (raw upper; `None` for read-only), `Model::lower_view(i)`.
//! - `Model::canonical_hash(&self) -> u64`: equal for equal raw states.
//! - `Clone` is O(1) (imbl).
