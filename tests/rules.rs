//! Rule coverage (README: "Rule coverage"): every named rule of the model
//! is reached by a corpus case, and the README's table names, for each rule, its kernel function and the
//! first corpus case that reaches it.

mod common;

use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::runner::run_case_under;
use ovlcheck_harness::{corpus, ModelBackend};
use ovlcheck_model::{RuleSet, RULES};
use std::path::PathBuf;

/// Corpus directories in the order the table prefers a case from: the
/// rule cases first, by their number, then the rest by name.
fn ordered_cases() -> Vec<PathBuf> {
    let root = common::corpus_dir();
    let files = corpus::collect(std::slice::from_ref(&root)).expect("corpus/ is readable");
    let rules = root.join("rules");
    let (mut first, rest): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|f| f.starts_with(&rules));
    first.sort_by_key(|f| {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
        (digits.parse::<u32>().unwrap_or(u32::MAX), name)
    });
    first.extend(rest);
    first
}

/// The rules each corpus case reaches, judged by the model as the
/// harness judges a kernel run (every step, view, remount and commit).
fn reached_by_case() -> Vec<(String, RuleSet)> {
    let root = common::corpus_dir();
    ordered_cases()
        .into_iter()
        .map(|path| {
            let case = corpus::load_case(&path).unwrap_or_else(|e| panic!("{e}"));
            let run = run_case_under(&ModelBackend, &case, Contract::Kernel)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let rel = path.strip_prefix(&root).expect("under corpus/");
            (rel.display().to_string(), run.rules)
        })
        .collect()
}

/// The README's table, as it must read.
fn expected_table(reached: &[(String, RuleSet)]) -> String {
    let mut out = String::from("| rule | kernel | first corpus case |\n| --- | --- | --- |\n");
    for info in RULES {
        let case = reached
            .iter()
            .find(|(_, rules)| rules.contains(info.rule))
            .map(|(path, _)| format!("[{path}](corpus/{path})"));
        let cell = case.unwrap_or_else(|| format!("MISSING: no corpus case reaches `{}`", info.id));
        out.push_str(&format!("| `{}` | {} | {cell} |\n", info.id, info.kernel));
    }
    out
}

#[test]
fn every_rule_has_a_corpus_case_and_the_readme_names_it() {
    let reached = reached_by_case();
    for info in RULES {
        assert!(
            reached.iter().any(|(_, r)| r.contains(info.rule)),
            "no corpus case reaches rule `{}` ({}): add a kernel-verified case",
            info.id,
            info.kernel
        );
    }
    let table = expected_table(&reached);
    let readme = std::fs::read_to_string(common::corpus_dir().join("../README.md"))
        .expect("README.md is readable");
    assert!(
        readme.contains(&table),
        "README.md's rule table (section \"Rule coverage\") is out of date; it must read:\n\n{table}"
    );
}

#[test]
fn campaign_reports_rule_coverage_in_json() {
    let out = common::ovlcheck(&[
        "fuzz",
        "--backend",
        "model",
        "--profile",
        "all",
        "--cases",
        "300",
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("json");
    let rules = &j["rules"];
    let cases = rules["cases"].as_object().expect("rules.cases");
    assert_eq!(cases.len(), RULES.len());
    assert!(cases["copy-up.data"].as_u64().unwrap() > 0, "{rules}");
    // One case in eight carries POSIX ACLs (harness/src/gen/acl.rs).
    for id in [
        "perm.acl",
        "acl.set",
        "acl.kill-sgid",
        "create.default-acl",
        "chmod.acl",
    ] {
        assert!(cases[id].as_u64().unwrap() > 0, "{id}: {rules}");
    }
    let reached = cases.values().filter(|n| n.as_u64() > Some(0)).count();
    assert_eq!(rules["reached"].as_u64(), Some(reached as u64), "{rules}");
    // A kernel before 6.6 is the only way to reach the version rules.
    assert_eq!(
        rules["unreachable"]["version.no-uuid-xattr"],
        "needs a kernel before 6.6"
    );
    // Generated cases can reach every rule (layers carry metacopy files,
    // capabilities, redirects and unmapped owners) but two, listed with
    // the reason: upper directories keep mapped ids, and a view comes
    // after a step.
    let not_generated = rules["not_generated"].as_object().unwrap();
    assert_eq!(
        not_generated.keys().collect::<Vec<_>>(),
        ["lookup.origin-unmapped", "readdir.before-fix-origin"],
        "{rules}"
    );
    assert!(
        not_generated["lookup.origin-unmapped"]
            .as_str()
            .unwrap()
            .contains("upper directories keep mapped ids"),
        "{rules}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("rules: {reached} of {} reached", RULES.len())),
        "{err}"
    );
}
