//! Cases that share an overlay mount (`--pack N`, driver/src/pack.rs)
//! are judged as they are alone: the same campaign and the same corpus
//! replay give the same report with `--pack 8` as with `--pack 1`.

mod common;

use ovlcheck_case::Profile;
use ovlcheck_harness::campaign::{run_indices, Campaign, CaseResult, FuzzOptions, Shard};
use ovlcheck_harness::contract::Contract;
use ovlcheck_harness::gen::GenConfig;
use ovlcheck_harness::replay::{replay, ReplayOptions};
use ovlcheck_harness::runner::Packing;
use std::sync::atomic::AtomicBool;

/// Every preset, 50 cases each (the campaign cycles through them).
const CASES: u64 = 700;

fn campaign(backend: &dyn ovlcheck_driver::Backend, pack: usize) -> Campaign {
    let opts = FuzzOptions {
        seed: 11,
        cases: CASES,
        gen: GenConfig::default(),
        jobs: 2,
        shard: Shard::ALL,
        max_reported: 0,
        shrink_runs: 0,
        contract: Contract::Kernel,
        known: Default::default(),
        export: true,
        pack,
    };
    let indices: Vec<u64> = (0..CASES).collect();
    run_indices(backend, &opts, &indices, &AtomicBool::new(false), &|_| {})
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Each result as a report counts it: without how the case was run, with
/// its profile by value (the campaign numbers profiles as it meets them).
fn judged(c: &Campaign) -> Vec<(CaseResult, Option<Profile>)> {
    c.results
        .iter()
        .map(|r| {
            let result = CaseResult {
                packing: Packing::Alone,
                profile: 0,
                ..*r
            };
            let profile = (!r.unsupported).then(|| c.profiles[usize::from(r.profile)].clone());
            (result, profile)
        })
        .collect()
}

#[test]
fn a_packed_campaign_reports_what_its_cases_alone_report() {
    let Some(kernel) = common::kernel("a_packed_campaign_reports_what_its_cases_alone_report")
    else {
        return;
    };
    let _serial = common::serial();
    let alone = campaign(&*kernel, 1);
    let packed = campaign(&*kernel, 8);
    assert_eq!(alone.packed(), (0, 0));
    let (shared, again) = packed.packed();
    assert!(
        shared * 10 >= CASES as usize * 7,
        "most cases share a mount: {shared} of {CASES}"
    );
    assert!(
        again * 100 <= shared,
        "few run again alone: {again} of {shared}"
    );
    let (a, p) = (judged(&alone), judged(&packed));
    assert_eq!(a.len(), CASES as usize);
    for (x, y) in a.iter().zip(&p) {
        assert_eq!(x, y, "case {} judged alike alone and packed", x.0.index);
    }
    let firsts = |c: &Campaign| -> Vec<(String, u64, usize)> {
        c.first
            .iter()
            .map(|(s, f)| (s.to_string(), f.index, f.cases))
            .collect()
    };
    assert_eq!(firsts(&alone), firsts(&packed));
    assert_eq!(alone.failures, packed.failures);
}

#[test]
fn a_packed_corpus_replay_gives_every_case_its_verdict() {
    let Some(kernel) = common::kernel("a_packed_corpus_replay_gives_every_case_its_verdict") else {
        return;
    };
    let _serial = common::serial();
    let paths = [common::corpus_dir()];
    let run = |pack| {
        let opts = ReplayOptions {
            contract: Contract::default_for(kernel.kind()),
            repeat: 1,
            jobs: 2,
            pack,
        };
        replay(&*kernel, &paths, opts, &AtomicBool::new(false)).unwrap_or_else(|e| panic!("{e}"))
    };
    let (alone, packed) = (run(1), run(8));
    let verdicts = |r: &ovlcheck_harness::replay::Replay| -> Vec<String> {
        r.cases
            .iter()
            .map(|(p, got)| format!("{}: {got:?}", p.display()))
            .collect()
    };
    assert!(
        packed.packed.0 * 2 > packed.cases.len(),
        "{:?}",
        packed.packed
    );
    assert_eq!(verdicts(&alone), verdicts(&packed));
    assert_eq!(alone.ops, packed.ops);
    assert_eq!(alone.exported, packed.exported);
}

#[test]
fn offline_changes_share_a_mount_each_case_with_its_own_outcome() {
    let Some(kernel) =
        common::kernel("offline_changes_share_a_mount_each_case_with_its_own_outcome")
    else {
        return;
    };
    let _serial = common::serial();
    let texts = [
        // The change removes what is there, then the name is gone.
        "lower\n  file f 0644 \"a\"\nops\n  offline 0 remove f\n  stat f\n",
        // Nothing to remove: the step's own errno.
        "lower\n  file g 0644 \"b\"\nops\n  offline 0 remove f\n  stat g\n",
        // A new file in the upper of two lower layers.
        "lower\n  file a 0644 \"a\"\nlower\n  dir d 0755\nops\n  offline 1 file d/n 0644 \"offline\"\n  read d/n\n",
    ];
    let cases: Vec<ovlcheck_case::Case> = texts
        .iter()
        .map(|t| ovlcheck_case::parse_case("offline", t).expect("parses"))
        .collect();
    let runs = ovlcheck_harness::runner::run_pack_checked(&*kernel, &cases, Contract::Kernel, true);
    let mut offline_outcomes = Vec::new();
    for ((got, packing), case) in runs.into_iter().zip(&cases) {
        let got = got.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packing, Packing::Packed, "{case:?}");
        assert!(
            got.divergence.is_none(),
            "the model agrees: {:?}",
            got.divergence
        );
        let alone =
            ovlcheck_harness::runner::run_case_checked(&*kernel, case, Contract::Kernel, true)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.observed, alone.observed, "the same outcomes as alone");
        offline_outcomes.push(got.observed[0].clone());
    }
    assert_ne!(
        offline_outcomes[0], offline_outcomes[1],
        "each case's offline step has its own outcome"
    );
}
