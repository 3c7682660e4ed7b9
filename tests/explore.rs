//! A small exploration against the kernel: every sequence of up to two ops
//! over the fixed universe, checked with the full differential runner.

mod common;

use ovlcheck_case::Profile;
use ovlcheck_harness::{explore, report};
use std::sync::atomic::AtomicBool;

#[test]
fn exploration_depth_two_agrees_with_the_kernel() {
    let Some(kernel) = common::kernel("exploration_depth_two") else {
        return;
    };
    let stop = AtomicBool::new(false);
    let x = explore::explore(&*kernel, &Profile::default(), 2, 2, &stop).expect("explores");
    let n = explore::ALPHABET.len();
    assert!(x.sequences >= n, "ran {} sequences", x.sequences);
    assert!(x.states > 1);
    let reports: Vec<String> = x
        .divergences
        .iter()
        .take(3)
        .map(|d| report::render(d, "kernel"))
        .collect();
    assert!(
        x.divergences.is_empty(),
        "{} divergences; first ones:\n{}",
        x.divergences.len(),
        reports.join("\n")
    );
}

#[test]
fn exploration_is_deterministic_on_the_model() {
    let stop = AtomicBool::new(false);
    let m = ovlcheck_harness::ModelBackend;
    let a = explore::explore(&m, &Profile::default(), 2, 2, &stop).expect("explores");
    let b = explore::explore(&m, &Profile::default(), 2, 1, &stop).expect("explores");
    assert_eq!(
        (a.sequences, a.states, a.ops),
        (b.sequences, b.states, b.ops)
    );
    assert!(a.divergences.is_empty());
}

/// `explore` sorts divergences as `fuzz` does: fuse-overlayfs's known ones
/// (corpus/known-fuse-overlayfs/ and the `known` lines of other cases) are
/// reported as known, with the case that names them, and only new ones
/// make the exit status 1 or are saved.
#[test]
fn explore_reports_known_divergences_as_known() {
    if common::fuse_overlayfs("explore_known").is_none() {
        return;
    }
    let save = tempfile::tempdir().expect("tempdir");
    let save_dir = save.path().to_str().expect("utf-8");
    let out = common::ovlcheck(&[
        "explore",
        "--backend",
        "fuse-overlayfs",
        "--depth",
        "1",
        "--save",
        save_dir,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is the summary");
    let divergences = j["divergences"].as_u64().unwrap();
    let known = j["known_divergences"].as_u64().unwrap();
    assert!(known > 0, "{j}");
    assert_eq!(
        j["new_divergences"].as_u64(),
        Some(divergences - known),
        "{j}"
    );
    let saved = std::fs::read_dir(save.path()).expect("saved").count() as u64;
    assert_eq!(saved, divergences - known, "{j}");
    let expected = if divergences == known { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(expected), "{j}");
    // With --json the lines for people are on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("known divergence: chattr: model ok / backend ENOTTY"),
        "{stderr}"
    );
}

/// The offline changes join the alphabet only where the profile allows
/// them (overlayfs.rst, "Changes to underlying filesystems"), and a
/// depth-2 exploration then runs sequences that make them.
#[test]
fn offline_changes_are_explored_where_the_profile_allows_them() {
    let m = ovlcheck_harness::ModelBackend;
    let n = explore::ALPHABET.len();
    let with = explore::alphabet_for(&m, &Profile::default());
    assert_eq!(with.len(), n + explore::OFFLINE_ALPHABET.len());
    assert!(with[n..]
        .iter()
        .all(|s| matches!(s.op, ovlcheck_case::Op::Offline { .. })));
    let metacopy = Profile::preset("metacopy").expect("a preset");
    assert_eq!(explore::alphabet_for(&m, &metacopy).len(), n);
    let stop = AtomicBool::new(false);
    let x = explore::explore(&m, &Profile::default(), 2, 1, &stop).expect("explores");
    let per_state = with.len();
    assert_eq!(x.sequences % per_state, 0, "{} sequences", x.sequences);
    assert!(x.sequences > per_state, "{} sequences", x.sequences);
}
