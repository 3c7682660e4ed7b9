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
