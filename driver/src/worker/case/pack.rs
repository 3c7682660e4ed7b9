//! A pack of cases on one mount ([`crate::pack`]): each case's steps run
//! beneath its directory, then every observation of [`CaseRun`] is taken
//! once for the whole pack, in the order [`CaseRun::collect`] takes them
//! for one case, and cut back into each case's part.

use super::{MountedCase, Res};
use crate::api::{lifecycle, CaseRun, DriverError, Export, Session, Wants};
use crate::pack::{case_dir, split_view};
use ovlcheck_case::oci::{self, DiffMethod};
use ovlcheck_case::{Case, Op, Outcome, Step, View};

impl MountedCase {
    /// Runs and observes `cases` on this mount of their pack, `wants[i]`
    /// saying what case `i` asks for.
    pub(in crate::worker) fn collect_pack(
        &mut self,
        cases: &[Case],
        wants: &[Wants],
    ) -> Result<Vec<CaseRun>, DriverError> {
        self.packed = cases.len();
        let mut outcomes: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
        // Each case's steps up to its next remount or commit, case by case;
        // then that lifecycle step once for all (the cases of a pack have
        // the same ones, in the same order).
        let mut rest: Vec<&[Step]> = cases.iter().map(|c| c.steps.as_slice()).collect();
        loop {
            let mut lifecycle_step = None;
            for (i, steps) in rest.iter_mut().enumerate() {
                let end = steps.iter().position(|s| s.op.is_lifecycle());
                let (now, later) = steps.split_at(end.unwrap_or(steps.len()));
                outcomes[i].extend(self.steps_within(&case_dir(i), now)?);
                lifecycle_step = later.first().or(lifecycle_step);
                *steps = later.get(1..).unwrap_or_default();
            }
            let Some(step) = lifecycle_step else { break };
            let outcome = self.apply(step)?;
            for o in &mut outcomes {
                o.push(outcome.clone());
            }
        }
        let merged = self.merged_view()?;
        let upper = self.upper_view()?;
        let volatile = self.profile.volatile_upper();
        let (remount, after_remount) = lifecycle(self, Op::Remount, volatile)?;
        let exports = match after_remount {
            Some(_) if !self.profile.readonly => {
                self.observation(|s| s.take_pack_exports(wants))?
            }
            _ => vec![None; cases.len()],
        };
        let (commit, after_commit) = lifecycle(self, Op::Commit, false)?;
        let kernel_view = match wants.iter().any(|w| w.kernel_view) {
            true => Some(self.kernel_view()?),
            false => None,
        };
        let split = |v: &View, i| split_view(v, i);
        Ok(outcomes
            .into_iter()
            .zip(exports)
            .enumerate()
            .map(|(i, (outcomes, export))| CaseRun {
                outcomes,
                merged: split(&merged, i),
                upper: upper.as_ref().map(|v| split(v, i)),
                remount: remount.clone(),
                after_remount: after_remount.as_ref().map(|v| split(v, i)),
                export,
                commit: commit.clone(),
                after_commit: after_commit.as_ref().map(|v| split(v, i)),
                kernel_view: kernel_view
                    .as_ref()
                    .map(|k| k.as_ref().map(|v| split(v, i)).map_err(|e| *e)),
                commit_tar: self.commit_tar(),
            })
            .collect())
    }

    /// `steps`, each as [`Session::apply`] runs it, beneath the directory
    /// `dir` of the mount and with fds of their own. The mount-time
    /// snapshot is taken before the first step of the pack, so it covers
    /// every case as mounted.
    fn steps_within(&mut self, dir: &str, steps: &[Step]) -> Result<Vec<Outcome>, DriverError> {
        self.enter(dir).map_err(DriverError::Io)?;
        let outcomes = steps.iter().map(|s| self.apply(s)).collect();
        if let Some(m) = self.mounted.as_mut() {
            m.within = None;
            let fds = std::mem::take(&mut m.fds);
            m.parked.push(fds);
        }
        outcomes
    }

    /// Makes the directory `dir` of the mount the root the next steps
    /// resolve beneath.
    fn enter(&mut self, dir: &str) -> Res<()> {
        let m = self.mounted_mut()?;
        if m.snapshot.is_none() {
            m.snapshot = Some(crate::observe::snapshot(&m.target)?);
        }
        let fd = crate::sys::openat2(
            &m.root,
            dir.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            crate::exec::RESOLVE,
        )
        .map_err(|e| format!("open the pack's directory {dir}: {e}"))?;
        m.within = Some(fd);
        Ok(())
    }

    /// Each case's export ([`Session::export`]), for the cases whose
    /// `wants` ask for one: the case's own `Diff` (native, or naive from
    /// its part of the image's and the container's trees), then every
    /// valid tar applied beneath its case's directory of one new layer,
    /// mounted once.
    fn take_pack_exports(&mut self, wants: &[Wants]) -> Res<Vec<Option<Export>>> {
        let prefix = self.profile.xattr_prefix();
        let diff = self.store.diff(&self.container);
        // The image's and the container's trees, walked once for every
        // naive diff of the pack.
        let mut naive: Option<(View, View)> = None;
        let mut tars = Vec::with_capacity(wants.len());
        for (i, w) in wants.iter().enumerate() {
            if !w.export {
                tars.push(None);
                continue;
            }
            let dir = case_dir(i);
            let tar = match self.native_tar(&diff.join(&dir))? {
                Some(tar) => (DiffMethod::Native, tar),
                None => {
                    if naive.is_none() {
                        naive = Some((self.image_view()?, self.walk_merged()?));
                    }
                    let (image, container) = naive.as_ref().expect("walked above");
                    // Without image layers the image is an empty directory,
                    // the same for every case.
                    let before = match self.container.lower.is_empty() {
                        true => image.clone(),
                        false => split_view(image, i),
                    };
                    let changes = oci::naive_changes(&before, &split_view(container, i));
                    let merged = self.mounted_mut()?.target.join(&dir);
                    let tar = crate::oci::write_naive(&changes, &merged)
                        .map_err(|e| format!("export: naive diff: {e}"))?;
                    (DiffMethod::Naive, tar)
                }
            };
            tars.push(Some(tar));
        }
        let changesets: Vec<Option<Result<View, String>>> = tars
            .iter()
            .map(|t| t.as_ref().map(|(_, tar)| crate::oci::read(tar)))
            .collect();
        let valid: Vec<(usize, &[u8])> = tars
            .iter()
            .zip(&changesets)
            .enumerate()
            .filter_map(|(i, (t, c))| match (t, c) {
                (Some((_, tar)), Some(Ok(_))) => Some((i, tar.as_slice())),
                _ => None,
            })
            .collect();
        let applied = match valid.is_empty() {
            true => None,
            false => Some(self.applied_view_of(|layer| {
                for (i, tar) in &valid {
                    let into = layer.join(case_dir(*i));
                    super::mkdir_mode(&into, 0o755)?;
                    crate::oci::apply(tar, &into, prefix)
                        .map_err(|e| format!("export: apply the diff: {e}"))?;
                }
                Ok(())
            })?),
        };
        Ok(tars
            .into_iter()
            .zip(changesets)
            .enumerate()
            .map(|(i, (tar, changeset))| {
                let (method, _) = tar?;
                let changeset = changeset?;
                let merged = match &changeset {
                    Ok(_) => applied.as_ref().map(|v| split_view(v, i)),
                    Err(_) => None,
                };
                Some(Export {
                    method,
                    changeset,
                    merged,
                    commit: oci::TarCommit::default(),
                })
            })
            .collect())
    }
}
