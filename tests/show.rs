//! `ovlcheck show`: the layer stack before and after a case's ops, from the
//! model and from a real overlay mount.

mod common;

use std::process::Command;

/// Runs `ovlcheck show` on `case` with `extra` arguments; returns stdout.
fn show(case: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .arg("show")
        .arg(case)
        .args(extra)
        .output()
        .expect("runs ovlcheck");
    assert_eq!(
        out.status.code(),
        Some(0),
        "show {case} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The table under the heading line that starts with `heading`, up to the
/// blank line that ends it.
fn section<'a>(out: &'a str, heading: &str) -> &'a str {
    let start = out
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no `{heading}` heading in:\n{out}"));
    let body = &out[start + 1..];
    let body = &body[body.find('\n').expect("heading line ends") + 1..];
    &body[..body.find("\n\n").map_or(body.len(), |e| e + 1)]
}

/// The cells of the row for `path` in `table`, if it has one.
fn row<'a>(table: &'a str, path: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(path))
        .map(|l| l.split_whitespace().collect())
}

fn before(out: &str) -> &str {
    section(out, "before the ops:")
}

fn after(out: &str) -> &str {
    section(out, "after the ops, ")
}

/// Writes `text` to a case file in `dir` and returns its path.
fn case_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("writes the case");
    p.display().to_string()
}

fn seed_article() -> String {
    common::corpus_dir()
        .join("seed-article.ovl")
        .display()
        .to_string()
}

/// Rename a lower file into another directory (metacopy: metadata-only
/// copy-up with an absolute redirect to its data), rename a lower directory
/// (relative redirect, whiteout left behind), remove and remake a directory
/// (opaque), chmod a lower file (metacopy in place).
const MARKS: &str = "profile metacopy
lower
  dir d 0755
  file d/f 0644 \"data\"
  dir e 0755
  dir o 0755
  file o/old 0644 \"x\"
  file m 0644 \"m\"
ops
  rename d/f e/g => ok
  rename d d2 => ok
  unlink o/old => ok
  rmdir o => ok
  mkdir o 0755 => ok
  chmod m 0600 => ok
";

/// The seed article's Docker example: `mkdir Test`, `touch root/aa` and
/// `rm bin/ss` leave Test/, root/aa and the whiteout bin/ss in the upper;
/// bin/ and root/ are copied up as their parents.
const SEED_ARTICLE_AFTER: &str = "\
path                  L0    L1    L2    L3    L4       upper       merged
--------------------  ----  ----  ----  ----  -------  ----------  -------
.dockerenv            -     -     -     -     file     -           file
Test                  -     -     -     -     -        dir         dir
bin                   dir   -     -     -     -        dir+copyup  dir
bin/ls                file  -     -     -     -        -           file
bin/ss                file  -     -     -     -        whiteout    -
dev                   -     -     -     -     dir      -           dir
dev/console           -     -     -     -     file     -           file
dev/pts               -     -     -     -     dir      -           dir
dev/shm               -     -     -     -     dir      -           dir
etc                   dir   dir   -     dir   dir      -           dir
etc/apt.conf          -     file  -     -     -        -           file
etc/hostname          -     -     -     file  file     -           file
etc/hosts             -     -     -     -     file     -           file
etc/mtab              -     -     -     -     symlink  -           symlink
etc/passwd            file  -     -     -     -        -           file
etc/resolv.conf       -     -     -     -     file     -           file
proc                  -     -     -     -     dir      -           dir
root                  dir   -     -     -     -        dir+copyup  dir
root/.bashrc          file  -     -     -     -        -           file
root/aa               -     -     -     -     -        file        file
sys                   -     -     -     -     dir      -           dir
usr                   dir   -     dir   -     -        -           dir
usr/sbin              -     -     dir   -     -        -           dir
usr/sbin/policy-rc.d  -     -     file  -     -        -           file
var                   dir   -     -     -     -        -           dir
";

#[test]
fn seed_article_after_table_holds_the_containers_changes() {
    let out = show(&seed_article(), &[]);
    assert!(out.starts_with("profile: default\n"), "{out}");
    assert_eq!(after(&out), SEED_ARTICLE_AFTER, "{out}");
    assert!(
        out.contains("after the ops, as the model predicts them"),
        "{out}"
    );
    // The before table comes first and shows the image as written: an
    // empty upper, bin/ss still a file.
    let b = before(&out);
    assert!(out.find("before the ops:") < out.find("after the ops, "));
    assert_eq!(
        row(b, "bin/ss"),
        Some(vec!["bin/ss", "file", "-", "-", "-", "-", "-", "file"]),
        "{b}"
    );
    assert_eq!(row(b, "Test"), None, "{b}");
    assert_eq!(row(b, "root/aa"), None, "{b}");
    assert!(out
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("legend: "));
}

#[test]
fn after_table_marks_opaque_redirect_copy_up_and_metacopy() {
    let dir = tempfile::tempdir().unwrap();
    let out = show(&case_file(&dir, "marks.ovl", MARKS), &[]);
    assert_eq!(
        after(&out),
        "\
path   L0    upper                               merged
-----  ----  ----------------------------------  ------
d      dir   whiteout                            -
d/f    file  -                                   -
d2     -     dir+redirect=d+copyup               dir
d2/f   -     whiteout                            -
e      dir   dir+copyup                          dir
e/g    -     file+redirect=/d/f+copyup+metacopy  file
m      file  file+copyup+metacopy                file
o      dir   dir+opaque                          dir
o/old  file  -                                   -
",
        "{out}"
    );
}

/// A file renamed over a lower one, a file created over a whiteout, a file
/// copied up by chmod, a directory removed and made again.
const NEW_OVER_LOWER: &str = "lower
  file f 0644 \"old\"
  file g 0644 \"old\"
  file h 0644 \"old\"
  dir d 0755
ops
  create t 0644 => ok
  rename t f => ok
  unlink g => ok
  create g 0644 => ok
  chmod h 0600 => ok
  rmdir d => ok
  mkdir d 0755 => ok
";

/// Data-only layers are columns of their own before the lower ones, and
/// the metacopy files redirected into them say so; nothing of them is
/// merged.
#[test]
fn data_only_layers_are_columns_of_the_before_table() {
    let case = common::corpus_dir().join("rules/101-data-only-metacopy.ovl");
    let out = show(case.to_str().unwrap(), &[]);
    let table = before(&out);
    assert_eq!(
        row(table, "path"),
        Some(vec!["path", "D0", "L0", "L1", "upper", "merged"]),
        "{out}"
    );
    assert_eq!(
        row(table, "00/a"),
        Some(vec!["00/a", "file", "-", "-", "-", "-"])
    );
    assert_eq!(
        row(table, "chain"),
        Some(vec![
            "chain",
            "-",
            "file+redirect=/00/a+metacopy",
            "-",
            "-",
            "file"
        ])
    );
    assert_eq!(
        row(table, "m"),
        Some(vec![
            "m",
            "-",
            "file+redirect=/none+metacopy",
            "-",
            "-",
            "unreadable(ENOENT)"
        ])
    );
}

#[test]
fn new_files_over_lower_ones_are_not_copy_ups() {
    let dir = tempfile::tempdir().unwrap();
    let case = case_file(&dir, "new.ovl", NEW_OVER_LOWER);
    let out = show(&case, &[]);
    assert_eq!(
        after(&out),
        "\
path  L0    upper        merged
----  ----  -----------  ------
d     dir   dir+opaque   dir
f     file  file         file
g     file  file         file
h     file  file+copyup  file
",
        "{out}"
    );
}

#[test]
fn layers_made_by_commit_are_extra_lower_columns() {
    let dir = tempfile::tempdir().unwrap();
    let case = case_file(
        &dir,
        "commit.ovl",
        "lower\n  file a 0644 \"a\"\n  file b 0644 \"b\"\nops\n  unlink a => ok\n  commit => ok\n  create c 0644 => ok\n  commit => ok\n  unlink b => ok\n",
    );
    let out = show(&case, &[]);
    assert_eq!(
        after(&out),
        "\
path  L0    L1        L2    upper     merged
----  ----  --------  ----  --------  ------
a     file  whiteout  -     -         -
b     file  -         -     whiteout  -
c     -     -         file  -         file
made by commit: L1 L2
",
        "{out}"
    );
    // Before the ops there is only the case's own lower.
    assert!(
        before(&out).starts_with("path  L0    upper  merged\n"),
        "{out}"
    );
}

#[test]
fn show_rejects_an_unknown_backend() {
    let out = Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args(["show", &seed_article(), "--backend", "nosuch"])
        .output()
        .expect("runs ovlcheck");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}

#[test]
fn kernel_leaves_the_layers_the_model_predicts() {
    if common::kernel("kernel_leaves_the_layers_the_model_predicts").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for case in [
        seed_article(),
        case_file(&dir, "marks.ovl", MARKS),
        case_file(&dir, "new.ovl", NEW_OVER_LOWER),
    ] {
        let model = show(&case, &[]);
        let kernel = show(&case, &["--backend", "kernel"]);
        assert!(kernel.contains("after the ops, as kernel left them:"));
        assert_eq!(before(&kernel), before(&model), "{case}");
        assert_eq!(
            after(&kernel),
            after(&model),
            "{case}: kernel\n{kernel}\nmodel\n{model}"
        );
    }
    let kernel = show(&seed_article(), &["--backend", "kernel"]);
    assert_eq!(after(&kernel), SEED_ARTICLE_AFTER);
}
