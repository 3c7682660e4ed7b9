//! Bounded exhaustive exploration (model checking against a backend): every
//! op sequence up to a depth over a fixed small universe, breadth first, with
//! states deduplicated by the model's canonical hash. A sequence is extended
//! only from a state not seen before; every sequence run is checked against
//! the backend with the full differential runner.

use crate::pool::map_in_order;
use crate::runner::{adapted, run_case, Divergence, RunError};
use ovlcheck_case::{parse_case, Case, Profile, Step};
use ovlcheck_driver::{Backend, DriverError};
use ovlcheck_model::Model;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The fixed universe: two lower layers sharing names, with files, a merged
/// directory, a lower-only directory entry and a symlink. It has no inode
/// flags, which fuse-overlayfs refuses (driver/src/support.rs:
/// unreadable_layers): the `chattr` ops of the alphabet give some.
pub const UNIVERSE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "x"
  file a 0644 "A"
  symlink s "a"
lower
  file a 0644 "B"
  file b 0644 "b"
  dir d 0755
  file d/y 0644 "y"
ops
"#;

/// The op alphabet, one op per line in the `.ovl` op syntax. The fd ops
/// meet their opens from depth 2 on, and an open fd meets the ops that
/// copy up, rename or change its directory from depth 3 on. The POSIX
/// ACLs of the merged directory `d` let user 1000 create in it and give
/// its new entries a default ACL (docs/semantics.md §1.19); removing the
/// access ACL a lower file lacks is ENODATA.
pub const ALPHABET: &[&str] = &[
    "stat a",
    "read s",
    "readdir d",
    "create e 0644",
    "create a 0600 trunc",
    "write a 0 \"W\"",
    "write s 1 \"S\"",
    "truncate b 0",
    "open d/x rdwr",
    "mkdir e 0755",
    "mkdir d/z 0755",
    "unlink a",
    "unlink d/x",
    "rmdir d",
    "rmdir e",
    "rename a b",
    "rename d e",
    "rename d/x d/y",
    "rename b d/w",
    "link b c",
    "symlink \"d\" t",
    "chmod d/x 0600",
    "as 1000:1000 create d/u 0644",
    "setxattr a user.k \"v\"",
    "setxattr d system.posix_acl_access \"u::rwx,u:1000:rwx,g::r-x,m::rwx,o::r-x\"",
    "setxattr d system.posix_acl_default \"u::rwx,g::r-x,o::---\"",
    "removexattr a system.posix_acl_access",
    "chattr a ia",
    "as 1000:1000 chattr b d",
    "open a O_RDONLY as f",
    "open d O_RDONLY|O_DIRECTORY as g",
    "fread f",
    "freaddir g",
    "statfs s",
    "remount",
    "commit",
];

/// Offline changes to the universe's lower layers (overlayfs.rst, "Changes
/// to underlying filesystems"): a file of a merged directory removed, a
/// file hidden below the top layer's removed (a copy-up's origin goes
/// stale), a new file in the lower layer of a merged directory. They join
/// the alphabet where the profile allows offline changes and the backend
/// runs them ([`alphabet_for`]).
pub const OFFLINE_ALPHABET: &[&str] = &[
    "offline 0 remove d/x",
    "offline 1 remove a",
    "offline 1 file d/n 0644 \"N\"",
];

/// Result of an exploration.
#[derive(Debug, Default)]
pub struct Exploration {
    pub depth: usize,
    /// Op sequences run on the backend.
    pub sequences: usize,
    /// Steps executed in those sequences.
    pub ops: usize,
    /// Distinct model states reached (including the initial state).
    pub states: usize,
    /// Divergences, in the order the sequences were enumerated.
    pub divergences: Vec<Divergence>,
    pub backend_failures: usize,
}

/// The universe case with `steps`.
pub fn universe_case(profile: &Profile, steps: &[Step]) -> Case {
    let mut case = parse_case("explore-universe", UNIVERSE).expect("the universe parses");
    case.profile = profile.clone();
    case.steps = steps.to_vec();
    case
}

/// The alphabet as steps.
pub fn alphabet() -> Vec<Step> {
    steps(ALPHABET)
}

/// The alphabet `backend` explores under `profile`: [`ALPHABET`], and
/// [`OFFLINE_ALPHABET`] where the profile allows offline changes
/// (`ovlcheck_model::offline_changes`) and the backend runs a universe
/// case that makes one (an engine's image layers are its own).
pub fn alphabet_for(backend: &dyn Backend, profile: &Profile) -> Vec<Step> {
    let offline = steps(OFFLINE_ALPHABET);
    let runs =
        |step: &Step| adapted(backend, &universe_case(profile, std::slice::from_ref(step))).is_ok();
    let offline = match ovlcheck_model::offline_changes(profile) && offline.iter().all(runs) {
        true => offline,
        false => Vec::new(),
    };
    [alphabet(), offline].concat()
}

/// `ops`, one per line of the `.ovl` op syntax, parsed over the universe.
fn steps(ops: &[&str]) -> Vec<Step> {
    let text = format!(
        "{UNIVERSE}{}",
        ops.iter().map(|l| format!("  {l}\n")).collect::<String>()
    );
    parse_case("explore-alphabet", &text)
        .expect("the alphabet parses")
        .steps
}

/// Explores to `depth` with `jobs` threads.
pub fn explore(
    backend: &dyn Backend,
    profile: &Profile,
    depth: usize,
    jobs: usize,
    stop: &AtomicBool,
) -> Result<Exploration, String> {
    let alphabet = alphabet_for(backend, profile);
    let root = universe_case(profile, &[]);
    let model = Model::new(&root).map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::from([model.canonical_hash()]);
    let mut frontier: Vec<(Model, Vec<Step>)> = vec![(model, Vec::new())];
    let mut out = Exploration {
        depth,
        states: 1,
        ..Default::default()
    };
    for _ in 0..depth {
        let sequences: Vec<(usize, Vec<Step>)> = frontier
            .iter()
            .enumerate()
            .flat_map(|(fi, (_, seq))| {
                alphabet.iter().map(move |op| {
                    let mut s = seq.clone();
                    s.push(op.clone());
                    (fi, s)
                })
            })
            .collect();
        let results = run_all(backend, profile, &sequences, jobs, stop)?;
        let mut next = Vec::new();
        for ((fi, seq), result) in sequences.into_iter().zip(results) {
            out.sequences += 1;
            out.ops += seq.len();
            match result {
                Some(Ok(Some(d))) => out.divergences.push(d),
                Some(Ok(None)) => {}
                Some(Err(_)) => out.backend_failures += 1,
                None => return Ok(out),
            }
            let step = seq.last().expect("non-empty");
            let (_, m) = frontier[fi].0.step(step);
            if seen.insert(m.canonical_hash()) {
                next.push((m, seq.clone()));
            }
        }
        out.states = seen.len();
        frontier = next;
    }
    Ok(out)
}

type SeqResult = Option<Result<Option<Divergence>, String>>;

fn run_all(
    backend: &dyn Backend,
    profile: &Profile,
    sequences: &[(usize, Vec<Step>)],
    jobs: usize,
    stop: &AtomicBool,
) -> Result<Vec<SeqResult>, String> {
    let fatal = Mutex::new(None);
    let results = map_in_order(jobs, sequences, stop, |_, (_, seq)| {
        let case = universe_case(profile, seq);
        match run_case(backend, &case) {
            Ok(run) => Some(Ok(run.divergence)),
            Err(RunError::Backend(DriverError::Environment(m))) | Err(RunError::BadCase(m)) => {
                *fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                stop.store(true, Ordering::SeqCst);
                None
            }
            Err(RunError::Backend(e)) => Some(Err(e.to_string())),
        }
    });
    if let Some(m) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(m);
    }
    Ok(results.into_iter().map(Option::flatten).collect())
}
