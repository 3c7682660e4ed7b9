//! Known divergences: cases under `corpus/known-<backend>/` name, with
//! `known BACKEND "SIGNATURE"` lines, the divergences an implementation is
//! known to show. Campaigns and replays report a divergence that matches
//! one apart from new ones, and a known case that no longer diverges as
//! fixed, so the corpus follows an implementation across versions
//! (docs/architecture.md, "Known divergences").

use crate::corpus::{self, LoadError};
use crate::runner::Divergence;
use ovlcheck_case::{Case, Profile, Signature};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The known divergences of one backend: each `(profile, signature)` with
/// the case file that shows it. A divergence is known when a known case of
/// the same profile names its signature, or a class that covers it
/// ([`Signature::matches`]); profiles are compared as the
/// model reads them ([`Profile::modelled`]), so the case of a profile is
/// also the case of that profile on idmapped layers.
#[derive(Clone, Debug, Default)]
pub struct KnownSet {
    entries: Vec<(Profile, Signature, PathBuf)>,
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
        for sig in known_signatures(case, backend) {
            self.entries
                .push((case.profile.clone(), sig.clone(), file.to_path_buf()));
        }
    }

    /// The known case a divergence matches, if any.
    pub fn matching(&self, d: &Divergence) -> Option<&Path> {
        self.entries
            .iter()
            .find(|(p, s, _)| p.modelled() == d.case.profile.modelled() && s.matches(d.signature()))
            .map(|(_, _, f)| f.as_path())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
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
