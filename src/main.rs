//! `ovlcheck`: the command line. Thin: parsing, output and exit codes; the
//! work is in the harness crate.
//!
//! Exit status: 0 no divergence, 1 divergence found, 2 bad input or unusable
//! environment (docs/architecture.md, "The CLI").

mod cli;

/// mimalloc: the model and harness allocate many small, short-lived
/// objects (persistent-tree nodes, names, views); it runs cases ~20% faster
/// than the system allocator (model bench `case_12_ops_with_views`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::main());
}
