//! Parse and print speed of the `.ovl` format.

use criterion::{criterion_group, criterion_main, Criterion};
use ovlcheck_case::{parse_case, print_case};
use std::hint::black_box;

/// A typical generated case: two lowers, an upper, 12 ops.
const TYPICAL: &str = r#"profile redirect
lower
  dir d 0755
  file d/x 0644 "q"
  file a 0644 "hi"
  symlink l "d/x"
  xattr a user.k "v"
lower
  whiteout a
  dir e 0700
  opaque e
  file e/y 0600 "data\n"
  hardlink e/z e/y
upper
  file b 0644 "up"
ops
  stat a => ENOENT
  read d/x => "q"
  readdir d => ["x"]
  lstat l => {symlink 0777 0:0 size=3 nlink=1}
  write d/x 1 "zz"
  rename d f noreplace
  as 1000:1000 unlink e/y => EACCES
  mkdir g 0755
  setxattr g user.a "1"
  truncate f/x 0
  remount
  readdir f => ["x"]
"#;

fn big_case() -> String {
    let mut s = String::from("lower\n");
    for i in 0..1000 {
        match i % 4 {
            0 => s.push_str(&format!("  dir d{i} 0755\n")),
            1 => s.push_str(&format!("  file d{}/f{i} 0644 \"contents {i}\"\n", i - 1)),
            2 => s.push_str(&format!("  symlink d{}/l{i} \"../x\"\n", i - 2)),
            _ => s.push_str(&format!(
                "  mtime d{}/f{} {}\n",
                i - 3,
                i - 2,
                1_600_000_000 + i
            )),
        }
    }
    s.push_str("ops\n  readdir d0\n");
    s
}

fn bench(c: &mut Criterion) {
    let big = big_case();
    let typical_case = parse_case("typical.ovl", TYPICAL).expect("typical case parses");
    let big_case = parse_case("big.ovl", &big).expect("big case parses");
    c.bench_function("parse typical (2 lowers, 12 ops)", |b| {
        b.iter(|| parse_case("typical.ovl", black_box(TYPICAL)))
    });
    c.bench_function("print typical (2 lowers, 12 ops)", |b| {
        b.iter(|| print_case(black_box(&typical_case)))
    });
    c.bench_function("parse 1000 entries", |b| {
        b.iter(|| parse_case("big.ovl", black_box(&big)))
    });
    c.bench_function("print 1000 entries", |b| {
        b.iter(|| print_case(black_box(&big_case)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
