//! Laws of the model over arbitrary cases (proptest).

use ovlcheck_case::layer::Entry;
use ovlcheck_case::{arb, Case, InodeFlags, Op, OpPath, Step, View};
use ovlcheck_model::Model;
use proptest::prelude::*;

/// Runs every step.
fn run(case: &Case) -> Option<Model> {
    let mut m = Model::new(case).ok()?;
    for s in &case.steps {
        m = m.step(s).1;
    }
    Some(m)
}

/// A view without the inode labels (they are re-snapshotted per mount).
fn without_ino(v: &View) -> View {
    let mut v = v.clone();
    for n in v.nodes.values_mut() {
        n.ino = None;
    }
    v
}

/// `v` without the immutable and append-only flags of the paths `only`
/// names (all when `None`): overlayfs keeps those of a copied-up inode in
/// its `protattr` xattr, which counts for upper inodes but the root only
/// (corpus/rules/98-inode-flags-copy-up.ovl).
fn without_protattr(mut v: View, only: Option<&str>) -> View {
    for (path, n) in v.nodes.iter_mut() {
        if only.is_none_or(|p| p == path) {
            n.flags = n.flags.without(InodeFlags::PROTECTED);
        }
    }
    v
}

fn has_links(case: &Case) -> bool {
    let layers = case.lowers.iter().chain(case.upper.iter());
    layers.flat_map(|l| &l.entries).any(|e| {
        matches!(
            e,
            Entry::Symlink { .. } | Entry::Hardlink { .. } | Entry::Redirect { .. }
        )
    })
}

/// Most generated cases must build, or the laws test little.
#[test]
fn generated_cases_mostly_build() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb::case();
    let mut built = 0;
    let mut steps = 0;
    for _ in 0..200 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        if Model::new(&case).is_ok() {
            built += 1;
            steps += case.steps.len();
        }
    }
    eprintln!("built {built}/200 cases, {steps} steps");
    assert!(built >= 100, "only {built}/200 generated cases build");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, max_global_rejects: 1_000_000, ..ProptestConfig::default() })]

    /// apply never panics and never returns an empty outcome set.
    #[test]
    fn apply_is_total(case in arb::case()) {
        let _ = run(&case);
    }

    /// The same case gives the same outcomes, views and canonical hash.
    #[test]
    fn deterministic(case in arb::case()) {
        let (Some(a), Some(b)) = (run(&case), run(&case)) else { return Ok(()) };
        prop_assert_eq!(a.canonical_hash(), b.canonical_hash());
        prop_assert_eq!(a.merged_view(), b.merged_view());
        prop_assert_eq!(a.upper_view(), b.upper_view());
        if let Some(s) = case.steps.first() {
            let (oa, ma) = a.step(s);
            let (ob, mb) = b.step(s);
            prop_assert_eq!((oa, ma.canonical_hash()), (ob, mb.canonical_hash()));
        }
    }

    /// A remount does not change what users see (inode labels and the
    /// root's `protattr` flags aside), nor
    /// the upper layer, except that with userxattr a directory's stale
    /// impure mark goes once the new mount lists it: a lookup in a user
    /// namespace never takes the origin xattr, so nothing below is impure
    /// any more (corpus/found/userxattr-remount-clears-impure.ovl,
    /// corpus/regressions/userxattr-rename-onto-whiteout-remount-clears-impure.ovl).
    #[test]
    fn remount_keeps_merged_view(case in arb::case()) {
        let Some(m) = run(&case) else { return Ok(()) };
        // Both views as a step sees them: after the mount's walk, whose
        // lookups mark directories impure (ovl_fix_origin), so that a
        // listing before it differs (corpus/regressions/first-walk-lists-before-fix-origin.ovl).
        let walked = |m: &Model| m.step(&Step::new(Op::Stat { path: OpPath::parse(".").unwrap() })).1;
        let (m, r) = (walked(&m), walked(&m.step(&Step::new(Op::Remount)).1));
        let seen = |v: View| without_protattr(without_ino(&v), Some(""));
        prop_assert_eq!(seen(m.merged_view()), seen(r.merged_view()));
        let cleared = |v: Option<View>| {
            v.map(|mut v| {
                if case.profile.userxattr {
                    for n in v.nodes.values_mut() {
                        n.overlay.remove("impure");
                    }
                }
                v
            })
        };
        prop_assert_eq!(cleared(m.upper_view()), cleared(r.upper_view()));
        if !case.profile.userxattr {
            prop_assert_eq!(m.upper_view(), r.upper_view());
        }
    }

    /// A commit does not change what users see (inode labels and
    /// `protattr` flags aside), for uppers that overlay itself wrote. It may otherwise, and the kernel
    /// agrees: with index=on the index does not survive a commit, so lower
    /// hard links broken by copy-up show again; markers written by hand in
    /// an upper (an xattr whiteout) only count once the layer is a lower.
    #[test]
    fn commit_keeps_merged_view(case in arb::case().prop_map(|mut c| {
        c.upper = None;
        c.profile.index = false;
        c
    })) {
        let Some(m) = run(&case) else { return Ok(()) };
        let c = m.step(&Step::new(Op::Commit)).1;
        let seen = |v: View| without_protattr(without_ino(&v), None);
        prop_assert_eq!(seen(m.merged_view()), seen(c.merged_view()));
        prop_assert_eq!(c.lower_count(), m.lower_count() + 1);
    }

    /// An op on one path leaves the merged view of unrelated paths (not
    /// ancestors or descendants) untouched, when no symlinks, hard links or
    /// redirects are involved.
    #[test]
    fn ops_are_local(case in arb::case(), step in arb::step(arb::default_paths())) {
        prop_assume!(!has_links(&case));
        let paths = step.op.paths();
        prop_assume!(paths.len() == 1 && !step.op.is_lifecycle());
        prop_assume!(!matches!(step.op, Op::Symlink { .. }));
        let p = paths[0].clone();
        let Some(m) = run(&Case { steps: vec![], ..case.clone() }) else { return Ok(()) };
        let before = without_ino(&m.merged_view());
        {
            let (_, after) = m.step(&step);
            let after = without_ino(&after.merged_view());
            for (path, node) in &before.nodes {
                let q = if path.is_empty() { continue } else { ovlcheck_case::RelPath::parse(path).unwrap() };
                if q.starts_with(&p) || p.starts_with(&q) {
                    continue;
                }
                // A phantom (a raw whiteout listed by a directory read from
                // one layer) goes when an op below copies its directory up
                // and makes it a merged one: not an unrelated path.
                if node.kind == ovlcheck_case::NodeKind::Whiteout {
                    continue;
                }
                prop_assert_eq!(Some(node), after.nodes.get(path), "path {} changed by {:?}", path, step.op);
            }
        }
    }

    /// Clones are independent: applying to a clone leaves the original.
    #[test]
    fn clones_are_independent(case in arb::case()) {
        let Some(m) = run(&Case { steps: vec![], ..case.clone() }) else { return Ok(()) };
        let h = m.canonical_hash();
        let v = m.upper_view();
        let mut c = m.clone();
        for s in &case.steps {
            c = c.step(s).1;
        }
        prop_assert_eq!(h, m.canonical_hash());
        prop_assert_eq!(v, m.upper_view());
    }
}
