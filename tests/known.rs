//! Known divergences and contracts through the command line: a divergence
//! a case is known to show is reported apart and exits 0 (1 with
//! `--strict`), an unknown one exits 1, a known case that agrees is
//! reported as fixed; a contract narrows what is compared.
//!
//! The tests run one at a time: fuse-overlayfs answers differently beside
//! a corpus replay's mounts (corpus/known-fuse-overlayfs/README.md, "Under
//! load"), and a campaign here must be judged alone.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn ovlcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs ovlcheck")
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().expect("stdout has a last line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writes");
    p.display().to_string()
}

/// The link-alias kernel bug's case with the given `known` line.
fn alias_case(known: &str) -> String {
    format!(
        "profile userxattr\n{known}lower\n  file b 0644 \"h\"\nops\n  link b c\n  chmod c 0666\n  as 1000:1000 open b rdwr\n"
    )
}

/// Known, new and fixed on the kernel: the userxattr link-alias bug
/// (corpus/known-kernel) diverges on this kernel.
#[test]
fn known_new_and_fixed_cases_and_their_exit_statuses() {
    let _serial = common::serial();
    if common::kernel("known_new_and_fixed").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let known = write(
        dir.path(),
        "known.ovl",
        &alias_case("known kernel \"open: model ok / backend EACCES\"\n"),
    );
    let out = ovlcheck(&["replay", &known, "--json"]);
    let j = json(&out);
    if j["fixed"].as_array().is_some_and(|f| !f.is_empty()) {
        eprintln!("*** this kernel has the link-alias bug fixed: known cases cannot be shown here");
        assert_eq!(out.status.code(), Some(0));
        return;
    }
    assert_eq!(out.status.code(), Some(0), "a known divergence exits 0");
    assert_eq!(
        (
            j["new_divergences"].as_u64(),
            j["known_divergences"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(
        j["known"][0]["signature"],
        "open: model ok / backend EACCES"
    );
    assert_eq!(
        ovlcheck(&["replay", &known, "--strict"]).status.code(),
        Some(1)
    );

    // Known on another backend, or with another signature: new.
    for line in [
        "known fuse-overlayfs \"open: model ok / backend EACCES\"\n",
        "known kernel \"open: model ok / backend EPERM\"\n",
        "",
    ] {
        let f = write(dir.path(), "new.ovl", &alias_case(line));
        let out = ovlcheck(&["replay", &f, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{line:?}");
        assert_eq!(json(&out)["new_divergences"], 1, "{line:?}");
    }

    // Known to diverge, and agrees: fixed (0; 1 with --strict).
    let fixed = write(
        dir.path(),
        "fixed.ovl",
        "known kernel \"merged view: mode\"\nlower\n  file a 0644 \"x\"\nops\n  chmod a 0600\n",
    );
    let out = ovlcheck(&["replay", &fixed, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["fixed"][0], fixed.as_str());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIXED"));
    assert_eq!(
        ovlcheck(&["replay", &fixed, "--strict"]).status.code(),
        Some(1)
    );
}

/// The whole corpus on this kernel: 0, its known cases reported; 1 with
/// `--strict`.
#[test]
fn replay_corpus_exits_0_with_known_kernel_cases_known() {
    if common::kernel("replay_corpus_known").is_none() {
        return;
    }
    let out = ovlcheck(&["replay", "corpus", "--json"]);
    let j = json(&out);
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert_eq!(j["new_divergences"], 0);
    let strict = ovlcheck(&["replay", "corpus", "--strict"]).status.code();
    let known =
        j["known_divergences"].as_u64().unwrap() + j["fixed"].as_array().unwrap().len() as u64;
    assert_eq!(known, 42, "the 42 known-kernel cases are known or fixed");
    assert_eq!(strict, Some(1));
}

/// A fuse-overlayfs campaign: its divergences are all known from
/// corpus/known-fuse-overlayfs, whose cases are of the default profile,
/// also on idmapped layers (the profile as the model reads it), where cases
/// with owners the mounts do not map are refused; without that corpus they
/// are new. The `xdev` and `userxattr` profiles have known cases of their
/// own (`userxattr` is refused where the user namespace cannot open
/// /dev/fuse: then it has no divergence at all).
#[test]
fn fuse_overlayfs_campaign_matches_known_divergences() {
    let _serial = common::serial();
    if common::fuse_overlayfs("fuse_overlayfs_campaign").is_none() {
        return;
    }
    let seeded = |profile: &'static str, seed: &'static str| {
        [
            "fuzz",
            "--backend",
            "fuse-overlayfs",
            "--profile",
            profile,
            "--cases",
            "60",
            "--seed",
            seed,
            "--jobs",
            "1",
            "--json",
        ]
    };
    let args = |profile| seeded(profile, "1");
    let idmapped = json(&ovlcheck(&args("idmapped")));
    // Seed 3's cases walk no path through a symlink to itself, where
    // fuse-overlayfs answers EAGAIN or ELOOP by the machine's load
    // (corpus/known-fuse-overlayfs/README.md, "Under load").
    for profile in ["xdev", "userxattr"] {
        let out = ovlcheck(&seeded(profile, "3"));
        let j = json(&out);
        assert_eq!(j["new_divergences"], 0, "{profile}: {j}");
        assert_eq!(out.status.code(), Some(0), "{profile}: {j}");
        let known = j["known_divergences"].as_u64().unwrap();
        assert!(profile != "xdev" || known > 0, "{profile}: {j}");
    }
    let args = args("default");
    let out = ovlcheck(&args);
    let j = json(&out);
    assert_eq!(j["contract"], "layout", "fuse-overlayfs defaults to layout");
    assert!(j["known_divergences"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["new_divergences"], 0, "{j}");
    assert_eq!(out.status.code(), Some(0), "{j}");
    assert!(
        idmapped["known_divergences"].as_u64().unwrap() > 0 && idmapped["new_divergences"] == 0,
        "on idmapped layers the default profile's divergences, known by its cases: {idmapped}"
    );
    assert!(
        idmapped["unsupported"].as_u64() > j["unsupported"].as_u64(),
        "cases with owners the mounts do not map are refused: {idmapped}"
    );
    assert_eq!(
        ovlcheck(&[&args[..], &["--strict"]].concat()).status.code(),
        Some(1)
    );
    let empty = tempfile::tempdir().unwrap();
    let none = empty.path().display().to_string();
    let out = ovlcheck(&[&args[..], &["--known", &none]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["known_divergences"], 0);
}

/// Profiles fuse-overlayfs lacks are refused with the reason (exit 2).
#[test]
fn fuse_overlayfs_refuses_profiles_it_cannot_run() {
    let _serial = common::serial();
    if common::fuse_overlayfs("fuse_refuses").is_none() {
        return;
    }
    for p in ["metacopy", "index", "xino"] {
        let out = ovlcheck(&[
            "fuzz",
            "--backend",
            "fuse-overlayfs",
            "--profile",
            p,
            "--cases",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(2), "{p}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("no {p} option")), "{p}: {err}");
    }
}

/// The contract narrows what is compared: an upper-layer difference is a
/// divergence under `layout` and `kernel` and none under `posix`; an
/// overlay-private xattr only under `kernel`.
#[test]
fn contracts_narrow_the_comparison() {
    let _serial = common::serial();
    if common::fuse_overlayfs("contracts_narrow").is_none() {
        return;
    }
    let case = "corpus/known-fuse-overlayfs/default-upper-view-overlay-opaque.ovl";
    let code = |contract: &str| {
        ovlcheck(&[
            "run",
            case,
            "--backend",
            "fuse-overlayfs",
            "--contract",
            contract,
        ])
        .status
        .code()
    };
    assert_eq!(code("layout"), Some(1));
    assert_eq!(code("kernel"), Some(1));
    assert_eq!(code("posix"), Some(0));
    let out = ovlcheck(&[
        "fuzz",
        "--backend",
        "fuse-overlayfs",
        "--profile",
        "default",
        "--cases",
        "40",
        "--seed",
        "3",
        "--contract",
        "kernel",
        "--json",
    ]);
    let sigs = json(&out)["signatures"].to_string();
    assert!(
        sigs.contains("overlay["),
        "kernel compares overlay xattrs: {sigs}"
    );
    let out = ovlcheck(&[
        "fuzz",
        "--backend",
        "fuse-overlayfs",
        "--profile",
        "default",
        "--cases",
        "40",
        "--seed",
        "3",
        "--contract",
        "posix",
        "--json",
    ]);
    let sigs = json(&out)["signatures"].to_string();
    assert!(
        !sigs.contains("overlay[") && !sigs.contains("upper view"),
        "posix: {sigs}"
    );
    assert!(
        !sigs.contains("ino") && !sigs.contains("dev"),
        "posix: {sigs}"
    );
}

/// A known kernel bug met under a profile no known case is written for
/// (the xattr-whiteout emptiness bug under `index=on
/// redirect_dir=nofollow`) is known: a known case of another profile, run
/// under this one, shows the same signature. One whose run does not show
/// it leaves the divergence new.
#[test]
fn a_known_bug_under_a_profile_no_known_case_is_written_for() {
    use ovlcheck_harness::contract::Contract;
    use ovlcheck_harness::known::KnownSet;
    use ovlcheck_harness::runner::run_case_checked;
    let _serial = common::serial();
    let Some(kernel) = common::kernel("known_bug_under_another_profile") else {
        return;
    };
    let known_dir = common::corpus_dir().join("known-kernel");
    let set = KnownSet::load(std::slice::from_ref(&known_dir), "kernel").expect("loads");
    let file = known_dir.join("xwhiteout-only-dir-rmdir-not-empty.ovl");
    let text = std::fs::read_to_string(&file).expect("reads");
    let body = text
        .lines()
        .filter(|l| !l.starts_with("known ") && !l.starts_with("profile "));
    let moved: String = std::iter::once("profile index=on redirect_dir=nofollow")
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n");
    let case = ovlcheck_case::parse_case("moved.ovl", &moved).expect("parses");
    let run = |c: &ovlcheck_case::Case| {
        let run = run_case_checked(kernel.as_ref(), c, Contract::Kernel, true).expect("runs");
        run.divergence.map(|d| d.signature().clone())
    };
    let d = run_case_checked(kernel.as_ref(), &case, Contract::Kernel, true)
        .expect("runs")
        .divergence
        .expect("the known bug shows under this profile too");
    assert_eq!(set.matching(&d), None, "no known case has this profile");
    let found = set
        .matching_run(&d, run)
        .expect("a known case shows it here");
    assert!(found.starts_with(&known_dir), "matched {}", found.display());
    let other = set.matching_run(&d, |_| None);
    assert_eq!(
        other.map(Path::to_path_buf),
        Some(found.to_path_buf()),
        "runs are remembered"
    );
    let fresh = KnownSet::load(std::slice::from_ref(&known_dir), "kernel").expect("loads");
    assert_eq!(
        fresh.matching_run(&d, |_| None),
        None,
        "no run shows it: new"
    );
}
