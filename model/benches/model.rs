//! Model benchmarks: simple ops per second, a 12-op case with its views,
//! O(1) cloning, and the canonical hash.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ovlcheck_case::{parse_case, Case, Step};
use ovlcheck_model::Model;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SMALL: &str = r#"
lower
  dir d 0755
  file d/a 0644 "alpha"
  file d/b 0644 "beta"
  dir e 0755
  file e/c 0644 "gamma"
lower
  dir d 0755
  file d/x 0644 "x"
  file top 0644 "t"
ops
"#;

fn case(ops: &str) -> Case {
    parse_case("bench", &format!("{SMALL}{ops}")).expect("bench case parses")
}

fn step(op: &str) -> Step {
    case(op).steps.remove(0)
}

/// A state whose upper holds `n` files in 10 directories.
fn big_state(n: usize) -> Model {
    let mut text = String::from("lower\n  dir base 0755\nupper\n");
    for d in 0..10 {
        text.push_str(&format!("  dir u{d} 0755\n"));
    }
    for i in 0..n {
        text.push_str(&format!("  file u{}/f{i} 0644 \"{i}\"\n", i % 10));
    }
    text.push_str("ops\n");
    Model::new(&parse_case("big", &text).unwrap()).unwrap()
}

fn simple_ops(c: &mut Criterion) {
    let m = Model::new(&case("")).unwrap();
    let written = m.step(&step("  write d/a 0 \"A\"")).1;
    let mut g = c.benchmark_group("simple_op");
    for (name, model, op) in [
        ("stat", &m, "  stat d/a"),
        ("stat_upper", &written, "  stat d/a"),
        ("read", &m, "  read e/c"),
        ("write_copy_up", &m, "  write d/a 0 \"A\""),
        ("write_upper", &written, "  write d/a 1 \"B\""),
        ("create", &m, "  create d/new 0644"),
        ("unlink_lower", &m, "  unlink d/b"),
    ] {
        let s = step(op);
        g.bench_function(name, |b| b.iter(|| black_box(model.step(black_box(&s)))));
    }
    g.finish();
}

fn twelve_op_case(c: &mut Criterion) {
    let cs = case(
        "  stat d/a\n  write d/a 0 \"A\"\n  create d/n 0644\n  mkdir f 0755\n  unlink d/x\n  \
         rename d/b e/b2\n  read d/a\n  readdir d\n  chmod e/c 0600\n  link d/a f/l\n  \
         rmdir f => ENOTEMPTY\n  truncate top 1\n",
    );
    assert_eq!(cs.steps.len(), 12);
    c.bench_function("model_new_2_lowers", |b| {
        b.iter(|| black_box(Model::new(black_box(&cs)).unwrap()))
    });
    let mut done = Model::new(&cs).unwrap();
    for s in &cs.steps {
        done = done.step(s).1;
    }
    c.bench_function("merged_view_after_12_ops", |b| {
        b.iter(|| black_box(done.merged_view()))
    });
    c.bench_function("upper_view_after_12_ops", |b| {
        b.iter(|| black_box(done.upper_view()))
    });
    c.bench_function("case_12_ops_with_views", |b| {
        b.iter(|| {
            let mut m = Model::new(black_box(&cs)).unwrap();
            for s in &cs.steps {
                m = m.step(s).1;
            }
            black_box((m.merged_view(), m.upper_view()))
        })
    });
}

fn clone_state(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone");
    for n in [100usize, 10_000] {
        let m = big_state(n);
        g.bench_function(format!("{n}_entries"), |b| {
            b.iter(|| black_box(black_box(&m).clone()))
        });
    }
    g.finish();
    let m = big_state(10_000);
    let s = step("  create u3/new 0644");
    c.bench_function("apply_on_10000_entries", |b| {
        b.iter_batched(
            || m.clone(),
            |m| black_box(m.step(&s)),
            BatchSize::SmallInput,
        )
    });
}

fn hash(c: &mut Criterion) {
    let m = Model::new(&case("")).unwrap();
    c.bench_function("canonical_hash_small", |b| {
        b.iter(|| black_box(&m).canonical_hash())
    });
    let big = big_state(1000);
    c.bench_function("canonical_hash_1000_entries", |b| {
        b.iter(|| black_box(&big).canonical_hash())
    });
}

criterion_group!(benches, simple_ops, twelve_op_case, clone_state, hash);
criterion_main!(benches);
