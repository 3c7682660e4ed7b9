//! The changeset corpus (corpus/changesets/, one case per rule of
//! docs/images.md): the model's predicted changeset of each case is
//! snapshotted, and the kernel's store must write exactly those entries and
//! mount the applied layer as the model predicts.

mod common;

use ovlcheck_harness::{changes, corpus, ModelBackend};
use std::path::PathBuf;

fn cases() -> Vec<PathBuf> {
    let dir = common::corpus_dir().join("changesets");
    let files = corpus::collect(&[dir]).expect("corpus/changesets is readable");
    assert!(
        files.len() >= 12,
        "one case per changeset rule, found {}",
        files.len()
    );
    files
}

fn name(path: &std::path::Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn predicted_changesets() {
    for path in cases() {
        let case = corpus::load_case(&path).unwrap_or_else(|e| panic!("{e}"));
        let listing = changes::listing(&case, &ModelBackend).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(name(&path), listing);
    }
}

#[test]
fn the_kernel_store_writes_the_predicted_changesets() {
    let Some(kernel) = common::kernel("the_kernel_store_writes_the_predicted_changesets") else {
        return;
    };
    let mut failures = Vec::new();
    for path in cases() {
        let case = corpus::load_case(&path).unwrap_or_else(|e| panic!("{e}"));
        let listing = changes::listing(&case, &*kernel).unwrap_or_else(|e| panic!("{e}"));
        let differs = listing
            .lines()
            .any(|l| l.starts_with('<') || l.starts_with('>'));
        if differs || !listing.contains("as the model predicts") {
            failures.push(format!("{}:\n{listing}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
