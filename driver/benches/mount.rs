//! Driver costs: one mount/unmount cycle of a 3-layer stack through the
//! store (`mount::mount_kernel`) against a bare `mount(2)`/`umount(2)` loop
//! on the same tmpfs (target: at most 1.2x), building a layer, observing the
//! merged and upper trees, and a whole pooled session (start + finish) as
//! the harness pays it per case.
//!
//! Needs root (it unshares a private mount namespace first); without root it
//! prints a SKIP line and measures nothing.

use criterion::{criterion_group, BatchSize, Criterion};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use ovlcheck_case::{parse_case, Case};
use ovlcheck_driver::mount::{self as ovlmount, MountSpec};
use ovlcheck_driver::observe;
use ovlcheck_driver::store::{write_objects, Layer, LayerStore, MarkerNames};
use ovlcheck_driver::{Backend, PooledBackend};
use std::hint::black_box;
use std::path::{Path, PathBuf};

const CASE: &str = r##"
lower
  dir etc 0755
  file etc/passwd 0644 "root:x:0:0::/root:/bin/sh\n"
  dir usr/bin 0755
  file usr/bin/sh 0755 "#!elf"
  symlink bin "usr/bin"
lower
  file etc/hostname 0644 "box"
  whiteout usr/bin/sh
lower
  dir etc 0755
  opaque etc
  file etc/os-release 0644 "ovl"
ops
"##;

fn layer_case() -> Case {
    let mut text = String::from("lower\n");
    for i in 0..10 {
        text.push_str(&format!("  dir d{i} 0755\n"));
        for j in 0..4 {
            text.push_str(&format!("  file d{i}/f{j} 0644 \"data {i} {j}\"\n"));
        }
    }
    text.push_str("ops\n");
    parse_case("bench.ovl", &text).unwrap()
}

/// A 3-layer stack plus a container layer under `home`.
fn build_stack(home: &Path) -> (LayerStore, MountSpec, Layer) {
    let case = parse_case("bench.ovl", CASE).unwrap();
    let mut store = LayerStore::init(home, 0).unwrap();
    let mut parent: Option<Layer> = None;
    let markers = MarkerNames {
        prefix: "trusted.overlay.",
    };
    for spec in &case.lowers {
        let l = store.create(parent.as_ref()).unwrap();
        write_objects(&store.diff(&l), &spec.objects().unwrap(), &markers).unwrap();
        parent = Some(l);
    }
    let c = store.create(parent.as_ref()).unwrap();
    std::fs::create_dir(store.merged(&c)).unwrap();
    let spec = MountSpec {
        lowers: c.lower.clone(),
        upper: Some(format!("{}/diff", c.id)),
        work: Some(format!("{}/work", c.id)),
        target: format!("{}/merged", c.id),
        options: ovlmount::kernel_options(&case.profile),
        data: Vec::new(),
    };
    (store, spec, c)
}

fn private_namespace(dir: &Path) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("*** SKIP driver benches: need root for mount namespaces ***");
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    ovlmount::mount_tmpfs(dir, None).unwrap();
    true
}

fn bench(c: &mut Criterion) {
    let scratch = std::env::temp_dir().join(format!("ovlcheck-bench-{}", std::process::id()));
    if !private_namespace(&scratch) {
        return;
    }
    let home = scratch.join("overlay2");
    let (store, spec, container) = build_stack(&home);
    let merged: PathBuf = store.merged(&container);

    c.bench_function("mount+umount 3 layers via store", |b| {
        b.iter(|| {
            ovlmount::mount_kernel(store.home(), black_box(&spec)).unwrap();
            ovlmount::unmount(&merged).unwrap();
        })
    });

    let data = ovlmount::mount_data(&spec, |d| format!("{}/{d}", home.display()));
    c.bench_function("mount+umount 3 layers bare mount(2)", |b| {
        b.iter(|| {
            mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(black_box(data.as_str())),
            )
            .unwrap();
            umount2(&merged, MntFlags::empty()).unwrap();
        })
    });

    let lc = layer_case();
    let objs = lc.lowers[0].objects().unwrap();
    let markers = MarkerNames {
        prefix: "trusted.overlay.",
    };
    let mut n = 0u64;
    c.bench_function("build a 50-object layer", |b| {
        b.iter_batched(
            || {
                n += 1;
                let d = scratch.join(format!("layer{n}"));
                std::fs::create_dir(&d).unwrap();
                d
            },
            |d| write_objects(&d, &objs, &markers).unwrap(),
            BatchSize::SmallInput,
        )
    });

    ovlmount::mount_kernel(store.home(), &spec).unwrap();
    std::fs::write(merged.join("new"), "x").unwrap();
    std::fs::remove_file(merged.join("etc/os-release")).unwrap();
    let snap = observe::snapshot(&merged).unwrap();
    c.bench_function("observe merged view", |b| {
        b.iter(|| observe::merged_view(&merged, &snap, true).unwrap())
    });
    let upper = store.diff(&container);
    c.bench_function("observe upper view", |b| {
        b.iter(|| observe::raw_view(&upper, "trusted.overlay.", &[]).unwrap())
    });
    ovlmount::unmount(&merged).unwrap();

    let backend = PooledBackend::kernel();
    let case = parse_case("bench.ovl", CASE).unwrap();
    c.bench_function("session start+finish (pooled worker)", |b| {
        b.iter(|| backend.start(&case).unwrap().finish().unwrap())
    });
    let step = parse_case("bench.ovl", "lower\nops\n  stat etc/passwd\n")
        .unwrap()
        .steps
        .remove(0);
    let mut s = backend.start(&case).unwrap();
    c.bench_function("session apply stat", |b| b.iter(|| s.apply(&step).unwrap()));
    s.finish().unwrap();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
