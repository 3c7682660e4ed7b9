//! Case generation. Lower layers are perturbations of one random tree over a
//! small name alphabet, so names collide across layers; ops are drawn with a
//! weighted mix that reaches every op kind, mostly on paths that exist
//! somewhere in the stack (docs/testing.md, "Generation": correlated layers
//! and a small name universe).
//!
//! The generator draws straight from proptest's seeded `TestRng` (fast: the
//! model-only fuzzer needs tens of thousands of cases per second) and is
//! exposed as a proptest [`Strategy`] whose value tree shrinks with
//! delta-debugging passes ([`crate::shrink`]).
//!
//! This is the generator of `fuzz` campaigns and of the differential
//! property test (tests/differential.rs). The case crate's proptest
//! strategies (`ovlcheck_case::arb`) are another generator, for the text
//! format's and the model's own property tests: they draw every part of a
//! case independently over the whole vocabulary (wild names, random pins,
//! unrelated layers), which those tests need but which would spend a
//! campaign on ops that miss. Neither calls the other.

mod acl;
mod image;

use ovlcheck_case::layer::{Entry, LayerFormat, Object, ObjectKind};
use ovlcheck_case::path::{Name, OpPath, RelPath};
use ovlcheck_case::profile::{KernelVersion, PRESETS};
use ovlcheck_case::{
    Access, Case, Cred, InodeFlags, LayerSpec, LowerFs, OfflineChange, Op, OpenFlags, Profile,
    RenameFlags, Step, Whence,
};
use proptest::prelude::RngExt;
use proptest::strategy::{NewTree, Strategy};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

/// The names every tree is built from: few, so ops and layers collide.
pub const NAMES: &[&str] = &["a", "b", "c", "d"];
/// Deepest path the generator makes (components).
const MAX_DEPTH: usize = 3;

/// Knobs of the generator.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Profile of every case; `None` rotates through [`GenConfig::rotation`]
    /// by index.
    pub profile: Option<Profile>,
    /// The profiles a campaign without one rotates through: those the
    /// backend runs (a harness that is not root runs each preset it can
    /// as its userxattr form); empty: every preset.
    pub rotation: Vec<Profile>,
    /// Most steps per case (the mean is a bit over half of it).
    pub max_ops: usize,
    /// Most lower layers of an ordinary case (a few cases get up to 16).
    pub max_lowers: usize,
    /// The kernel the cases are for (the vm backend's guest), set in every
    /// case's profile ([`Profile::kernel`]); `None` for the host's.
    pub kernel: Option<KernelVersion>,
    /// The ids cases may name, `[0, n)`: all a rootless harness's user
    /// namespace maps (driver/src/idmap.rs); `None`: any.
    pub ids: Option<u32>,
    /// Cases for a backend given its lower layers as an image (a container
    /// engine): only what an OCI layer carries, an empty container layer
    /// (harness/src/gen/image.rs).
    pub image_layers: bool,
    /// Cases for a backend that runs each case with the `fs.protected_*`
    /// settings its profile names (the model, the vm backend's guest):
    /// one case in [`SYSCTL_ODDS`] names other settings than the default.
    /// A backend on the host's kernel runs every case with the host's
    /// (driver/src/support.rs: `adapt_profile`), so there they would only
    /// be replaced.
    pub sysctls: bool,
}

impl GenConfig {
    /// The arguments of `ovlcheck generate` that print case `index` of a
    /// campaign with this configuration and `seed` again; `None` where the
    /// campaign rotates through the profiles its backend runs, which
    /// `generate` does not know.
    pub fn generate_args(&self, seed: u64, index: u64) -> Option<Vec<String>> {
        if !self.rotation.is_empty() {
            return None;
        }
        let mut args = vec![
            "--index".to_string(),
            index.to_string(),
            "--seed".to_string(),
            seed.to_string(),
            "--max-ops".to_string(),
            self.max_ops.to_string(),
        ];
        if let Some(p) = &self.profile {
            args.extend(["--profile".to_string(), p.to_string()]);
        }
        if let Some(k) = self.kernel {
            args.extend(["--kernel-version".to_string(), k.to_string()]);
        }
        if self.image_layers {
            args.push("--image-layers".to_string());
        }
        if self.sysctls {
            args.push("--sysctls".to_string());
        }
        Some(args)
    }
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            profile: None,
            rotation: Vec::new(),
            max_ops: 20,
            max_lowers: 4,
            kernel: None,
            ids: None,
            image_layers: false,
            sysctls: false,
        }
    }
}

/// The profile case number `index` of a campaign uses.
pub fn profile_for(config: &GenConfig, index: u64) -> Profile {
    let mut p = match &config.profile {
        Some(p) => p.clone(),
        None if !config.rotation.is_empty() => {
            config.rotation[(index % config.rotation.len() as u64) as usize].clone()
        }
        None => {
            let preset = PRESETS[(index % PRESETS.len() as u64) as usize];
            Profile::preset(preset.name).expect("every preset parses")
        }
    };
    if config.kernel.is_some() {
        p.kernel = config.kernel;
    }
    p
}

/// The deterministic RNG of case `index` in a campaign with `seed`: the same
/// on every machine, whatever the number of jobs or shards.
pub fn case_rng(seed: u64, index: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    bytes[16..24].copy_from_slice(b"ovlcheck");
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Case number `index` of the campaign `seed`.
pub fn case_at(config: &GenConfig, seed: u64, index: u64) -> Case {
    let mut rng = case_rng(seed, index);
    let profile = profile_for(config, index);
    generate(&mut rng, config, profile)
}

/// One random case.
pub fn generate(rng: &mut TestRng, config: &GenConfig, profile: Profile) -> Case {
    let base = random_tree(rng, 0);
    // A deep stack's files and overlay2 metadata (`link`, `lower`: a page
    // each) would not fit in a sized store before the first op.
    let deep_ok = profile.upper_size.is_none();
    let n_lowers = if deep_ok && rng.random_ratio(1, 20) {
        rng.random_range(5..=16)
    } else {
        rng.random_range(1..=config.max_lowers.max(1))
    };
    let mut lowers = Vec::with_capacity(n_lowers);
    lowers.push(layer_from_tree(rng, &base, true));
    for _ in 1..n_lowers {
        let t = perturb(rng, &base, 0);
        lowers.push(layer_from_tree(rng, &t, false));
    }
    let upper = if !profile.readonly && rng.random_ratio(1, 4) {
        let t = perturb(rng, &base, 0);
        Some(layer_from_tree(rng, &t, false))
    } else {
        None
    };
    let universe = universe(&lowers, upper.as_ref());
    let n_ops = rng.random_range(1..=config.max_ops.max(1));
    let mut steps = Vec::with_capacity(n_ops + 3);
    while steps.len() < n_ops {
        if rng.random_ratio(1, SEQUENCE_ODDS) {
            steps.extend(sequence(rng, &universe));
        } else {
            steps.push(random_step(rng, &universe));
        }
    }
    steps.truncate(n_ops);
    let mut case = Case {
        profile,
        known: Vec::new(),
        data: Vec::new(),
        lowers,
        upper,
        steps,
    };
    if case.profile.upper_size.is_some() {
        fill_pages(rng, &mut case);
    }
    if !ovlcheck_model::layer_user_xattrs(&case.profile) {
        trusted_xattrs(&mut case);
    }
    if let Some(n) = config.ids {
        within_ids(&mut case, n);
    }
    if case.steps.len() < config.max_ops && rng.random_ratio(1, STATFS_ODDS) {
        add_statfs(rng, &mut case);
    }
    // Drawn last, as the statfs is: a seed's cases keep every other draw.
    // The lower layers of an inner overlay (`lower=overlay`) get no
    // markers whose lookup can fail there: the model gives the outer mount
    // the inner's merged tree, which has no failing names.
    let markers = case.profile.lower_fs != LowerFs::Overlay;
    let mut failing = Vec::new();
    if markers && rng.random_ratio(1, LAYER_METACOPY_ODDS) {
        metacopy_entries(rng, &mut case, &mut failing);
    }
    if config.ids.is_none() && rng.random_ratio(1, LAYER_CAPABILITY_ODDS) {
        capabilities(rng, &mut case);
    }
    if markers && rng.random_ratio(1, LAYER_REDIRECT_ODDS) {
        redirects(rng, &mut case, &mut failing);
    }
    let unmapped = unmapped_id(config.ids);
    if case.profile.idmapped && unmapped.is_some() && rng.random_ratio(1, UNMAPPED_OWNER_ODDS) {
        unmapped_owners(rng, &mut case, unmapped.unwrap_or(UNMAPPED_ID));
    }
    // Drawn after everything else, so that a seed's other cases stay as
    // they were. A worker in a user namespace cannot set immutable or
    // append-only flags (CAP_LINUX_IMMUTABLE).
    let flags_ok = config.ids.is_none() && !case.profile.userxattr;
    if flags_ok && rng.random_ratio(1, LAYER_FLAGS_ODDS) {
        let room = config.max_ops.saturating_sub(case.steps.len());
        inode_flags(rng, &mut case, room);
    }
    // After the flags, for the same reason.
    if markers
        && ovlcheck_model::data_only_layers(&case.profile)
        && rng.random_ratio(1, DATA_LAYER_ODDS)
    {
        // The bottom lower layer's files (any lower layer's with
        // metacopy=on, as composefs images stack).
        let top = if case.profile.metacopy {
            case.lowers.len()
        } else {
            1
        };
        data_layers(rng, &mut case, 0..top);
    }
    // After the data layers, for the same reason; the ids the ACLs name
    // must be mapped.
    let acl_ids_ok = config.ids.is_none_or(|n| n > acl::HIGHEST_ID);
    if acl_ids_ok && rng.random_ratio(1, acl::ACL_ODDS) {
        let room = config.max_ops.saturating_sub(case.steps.len());
        acl::acls(rng, &mut case, room);
    }
    // After the ACLs, for the same reason.
    let lower_flags = case
        .lowers
        .iter()
        .flat_map(|l| &l.entries)
        .any(|e| matches!(e, Entry::Attr { .. }));
    if ovlcheck_model::offline_changes(&case.profile)
        && !case.lowers.is_empty()
        && !lower_flags
        && rng.random_ratio(1, offline_odds(&case.profile))
    {
        let room = config.max_ops.saturating_sub(case.steps.len());
        let index = ovlcheck_model::index_on(&case.profile);
        if !(index && index_offline_steps(rng, &mut case, room)) {
            offline_steps(rng, &mut case, room);
        }
    }
    // Drawn last, and only for an overlay as the lower layer, so that a
    // seed's other cases stay as they were.
    if !markers && rng.random_ratio(1, ESCAPED_LAYER_ODDS) {
        escaped_layer(rng, &mut case);
    }
    if config.image_layers {
        image::image_layers(&mut case);
    }
    // Drawn last, so that a seed's other cases stay as they were.
    if config.sysctls && rng.random_ratio(1, SYSCTL_ODDS) {
        sysctls(rng, &mut case);
    }
    case
}

/// One case in this many, on a backend that sets them, gets its own
/// `fs.protected_*` settings ([`GenConfig::sysctls`]).
pub const SYSCTL_ODDS: u32 = 4;

/// Gives the case random `fs.protected_*` settings, each from 0 to the
/// largest value the kernel takes (case/src/sysctl.rs). The VFS checks
/// they turn on meet a generated case through its sticky directories and
/// the links, symlinks and `O_CREAT` opens of other users in them
/// (model/src/perm.rs). Where `protected_fifos` or `protected_regular` is
/// 2, which differs from 1 only in a sticky directory that is
/// group-writable and not world-writable, half the layers' sticky
/// world-writable directories (1777) become such directories (1770).
fn sysctls(rng: &mut TestRng, case: &mut Case) {
    for (name, max) in ovlcheck_case::Sysctls::NAMES {
        let value = rng.random_range(0..=max).to_string();
        case.profile
            .sysctls
            .set(name, &value)
            .expect("a value up to the largest is taken");
    }
    let s = case.profile.sysctls;
    if s.protected_fifos < 2 && s.protected_regular < 2 {
        return;
    }
    let layers = case.lowers.iter_mut().chain(case.upper.as_mut());
    for e in layers.flat_map(|l| &mut l.entries) {
        if let Entry::Dir { mode, .. } = e {
            if *mode == 0o1777 && rng.random_ratio(1, 2) {
                *mode = 0o1770;
            }
        }
    }
}

/// One case in this many with an overlay as the lower layer has its top
/// lower layer written escaped.
const ESCAPED_LAYER_ODDS: u32 = 3;

/// Writes the top lower layer of a `lower=overlay` case escaped
/// (`lower escaped`: its markers are the outer mount's), as a composefs
/// image stored on an overlay is: a char 0/0 whiteout, which the inner
/// overlay would take, becomes an xattr whiteout in a directory marked
/// `xwhiteouts` (one at the layer's root is dropped), and, where the
/// profile has data-only layers, half the time the layer's files get
/// metacopy redirects into new data-only layers ([`data_layers`]).
fn escaped_layer(rng: &mut TestRng, case: &mut Case) {
    let Some(top) = case.lowers.len().checked_sub(1) else {
        return;
    };
    let layer = &case.lowers[top];
    if layer.format != LayerFormat::Overlay {
        return;
    }
    let mut entries = Vec::with_capacity(layer.entries.len());
    let mut marked: Vec<RelPath> = Vec::new();
    for e in &layer.entries {
        match e {
            Entry::Whiteout { path } => {
                let Some(dir) = path.parent().filter(|d| !d.is_root()) else {
                    continue;
                };
                if !marked.contains(&dir) {
                    marked.push(dir);
                }
                entries.push(Entry::Xwhiteout { path: path.clone() });
            }
            Entry::Opaque { path } | Entry::XwhiteoutDir { path } if marked.contains(path) => {}
            e => entries.push(e.clone()),
        }
    }
    // A directory marked opaque or xwhiteouts before its first whiteout
    // keeps that mark (a later mark is dropped); the others get
    // `xwhiteouts`, after every entry (so that each exists by then).
    let opaque: Vec<&RelPath> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Opaque { path } | Entry::XwhiteoutDir { path } => Some(path),
            _ => None,
        })
        .collect();
    let dirs: Vec<Entry> = marked
        .iter()
        .filter(|d| !opaque.contains(d))
        .map(|d| Entry::XwhiteoutDir { path: d.clone() })
        .collect();
    entries.extend(dirs);
    let escaped = LayerSpec {
        entries,
        format: LayerFormat::Escaped,
    };
    if escaped.objects().is_err() {
        return;
    }
    case.lowers[top] = escaped;
    if ovlcheck_model::data_only_layers(&case.profile) && rng.random_ratio(1, 2) {
        data_layers(rng, case, top..top + 1);
    }
}

/// One case in this many gets offline changes to its lower layers, where
/// the profile allows them ([`ovlcheck_model::offline_changes`]); one in
/// three with index=on, whose mount-time checks of the index need a
/// copied-up lower hard link and an offline change to its names.
fn offline_odds(profile: &Profile) -> u32 {
    if ovlcheck_model::index_on(profile) {
        3
    } else {
        8
    }
}

/// Puts one or two `offline` steps among the case's steps (at most
/// `room`): an entry of a lower layer removed, or a regular file put at a
/// path of the layer, over one of its non-directories or as a new name in
/// one of its directories, as a store that changes an image layer in place
/// between mounts would (overlayfs.rst: "Changes to underlying
/// filesystems").
fn offline_steps(rng: &mut TestRng, case: &mut Case, room: usize) {
    let n = (1 + usize::from(rng.random_ratio(1, 2))).min(room);
    for _ in 0..n {
        let layer = rng.random_range(0..case.lowers.len());
        let Ok(objects) = case.lowers[layer].objects() else {
            continue;
        };
        let (dirs, others): (Vec<&Object>, Vec<&Object>) =
            objects.iter().partition(|o| o.kind == ObjectKind::Dir);
        let change = if !objects.is_empty() && rng.random_ratio(1, 2) {
            OfflineChange::Remove(pick(rng, &objects).path.clone())
        } else {
            let path = if !others.is_empty() && rng.random_ratio(1, 2) {
                pick(rng, &others).path.clone()
            } else {
                let name = pick(rng, &["a", "b", "c", "n"]);
                let parent = (!dirs.is_empty() && rng.random_ratio(2, 3))
                    .then(|| pick(rng, &dirs).path.to_string());
                let text = match parent {
                    Some(p) => format!("{p}/{name}"),
                    None => name.to_string(),
                };
                RelPath::parse(&text).expect("a name below a layer directory")
            };
            OfflineChange::File {
                path,
                mode: 0o644,
                data: b"offline".to_vec(),
            }
        };
        let at = rng.random_range(0..=case.steps.len());
        case.steps
            .insert(at, Step::new(Op::Offline { layer, change }));
    }
}

/// With index=on, half the time: a hard-linked file of a lower layer (a
/// regular file given a second name `h` beside it where the layer has
/// none), a write (a copy-up that indexes it) or an unlink of one of its
/// names, then an offline removal of one of its names, and half the time
/// an unlink of another name after it, so that the next mount's checks of
/// the index meet an entry whose lower inode lost a link, and an unlink
/// meets a name the index found but never linked up (model/src/index.rs).
/// False when it made none.
fn index_offline_steps(rng: &mut TestRng, case: &mut Case, room: usize) -> bool {
    if room < 3 || !rng.random_ratio(1, 2) {
        return false;
    }
    let layer = rng.random_range(0..case.lowers.len());
    let Ok(objects) = case.lowers[layer].objects() else {
        return false;
    };
    let mut groups = hard_link_groups(&objects);
    if groups.is_empty() {
        let Some(names) = new_hard_link(rng, &objects) else {
            return false;
        };
        case.lowers[layer].entries.push(Entry::Hardlink {
            path: names[1].clone(),
            existing: names[0].clone(),
        });
        groups.push(names);
    }
    let names = pick(rng, &groups);
    let kept = pick(rng, names).clone();
    let gone = pick(rng, names).clone();
    let other = names.iter().find(|n| **n != gone).cloned();
    let op = match rng.random_ratio(1, 2) {
        true => Op::Write {
            path: OpPath::plain(kept),
            offset: 0,
            data: b"W".to_vec(),
        },
        false => Op::Unlink {
            path: OpPath::plain(kept),
        },
    };
    let at = rng.random_range(0..=case.steps.len());
    case.steps.insert(at, Step::new(op));
    let change = OfflineChange::Remove(gone);
    let later = rng.random_range(at + 1..=case.steps.len());
    case.steps
        .insert(later, Step::new(Op::Offline { layer, change }));
    if let Some(other) = other.filter(|_| rng.random_ratio(1, 2)) {
        let path = OpPath::plain(other);
        case.steps.insert(later + 1, Step::new(Op::Unlink { path }));
    }
    true
}

/// A regular file of a layer's objects and a new name `h` beside it, for
/// a hard link, where the layer has a regular file and no `h` there.
fn new_hard_link(rng: &mut TestRng, objects: &[Object]) -> Option<Vec<RelPath>> {
    let files: Vec<&Object> = objects
        .iter()
        .filter(|o| matches!(o.kind, ObjectKind::File(_)))
        .collect();
    if files.is_empty() {
        return None;
    }
    let file = pick(rng, &files).path.clone();
    let name = Name::new("h").expect("a name");
    let link = file.parent().unwrap_or_else(RelPath::root).join(&name);
    let taken = objects.iter().any(|o| o.path == link);
    (!taken).then(|| vec![file, link])
}

/// The names of each hard-linked regular file of a layer's objects.
fn hard_link_groups(objects: &[Object]) -> Vec<Vec<RelPath>> {
    objects
        .iter()
        .filter(|o| matches!(o.kind, ObjectKind::File(_)))
        .map(|file| {
            let links = objects.iter().filter_map(|o| match &o.kind {
                ObjectKind::Hardlink(t) if *t == file.path => Some(o.path.clone()),
                _ => None,
            });
            std::iter::once(file.path.clone())
                .chain(links)
                .collect::<Vec<_>>()
        })
        .filter(|names| names.len() > 1)
        .collect()
}

/// One case in this many has data-only layers.
const DATA_LAYER_ODDS: u32 = 8;

/// The names of data-only layer objects: composefs names them by digest
/// in two-level directories; a few short names collide as well.
const DATA_NAMES: &[&str] = &["00", "01", "ab"];

/// Gives the case one or two data-only layers (overlayfs.rst: "Data-only
/// lower layers"), and turns some regular files of its lower layers
/// `marked` into metacopy files whose absolute redirect names a path of
/// them: mostly a regular file there, sometimes a path whose only object
/// is a directory or a symlink, or none (the lazy data lookup fails:
/// ENOENT on open and copy-up). A file keeps its own data, so its size differs from its
/// data's as a metacopy's may.
fn data_layers(rng: &mut TestRng, case: &mut Case, marked: std::ops::Range<usize>) {
    let n = rng.random_range(1..=2);
    let mut targets: Vec<String> = Vec::new();
    for _ in 0..n {
        let mut entries = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let dir = *pick(rng, DATA_NAMES);
            let name = *pick(rng, NAMES);
            let path = format!("{dir}/{name}");
            let rel = RelPath::parse(&path).expect("valid path");
            if entries.iter().any(|e: &Entry| e.path() == &rel) {
                continue;
            }
            let len = rng.random_range(0..6);
            let data: Vec<u8> = (0..len).map(|_| b'p' + rng.random_range(0..8u8)).collect();
            entries.push(match rng.random_range(0..8) {
                0 => Entry::Symlink {
                    path: rel,
                    target: b"x".to_vec(),
                },
                1 => Entry::Dir {
                    path: rel,
                    mode: 0o755,
                },
                _ => Entry::File {
                    path: rel,
                    mode: 0o644,
                    data,
                },
            });
            targets.push(path);
        }
        case.data.push(LayerSpec {
            entries,
            format: LayerFormat::Overlay,
        });
    }
    targets.push(format!("{}/none", pick(rng, DATA_NAMES)));
    let (skip, take) = (marked.start, marked.len());
    for layer in case.lowers.iter_mut().skip(skip).take(take) {
        if layer.format == LayerFormat::Oci {
            continue;
        }
        let marked: Vec<RelPath> = layer
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Metacopy { .. } | Entry::Redirect { .. }))
            .map(|e| e.path().clone())
            .collect();
        for path in single_files(layer) {
            if !marked.contains(&path) && rng.random_ratio(1, 2) {
                let target = format!("/{}", pick(rng, &targets));
                layer.entries.push(Entry::Metacopy { path: path.clone() });
                layer.entries.push(Entry::Redirect { path, target });
            }
        }
    }
}

/// One case in this many has inode flags in its layers and `chattr` ops.
const LAYER_FLAGS_ODDS: u32 = 8;

/// The flags generated lower entries get: each alone, and the pairs that
/// matter together.
const LOWER_FLAGS: &[&str] = &["i", "a", "d", "A", "ia", "dA", "iA"];
/// An upper layer holds no immutable or append-only inode (overlayfs keeps
/// those in `protattr`).
const UPPER_FLAGS: &[&str] = &["d", "A", "dA"];
/// What generated `chattr` ops set.
const CHATTR_FLAGS: &[&str] = &["-", "i", "a", "d", "A", "ia", "dA"];

/// Gives some regular files and directories of the layers inode flags
/// (rules `copy-up.fileattr` and the VFS's immutable and append-only
/// checks), and adds one or two `chattr` ops (`fileattr.protattr`), some
/// as a user who is not root, where the case has `room` for more ops.
fn inode_flags(rng: &mut TestRng, case: &mut Case, room: usize) {
    let lowers = case.lowers.iter_mut().map(|l| (l, LOWER_FLAGS));
    let upper = case.upper.as_mut().map(|u| (u, UPPER_FLAGS));
    for (layer, choices) in lowers.chain(upper) {
        if layer.format != LayerFormat::Overlay {
            continue;
        }
        let targets: Vec<RelPath> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Dir { path, .. } | Entry::File { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        for path in targets {
            if rng.random_ratio(1, 4) {
                let word: &&str = pick(rng, choices);
                let flags = InodeFlags::parse(word).expect("flags");
                layer.entries.push(Entry::Attr { path, flags });
            }
        }
    }
    let universe = universe(&case.lowers, case.upper.as_ref());
    for _ in 0..rng.random_range(1..=2).min(room) {
        let word: &&str = pick(rng, CHATTR_FLAGS);
        let flags = InodeFlags::parse(word).expect("flags");
        let mut step = Step::new(Op::Chattr {
            path: op_path(rng, &universe),
            flags,
        });
        if rng.random_ratio(1, 4) {
            step.cred = Some(Cred {
                uid: 1000,
                gid: 1000,
            });
        }
        let at = rng.random_range(0..=case.steps.len());
        case.steps.insert(at, step);
    }
}

/// One idmapped case in this many has owners the layers' mounts do not map.
const UNMAPPED_OWNER_ODDS: u32 = 2;

/// An owner or group id the `idmapped` profile's mounts do not map.
const UNMAPPED_ID: u32 = ovlcheck_case::profile::IDMAP_COUNT + 4464;

/// The unmapped id cases may name where they may name ids `[0, ids)`:
/// [`UNMAPPED_ID`], else the highest they may name if the mounts do not
/// map it (a rootless user's namespace maps one id above the mounts'
/// [`ovlcheck_case::profile::IDMAP_COUNT`]).
fn unmapped_id(ids: Option<u32>) -> Option<u32> {
    use ovlcheck_case::profile::IDMAP_COUNT;
    match ids {
        None => Some(UNMAPPED_ID),
        Some(n) => Some(UNMAPPED_ID.min(n.checked_sub(1)?)).filter(|id| *id >= IDMAP_COUNT),
    }
}

/// Gives some entries of an idmapped case's layers an owner, a group or
/// both that the layers' mounts do not map, as an image unpacked for
/// another id range shows them (docs/semantics.md §1.16). Not to a file
/// with a capability, which storing such an owner would drop. Such an
/// entry is readable (and a directory searchable) by every class: the views
/// are walked as root, who has no capability over it, and the model does
/// not predict a walk that cannot read an entry (docs/semantics.md §2).
/// Upper directories keep mapped owners: below one with an unmapped id,
/// the first lookup of a merged directory fails and a later one stores its
/// origin, which the model, fixing every origin at mount, does not follow
/// (docs/semantics.md §2).
fn unmapped_owners(rng: &mut TestRng, case: &mut Case, unmapped: u32) {
    let upper = case.upper.as_mut().map(|u| (u, false));
    let lowers = case.lowers.iter_mut().map(|l| (l, true));
    for (layer, dirs) in lowers.chain(upper) {
        let capable: Vec<RelPath> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Xattr { path, name, .. } if name == "security.capability" => {
                    Some(path.clone())
                }
                _ => None,
            })
            .collect();
        let owned: Vec<RelPath> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Dir { path, .. } if dirs && !capable.contains(path) => Some(path.clone()),
                Entry::File { path, .. }
                | Entry::Symlink { path, .. }
                | Entry::Fifo { path, .. }
                    if !capable.contains(path) =>
                {
                    Some(path.clone())
                }
                _ => None,
            })
            .collect();
        for path in owned {
            if !rng.random_ratio(1, 6) {
                continue;
            }
            let which = rng.random_range(0..3u8);
            let owner = layer.entries.iter_mut().find_map(|e| match e {
                Entry::Owner { path: p, uid, gid } if *p == path => Some((uid, gid)),
                _ => None,
            });
            let (mut uid, mut gid) = owner.as_ref().map_or((0, 0), |(u, g)| (**u, **g));
            if which != 2 {
                uid = unmapped;
            }
            if which != 1 {
                gid = unmapped;
            }
            match owner {
                Some((u, g)) => (*u, *g) = (uid, gid),
                None => layer.entries.push(Entry::Owner {
                    path: path.clone(),
                    uid,
                    gid,
                }),
            }
            for e in &mut layer.entries {
                match e {
                    Entry::Dir { path: p, mode } if *p == path => *mode |= 0o555,
                    Entry::File { path: p, mode, .. } | Entry::Fifo { path: p, mode }
                        if *p == path =>
                    {
                        *mode |= 0o444
                    }
                    _ => {}
                }
            }
        }
    }
}

/// One case in this many has redirects in its layers.
const LAYER_REDIRECT_ODDS: u32 = 8;

/// One case in this many has metacopy files in its layers.
const LAYER_METACOPY_ODDS: u32 = 8;
/// One case in this many has files with a file capability in its layers.
const LAYER_CAPABILITY_ODDS: u32 = 8;

/// A file capability as `setcap cap_net_bind_service+ep` writes it: a
/// `vfs_cap_data` of revision 2, effective, one permitted bit.
const CAPABILITY: &[u8] =
    b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// The paths of a layer's regular files that have one name in it.
fn single_files(layer: &LayerSpec) -> Vec<RelPath> {
    let linked: Vec<&RelPath> = layer
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Hardlink { path, existing } => Some([path, existing]),
            _ => None,
        })
        .flatten()
        .collect();
    layer
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::File { path, .. } if !linked.contains(&path) => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// Makes some regular files of the layers above the bottom one metacopy
/// files, as composefs images and layers committed from a metacopy=on
/// overlay have them (overlayfs.rst: "Metadata only copy up"). With
/// metacopy=on their data is the first regular file of the same name
/// below (none: EIO), and their own size, which the generated data makes
/// differ from the data's, is the one stat reports; without it the
/// lookup refuses them (EPERM).
///
/// A directory gets at most one entry whose lookup fails (`failing` holds
/// the parents that have one): where iterating a directory looks its
/// entries up (xino, an impure upper, an `opaque=x` lower), such an entry
/// is left out, but a second one right after it fails the `getdents`
/// call, which depends on the layers' own entry order (docs/semantics.md,
/// section 2). Nor does a layer with an `opaque=x` directory get one:
/// once such a directory was looked up, the kernel looks up the regular
/// files of that layer in every merged listing beside an `opaque=x`
/// lower, which the model does not follow (docs/semantics.md, section 2).
fn metacopy_entries(rng: &mut TestRng, case: &mut Case, failing: &mut Vec<Option<RelPath>>) {
    for layer in case.lowers.iter_mut().skip(1).chain(case.upper.as_mut()) {
        let xwhiteouts = layer
            .entries
            .iter()
            .any(|e| matches!(e, Entry::XwhiteoutDir { .. }));
        for path in single_files(layer) {
            let dir = path.parent();
            if !failing.contains(&dir) && rng.random_ratio(1, 3) && !xwhiteouts {
                failing.push(dir);
                layer.entries.push(Entry::Metacopy { path });
            }
        }
    }
    impure_listing(rng, case, failing);
    if rng.random_ratio(1, BY_NAME_ODDS) {
        metacopy_by_name(rng, case, failing);
    }
}

/// One case with metacopy entries in this many also gets an upper
/// metacopy file over a lower regular file of its name.
const BY_NAME_ODDS: u32 = 3;

/// Puts an upper metacopy file without an origin xattr over a regular file
/// of a lower layer, as a store that copied an upper layer without its
/// `origin` xattrs leaves one: its lookup finds that lower by name (rules
/// `stat.metacopy-by-name`, `copy-up.metacopy-keeps-lower`,
/// `link.fresh-inode`). Its own size differs from the data's. Only where
/// the upper has the parent directory (or it is the root) and nothing at
/// that path, not in a directory that has an entry whose lookup fails
/// already (without metacopy=on this one is refused), and not in an upper
/// with an `opaque="x"` directory ([`metacopy_entries`]).
fn metacopy_by_name(rng: &mut TestRng, case: &mut Case, failing: &mut Vec<Option<RelPath>>) {
    let Some(upper) = &case.upper else { return };
    if upper
        .entries
        .iter()
        .any(|e| matches!(e, Entry::XwhiteoutDir { .. }))
    {
        return;
    }
    let in_upper = |p: &RelPath| upper.entries.iter().any(|e| e.path() == p);
    let dir_in_upper = |d: &RelPath| has_dir(upper, d);
    let candidates: Vec<(RelPath, u32, usize)> = case
        .lowers
        .iter()
        .flat_map(|l| &l.entries)
        .filter_map(|e| match e {
            Entry::File { path, mode, data } => Some((path.clone(), *mode, data.len())),
            _ => None,
        })
        .filter(|(path, ..)| {
            let dir = path.parent();
            !in_upper(path) && dir.as_ref().is_some_and(dir_in_upper) && !failing.contains(&dir)
        })
        .collect();
    if candidates.is_empty() {
        return;
    }
    let (path, mode, len) = candidates[rng.random_range(0..candidates.len())].clone();
    failing.push(path.parent());
    let upper = case.upper.as_mut().expect("checked above");
    upper.entries.push(Entry::File {
        path: path.clone(),
        mode,
        data: vec![b'm'; len % 3 + 1],
    });
    upper.entries.push(Entry::Metacopy { path: path.clone() });
    if rng.random_ratio(1, 2) {
        link_written(case, path);
    }
}

/// Ends the case with a link of `path` to `h`, a write of `path` (its data
/// copy-up, after which `h` is first looked up), a link of it to `g` and a
/// rename of `g` back onto it (rules `link.looked-up-after-copy-up`,
/// `link.fresh-inode`, `rename.stale-link`).
fn link_written(case: &mut Case, path: RelPath) {
    let dir = path.parent().expect("not the root");
    let name = |n: &str| OpPath::plain(dir.join(&Name::new(n).expect("valid")));
    let path = OpPath::plain(path);
    let link = |new: OpPath| {
        Step::new(Op::Link {
            old: path.clone(),
            new,
        })
    };
    case.steps.extend([
        link(name("h")),
        Step::new(Op::Write {
            path: path.clone(),
            offset: 0,
            data: b"w".to_vec(),
        }),
        link(name("g")),
        Step::new(Op::Rename {
            old: name("g"),
            new: path.clone(),
            flags: RenameFlags::default(),
        }),
    ]);
}

/// Where an upper directory that no lower layer has holds a metacopy entry
/// (whose lookup fails without metacopy=on), one case in two ends with a
/// lower file linked into it, which makes it impure, and a listing of it:
/// the listing looks every entry up and fails (rule
/// `readdir.impure-lookup-fails`).
fn impure_listing(rng: &mut TestRng, case: &mut Case, failing: &[Option<RelPath>]) {
    let Some(upper) = &case.upper else { return };
    let in_lowers = |dir: &RelPath| {
        let d = dir.as_string();
        case.lowers.iter().flat_map(|l| &l.entries).any(|e| {
            let p = e.path().as_string();
            p == d || p.starts_with(&format!("{d}/"))
        })
    };
    let dir = upper.entries.iter().find_map(|e| match e {
        Entry::Metacopy { path } => path
            .parent()
            .filter(|d| !d.is_root() && !in_lowers(d) && failing.contains(&Some(d.clone()))),
        _ => None,
    });
    let file = case
        .lowers
        .iter()
        .flat_map(|l| &l.entries)
        .find_map(|e| match e {
            Entry::File { path, .. } => Some(path.clone()),
            _ => None,
        });
    if let (Some(dir), Some(file)) = (dir, file) {
        if rng.random_ratio(1, 2) {
            let new = dir.join(&Name::new("e").expect("valid"));
            case.steps.push(Step::new(Op::Link {
                old: OpPath::plain(file),
                new: OpPath::plain(new),
            }));
            case.steps.push(Step::new(Op::Readdir {
                path: OpPath::plain(dir),
            }));
        }
    }
}

/// Gives some directories of the layers above the bottom one a redirect
/// (`overlay.redirect`) of a kind whose lookup the model predicts: a
/// malformed one (EINVAL where it is read, rule
/// `lookup.redirect-invalid`); where the mount does not follow redirects,
/// a well-formed one (EPERM where it is read, rule
/// `lookup.redirect-nofollow`); and where it follows them, one as a
/// rename under `redirect_dir=on` leaves it ([`followed_redirect`]). A
/// followed redirect of another shape can make two names reach one lower
/// directory, which the model does not predict (docs/semantics.md,
/// section 2). At most one per directory, with the metacopy entries
/// ([`metacopy_entries`]).
fn redirects(rng: &mut TestRng, case: &mut Case, failing: &mut Vec<Option<RelPath>>) {
    let follows = ovlcheck_model::follows_redirects(&case.profile);
    let n = case.lowers.len();
    // Lower directories already a redirect's target.
    let mut targets: Vec<RelPath> = Vec::new();
    // The directories of followed redirects and their targets: beneath
    // them a merged directory holds entries of both, so no entry whose
    // lookup fails joins them.
    let mut merged: Vec<RelPath> = Vec::new();
    for x in 1..=n {
        // Only a followed redirect needs the directories below.
        let below: Vec<RelPath> = case.lowers[..if follows { x } else { 0 }]
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match e {
                Entry::Dir { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let lower = x < n;
        let layer = match (lower, case.upper.as_mut()) {
            (true, _) => &mut case.lowers[x],
            (false, Some(upper)) => upper,
            (false, None) => break,
        };
        let dirs: Vec<RelPath> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Dir { path, .. } => Some(path.clone()),
                _ => None,
            })
            .collect();
        for path in dirs {
            let dir = path.parent();
            if failing.contains(&dir) || !rng.random_ratio(1, 3) {
                continue;
            }
            if follows && rng.random_ratio(1, 2) {
                let taken = Taken {
                    targets: &targets,
                    failing,
                };
                if let Some(target) = followed_redirect(rng, layer, &path, &below, taken) {
                    merged.extend([path, target.clone()]);
                    targets.push(target);
                    failing.push(dir);
                }
                continue;
            }
            if dir
                .as_ref()
                .is_some_and(|d| merged.iter().any(|m| within(d, m)))
            {
                continue;
            }
            // A malformed redirect is read only below the upper.
            let malformed = match (lower, follows) {
                (false, true) => continue,
                (false, false) => false,
                (true, true) => true,
                (true, false) => rng.random_ratio(1, 2),
            };
            let name = pick(rng, NAMES);
            let target = match (malformed, rng.random_ratio(1, 2)) {
                (true, true) => format!("{name}/{name}"),
                (true, false) => format!("/{name}/"),
                (false, true) => name.to_string(),
                (false, false) => format!("/{name}"),
            };
            failing.push(dir);
            layer.entries.push(Entry::Redirect { path, target });
        }
    }
}

/// What earlier redirects and failing entries rule out for
/// [`followed_redirect`].
struct Taken<'a> {
    /// Lower directories already a redirect's target.
    targets: &'a [RelPath],
    /// Directories that hold an entry whose lookup fails.
    failing: &'a [Option<RelPath>],
}

/// `layer` has directory `d` (the root it always has).
fn has_dir(layer: &LayerSpec, d: &RelPath) -> bool {
    d.is_root()
        || layer
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Dir { path, .. } if path == d))
}

/// `inner` is `outer` or beneath it.
fn within(inner: &RelPath, outer: &RelPath) -> bool {
    inner == outer
        || inner
            .as_string()
            .starts_with(&format!("{}/", outer.as_string()))
}

/// Makes directory `path` of `layer` what a rename of a lower directory
/// to `path` under `redirect_dir=on` leaves in the upper layer, as a
/// store that commits such an upper keeps it: a redirect to the old path
/// (its name where both are in the root, else absolute), and a whiteout
/// at the old path, so that only the new name reaches the lower directory
/// (dir.c: ovl_rename, ovl_set_redirect). The old path is a directory of
/// a layer below (`below`) that is not yet a target, neither above nor
/// below `path`, with nothing of this layer at or beneath it, and a parent
/// this layer has; neither it nor `path` holds an entry whose lookup fails
/// at any depth, since their listings merge. Returns it; `None` where no
/// directory qualifies.
fn followed_redirect(
    rng: &mut TestRng,
    layer: &mut LayerSpec,
    path: &RelPath,
    below: &[RelPath],
    taken: Taken,
) -> Option<RelPath> {
    let has_failing = |d: &RelPath| taken.failing.iter().flatten().any(|f| within(f, d));
    if has_failing(path) {
        return None;
    }
    // A rename gives no redirect to an opaque directory (a pure upper one).
    let opaque = layer.entries.iter().any(
        |e| matches!(e, Entry::Opaque { path: p } | Entry::XwhiteoutDir { path: p } if p == path),
    );
    if opaque {
        return None;
    }
    let mut candidates: Vec<&RelPath> = below
        .iter()
        .filter(|old| {
            !taken.targets.contains(old)
                && !has_failing(old)
                && !within(old, path)
                && !within(path, old)
                && old.parent().as_ref().is_some_and(|d| has_dir(layer, d))
                && !layer.entries.iter().any(|e| within(e.path(), old))
        })
        .collect();
    candidates.sort();
    candidates.dedup();
    if candidates.is_empty() {
        return None;
    }
    let old = candidates[rng.random_range(0..candidates.len())].clone();
    // A name is looked up below the parent's own redirect, if any: only a
    // parent that is the root has none for certain.
    let parent = path.parent();
    let target = if old.parent() == parent && parent.as_ref().is_some_and(RelPath::is_root) {
        old.as_string()
            .rsplit('/')
            .next()
            .expect("a name")
            .to_string()
    } else {
        format!("/{}", old.as_string())
    };
    layer.entries.push(Entry::Redirect {
        path: path.clone(),
        target,
    });
    layer.entries.push(Entry::Whiteout { path: old.clone() });
    Some(old)
}

/// Gives some regular files of the layers a file capability, as images
/// ship `ping` and the like: copy-up keeps it, a write, a truncate or a
/// chown drops it (rule `xattr.killpriv`).
fn capabilities(rng: &mut TestRng, case: &mut Case) {
    for layer in case.lowers.iter_mut().chain(case.upper.as_mut()) {
        for path in single_files(layer) {
            if rng.random_ratio(1, 3) {
                layer.entries.push(Entry::Xattr {
                    path,
                    name: "security.capability".into(),
                    value: CAPABILITY.to_vec(),
                });
            }
        }
    }
}

/// One case in this many gets a `statfs`.
const STATFS_ODDS: u32 = 4;

/// Puts a `statfs` of a random path at a random place in the case. It is
/// drawn after everything else, so every other draw of a seed's case is
/// the same with or without it. Where it stands hardly matters: the fsid
/// is the mount's, and only a `commit` changes it.
fn add_statfs(rng: &mut TestRng, case: &mut Case) {
    let path = op_path(rng, &universe(&case.lowers, case.upper.as_ref()));
    let at = rng.random_range(0..=case.steps.len());
    case.steps.insert(at, Step::new(Op::Statfs { path }));
}

/// For a user namespace that maps only ids `[0, n)`: layer owners outside
/// it are left out (the entry is root's), steps with such credentials run
/// as root, and `chown` targets outside it become 0.
fn within_ids(case: &mut Case, n: u32) {
    for layer in case.lowers.iter_mut().chain(case.upper.as_mut()) {
        layer
            .entries
            .retain(|e| !matches!(e, Entry::Owner { uid, gid, .. } if *uid >= n || *gid >= n));
    }
    for step in &mut case.steps {
        if step.cred.is_some_and(|c| c.uid >= n || c.gid >= n) {
            step.cred = None;
        }
        if let Op::Chown { uid, gid, .. } = &mut step.op {
            for id in [uid, gid] {
                if *id >= n {
                    *id = 0;
                }
            }
        }
    }
}

/// For a kernel whose tmpfs has no `user.*` xattrs (before v6.6): the
/// layers carry `trusted.k` instead (a layer with a user xattr could not
/// be laid out), and ops on `user.x` name `trusted.k`, so xattrs are still
/// copied up, read and changed; ops on `user.k` stay and meet the layer's
/// EOPNOTSUPP.
fn trusted_xattrs(case: &mut Case) {
    let trusted = |name: &mut String| {
        if let Some(rest) = name.strip_prefix("user.") {
            *name = format!("trusted.{rest}");
        }
    };
    for layer in case.lowers.iter_mut().chain(case.upper.as_mut()) {
        for e in &mut layer.entries {
            if let Entry::Xattr { name, .. } = e {
                trusted(name);
            }
        }
    }
    for step in &mut case.steps {
        if let Op::Getxattr { name, .. }
        | Op::Setxattr { name, .. }
        | Op::Removexattr { name, .. } = &mut step.op
        {
            if name == "user.x" {
                *name = "trusted.k".into();
            }
        }
    }
}

/// One tmpfs page of data: a write of it at offset 0 allocates exactly one
/// page, all or nothing, so a full upper fails it cleanly with ENOSPC.
const PAGE: usize = 4096;

/// For profiles with a small upper (`enospc`): most lower files and writes
/// carry a whole page, and a few page writes to lower files are mixed in,
/// so copy-ups and writes fill the upper and hit ENOSPC. Every generated
/// write stays within the first page (offset at most 20, at most a page of
/// data at offset 0), so it allocates at most one page and either fits or
/// fails with nothing written; the model also predicts writes that fail
/// part-way (`ovlcheck_model` module `space`), but the generator does not
/// rely on it.
fn fill_pages(rng: &mut TestRng, case: &mut Case) {
    let mut files = Vec::new();
    for layer in &mut case.lowers {
        for e in &mut layer.entries {
            if let Entry::File { path, data, .. } = e {
                if rng.random_ratio(2, 3) {
                    *data = vec![b'p'; PAGE];
                }
                files.push(path.clone());
            }
        }
    }
    for step in &mut case.steps {
        if let Op::Write { offset, data, .. } = &mut step.op {
            if rng.random_ratio(2, 3) {
                *offset = 0;
                *data = vec![b'w'; PAGE];
            }
        }
    }
    // The initial upper is written onto the small upper filesystem before
    // the mount: its files stay empty, so it always fits.
    if let Some(upper) = &mut case.upper {
        for e in &mut upper.entries {
            if let Entry::File { data, .. } = e {
                data.clear();
            }
        }
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return;
    }
    for _ in 0..rng.random_range(1..=4) {
        let path = pick(rng, &files).clone();
        let at = rng.random_range(0..=case.steps.len());
        let op = Op::Write {
            path: OpPath {
                path,
                trailing_slash: false,
            },
            offset: 0,
            data: vec![b'w'; PAGE],
        };
        case.steps.insert(at, Step::new(op));
    }
}

/// A node of a generated tree before it becomes layer entries.
#[derive(Clone, Debug)]
enum Node {
    File {
        mode: u32,
        data: Vec<u8>,
        owner: Option<(u32, u32)>,
    },
    Dir {
        mode: u32,
        children: Vec<(String, Node)>,
        opaque: bool,
        owner: Option<(u32, u32)>,
    },
    Symlink(Vec<u8>),
    Fifo,
    Whiteout,
    /// Another name for a file that appears earlier in the same layer.
    Hardlink,
}

fn pick<'a, T>(rng: &mut TestRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Names of generated xattr ops: mostly ordinary `user.*` names, and an
/// overlay-private one, which overlay keeps escaped (overlayfs.rst:
/// "Nesting overlayfs mounts") or, before v6.7, refuses.
const XATTR_NAMES: &[&str] = &[
    "user.k",
    "user.x",
    "user.k",
    "user.x",
    "user.k",
    "user.x",
    "trusted.overlay.k",
];

const FILE_MODES: &[u32] = &[0o644, 0o644, 0o600, 0o755, 0o444, 0o666, 0o000, 0o4755];
const DIR_MODES: &[u32] = &[0o755, 0o755, 0o755, 0o700, 0o777, 0o1777, 0o555];
const DATA: &[&[u8]] = &[b"", b"x", b"hello", b"lower data", b"0123456789abcdef"];
const TARGETS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c/d",
    b"../a",
    b"/a",
    b"/b/c",
    b"/",
    b".",
    b"..",
    b"nowhere",
    b"/../../etc",
];

fn owner(rng: &mut TestRng) -> Option<(u32, u32)> {
    if rng.random_ratio(1, 8) {
        Some(*pick(rng, &[(1000, 1000), (1000, 0), (0, 1000)]))
    } else {
        None
    }
}

fn random_node(rng: &mut TestRng, depth: usize) -> Node {
    let roll = rng.random_range(0..100);
    match roll {
        0..=44 => Node::File {
            mode: *pick(rng, FILE_MODES),
            data: pick(rng, DATA).to_vec(),
            owner: owner(rng),
        },
        45..=84 if depth + 1 < MAX_DEPTH => Node::Dir {
            mode: *pick(rng, DIR_MODES),
            children: random_children(rng, depth + 1),
            opaque: false,
            owner: owner(rng),
        },
        45..=84 => Node::Dir {
            mode: 0o755,
            children: Vec::new(),
            opaque: false,
            owner: None,
        },
        85..=94 => Node::Symlink(pick(rng, TARGETS).to_vec()),
        95..=97 => Node::Fifo,
        _ => Node::Hardlink,
    }
}

fn random_children(rng: &mut TestRng, depth: usize) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    let density = if depth == 0 { 3 } else { 5 };
    for name in NAMES {
        if rng.random_range(0..density) < 2 {
            out.push((name.to_string(), random_node(rng, depth)));
        }
    }
    out
}

fn random_tree(rng: &mut TestRng, depth: usize) -> Vec<(String, Node)> {
    random_children(rng, depth)
}

/// A perturbed copy of `tree` as one layer's diff: most names absent (they
/// come from below), some changed, replaced, whited out or made opaque,
/// and a few new ones.
fn perturb(rng: &mut TestRng, tree: &[(String, Node)], depth: usize) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    for (name, node) in tree {
        let roll = rng.random_range(0..100);
        let changed = match (roll, node) {
            (0..=44, Node::Dir { children, mode, .. }) => {
                let children = perturb(rng, children, depth + 1);
                if children.is_empty() {
                    None
                } else {
                    Some(Node::Dir {
                        mode: *mode,
                        children,
                        opaque: false,
                        owner: None,
                    })
                }
            }
            (0..=54, _) => None,
            (55..=69, Node::File { mode, .. }) => Some(Node::File {
                mode: *mode,
                data: pick(rng, DATA).to_vec(),
                owner: owner(rng),
            }),
            (55..=69, Node::Dir { children, mode, .. }) => Some(Node::Dir {
                mode: *mode,
                children: perturb(rng, children, depth + 1),
                opaque: false,
                owner: owner(rng),
            }),
            (70..=81, _) => Some(Node::Whiteout),
            (82..=89, Node::Dir { .. }) => Some(Node::Dir {
                mode: 0o755,
                children: random_children(rng, (depth + 1).min(MAX_DEPTH - 1)),
                opaque: true,
                owner: None,
            }),
            _ => Some(random_node(rng, depth)),
        };
        if let Some(n) = changed {
            out.push((name.clone(), n));
        }
    }
    for name in NAMES {
        if !out.iter().any(|(n, _)| n == name) && rng.random_ratio(1, 12) {
            out.push((name.to_string(), random_node(rng, depth)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn rel(path: &[&str]) -> RelPath {
    RelPath::from_names(
        path.iter()
            .map(|n| Name::new(n).expect("generated names are valid"))
            .collect(),
    )
}

/// Turns a tree into entries. `bottom` layers get no whiteouts or opaque
/// markers (nothing lies below them to hide).
fn layer_from_tree(rng: &mut TestRng, tree: &[(String, Node)], bottom: bool) -> LayerSpec {
    let mut entries = Vec::new();
    let mut files = Vec::new();
    emit(rng, tree, &mut Vec::new(), bottom, &mut entries, &mut files);
    LayerSpec::new(entries)
}

fn emit<'a>(
    rng: &mut TestRng,
    tree: &'a [(String, Node)],
    prefix: &mut Vec<&'a str>,
    bottom: bool,
    entries: &mut Vec<Entry>,
    files: &mut Vec<RelPath>,
) {
    for (name, node) in tree {
        prefix.push(name);
        let path = rel(prefix);
        match node {
            Node::File { mode, data, owner } => {
                entries.push(Entry::File {
                    path: path.clone(),
                    mode: *mode,
                    data: data.clone(),
                });
                push_owner(entries, &path, *owner);
                if rng.random_ratio(1, 10) {
                    entries.push(Entry::Xattr {
                        path: path.clone(),
                        name: "user.k".into(),
                        value: b"v".to_vec(),
                    });
                }
                files.push(path);
            }
            Node::Dir {
                mode,
                children,
                opaque,
                owner,
            } => {
                entries.push(Entry::Dir {
                    path: path.clone(),
                    mode: *mode,
                });
                push_owner(entries, &path, *owner);
                if *opaque && !bottom {
                    entries.push(Entry::Opaque { path: path.clone() });
                }
                emit(rng, children, prefix, bottom, entries, files);
            }
            Node::Symlink(target) => entries.push(Entry::Symlink {
                path,
                target: target.clone(),
            }),
            Node::Fifo => entries.push(Entry::Fifo { path, mode: 0o644 }),
            Node::Whiteout if !bottom => {
                let w = whiteout(rng, prefix, path, entries);
                entries.push(w);
            }
            Node::Whiteout => {}
            Node::Hardlink => match files.first() {
                Some(existing) if !path.starts_with(existing) => entries.push(Entry::Hardlink {
                    path,
                    existing: existing.clone(),
                }),
                _ => {
                    entries.push(Entry::File {
                        path: path.clone(),
                        mode: 0o644,
                        data: b"h".to_vec(),
                    });
                    files.push(path);
                }
            },
        }
        prefix.pop();
    }
}

/// A whiteout: mostly a char 0/0 device, sometimes an xattr whiteout in
/// a parent marked to hold them (docs/semantics.md §1.2 and §4.10), which
/// the mark is pushed for first. Not in the layer root (the root is no
/// entry), nor in a directory this layer makes opaque.
fn whiteout(rng: &mut TestRng, prefix: &[&str], path: RelPath, entries: &mut Vec<Entry>) -> Entry {
    let parent = rel(&prefix[..prefix.len() - 1]);
    let opaque = entries
        .iter()
        .any(|e| matches!(e, Entry::Opaque { path } if *path == parent));
    if prefix.len() < 2 || opaque || !rng.random_ratio(1, 5) {
        return Entry::Whiteout { path };
    }
    let marked = entries
        .iter()
        .any(|e| matches!(e, Entry::XwhiteoutDir { path } if *path == parent));
    if !marked {
        entries.push(Entry::XwhiteoutDir { path: parent });
    }
    Entry::Xwhiteout { path }
}

fn push_owner(entries: &mut Vec<Entry>, path: &RelPath, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        entries.push(Entry::Owner {
            path: path.clone(),
            uid,
            gid,
        });
    }
}

/// Paths every case's ops may pick besides the layers' own: the names
/// alone, the overlay root itself (`.`, for readdir/stat/chmod/rename edge
/// cases) and a few fresh ones.
static FRESH_PATHS: std::sync::LazyLock<Vec<RelPath>> = std::sync::LazyLock::new(|| {
    let mut paths: Vec<RelPath> = NAMES.iter().map(|n| rel(&[n])).collect();
    paths.push(RelPath::root());
    paths.push(rel(&["e"]));
    paths.push(rel(&["a", "e"]));
    paths.push(rel(&["d", "e"]));
    paths
});

/// Every path any layer names, plus [`FRESH_PATHS`]: what ops pick from,
/// sorted and without duplicates (borrowed: no path is copied until an op
/// takes it).
fn universe<'a>(lowers: &'a [LayerSpec], upper: Option<&'a LayerSpec>) -> Vec<&'a RelPath> {
    let mut paths: Vec<&RelPath> = lowers
        .iter()
        .chain(upper)
        .flat_map(|l| l.entries.iter().map(|e| e.path()))
        .chain(FRESH_PATHS.iter())
        .collect();
    // Each layer's entries come in path order (a depth-first emission of
    // sorted trees): the stable sort merges those runs.
    paths.sort();
    paths.dedup();
    paths
}

fn op_path(rng: &mut TestRng, universe: &[&RelPath]) -> OpPath {
    let mut path = (*pick(rng, universe)).clone();
    // Sometimes a fresh name beneath an existing path.
    if rng.random_ratio(1, 8) && path.names().len() < MAX_DEPTH {
        let name: &&str = pick(rng, NAMES);
        path = path.join(&Name::new(name).expect("valid"));
    }
    let trailing_slash = !path.is_root() && rng.random_ratio(1, 20);
    OpPath {
        path,
        trailing_slash,
    }
}

fn mode(rng: &mut TestRng) -> u32 {
    *pick(rng, &[0o644, 0o755, 0o600, 0o000, 0o777, 0o1777, 0o2755])
}

/// The weighted op mix. Weights sum to 1000; every op kind has a share.
fn random_op(rng: &mut TestRng, u: &[&RelPath]) -> Op {
    let roll = rng.random_range(0..1000);
    match roll {
        0..=59 => Op::Lstat {
            path: op_path(rng, u),
        },
        60..=99 => Op::Stat {
            path: op_path(rng, u),
        },
        100..=159 => Op::Read {
            path: op_path(rng, u),
        },
        160..=179 => Op::Readlink {
            path: op_path(rng, u),
        },
        180..=239 => Op::Readdir {
            path: op_path(rng, u),
        },
        240..=259 => Op::Getxattr {
            path: op_path(rng, u),
            name: pick(rng, XATTR_NAMES).to_string(),
        },
        260..=274 => Op::Listxattr {
            path: op_path(rng, u),
        },
        275..=314 => {
            let flags = if rng.random_ratio(1, 3) {
                open_flags(rng)
            } else {
                OpenFlags::plain(rng.random(), rng.random_ratio(1, 3))
            };
            Op::Open {
                path: op_path(rng, u),
                flags,
                mode: if flags.creat { 0o644 } else { 0 },
                fd: None,
            }
        }
        315..=384 => Op::Create {
            path: op_path(rng, u),
            mode: mode(rng),
            excl: rng.random_ratio(1, 3),
            trunc: rng.random_ratio(1, 3),
        },
        385..=454 => Op::Write {
            path: op_path(rng, u),
            offset: *pick(rng, &[0, 0, 1, 3, 20]),
            data: pick(rng, &[&b"W"[..], b"new", b"written data"]).to_vec(),
        },
        455..=484 => Op::Truncate {
            path: op_path(rng, u),
            size: *pick(rng, &[0, 1, 4, 100]),
        },
        485..=544 => Op::Mkdir {
            path: op_path(rng, u),
            mode: *pick(rng, DIR_MODES),
        },
        545..=559 => Op::Mkfifo {
            path: op_path(rng, u),
            mode: 0o644,
        },
        560..=589 => Op::Symlink {
            target: pick(rng, TARGETS).to_vec(),
            path: op_path(rng, u),
        },
        590..=649 => Op::Unlink {
            path: op_path(rng, u),
        },
        650..=699 => Op::Rmdir {
            path: op_path(rng, u),
        },
        700..=739 => Op::Link {
            old: op_path(rng, u),
            new: op_path(rng, u),
        },
        740..=829 => Op::Rename {
            old: op_path(rng, u),
            new: op_path(rng, u),
            flags: rename_flags(rng),
        },
        830..=864 => Op::Chmod {
            path: op_path(rng, u),
            mode: mode(rng),
        },
        865..=889 => Op::Chown {
            path: op_path(rng, u),
            uid: *pick(rng, &[0, 1000, 1001]),
            gid: *pick(rng, &[0, 1000]),
        },
        890..=914 => Op::Utimes {
            path: op_path(rng, u),
            mtime: *pick(rng, &[Some(0), Some(1_234_567_890), None]),
        },
        915..=949 => Op::Setxattr {
            path: op_path(rng, u),
            name: pick(rng, XATTR_NAMES).to_string(),
            value: pick(rng, &[&b"1"[..], b"two"]).to_vec(),
        },
        950..=969 => Op::Removexattr {
            path: op_path(rng, u),
            name: pick(rng, XATTR_NAMES).to_string(),
        },
        970..=984 => Op::Remount,
        _ => Op::Commit,
    }
}

/// `open(2)` flags for generated opens: the access modes, and each flag
/// that changes what overlay or the VFS does on its own or with the
/// others (O_DIRECTORY|O_CREAT is EINVAL; O_EXCL counts only with
/// O_CREAT; O_PATH drops the rest).
fn open_flags(rng: &mut TestRng) -> OpenFlags {
    OpenFlags {
        access: *pick(rng, &[Access::Rdonly, Access::Wronly, Access::Rdwr]),
        creat: rng.random_ratio(1, 4),
        excl: rng.random_ratio(1, 6),
        trunc: rng.random_ratio(1, 6),
        append: rng.random_ratio(1, 4),
        directory: rng.random_ratio(1, 6),
        nofollow: rng.random_ratio(1, 6),
        path: rng.random_ratio(1, 10),
    }
}

/// The fd names generated cases use: few, so a name is often reused.
const FD_NAMES: &[&str] = &["f", "g"];

/// An open fd's life, where overlay's open files go wrong: the fd is
/// opened (a file for reading or writing, or a directory), then another
/// path copies the object up, renames or unlinks it, or changes the
/// directory, then the fd is used again (docs/testing.md, "Generation").
fn fd_sequence(rng: &mut TestRng, u: &[&RelPath]) -> Vec<Op> {
    let p = op_path(rng, u);
    let fd = pick(rng, FD_NAMES).to_string();
    let dir = rng.random_ratio(1, 3);
    let flags = if dir {
        OpenFlags {
            directory: true,
            ..OpenFlags::default()
        }
    } else {
        match rng.random_range(0..8) {
            0..=2 => OpenFlags::default(),
            3..=4 => OpenFlags {
                access: Access::Rdwr,
                ..OpenFlags::default()
            },
            5 => OpenFlags {
                access: Access::Wronly,
                append: true,
                ..OpenFlags::default()
            },
            6 => OpenFlags {
                access: Access::Rdwr,
                creat: true,
                ..OpenFlags::default()
            },
            _ => open_flags(rng),
        }
    };
    let mode = if flags.creat { 0o644 } else { 0 };
    let mut ops = vec![Op::Open {
        path: p.clone(),
        flags,
        mode,
        fd: Some(fd.clone()),
    }];
    let child = |name: &str| OpPath {
        path: p.path.join(&Name::new(name).expect("valid")),
        trailing_slash: false,
    };
    let mut read_dir = false;
    if dir {
        ops.push(Op::Freaddir { fd: fd.clone() });
        read_dir = true;
    } else if rng.random_ratio(1, 2) {
        ops.push(Op::Fread {
            fd: fd.clone(),
            len: *pick(rng, &[None, Some(1)]),
        });
    }
    // What another path does to the object meanwhile.
    for _ in 0..rng.random_range(1..=2) {
        let other = match rng.random_range(0..8) {
            0 => Op::Write {
                path: p.clone(),
                offset: 0,
                data: b"W".to_vec(),
            },
            1 => Op::Chmod {
                path: p.clone(),
                mode: 0o600,
            },
            2 => Op::Rename {
                old: p.clone(),
                new: op_path(rng, u),
                flags: RenameFlags::default(),
            },
            3 => Op::Unlink { path: p.clone() },
            4 if dir => Op::Create {
                path: child(pick::<&str>(rng, NAMES)),
                mode: 0o644,
                excl: false,
                trunc: false,
            },
            5 if dir => Op::Unlink {
                path: child(pick::<&str>(rng, NAMES)),
            },
            6 => Op::Rmdir { path: p.clone() },
            _ => random_op(rng, u),
        };
        ops.push(other);
    }
    // The fd used again.
    for _ in 0..rng.random_range(1..=3) {
        let use_op = match rng.random_range(0..8) {
            0..=1 if dir => {
                if read_dir && rng.random_ratio(3, 4) {
                    ops.push(Op::Lseek {
                        fd: fd.clone(),
                        offset: 0,
                        whence: Whence::Set,
                    });
                }
                read_dir = true;
                Op::Freaddir { fd: fd.clone() }
            }
            0..=2 => Op::Fread {
                fd: fd.clone(),
                len: *pick(rng, &[None, None, Some(2)]),
            },
            3..=4 => Op::Fwrite {
                fd: fd.clone(),
                offset: *pick(rng, &[None, None, Some(0), Some(2)]),
                data: pick(rng, &[&b"w"[..], b"fd data"]).to_vec(),
            },
            5 => Op::Fstat { fd: fd.clone() },
            // A nonzero offset only where the fd cannot be a directory's
            // (one opened for writing): directory offsets are cookies the
            // model does not predict (module `fds` of the model).
            6 if !dir => Op::Lseek {
                fd: fd.clone(),
                offset: if flags.access.writes() && !flags.path {
                    *pick(rng, &[0, 1, -1])
                } else {
                    0
                },
                whence: *pick(rng, &[Whence::Set, Whence::Cur, Whence::End]),
            },
            6 => Op::Fsync { fd: fd.clone() },
            _ => Op::Fstat { fd: fd.clone() },
        };
        ops.push(use_op);
    }
    if rng.random_ratio(1, 2) {
        ops.push(Op::Close { fd });
    }
    ops
}

/// One step in this many starts a [`sequence`] instead of a single op.
const SEQUENCE_ODDS: u32 = 10;

/// A short sequence of ops on the same paths that random single ops rarely
/// line up, and where implementations other than the kernel's have gone
/// wrong: a directory deleted (or moved away) and made again, then renamed
/// or filled; a hard link whose other name a whiteout hides, or renamed
/// onto it; a change followed by a remount in the middle of a case.
fn sequence(rng: &mut TestRng, u: &[&RelPath]) -> Vec<Step> {
    let p = op_path(rng, u);
    let q = op_path(rng, u);
    let child = |p: &OpPath, name: &str| OpPath {
        path: p.path.join(&Name::new(name).expect("valid")),
        trailing_slash: false,
    };
    let ops = match rng.random_range(0..7) {
        // an open fd across a copy-up, rename, unlink or directory change
        4..=5 => fd_sequence(rng, u),
        // rm -r d; mkdir d; rename of the new d
        0 => vec![
            Op::Rmdir { path: p.clone() },
            Op::Mkdir {
                path: p.clone(),
                mode: *pick(rng, DIR_MODES),
            },
            Op::Rename {
                old: p,
                new: q,
                flags: RenameFlags::default(),
            },
        ],
        // mv d elsewhere; mkdir d; a file in the new d
        1 => vec![
            Op::Rename {
                old: p.clone(),
                new: q,
                flags: RenameFlags::default(),
            },
            Op::Mkdir {
                path: p.clone(),
                mode: *pick(rng, DIR_MODES),
            },
            Op::Create {
                path: child(&p, pick::<&str>(rng, NAMES)),
                mode: 0o644,
                excl: false,
                trunc: false,
            },
        ],
        // a hard link, its first name whited out, the link read again
        2 => vec![
            Op::Link {
                old: p.clone(),
                new: q.clone(),
            },
            Op::Unlink { path: p },
            Op::Read { path: q },
        ],
        // a hard link renamed onto its first name: two names of one inode
        // (nothing happens), or under userxattr two overlay inodes
        // (ESTALE; docs/semantics.md §1.6)
        6 => vec![
            Op::Link {
                old: p.clone(),
                new: q.clone(),
            },
            Op::Rename {
                old: q,
                new: p,
                flags: RenameFlags::default(),
            },
        ],
        // a change, a remount, the changed path looked at again
        _ => vec![
            Op::Write {
                path: p.clone(),
                offset: 0,
                data: b"W".to_vec(),
            },
            Op::Remount,
            Op::Stat { path: p },
        ],
    };
    ops.into_iter().map(Step::new).collect()
}

fn rename_flags(rng: &mut TestRng) -> RenameFlags {
    match rng.random_range(0..20) {
        0..=1 => RenameFlags {
            noreplace: true,
            ..Default::default()
        },
        2..=3 => RenameFlags {
            exchange: true,
            ..Default::default()
        },
        4 => RenameFlags {
            whiteout: true,
            ..Default::default()
        },
        _ => RenameFlags::default(),
    }
}

/// The users steps run as when not root: two in one group.
const USERS: [Cred; 2] = [
    Cred {
        uid: 1000,
        gid: 1000,
    },
    Cred {
        uid: 1001,
        gid: 1000,
    },
];

fn random_step(rng: &mut TestRng, universe: &[&RelPath]) -> Step {
    let op = random_op(rng, universe);
    let cred = if !op.is_lifecycle() && rng.random_ratio(1, 8) {
        Some(*pick(rng, &USERS))
    } else {
        None
    };
    Step {
        op,
        cred,
        expect: None,
    }
}

/// The proptest strategy of whole cases: generation by [`generate`],
/// shrinking by [`crate::shrink::CaseTree`].
#[derive(Clone, Debug)]
pub struct CaseStrategy {
    pub config: GenConfig,
    pub profile: Profile,
}

impl Strategy for CaseStrategy {
    type Tree = crate::shrink::CaseTree;
    type Value = Case;

    fn new_tree(&self, runner: &mut TestRunner) -> NewTree<Self> {
        let case = generate(runner.rng(), &self.config, self.profile.clone());
        Ok(crate::shrink::CaseTree::new(case))
    }
}
