//! The CLI's file loading on arbitrary bytes: never a panic, every
//! error names the file with a line and column, and the CLI exits 2 without
//! printing to stdout.

use proptest::prelude::*;
use std::process::Command;

fn check_bytes(dir: &std::path::Path, data: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("input.ovl");
    std::fs::write(&path, data).unwrap();
    if let Err(e) = ovlcheck_harness::corpus::load_case(&path) {
        let msg = e.to_string();
        let prefix = format!("{}:", path.display());
        prop_assert!(
            msg.starts_with(&prefix),
            "error does not name the file: {}",
            msg
        );
        let rest = &msg[prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let col: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        prop_assert!(line >= 1 && col >= 1, "no line:column in: {}", msg);
    }
    Ok(())
}

/// Byte soup that looks a bit like case files.
fn near_case() -> impl Strategy<Value = Vec<u8>> {
    let words = prop::sample::select(vec![
        "lower\n",
        "upper\n",
        "ops\n",
        "profile ",
        "index ",
        "  file ",
        "  dir ",
        "  whiteout ",
        "  symlink ",
        "a ",
        "a/b ",
        "/abs ",
        "../x ",
        "0644 ",
        "\"data\" ",
        "\"\\x41\" ",
        "\"\\",
        "=> ",
        "ENOENT",
        "ok",
        "{file 0644 0:0 size=1 nlink=1}",
        "[\"a\"]",
        "as 1000:1000 ",
        "rename a b noreplace",
        "\n",
        "\t",
        "\u{0}",
        "\u{ff}",
    ]);
    prop::collection::vec(words, 0..40).prop_map(|w| w.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loading_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        check_bytes(dir.path(), &data)?;
    }

    #[test]
    fn loading_near_cases_never_panics(data in near_case()) {
        let dir = tempfile::tempdir().unwrap();
        check_bytes(dir.path(), &data)?;
    }
}

#[test]
fn cli_exits_2_on_garbage_files() {
    let dir = tempfile::tempdir().unwrap();
    let samples: &[&[u8]] = &[
        b"\xff\xfe\x00garbage",
        b"lower\n  file\n",
        b"ops\n  frobnicate a\n",
        b"lower\nops\n  read a => \"unterminated\n",
    ];
    for (i, data) in samples.iter().enumerate() {
        let p = dir.path().join(format!("g{i}.ovl"));
        std::fs::write(&p, data).unwrap();
        for cmd in ["show", "repro"] {
            let out = Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
                .arg(cmd)
                .arg(&p)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd} {}", p.display());
            assert!(out.stdout.is_empty());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("g{i}.ovl:")), "{err}");
        }
    }
}
