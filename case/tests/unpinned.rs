//! `Step::unpinned` and `Case::unpinned`: the pins go, everything else stays.

use ovlcheck_case::{parse_case, print_case, print_step};

const PINNED: &str = "\
profile userxattr
lower
  file a 0644 \"x\"
upper
  dir d 0755
ops
  as 1000:1000 read a => \"x\"
  unlink a => EACCES
  remount
  stat a
";

const UNPINNED: &str = "\
profile userxattr
lower
  file a 0644 \"x\"
upper
  dir d 0755
ops
  as 1000:1000 read a
  unlink a
  remount
  stat a
";

#[test]
fn case_unpinned_drops_only_the_pins() {
    let case = parse_case("pinned.ovl", PINNED).unwrap();
    assert!(case.steps[0].expect.is_some());
    let unpinned = case.unpinned();
    assert!(unpinned.steps.iter().all(|s| s.expect.is_none()));
    assert_eq!(print_case(&unpinned), UNPINNED);
    assert_eq!(unpinned, parse_case("unpinned.ovl", UNPINNED).unwrap());
}

#[test]
fn step_unpinned_keeps_op_and_credentials() {
    let case = parse_case("pinned.ovl", PINNED).unwrap();
    assert_eq!(print_step(&case.steps[0]), "as 1000:1000 read a => \"x\"");
    assert_eq!(print_step(&case.steps[0].unpinned()), "as 1000:1000 read a");
    assert_eq!(case.steps[3].unpinned(), case.steps[3]);
}
