//! A pack of cases on one mount ([`crate::pack`]), as
//! [`CaseRun::collect_pack`](crate::api::CaseRun::collect_pack) runs it:
//! each case's steps beneath its directory, and one export of the store
//! for the whole pack.

use super::{MountedCase, Res};
use crate::api::{DriverError, Export, PackSession, Wants};
use crate::pack::{case_dir, split_view};
use ovlcheck_case::oci::{self, DiffMethod};
use ovlcheck_case::{OfflineChange, Outcome, View};

impl PackSession for MountedCase {
    fn begin_pack(&mut self, cases: usize) -> Result<(), DriverError> {
        self.packed = cases;
        Ok(())
    }

    /// The mount-time snapshot is taken when the first case is entered,
    /// so it covers every case as mounted.
    fn enter(&mut self, dir: Option<&str>) -> Result<(), DriverError> {
        match dir {
            Some(dir) => self.enter_dir(dir).map_err(DriverError::Io),
            None => {
                if let Some(m) = self.mounted.as_mut() {
                    m.within = None;
                    let fds = std::mem::take(&mut m.fds);
                    m.parked.push(fds);
                }
                Ok(())
            }
        }
    }

    fn pack_exports(&mut self, wants: &[Wants]) -> Result<Vec<Option<Export>>, DriverError> {
        if self.profile.readonly {
            return Ok(vec![None; wants.len()]);
        }
        self.observation(|s| s.take_pack_exports(wants))
    }

    /// As [`crate::api::Session::apply`] makes one case's `offline`
    /// step: the mount's walk first, then each case's change beneath its
    /// directory in one unmount.
    fn offline(
        &mut self,
        changes: &[(usize, &OfflineChange)],
    ) -> Result<Vec<Outcome>, DriverError> {
        if changes.len() != self.packed {
            return Err(DriverError::Io(
                "an offline step for another number of cases than the pack's".into(),
            ));
        }
        if let Err(e) = self.walk_once().map(|_| ()) {
            return Err(self.error_or_death(e));
        }
        self.lifecycle_each(|s| {
            changes
                .iter()
                .enumerate()
                .map(|(i, (layer, change))| {
                    s.offline_change(Some(&case_dir(i)), *layer, change).err()
                })
                .collect()
        })
    }
}

impl MountedCase {
    /// Makes the directory `dir` of the mount the root the next steps
    /// resolve beneath.
    fn enter_dir(&mut self, dir: &str) -> Res<()> {
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
                        naive = Some((self.image_view()?, self.container_diff_view()?));
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
