//! print → parse round trips, and parsing of hand-written cases.

use ovlcheck_case::layer::Entry;
use ovlcheck_case::{arb, parse_case, print_case, Case, Errno, Op, Outcome, Profile};
use proptest::prelude::*;

fn round_trip(case: &Case) -> Result<(), TestCaseError> {
    let text = print_case(case);
    let back =
        parse_case("t.ovl", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    prop_assert_eq!(&back, case, "text:\n{}", text);
    prop_assert_eq!(print_case(&back), text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn print_parse_round_trip(case in arb::case()) {
        round_trip(&case)?;
    }

    #[test]
    fn print_parse_round_trip_wild_names(case in arb::wild_case()) {
        round_trip(&case)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn generated_layers_are_valid(spec in arb::layer_spec(arb::default_paths(), 20)) {
        prop_assert!(spec.objects().is_ok());
    }
}

/// The generator writes OCI layers with both kinds of `.wh.` marker, so the
/// round trips above cover them.
#[test]
fn generated_oci_layers_hold_markers() {
    use ovlcheck_case::layer::LayerFormat;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb::layer_spec(arb::default_paths(), 20);
    let (mut whiteouts, mut opaques) = (0, 0);
    for _ in 0..400 {
        let spec = strategy.new_tree(&mut runner).unwrap().current();
        if spec.format != LayerFormat::Oci {
            continue;
        }
        for e in &spec.entries {
            let name = e.path().file_name().map_or("", |n| n.as_str());
            if name == ".wh..wh..opq" {
                opaques += 1;
            } else if name.starts_with(".wh.") {
                whiteouts += 1;
            }
        }
    }
    assert!(whiteouts > 0 && opaques > 0, "{whiteouts} {opaques}");
}

#[test]
fn design_example_parses() {
    let text = r#"# rename of a re-created directory must leave a whiteout behind
profile redirect_dir=on
lower
  dir d 0755
  file d/x 0644 "q"
  file a 0644 "hi"
ops
  unlink a
  rmdir d            => ENOTEMPTY
  unlink d/x
  rmdir d
  mkdir d 0755
  rename d e
"#;
    let case = parse_case("example.ovl", text).unwrap();
    assert_eq!(case.profile, Profile::preset("redirect").unwrap());
    assert_eq!(case.lowers.len(), 1);
    assert_eq!(case.lowers[0].entries.len(), 3);
    assert!(
        matches!(&case.lowers[0].entries[1], Entry::File { data, mode: 0o644, .. } if data == b"q")
    );
    assert_eq!(case.steps.len(), 6);
    assert_eq!(case.steps[1].expect, Some(Outcome::Err(Errno::ENOTEMPTY)));
    assert_eq!(
        print_case(&case),
        "profile redirect\nlower\n  dir d 0755\n  file d/x 0644 \"q\"\n  file a 0644 \"hi\"\nops\n  \
         unlink a\n  rmdir d => ENOTEMPTY\n  unlink d/x\n  rmdir d\n  mkdir d 0755\n  rename d e\n"
    );
}

#[test]
fn every_op_and_flag_parses() {
    let text = r#"lower
upper
ops
  lstat a
  stat a/ => {dir 0755 0:0 size=0 nlink=1}
  read "a b" => "x\xff"
  readlink l => "t"
  readdir . => EINVAL
"#;
    // `.` alone names the overlay root in ops.
    let case = parse_case("t", text).unwrap();
    assert!(
        matches!(&case.steps[4].op, ovlcheck_case::Op::Readdir { path } if path.path.is_root())
    );
    assert_eq!(parse_case("t2", &print_case(&case)).unwrap(), case);
    let e = parse_case("t", "lower\nops\n  readdir \"\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 11));
    let text = r#"lower
ops
  as 1000:100 getxattr a user.k => ENODATA
  listxattr a => ["user.a", "user.b",]
  open a trunc rdwr
  create a 644 trunc excl => ok
  write a 3 "zz"
  truncate a 0
  mkdir d 0700
  mkfifo f 0600
  symlink "/etc/passwd" l
  unlink a
  rmdir d
  link a b
  rename a b whiteout exchange noreplace
  chmod a 4755
  chown a 1 2
  utimes a -5
  setxattr a "user.k" "v"
  removexattr a user.k
  remount
  commit => E200
"#;
    let case = parse_case("t", text).unwrap();
    assert_eq!(case.steps.len(), 20);
    assert!(
        matches!(case.steps[2].op, Op::Open { flags, .. } if flags.access == ovlcheck_case::Access::Rdwr && flags.trunc)
    );
    assert_eq!(case.steps[19].expect, Some(Outcome::Err(Errno::Other(200))));
    assert_eq!(
        case.steps[0].cred.map(|c| (c.uid, c.gid)),
        Some((1000, 100))
    );
    let back = parse_case("t", &print_case(&case)).unwrap();
    assert_eq!(back, case);
}

#[test]
fn op_keywords_list_every_op_in_variant_order() {
    let text = "lower\nops\n  lstat a\n  stat a\n  read a\n  readlink a\n  readdir a\n  \
                getxattr a user.k\n  listxattr a\n  statfs a\n  open a\n  create a 0644\n  write a 0 \"x\"\n  \
                truncate a 0\n  mkdir a 0755\n  mkfifo a 0644\n  symlink \"t\" a\n  unlink a\n  \
                rmdir a\n  link a b\n  rename a b\n  chmod a 0644\n  chown a 0 0\n  utimes a 0\n  \
                setxattr a user.k \"v\"\n  removexattr a user.k\n  chattr a ia\n  fstat f\n  fread f\n  \
                freaddir f\n  lseek f 0 SEEK_SET\n  fsync f\n  fwrite f \"x\"\n  close f\n  \
                remount\n  offline 0 remove a\n  commit\n";
    let case = parse_case("t", text).unwrap();
    let words: Vec<&str> = case.steps.iter().map(|s| s.op.keyword()).collect();
    assert_eq!(words, Op::KEYWORDS);
}

#[test]
fn fd_ops_and_open_flags_read_back() {
    let text = "lower\nops\n  open a O_WRONLY|O_CREAT|O_EXCL 0640 as f1\n  \
                open d O_RDONLY|O_DIRECTORY as d\n  open a rdwr as g\n  open l O_PATH|O_NOFOLLOW\n  \
                fwrite f1 \"ab\"\n  fwrite f1 3 \"c\"\n  fread g 2\n  fread g\n  \
                lseek g -1 SEEK_END\n  freaddir d\n  fstat g\n  fsync g\n  close g\n  \
                utimes a now\n  utimes a -5\n";
    let case = parse_case("t", text).unwrap();
    let Op::Open {
        flags, mode, fd, ..
    } = &case.steps[0].op
    else {
        panic!("not an open");
    };
    assert!(flags.creat && flags.excl && flags.access == ovlcheck_case::Access::Wronly);
    assert_eq!((*mode, fd.as_deref()), (0o640, Some("f1")));
    assert!(matches!(&case.steps[13].op, Op::Utimes { mtime: None, .. }));
    let printed = print_case(&case);
    assert!(printed.contains("open a rdwr as g\n"), "{printed}");
    assert!(
        printed.contains("open l O_RDONLY|O_NOFOLLOW|O_PATH\n"),
        "{printed}"
    );
    assert_eq!(parse_case("t", &printed).unwrap(), case);
}

#[test]
fn comments_blank_lines_crlf_and_tabs() {
    let text = "# c\r\n\r\nlower # x\r\n\tfile \"a#b\" 0644 \"#not a comment\" # c\r\nops\r\n";
    let case = parse_case("t", text).unwrap();
    assert!(
        matches!(&case.lowers[0].entries[0], Entry::File { path, data, .. }
        if path.to_string() == "a#b" && data == b"#not a comment")
    );
}

#[test]
fn non_preset_profiles_round_trip() {
    let mut odd = Profile::preset("nofollow").unwrap();
    odd.index = true;
    let mut sized = Profile::preset("index").unwrap();
    sized.upper_size = Some(1 << 20);
    for profile in [odd, sized] {
        let case = Case {
            profile,
            lowers: vec![Default::default()],
            ..Default::default()
        };
        round_trip(&case).unwrap();
    }
}
