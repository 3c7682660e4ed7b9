//! Differential checking of the overlay model against real backends:
//! generation, the runner, shrinking, exploration, the corpus and reports.
//! This is the only crate that sees both the model and the driver.

pub mod campaign;
pub mod changes;
pub mod compare;
pub mod contract;
pub mod corpus;
pub mod coverage;
pub mod explore;
pub mod gen;
pub mod inspect;
pub mod known;
pub mod model_backend;
pub mod pool;
pub mod replay;
pub mod report;
pub mod repro;
pub mod runner;
pub mod show;
pub mod shrink;
pub mod summary;

pub use model_backend::ModelBackend;
pub use runner::{run_case, Check, Divergence, Run, RunError};
