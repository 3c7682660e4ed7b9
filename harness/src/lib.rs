//! Differential checking of model against backend.
