//! The regression corpus, replayed: against the model always (every pinned
//! outcome must be one the model allows, and model-vs-model views agree) and
//! against the kernel when it is available (no divergence at all: pinned
//! outcomes, outcomes, merged and upper views, after remount, after commit).

mod common;

use ovlcheck_driver::Backend;
use ovlcheck_harness::{corpus, report, run_case, ModelBackend};
use std::path::PathBuf;

/// Every corpus case except the known kernel bugs (which must diverge).
fn corpus_files() -> Vec<PathBuf> {
    let files = corpus::collect(&[common::corpus_dir()]).expect("corpus/ is readable");
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "known-kernel"))
        .collect();
    assert!(
        files.len() >= 30,
        "corpus/ should hold at least 30 cases, found {}",
        files.len()
    );
    files
}

fn replay_all(backend: &dyn Backend) {
    let mut failures = Vec::new();
    let files = corpus_files();
    for f in &files {
        let case = corpus::load_case(f).unwrap_or_else(|e| panic!("{e}"));
        match run_case(backend, &case) {
            Ok(run) => {
                if let Some(d) = run.divergence {
                    failures.push(format!(
                        "{}:\n{}",
                        f.display(),
                        report::render(&d, backend.name())
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases fail on the {} backend:\n\n{}",
        failures.len(),
        files.len(),
        backend.name(),
        failures.join("\n\n")
    );
}

#[test]
fn corpus_agrees_with_the_model() {
    replay_all(&ModelBackend);
}

#[test]
fn corpus_agrees_with_the_kernel() {
    let Some(kernel) = common::kernel("corpus_agrees_with_the_kernel") else {
        return;
    };
    replay_all(&*kernel);
}

#[test]
fn every_corpus_case_prints_back_to_itself() {
    for f in corpus_files() {
        let case = corpus::load_case(&f).unwrap_or_else(|e| panic!("{e}"));
        let text = ovlcheck_case::print_case(&case);
        let again = ovlcheck_case::parse_case("reprinted", &text)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(case, again, "{}", f.display());
    }
}
