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
    // In a vm backend's guest this binary is the kernel's init
    // (docs/vm.md): it serves the host there and never returns.
    if ovlcheck_vm::guest::is_guest() {
        ovlcheck_vm::guest::main();
    }
    std::process::exit(cli::main());
}
