//! Unit-level laws of the harness: generation is deterministic and reaches
//! every op kind, shards partition a campaign, the corpus never overwrites,
//! and view comparison masks only what the model leaves open.

use ovlcheck_case::{parse_case, print_case, Node, NodeKind, Op, View};
use ovlcheck_harness::campaign::Shard;
use ovlcheck_harness::compare::compare_views;
use ovlcheck_harness::gen::{case_at, GenConfig};
use ovlcheck_harness::{corpus, run_case, ModelBackend};
use std::collections::BTreeSet;

#[test]
fn the_same_seed_and_index_give_the_same_case() {
    let g = GenConfig::default();
    for i in 0..200 {
        assert_eq!(case_at(&g, 42, i), case_at(&g, 42, i));
    }
    assert_ne!(case_at(&g, 42, 1), case_at(&g, 43, 1));
}

#[test]
fn generated_cases_are_valid_and_print_back_to_themselves() {
    let g = GenConfig::default();
    for i in 0..500 {
        let c = case_at(&g, 7, i);
        for l in c.lowers.iter().chain(&c.upper) {
            l.objects().unwrap_or_else(|e| panic!("case {i}: {e}"));
        }
        let again =
            parse_case("printed", &print_case(&c)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(again, c, "case {i}");
    }
}

#[test]
fn the_op_mix_reaches_every_op_kind_and_feature() {
    let g = GenConfig::default();
    let mut kinds = BTreeSet::new();
    let (mut slash, mut cred, mut many_lowers, mut upper, mut ops) = (0, 0, 0, 0, 0);
    let mut xwhiteouts = 0;
    for i in 0..2000 {
        let c = case_at(&g, 1, i);
        many_lowers += usize::from(c.lowers.len() > 4);
        upper += usize::from(c.upper.is_some());
        let layers = c.lowers.iter().chain(&c.upper);
        xwhiteouts += usize::from(
            layers
                .flat_map(|l| &l.entries)
                .any(|e| matches!(e, ovlcheck_case::layer::Entry::Xwhiteout { .. })),
        );
        for s in &c.steps {
            ops += 1;
            kinds.insert(s.op.keyword());
            cred += usize::from(s.cred.is_some());
            slash += usize::from(
                matches!(&s.op, Op::Stat { path } | Op::Mkdir { path, .. } | Op::Rmdir { path } if path.trailing_slash),
            );
        }
    }
    let all = Op::KEYWORDS;
    for k in all {
        assert!(kinds.contains(k), "no {k} in 2000 cases");
    }
    assert!(slash > 0 && cred > 0 && many_lowers > 0 && upper > 0 && xwhiteouts > 0);
    assert!(
        ops as f64 / 2000.0 >= 10.0,
        "mean ops per case {}",
        ops as f64 / 2000.0
    );
}

/// Data-only layers come in one case in eight, for a kernel the model has
/// them for, each with a metacopy file redirected into it somewhere, and
/// never for an older kernel.
#[test]
fn data_only_layers_are_generated_for_kernels_that_have_them() {
    use ovlcheck_case::layer::Entry;
    let redirected = |c: &ovlcheck_case::Case| {
        c.lowers
            .iter()
            .flat_map(|l| &l.entries)
            .any(|e| matches!(e, Entry::Redirect { target, .. } if target.starts_with('/')))
    };
    let host: Vec<_> = (0..800)
        .map(|i| case_at(&GenConfig::default(), 1, i))
        .filter(|c| !c.data.is_empty())
        .collect();
    assert!((50..=150).contains(&host.len()), "{} of 800", host.len());
    assert!(host.iter().filter(|c| redirected(c)).count() > host.len() / 2);
    let old = GenConfig {
        kernel: Some(ovlcheck_case::profile::KernelVersion::new(6, 1)),
        ..GenConfig::default()
    };
    assert!((0..800).all(|i| case_at(&old, 1, i).data.is_empty()));
}

/// Cases for a rootless user namespace that maps only ids `[0, n)` name
/// no other id (driver/src/idmap.rs); with every id mapped they do.
#[test]
fn cases_for_a_narrow_id_map_name_only_mapped_ids() {
    let ids_of = |c: &ovlcheck_case::Case| {
        let mut ids = BTreeSet::new();
        for l in c.lowers.iter().chain(&c.upper) {
            for e in &l.entries {
                if let ovlcheck_case::layer::Entry::Owner { uid, gid, .. } = e {
                    ids.extend([*uid, *gid]);
                }
            }
        }
        for s in &c.steps {
            ids.extend(s.cred.iter().flat_map(|c| [c.uid, c.gid]));
            if let Op::Chown { uid, gid, .. } = &s.op {
                ids.extend([*uid, *gid]);
            }
        }
        ids
    };
    let all: BTreeSet<u32> = (0..500)
        .flat_map(|i| ids_of(&case_at(&GenConfig::default(), 1, i)))
        .collect();
    assert!(all.contains(&1000) && all.contains(&1001), "{all:?}");
    for n in [1, 1001] {
        let g = GenConfig {
            ids: Some(n),
            ..GenConfig::default()
        };
        for i in 0..500 {
            let c = case_at(&g, 1, i);
            assert!(ids_of(&c).iter().all(|id| *id < n), "ids < {n}, case {i}");
            // Only the ids change: the ops are the same, but for the
            // `chattr` ops that come with inode flags, which a worker in a
            // user namespace cannot give (CAP_LINUX_IMMUTABLE), the
            // steps of POSIX ACLs, drawn late, which name ids up to 1002,
            // and the offline changes drawn after them (with index=on, a
            // write or an unlink and an unlink come with them).
            let plain = |c: &ovlcheck_case::Case| -> Vec<&'static str> {
                let index = ovlcheck_model::index_on(&c.profile);
                c.steps
                    .iter()
                    .filter(|s| !matches!(s.op, Op::Chattr { .. } | Op::Offline { .. }))
                    .filter(|s| !(index && matches!(s.op, Op::Write { .. } | Op::Unlink { .. })))
                    .map(|s| s.op.keyword())
                    .collect()
            };
            let (narrow, wide) = (plain(&c), plain(&case_at(&GenConfig::default(), 1, i)));
            let mut rest = wide.iter();
            assert!(
                narrow.iter().all(|op| rest.any(|w| w == op)),
                "case {i}: {narrow:?} is not a subsequence of {wide:?}"
            );
            let acls = wide.len() - narrow.len();
            assert!(acls == 0 || n <= 1002, "case {i}: {acls} steps more");
        }
    }
}

/// Cases for a kernel whose tmpfs has no user xattrs (the vm backend's
/// 6.1 guest) name that kernel, keep `user.*` out of their layers, and
/// still set, get and remove xattrs, of both namespaces.
#[test]
fn cases_for_an_old_kernel_have_no_user_xattrs_in_their_layers() {
    let old = ovlcheck_case::profile::KernelVersion::new(6, 1);
    let g = GenConfig {
        kernel: Some(old),
        ..GenConfig::default()
    };
    let mut names = BTreeSet::new();
    for i in 0..500 {
        let c = case_at(&g, 1, i);
        assert_eq!(c.profile.kernel, Some(old), "case {i}");
        for l in c.lowers.iter().chain(&c.upper) {
            for e in &l.entries {
                if let ovlcheck_case::layer::Entry::Xattr { name, .. } = e {
                    assert!(!name.starts_with("user."), "case {i}: {name}");
                    names.insert(format!("layer {name}"));
                }
            }
        }
        for s in &c.steps {
            if let Op::Setxattr { name, .. } = &s.op {
                names.insert(format!("setxattr {name}"));
            }
        }
    }
    let want = ["layer trusted.k", "setxattr trusted.k", "setxattr user.k"];
    assert!(want.iter().all(|w| names.contains(*w)), "{names:?}");
}

/// Cases for a container engine (`image_layers`) give it only what an
/// image layer carries and an empty container layer, so that none is
/// refused there (engine/src/api.rs: `unrepresentable`), and keep the
/// whiteouts and opaque directories an image has.
#[test]
fn cases_for_an_engine_have_image_layers_and_an_empty_container_layer() {
    use ovlcheck_case::layer::{Entry, LayerFormat};
    let g = GenConfig {
        profile: ovlcheck_case::Profile::preset("default"),
        image_layers: true,
        ..GenConfig::default()
    };
    let plain = GenConfig {
        image_layers: false,
        ..g.clone()
    };
    let (mut reshaped, mut whiteouts, mut opaque) = (0, 0, 0);
    for i in 0..500 {
        let c = case_at(&g, 1, i);
        reshaped += usize::from(c != case_at(&plain, 1, i));
        assert!(c.upper.is_none() && c.data.is_empty(), "case {i}");
        assert!(
            !c.steps.iter().any(|s| matches!(s.op, Op::Offline { .. })),
            "case {i}"
        );
        for l in &c.lowers {
            assert_eq!(l.format, LayerFormat::Overlay, "case {i}");
            l.objects()
                .unwrap_or_else(|e| panic!("case {i}: {}", e.message));
            for e in &l.entries {
                match e {
                    Entry::Whiteout { .. } => whiteouts += 1,
                    Entry::Opaque { .. } => opaque += 1,
                    Entry::Xwhiteout { .. }
                    | Entry::XwhiteoutDir { .. }
                    | Entry::Redirect { .. }
                    | Entry::Metacopy { .. }
                    | Entry::Attr { .. } => panic!("case {i}: {e:?}"),
                    Entry::Xattr { name, .. } => {
                        assert!(!ovlcheck_case::acl::is_acl_name(name), "case {i}: {name}")
                    }
                    _ => {}
                }
            }
        }
        ovlcheck_model::Model::new(&c).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
    assert!(reshaped >= 150, "{reshaped} of 500 cases reshaped");
    assert!(
        whiteouts > 0 && opaque > 0,
        "{whiteouts} whiteouts, {opaque} opaque"
    );
}

/// Cases for a backend that runs each case with its own `fs.protected_*`
/// settings (the model, the vm guest) name other settings than the
/// default in about one case in four, every value the kernel takes among
/// them; drawn last, they change nothing else but, where a value is 2,
/// sticky world-writable directories made group-writable only. Other
/// backends get none.
#[test]
fn cases_for_a_backend_that_sets_sysctls_name_their_own() {
    use ovlcheck_case::layer::Entry;
    use ovlcheck_case::Sysctls;
    let g = GenConfig {
        sysctls: true,
        ..GenConfig::default()
    };
    let (mut own, mut values, mut group_sticky) = (0, BTreeSet::new(), 0);
    for i in 0..800 {
        let (c, plain) = (case_at(&g, 1, i), case_at(&GenConfig::default(), 1, i));
        assert_eq!(plain.profile.sysctls, Sysctls::default(), "case {i}");
        if c.profile.sysctls != Sysctls::default() {
            own += 1;
            for (name, _) in Sysctls::NAMES {
                values.insert((name, c.profile.sysctls.get(name).unwrap()));
            }
        }
        assert_eq!(c.steps, plain.steps, "case {i}");
        let layers = |c: &ovlcheck_case::Case| c.lowers.iter().chain(&c.upper).cloned().collect();
        let (now, was): (Vec<_>, Vec<_>) = (layers(&c), layers(&plain));
        assert_eq!(now.len(), was.len(), "case {i}");
        for (l, p) in now.iter().zip(&was) {
            assert_eq!(l.entries.len(), p.entries.len(), "case {i}");
            for (e, w) in l.entries.iter().zip(&p.entries) {
                match (e, w) {
                    (Entry::Dir { mode: 0o1770, .. }, Entry::Dir { mode: 0o1777, .. }) => {
                        group_sticky += 1;
                        let s = c.profile.sysctls;
                        assert!(s.protected_fifos == 2 || s.protected_regular == 2);
                    }
                    _ => assert_eq!(e, w, "case {i}"),
                }
            }
        }
    }
    assert!((120..=280).contains(&own), "{own} of 800");
    assert_eq!(values.len(), 2 + 2 + 3 + 3, "{values:?}");
    assert!(group_sticky > 0);
}

#[test]
fn shards_partition_the_campaign() {
    let n = 4;
    let mut seen = BTreeSet::new();
    for i in 0..n {
        for idx in Shard::parse(&format!("{i}/{n}")).unwrap().indices(103) {
            assert!(seen.insert(idx));
        }
    }
    assert_eq!(seen, (0..103).collect());
    assert!(
        Shard::parse("4/4").is_err() && Shard::parse("x").is_err() && Shard::parse("0/0").is_err()
    );
}

#[test]
fn corpus_saves_by_content_hash_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let case = parse_case("c", "lower\n  file a 0644 \"x\"\nops\n  read a => \"x\"\n").unwrap();
    let p1 = corpus::save(dir.path(), &case, "first text\n").unwrap();
    assert_eq!(
        p1.file_name().unwrap().to_string_lossy(),
        corpus::file_name(&case)
    );
    let p2 = corpus::save(dir.path(), &case, "second text\n").unwrap();
    assert_eq!(p1, p2);
    assert_eq!(
        std::fs::read_to_string(&p1).unwrap(),
        "first text\n",
        "an existing file was overwritten"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names.len(), 1, "temporary files left: {names:?}");
}

#[test]
fn comparison_masks_only_fields_the_model_leaves_open() {
    let mut m = Node::new(NodeKind::File, 0o644, 0, 0);
    m.nlink = Some(1);
    let mut b = m.clone();
    b.mtime = Some(123);
    let view = |n: &Node| View {
        nodes: [("a".to_string(), n.clone())].into(),
    };
    assert!(
        compare_views(&view(&m), &view(&b)).is_empty(),
        "an mtime the model leaves open was compared"
    );
    b.nlink = Some(2);
    assert_eq!(
        compare_views(&view(&m), &view(&b)).len(),
        1,
        "a determined nlink was not compared"
    );
    let mut b2 = m.clone();
    b2.mode = 0o600;
    assert_eq!(compare_views(&view(&m), &view(&b2)).len(), 1);
}

#[test]
fn model_backend_agrees_with_the_model_on_generated_cases() {
    let g = GenConfig::default();
    for i in 0..300 {
        let c = case_at(&g, 3, i);
        let run = run_case(&ModelBackend, &c).unwrap();
        assert!(run.divergence.is_none(), "case {i}");
    }
}
