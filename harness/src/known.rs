//! Known divergences: cases under `corpus/known-<backend>/` name, with
//! `known BACKEND "SIGNATURE"` lines, the divergences an implementation is
//! known to show. Campaigns and replays report a divergence that matches
//! one apart from new ones, and a known case that no longer diverges as
//! fixed, so the corpus follows an implementation across versions
//! (docs/architecture.md, "Known divergences").

use crate::contract::Contract;
use crate::corpus::{self, LoadError};
use crate::runner::{adapted, run_case_checked, Divergence};
use ovlcheck_case::{Case, Profile, Signature};
use ovlcheck_driver::Backend;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The known divergences of one backend: each `(profile, signature)` with
/// the case file that shows it. A divergence is known when a known case of
/// the same profile names its signature, or a class that covers it
/// ([`Signature::matches`]); profiles are compared as the
/// model reads them ([`Profile::modelled`]), so the case of a profile is
/// also the case of that profile on idmapped layers. Under a profile no
/// known case is written for, a divergence is known when a known case
/// that names its signature, run under the divergence's profile, shows a
/// divergence its `known` line names too ([`KnownSet::matching_run`]):
/// the known behaviour, met where the corpus has no copy of it.
#[derive(Clone, Debug, Default)]
pub struct KnownSet {
    entries: Vec<KnownEntry>,
    /// What each entry's case showed run under another profile, by that
    /// profile (as modelled) and the entry's index: each is run once.
    reruns: Arc<Mutex<Reruns>>,
}

/// What known cases showed run under other profiles: by the profile (as
/// modelled) and the entry's index, the signature of the run's divergence.
type Reruns = BTreeMap<(String, usize), Option<Signature>>;

/// One known signature of a known case.
#[derive(Clone, Debug)]
struct KnownEntry {
    profile: Profile,
    signature: Signature,
    file: PathBuf,
    case: Arc<Case>,
}

impl KnownSet {
    /// The known cases for `backend` among the `.ovl` files under `paths`.
    pub fn load(paths: &[PathBuf], backend: &str) -> Result<KnownSet, LoadError> {
        let mut set = KnownSet::default();
        for file in corpus::collect(paths)? {
            let case = corpus::load_case(&file)?;
            set.add(&file, &case, backend);
        }
        Ok(set)
    }

    /// Adds the signatures `case` is known to show on `backend`.
    pub fn add(&mut self, file: &Path, case: &Case, backend: &str) {
        let shared = Arc::new(case.clone());
        for sig in known_signatures(case, backend) {
            self.entries.push(KnownEntry {
                profile: case.profile.clone(),
                signature: sig.clone(),
                file: file.to_path_buf(),
                case: shared.clone(),
            });
        }
    }

    /// The known case of the divergence's own profile that matches it, if
    /// any.
    pub fn matching(&self, d: &Divergence) -> Option<&Path> {
        let profile = d.case.profile.modelled();
        self.entries
            .iter()
            .find(|e| e.profile.modelled() == profile && e.signature.matches(d.signature()))
            .map(|e| e.file.as_path())
    }

    /// [`KnownSet::matching`], else the first known case of another
    /// profile that names the divergence's signature and, run (unpinned)
    /// by `run` under the divergence's profile, shows a divergence its
    /// `known` line also names: the same signature, or one of the class a
    /// `*` line names. `run` gives the signature of a run's divergence, `None`
    /// for no divergence or a case the profile cannot hold; each case is
    /// run once per profile, however many divergences ask.
    pub fn matching_run(
        &self,
        d: &Divergence,
        run: impl Fn(&Case) -> Option<Signature>,
    ) -> Option<&Path> {
        if let Some(file) = self.matching(d) {
            return Some(file);
        }
        let profile = d.case.profile.modelled();
        let key = profile.to_string();
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.profile.modelled() != profile && e.signature.matches(d.signature()))
            .find(|(i, e)| {
                let slot = (key.clone(), *i);
                let seen = self.lock().get(&slot).cloned();
                let shown = seen.unwrap_or_else(|| {
                    let moved = Case {
                        profile: d.case.profile.clone(),
                        ..e.case.unpinned()
                    };
                    let shown = run(&moved);
                    self.lock().insert(slot, shown.clone());
                    shown
                });
                shown.is_some_and(|s| e.signature.matches(&s))
            })
            .map(|(_, e)| e.file.as_path())
    }

    /// [`KnownSet::matching_run`] with the known cases run on `backend`
    /// under `contract` (the export check as `export` says), as the
    /// divergence was.
    pub fn matching_on(
        &self,
        backend: &dyn Backend,
        (contract, export): (Contract, bool),
        d: &Divergence,
    ) -> Option<&Path> {
        self.matching_run(d, |c| rerun(backend, c, contract, export))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reruns> {
        self.reruns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The signature of `case`'s divergence when run alone, if it diverges: a
/// known case run under another profile ([`KnownSet::matching_on`]),
/// adapted to the backend as a campaign's cases are (a container engine's
/// `-init` layer). A panic there (the model on a case it was not written
/// for) counts as no divergence: the divergence asked about is still
/// reported.
fn rerun(
    backend: &dyn Backend,
    case: &Case,
    contract: Contract,
    export: bool,
) -> Option<Signature> {
    let case = adapted(backend, case).ok()?;
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_case_checked(backend, &case, contract, export)
    }));
    let divergence = run.ok()?.ok()?.divergence?;
    Some(divergence.signature().clone())
}

/// The signatures `case` is known to show on `backend` (its `known` lines).
pub fn known_signatures<'a>(
    case: &'a Case,
    backend: &'a str,
) -> impl Iterator<Item = &'a Signature> {
    case.known
        .iter()
        .filter(move |k| k.backend == backend)
        .map(|k| &k.signature)
}

/// What a replayed case showed, judged against what it is known to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No divergence, and none was known.
    Agrees,
    /// A divergence the case is not known to show.
    New,
    /// A divergence the case is known to show.
    Known,
    /// The case is known to diverge and no longer does.
    Fixed,
}

/// Judges one replayed case on `backend`.
pub fn verdict(case: &Case, backend: &str, divergence: Option<&Divergence>) -> Verdict {
    let mut known = known_signatures(case, backend).peekable();
    let expects = known.peek().is_some();
    match divergence {
        None if expects => Verdict::Fixed,
        None => Verdict::Agrees,
        Some(d) if known.any(|s| s.matches(d.signature())) => Verdict::Known,
        Some(_) => Verdict::New,
    }
}

/// Where a campaign looks for known cases when not told: `corpus/` under
/// the current directory, else the source tree's corpus this binary was
/// built from, else nowhere.
pub fn default_paths() -> Vec<PathBuf> {
    let here = PathBuf::from("corpus");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    [here, built]
        .into_iter()
        .find(|p| p.is_dir())
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contract;
    use crate::runner::Check;
    use std::cell::Cell;

    const SIGNATURE: &str = "rmdir: model ok / backend ENOTEMPTY";

    /// A known case of `profile` naming [`SIGNATURE`].
    fn known_set(profile: &str) -> KnownSet {
        known_set_naming(profile, SIGNATURE)
    }

    /// A known case of `profile` naming `signature`.
    fn known_set_naming(profile: &str, signature: &str) -> KnownSet {
        let text = format!(
            "profile {profile}\nknown kernel \"{signature}\"\nlower\n  dir b 0755\nops\n  rmdir b => ENOTEMPTY\n"
        );
        let case = ovlcheck_case::parse_case("k.ovl", &text).expect("parses");
        let mut set = KnownSet::default();
        set.add(Path::new("k.ovl"), &case, "kernel");
        set
    }

    /// A divergence with [`SIGNATURE`] under `profile`.
    fn divergence(profile: &str) -> Divergence {
        let text = format!("profile {profile}\nlower\n  dir c 0755\nops\n  rmdir c\n");
        Divergence {
            check: Check::Outcome { step: 0 },
            contract: Contract::Kernel,
            signature: SIGNATURE.parse().expect("a signature"),
            case: ovlcheck_case::parse_case("d.ovl", &text).expect("parses"),
            predicted: Vec::new(),
            observed: Vec::new(),
            views: None,
        }
    }

    #[test]
    fn a_known_case_of_the_same_profile_matches_without_a_run() {
        let set = known_set("nested");
        let d = divergence("nested");
        let found = set.matching_run(&d, |_| panic!("no run is needed"));
        assert_eq!(found, Some(Path::new("k.ovl")));
    }

    #[test]
    fn another_profile_matches_when_the_known_case_shows_the_signature_there() {
        let set = known_set("nested");
        let d = divergence("lower=overlay userxattr");
        assert_eq!(set.matching(&d), None);
        let runs = Cell::new(0);
        let run = |c: &Case| {
            runs.set(runs.get() + 1);
            // The known case runs unpinned, under the divergence's profile.
            assert_eq!(c.profile, d.case.profile);
            assert!(c.steps.iter().all(|s| s.expect.is_none()));
            Some(SIGNATURE.parse().expect("a signature"))
        };
        assert_eq!(set.matching_run(&d, run), Some(Path::new("k.ovl")));
        assert_eq!(set.matching_run(&d, run), Some(Path::new("k.ovl")));
        assert_eq!(runs.get(), 1, "each known case runs once per profile");
    }

    #[test]
    fn another_profile_stays_new_when_the_known_case_shows_something_else() {
        let set = known_set("nested");
        let d = divergence("lower=overlay userxattr");
        let other: Signature = "rmdir: model ok / backend EIO"
            .parse()
            .expect("a signature");
        assert_eq!(set.matching_run(&d, |_| Some(other.clone())), None);
        let set = known_set("nested");
        assert_eq!(set.matching_run(&d, |_| None), None);
    }

    #[test]
    fn a_class_known_line_matches_what_its_case_shows_of_the_class() {
        let d = divergence("lower=overlay userxattr");
        let class = "rmdir: model ok / backend *";
        let shows = |sig: &str| {
            let sig: Signature = sig.parse().expect("a signature");
            move |_: &Case| Some(sig.clone())
        };
        let set = known_set_naming("nested", class);
        let found = set.matching_run(&d, shows("rmdir: model ok / backend EIO"));
        assert_eq!(found, Some(Path::new("k.ovl")));
        let set = known_set_naming("nested", class);
        let found = set.matching_run(&d, shows("chmod: model ok / backend EIO"));
        assert_eq!(found, None);
    }
}
