mod common;
use common::*;
use ovlcheck_case::{Outcome, Value};
use ovlcheck_driver::{Backend, PooledBackend};

#[test]
fn smoke() {
    if !kernel_available("smoke") {
        return;
    }
    let b = PooledBackend::kernel();
    let c =
        case("lower\n  dir d 0755\n  file d/x 0644 \"q\"\n  file a 0644 \"hi\"\nops\n  read a\n");
    let mut s = ok(b.start(&c));
    assert_eq!(
        ok(s.apply(&step("read a"))),
        Outcome::Ok(Value::Bytes(b"hi".to_vec()))
    );
    assert_eq!(ok(s.apply(&step("unlink a"))), Outcome::OK);
    assert_eq!(ok(s.apply(&step("rmdir d"))), err("ENOTEMPTY"));
    let m = ok(s.merged_view());
    eprintln!("{m:#?}");
    let u = ok(s.upper_view());
    eprintln!("{u:#?}");
    ok(s.finish());
}
