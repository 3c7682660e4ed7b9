//! The raw-syscall floor: the same work as one differential case
//! with no harness, no model and no driver: build two lower layers with a
//! handful of entries on tmpfs, mount overlay, perform a dozen ops, walk the
//! merged tree and the upper (lstat every entry, read every file, list
//! xattrs), unmount, remove the scratch tree. Its cases per second is what
//! `ovlcheck fuzz --backend kernel --jobs 1` is measured against.
//!
//! A second figure, `with lifecycle`, adds the raw form of the two checks
//! the differential runner makes after the ops and that the floor leaves
//! out: unmount, mount again and walk the merged tree (remount); unmount,
//! mount with the upper as the top lower under a fresh upper and walk again
//! (commit). It bounds what any harness making those checks can reach. A
//! third, `with export`, adds the raw form of the export check between
//! them (`raw::one_case_exported`): the upper layer copied as its layer
//! tar would be applied, mounted read-only above the lowers and walked.
//!
//! Needs root; runs in a private mount namespace on its own tmpfs.

use criterion::{criterion_group, Criterion};

mod raw;

use raw::{one_case, one_case_exported, scratch};

fn bench(cr: &mut Criterion) {
    let root = scratch();
    cr.bench_function(
        "baseline: raw differential-case work (2 lowers, 12 ops, walk, umount)",
        |b| b.iter(|| one_case(&root, false)),
    );
    cr.bench_function(
        "baseline with lifecycle: + remount and walk, + commit mount and walk",
        |b| b.iter(|| one_case(&root, true)),
    );
    cr.bench_function(
        "baseline with lifecycle and export: + the applied layer tar mounted and walked",
        |b| b.iter(|| one_case_exported(&root)),
    );
}

criterion_group!(benches, bench);

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("baseline bench needs root (mount); skipped");
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
