//! The regression corpus, replayed: against the model always (every pinned
//! outcome is the model's, and model-vs-model views agree), against the
//! kernel and against fuse-overlayfs when they are available. A case may
//! diverge on a backend only where it says so (`known BACKEND "SIGNATURE"`
//! with that signature); a known case that now agrees is reported, not
//! failed (the implementation was fixed: move the case).

mod common;

use ovlcheck_driver::Backend;
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::known::Verdict;
use ovlcheck_harness::replay::{replay, ReplayOptions, Replayed};
use ovlcheck_harness::{corpus, report, ModelBackend};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

fn corpus_files() -> Vec<PathBuf> {
    let files = corpus::collect(&[common::corpus_dir()]).expect("corpus/ is readable");
    assert!(
        files.len() >= 30,
        "corpus/ should hold at least 30 cases, found {}",
        files.len()
    );
    files
}

/// Replays the corpus on `backend`: no new divergence, no backend failure.
/// Returns how many cases were known, fixed and not run.
fn replay_all(backend: &dyn Backend, paths: &[PathBuf]) -> (usize, usize, usize) {
    let opts = ReplayOptions {
        contract: Contract::default_for(backend.kind()),
        repeat: 1,
        jobs: 1,
        pack: 1,
    };
    let r = replay(backend, paths, opts, &AtomicBool::new(false)).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for (path, got) in &r.cases {
        match got {
            Replayed::Judged {
                verdict: Verdict::New,
                divergence: Some(d),
            } => failures.push(format!(
                "{}:\n{}",
                path.display(),
                report::render(d, backend.name())
            )),
            Replayed::Judged {
                verdict: Verdict::Fixed,
                ..
            } => eprintln!(
                "*** {}: known to diverge on {} and now agrees",
                path.display(),
                backend.name()
            ),
            Replayed::Failed(e) => failures.push(format!("{}: {e}", path.display())),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases fail on the {} backend:\n\n{}",
        failures.len(),
        r.cases.len(),
        backend.name(),
        failures.join("\n\n")
    );
    (
        r.count(Verdict::Known),
        r.count(Verdict::Fixed),
        r.unsupported(),
    )
}

/// The model runs every case but those whose pins are a kernel bug.
#[test]
fn corpus_agrees_with_the_model() {
    let files: Vec<PathBuf> = corpus_files()
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "known-kernel"))
        .collect();
    let (known, fixed, unsupported) = replay_all(&ModelBackend, &files);
    assert_eq!((known, fixed, unsupported), (0, 0, 0));
}

#[test]
fn corpus_agrees_with_the_kernel() {
    let Some(kernel) = common::kernel("corpus_agrees_with_the_kernel") else {
        return;
    };
    let (known, fixed, unsupported) = replay_all(&*kernel, &corpus_files());
    assert_eq!(unsupported, 0, "the kernel runs every profile");
    assert_eq!(known + fixed, 42, "corpus/known-kernel holds 42 cases");
}

/// fuse-overlayfs diverges only where the corpus says it does, under its
/// default contract; profiles it lacks are not run.
#[test]
fn corpus_on_fuse_overlayfs_shows_only_known_divergences() {
    let Some(fuse) = common::fuse_overlayfs("corpus_on_fuse_overlayfs") else {
        return;
    };
    let (known, _, unsupported) = replay_all(&*fuse, &corpus_files());
    assert!(
        known >= 10,
        "corpus/known-fuse-overlayfs is replayed ({known} known)"
    );
    assert!(
        unsupported > 0,
        "index, metacopy and xino cases are not run"
    );
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

/// Every known case is described in its directory's README.md: by name, or,
/// for the kernel's xattr-whiteout bug, by the documented pattern of its
/// profile copies (`xwhiteout-only-dir-{rmdir,rename}-not-empty-PROFILE.ovl`).
#[test]
fn every_known_case_has_a_readme_entry() {
    let root = common::corpus_dir();
    let mut dirs = 0;
    for dir in std::fs::read_dir(&root).expect("lists corpus/") {
        let dir = dir.expect("an entry").path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("known-") {
            continue;
        }
        dirs += 1;
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|e| panic!("{name}/README.md: {e}"));
        for case in std::fs::read_dir(&dir).expect("lists the directory") {
            let file = case.expect("an entry").file_name();
            let file = file.to_string_lossy();
            let copy = name == "known-kernel"
                && ["rmdir", "rename"]
                    .iter()
                    .any(|op| file.starts_with(&format!("xwhiteout-only-dir-{op}-not-empty-")));
            if file.ends_with(".ovl") && !copy {
                assert!(
                    readme.contains(&*file),
                    "corpus/{name}/{file} is not described in corpus/{name}/README.md"
                );
            }
        }
    }
    assert!(dirs >= 4, "the known-* directories are found");
}
