//! Hostile input: every case here is either refused at parse time
//! with file, line and column, or executed confined to the scratch root.
//! Canary files outside the scratch root are checked unchanged after every
//! executed case.

mod common;

use ovlcheck_case::{parse_case, ParseError};
use ovlcheck_driver::Backend;
use ovlcheck_harness::{run_case, ModelBackend, RunError};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A canary directory on the host: a file, a subdirectory, a symlink.
struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("ovlcheck-canary-")
            .tempdir_in("/tmp")
            .unwrap();
        fs::write(dir.path().join("file"), b"canary").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/inner"), b"inner").unwrap();
        Canary { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Everything observable about the canary tree.
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u32, u32, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        snap(self.path(), &mut out);
        out
    }
}

fn snap(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u32, u32, u64, Vec<u8>)>) {
    let m = fs::symlink_metadata(dir).unwrap();
    out.insert(
        dir.to_path_buf(),
        (m.mode(), m.uid(), m.gid(), m.nlink(), Vec::new()),
    );
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            snap(&p, out);
        } else {
            let data = fs::read(&p).unwrap_or_default();
            out.insert(p, (m.mode(), m.uid(), m.gid(), m.nlink(), data));
        }
    }
}

/// Ops that write, rename, link, chmod and set xattrs through `via`.
fn attacks(via: &str) -> String {
    [
        format!("create {via}/new 0644"),
        format!("write {via}/file 0 \"pwned\""),
        format!("truncate {via}/file 0"),
        format!("chmod {via}/file 0777"),
        format!("chown {via}/file 1000 1000"),
        format!("utimes {via}/file 0"),
        format!("setxattr {via}/file user.pwn \"1\""),
        format!("removexattr {via}/file user.pwn"),
        format!("mkdir {via}/newdir 0755"),
        format!("mkfifo {via}/fifo 0644"),
        format!("symlink \"x\" {via}/sl"),
        format!("link {via}/file here"),
        format!("link keep {via}/linked"),
        format!("rename {via}/file stolen"),
        format!("rename keep {via}/planted"),
        format!("rename {via}/sub {via}/sub2"),
        format!("unlink {via}/file"),
        format!("unlink {via}/sub/inner"),
        format!("rmdir {via}/sub"),
        format!("open {via}/file rdwr trunc"),
        format!("read {via}/file"),
        format!("readdir {via}"),
    ]
    .iter()
    .map(|l| format!("  {l}\n"))
    .collect()
}

/// The hostile cases that parse, as (name, text).
fn executable_cases(canary: &Path) -> Vec<(String, String)> {
    let abs = canary.display().to_string();
    let depth = canary.components().count();
    let dots = "../".repeat(depth + 8);
    let rel = format!("{dots}{}", abs.trim_start_matches('/'));
    let mut cases = Vec::new();
    for (name, target) in [
        ("absolute", abs.clone()),
        ("dotdot", rel.clone()),
        ("root", "/".into()),
        ("dotdot-root", dots.clone()),
    ] {
        let via = if target.ends_with('/') || target == "/" {
            format!("esc/{}", abs.trim_start_matches('/'))
        } else {
            "esc".into()
        };
        cases.push((
            format!("layer symlink {name}"),
            format!(
                "lower\n  symlink esc \"{target}\"\n  file keep 0644 \"k\"\nops\n{}",
                attacks(&via)
            ),
        ));
        cases.push((
            format!("op-made symlink {name}"),
            format!(
                "lower\n  file keep 0644 \"k\"\nops\n  symlink \"{target}\" esc\n{}",
                attacks(&via)
            ),
        ));
        cases.push((
            format!("symlink {name} as another user"),
            format!(
                "lower\n  symlink esc \"{target}\"\n  file keep 0644 \"k\"\nops\n{}",
                attacks(&via)
                    .lines()
                    .map(|l| format!("  as 1000:1000 {}\n", l.trim()))
                    .collect::<String>()
            ),
        ));
    }
    cases.push((
        "dir symlink chain to dotdot".into(),
        format!(
            "lower\n  dir d 0755\n  symlink d/up \"..\"\n  symlink d/out \"{rel}\"\n  file keep 0644 \"k\"\nops\n{}",
            attacks("d/up/d/up/d/out")
        ),
    ));
    cases.push((
        "symlink loops".into(),
        "lower\n  symlink a \"b\"\n  symlink b \"a\"\n  symlink self \"self\"\n  symlink deep \"a/x/y\"\n  file keep 0644 \"k\"\nops\n  read a\n  create a 0644\n  write self 0 \"x\"\n  mkdir deep/z 0755\n  stat a/\n  rename keep a/\n  link keep self/x\n".into(),
    ));
    cases.push((
        "name of 255 bytes".into(),
        format!(
            "lower\n  file {n} 0644 \"x\"\nops\n  read {n}\n  rename {n} {m}\n  create {m}2 0644\n",
            n = "n".repeat(255),
            m = "m".repeat(254)
        ),
    ));
    cases.push((
        "huge file".into(),
        format!("lower\n  file big 0644 \"{}\"\nops\n  write big 1048575 \"end\"\n  truncate big 3\n  read big\n", "x".repeat(1 << 20)),
    ));
    let deep: Vec<String> = (0..60).map(|i| format!("d{i}")).collect();
    cases.push((
        "deep tree".into(),
        format!("lower\n  file {}/leaf 0644 \"l\"\nops\n  read {0}/leaf\n  create {0}/new 0644\n  rename {0}/leaf leaf\n", deep.join("/")),
    ));
    let many: String = (0..3000)
        .map(|i| format!("  file f{i} 0644 \"{i}\"\n"))
        .collect();
    cases.push((
        "thousands of entries".into(),
        format!(
            "lower\n  dir d 0755\n{many}ops\n  readdir \"\"\n  unlink f1\n  create f3000 0644\n"
        )
        .replace("readdir \"\"", "readdir d"),
    ));
    let ops: String = (0..5000)
        .map(|i| format!("  write f 0 \"{i}\"\n"))
        .collect();
    cases.push((
        "huge op count".into(),
        format!("lower\n  file f 0644 \"0\"\nops\n{ops}"),
    ));
    cases
}

/// Hostile texts that must be refused, with the line:column the error names.
fn refused_cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "absolute op path",
            "lower\n  file a 0644 \"x\"\nops\n  read /etc/passwd\n".into(),
            ":4:8:",
        ),
        (
            "dotdot op path",
            "lower\nops\n  create ../../etc/x 0644\n".into(),
            ":3:10:",
        ),
        (
            "dotdot layer path",
            "lower\n  file a/../../x 0644 \"x\"\nops\n".into(),
            ":2:8:",
        ),
        (
            "dot component",
            "lower\n  dir ./d 0755\nops\n".into(),
            ":2:7:",
        ),
        (
            "empty component",
            "lower\n  file a//b 0644 \"\"\nops\n".into(),
            ":2:8:",
        ),
        (
            "NUL in a name",
            "lower\n  file \"a\\x00b\" 0644 \"\"\nops\n".into(),
            ":2:8:",
        ),
        (
            "256-byte name",
            format!("lower\n  file {} 0644 \"\"\nops\n", "n".repeat(256)),
            ":2:8:",
        ),
        (
            "file under a symlink in a layer",
            "lower\n  symlink esc \"/tmp\"\n  file esc/x 0644 \"x\"\nops\n".into(),
            ":3:",
        ),
        (
            "hardlink outside the layer",
            "lower\n  hardlink h ../../etc/passwd\nops\n".into(),
            ":2:",
        ),
        (
            "overlay xattr by hand",
            "lower\n  dir d 0755\n  xattr d trusted.overlay.opaque \"y\"\nops\n".into(),
            ":3:",
        ),
        (
            "too deep",
            format!(
                "lower\n  dir {} 0755\nops\n",
                (0..65)
                    .map(|i| format!("d{i}"))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            ":2:",
        ),
        (
            "too many ops",
            format!("lower\nops\n{}", "  stat a\n".repeat(100_001)),
            ":100003:",
        ),
        (
            "file over the size limit",
            format!(
                "lower\n  file f 0644 \"{}\"\nops\n",
                "x".repeat(16 * 1024 * 1024 + 1)
            ),
            ":2:",
        ),
        (
            "unterminated string",
            "lower\n  file f 0644 \"abc\nops\n".into(),
            ":2:",
        ),
        (
            "bad escape",
            "lower\n  file f 0644 \"\\q\"\nops\n".into(),
            ":2:",
        ),
        ("binary garbage", "\u{1}\u{2}lower\u{0}\n".into(), ":1:"),
    ]
}

#[test]
fn hostile_texts_are_refused_with_a_position() {
    for (name, text, pos) in refused_cases() {
        let err: ParseError = parse_case("hostile.ovl", &text).expect_err(name);
        let msg = err.to_string();
        assert!(
            msg.starts_with("hostile.ovl:") && msg.contains(pos),
            "{name}: {msg} (wanted {pos})"
        );
        assert!(err.line >= 1 && err.column >= 1, "{name}: {msg}");
    }
}

fn execute_all(backend: &dyn Backend, canary: &Canary) -> usize {
    let before = canary.snapshot();
    let mut ran = 0;
    for (name, text) in executable_cases(canary.path()) {
        let case = parse_case(&name, &text).unwrap_or_else(|e| panic!("{name} should parse: {e}"));
        match run_case(backend, &case) {
            Ok(_) => ran += 1,
            Err(RunError::Backend(e)) => panic!("{name}: backend failure: {e}"),
            Err(RunError::BadCase(e)) => panic!("{name}: refused by the model: {e}"),
        }
        assert_eq!(
            canary.snapshot(),
            before,
            "{name}: the canary outside the scratch root changed"
        );
    }
    ran
}

#[test]
fn hostile_cases_run_on_the_model() {
    let canary = Canary::new();
    assert!(execute_all(&ModelBackend, &canary) >= 15);
}

#[test]
fn hostile_cases_stay_confined_on_the_kernel() {
    let Some(kernel) = common::kernel("hostile_cases_stay_confined_on_the_kernel") else {
        return;
    };
    let canary = Canary::new();
    let ran = execute_all(&*kernel, &canary);
    eprintln!(
        "hostile: {ran} cases executed confined, {} refused at parse time",
        refused_cases().len()
    );
}

/// Reads through symlinks that point outside (absolute, `..`, with a
/// trailing slash that makes the kernel follow a final symlink) must see
/// nothing of the host: every outcome is an error, never the canary.
#[test]
fn reads_through_escaping_symlinks_see_nothing_outside() {
    let Some(kernel) = common::kernel("reads_through_escaping_symlinks_see_nothing_outside") else {
        return;
    };
    let canary = Canary::new();
    let abs = canary.path().display().to_string();
    let dots = format!("{}{}", "../".repeat(12), abs.trim_start_matches('/'));
    for target in [abs.as_str(), dots.as_str(), "/proc", "../../../../proc"] {
        let text = format!(
            "lower\n  symlink esc \"{target}\"\nops\n  lstat esc/\n  readlink esc/\n  link esc/ x\n  stat esc/\n  stat esc/file\n  read esc/file\n  readdir esc\n  readdir esc/\n  getxattr esc/ user.k\n  listxattr esc/\n"
        );
        let case = parse_case("escape", &text).unwrap();
        let run = run_case(&*kernel, &case).expect("runs");
        for (step, seen) in case.steps.iter().zip(&run.observed) {
            assert!(
                !seen.is_ok(),
                "target {target}: `{}` succeeded through an escaping symlink: {seen}",
                ovlcheck_harness::report::step_text(step)
            );
        }
    }
}
