//! `ovlcheck`: the command line. Thin: parsing, output and exit codes; the
//! work is in the harness crate.
//!
//! Exit status: 0 no divergence, 1 divergence found, 2 bad input or unusable
//! environment (DESIGN.md, CLI).

mod cli;

fn main() {
    std::process::exit(cli::main());
}
