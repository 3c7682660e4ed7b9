//! ovlcheck run by a user who is not root (README, "Rootless"): plain
//! `fuzz` runs the profiles such a user can mount, in user namespaces
//! mapped from the user's subordinate ids with `newuidmap`/`newgidmap`
//! (driver/src/idmap.rs), or, for a user without subordinate ids, from
//! its own id alone; `replay corpus` runs what it can and says why it
//! cannot run the rest.
//!
//! Needs root (to become the users), the user [`ROOTLESS_USER`] with
//! ranges in /etc/subuid and /etc/subgid (`.ci/run` makes it:
//! `useradd --create-home ovlcheck-rootless`) and Debian's `uidmap`;
//! without them it skips loudly, and fails under OVL_REQUIRE_KERNEL=1.

mod common;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The user with subordinate ids the test runs as.
const ROOTLESS_USER: &str = "ovlcheck-rootless";
/// A user without them (`nobody`).
const NOBODY: &str = "65534";

/// Runs the `ovlcheck` of this build as `user` (a name or an id) with
/// `args`, in `dir` (its `TMPDIR` and `HOME`); the summary of `--json`.
fn as_user(dir: &Path, user: &str, args: &[&str]) -> Value {
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--clear-groups",
            "--",
        ])
        .arg(dir.join("ovlcheck"))
        .args(args)
        .arg("--json")
        .env("TMPDIR", dir)
        .env("HOME", dir)
        .current_dir(dir)
        .output()
        .expect("runs setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ovlcheck {args:?} as {user}: no JSON summary ({e}); status {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A directory every user can use, holding a copy of this build's
/// `ovlcheck` and of the corpus; `None` (after a loud SKIP, or a panic
/// under OVL_REQUIRE_KERNEL=1) where the test cannot run.
fn setup(test: &str) -> Option<tempfile::TempDir> {
    // SAFETY: geteuid has no preconditions.
    let missing = if unsafe { libc::geteuid() } != 0 {
        Some("it must run as root to become other users".to_string())
    } else if Command::new("id")
        .arg(ROOTLESS_USER)
        .output()
        .map_or(true, |o| !o.status.success())
    {
        Some(format!(
            "no user {ROOTLESS_USER} (useradd --create-home {ROOTLESS_USER})"
        ))
    } else if !Path::new("/usr/bin/newuidmap").exists() {
        Some("no newuidmap (apt-get install uidmap)".into())
    } else {
        None
    };
    if let Some(why) = missing {
        if common::kernel_required() {
            panic!("{test}: required (OVL_REQUIRE_KERNEL=1) but {why}");
        }
        eprintln!(
            "\n*** SKIP {test}: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n"
        );
        return None;
    }
    common::kernel(test)?;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_ovlcheck"), dir.path().join("ovlcheck")).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(common::corpus_dir())
        .arg(dir.path().join("corpus"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    Some(dir)
}

fn number(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// The profiles an unprivileged user can mount: each preset that goes
/// with userxattr, as its userxattr form (the idmapped one with
/// idmapped mounts of the user's own tmpfs).
const UNPRIVILEGED_PROFILES: &[&str] = &[
    "index=on userxattr",
    "lower=overlay userxattr",
    "lower=separate userxattr",
    "lower=separate userxattr upper_size=12288",
    "userxattr",
    "userxattr idmapped",
    "userxattr readonly",
    "userxattr uuid=off",
    "userxattr volatile",
];

/// The issue's yardstick: `ovlcheck fuzz --cases 2000 --seed 1` as a user
/// with subordinate ids runs every profile such a user can mount, every
/// case, with no divergence and no backend failure.
#[test]
fn plain_fuzz_as_a_user_with_subordinate_ids() {
    let Some(dir) = setup("rootless_fuzz") else {
        return;
    };
    let s = as_user(
        dir.path(),
        ROOTLESS_USER,
        &["fuzz", "--cases", "2000", "--seed", "1"],
    );
    assert_eq!(s["profile"], "all", "{s}");
    assert_eq!(
        s["profiles"],
        serde_json::json!(UNPRIVILEGED_PROFILES),
        "{s}"
    );
    assert_eq!(number(&s, "cases"), 2000, "{s}");
    for key in ["divergences", "unsupported", "backend_failures"] {
        assert_eq!(number(&s, key), 0, "{key}: {s}");
    }
    // Every case with an upper layer but those whose layers hold a
    // metacopy file (data-only layers bring some, and escaped layers of
    // `lower=overlay` cases) or a redirect the mount refuses (one in eight
    // draws each), which run without the export check
    // (harness/src/runner.rs: wants_export).
    assert_eq!(number(&s, "exported"), 1449, "{s}");
    // Owners the idmapped layers' mounts do not map are reached too
    // (stored below the mounts' range, driver/src/idmapped.rs).
    for rule in ["stat.unmapped-overflow-id", "copy-up.unmapped-owner"] {
        assert!(number(&s["rules"]["cases"], rule) > 0, "{rule}: {s}");
    }
}

/// A user without subordinate ids maps only its own id: the cases name
/// no other, and still run clean.
#[test]
fn plain_fuzz_as_a_user_without_subordinate_ids() {
    let Some(dir) = setup("rootless_fuzz_single_id") else {
        return;
    };
    let s = as_user(
        dir.path(),
        NOBODY,
        &["fuzz", "--cases", "300", "--seed", "1"],
    );
    // Idmapped layers need a range of ids to map: not here.
    let without_idmapped: Vec<&str> = UNPRIVILEGED_PROFILES
        .iter()
        .copied()
        .filter(|p| !p.contains("idmapped"))
        .collect();
    assert_eq!(s["profiles"], serde_json::json!(without_idmapped), "{s}");
    assert_eq!(number(&s, "cases"), 300, "{s}");
    for key in ["divergences", "unsupported", "backend_failures"] {
        assert_eq!(number(&s, key), 0, "{key}: {s}");
    }
}

/// The corpus as a user: the userxattr cases run (the known kernel bugs
/// among them stay known), the others are not run, with the reason; and a
/// profile such a user cannot mount is refused up front (exit 2).
#[test]
fn the_corpus_as_a_user() {
    let Some(dir) = setup("rootless_corpus") else {
        return;
    };
    let corpus = dir.path().join("corpus");
    let corpus = corpus.to_str().unwrap();
    for user in [ROOTLESS_USER, NOBODY] {
        let s = as_user(dir.path(), user, &["replay", corpus]);
        assert_eq!(number(&s, "new_divergences"), 0, "{user}: {s}");
        assert_eq!(number(&s, "backend_failures"), 0, "{user}: {s}");
        let (cases, unsupported) = (number(&s, "cases"), number(&s, "unsupported"));
        assert!(cases > unsupported, "{user}: nothing ran: {s}");
        assert!(unsupported > 0, "{user}: root-only cases ran: {s}");
    }
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={ROOTLESS_USER}"),
            &format!("--regid={ROOTLESS_USER}"),
            "--clear-groups",
            "--",
        ])
        .arg(dir.path().join("ovlcheck"))
        .args(["fuzz", "--profile", "default", "--cases", "1"])
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs root"), "{stderr}");
}
