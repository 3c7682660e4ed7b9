//! One insta snapshot per scenario in corpus/rules and corpus/seed-article.ovl:
//! the layers, each op with the outcomes the model allows, then the merged and
//! raw upper views. Every pinned `=> ...` outcome (observed on Linux 6.18)
//! must be allowed.

use ovlcheck_case::{parse_case, print_case, Case, Step};
use ovlcheck_model::Model;
use std::fmt::Write as _;
use std::path::PathBuf;

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/rules")
}

/// The seed article's scenario (corpus/seed-article.ovl).
fn seed_article() -> PathBuf {
    rules_dir().join("../seed-article.ovl")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .expect("corpus/rules exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ovl"))
        .chain([seed_article()])
        .collect();
    v.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    v
}

/// One step in the text format, without its pin.
fn step_text(step: &Step) -> String {
    let case = Case {
        steps: vec![step.unpinned()],
        ..Case::default()
    };
    print_case(&case)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Runs a case, following the pinned outcome where there is one, and
/// renders the transcript.
fn transcript(case: &Case) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut failures = Vec::new();
    let mut m = Model::new(case).expect("case builds");
    writeln!(
        out,
        "{}",
        print_case(&Case {
            steps: vec![],
            ..case.clone()
        })
    )
    .unwrap();
    writeln!(out, "== steps").unwrap();
    for step in &case.steps {
        let (outcome, next) = m.step(step);
        writeln!(out, "{} => {outcome}", step_text(step)).unwrap();
        if let Some(e) = step.expect.as_ref().filter(|e| **e != outcome) {
            failures.push(format!(
                "{}: pinned {e}, model gives {outcome}",
                step_text(step)
            ));
        }
        m = next;
    }
    writeln!(out, "== merged\n{}", m.merged_view()).unwrap();
    match m.upper_view() {
        Some(u) => writeln!(out, "== upper\n{u}").unwrap(),
        None => writeln!(out, "== upper\n(read-only)").unwrap(),
    }
    (out, failures)
}

#[test]
fn scenarios() {
    let files = scenario_files();
    assert!(
        files.len() >= 45,
        "expected at least 45 scenarios, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let case = parse_case(&f.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
        let (snap, fails) = transcript(&case);
        failures.extend(fails.into_iter().map(|x| format!("{name}: {x}")));
        insta::assert_snapshot!(name, snap);
    }
    assert!(
        failures.is_empty(),
        "pinned outcomes not allowed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn seed_article_upper_holds_exactly_the_changes() {
    let text = std::fs::read_to_string(seed_article()).unwrap();
    let case = parse_case("seed-article.ovl", &text).unwrap();
    let mut m = Model::new(&case).unwrap();
    for s in &case.steps {
        m = m.step(s).1;
    }
    let upper = m.upper_view().unwrap();
    let paths: Vec<&str> = upper.nodes.keys().map(String::as_str).collect();
    assert_eq!(paths, ["", "Test", "bin", "bin/ss", "root", "root/aa"]);
    assert_eq!(
        upper.nodes["bin/ss"].kind,
        ovlcheck_case::NodeKind::Whiteout
    );
    assert_eq!(upper.nodes["Test"].kind, ovlcheck_case::NodeKind::Dir);
}
