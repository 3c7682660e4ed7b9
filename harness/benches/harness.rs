//! Harness benchmarks: case generation, one whole differential case on the
//! model backend (the `--backend model` fuzzer's unit of work) and on the
//! kernel backend (needs root), and a fixed small case on the kernel for
//! comparison with the raw baseline (benches/baseline.rs).

use criterion::{criterion_group, criterion_main, Criterion};
use ovlcheck_case::parse_case;
use ovlcheck_harness::gen::{case_at, GenConfig};
use ovlcheck_harness::{run_case, ModelBackend};
use std::hint::black_box;

/// The allocator the `ovlcheck` binary runs the harness with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod raw;

use raw::BASELINE_CASE;

fn bench(c: &mut Criterion) {
    let config = GenConfig::default();
    let mut i = 0u64;
    c.bench_function("generate one case", |b| {
        b.iter(|| {
            i += 1;
            black_box(case_at(&config, 1, i))
        })
    });
    let mut i = 0u64;
    c.bench_function("differential case on the model backend (generated)", |b| {
        b.iter(|| {
            i += 1;
            let case = case_at(&config, 1, i);
            black_box(run_case(&ModelBackend, &case).map(|r| r.ops).ok())
        })
    });
    let fixed = parse_case("baseline", BASELINE_CASE).expect("parses");
    c.bench_function(
        "differential case on the model backend (baseline case)",
        |b| b.iter(|| black_box(run_case(&ModelBackend, &fixed).map(|r| r.ops).ok())),
    );
    match ovlcheck_driver::backend_by_name("kernel", &Default::default()) {
        Ok(kernel)
            if ovlcheck_driver::check_environment(ovlcheck_driver::BackendKind::Kernel).is_ok() =>
        {
            c.bench_function(
                "differential case on the kernel backend (baseline case)",
                |b| b.iter(|| black_box(run_case(&*kernel, &fixed).map(|r| r.ops).ok())),
            );
            let mut i = 0u64;
            c.bench_function("differential case on the kernel backend (generated)", |b| {
                b.iter(|| {
                    i += 1;
                    let case = case_at(&config, 1, i);
                    black_box(run_case(&*kernel, &case).map(|r| r.ops).ok())
                })
            });
        }
        _ => eprintln!("kernel backend unusable: kernel benches skipped"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
