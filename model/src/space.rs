//! Space on a sized upper filesystem (`upper_size`; the `enospc` profile):
//! a tmpfs of `size=N` bytes, which charges whole pages of file data
//! against `ceil(N / 4096)` pages (mm/shmem.c: shmem_inode_acct_blocks
//! fails with ENOSPC when `used + pages > max_blocks`). Directories,
//! whiteouts, fifos, xattrs and symlinks of fewer than 128 bytes (stored
//! in the inode: SHORT_SYMLINK_LEN counts the NUL) take no page; a longer
//! symlink takes one. A file takes the pages its data was written to: a
//! truncate that grows a file leaves a hole, which takes nothing until a
//! write lands in it. The overlay2 layer directory on the same tmpfs holds
//! `link` (one page) and, above a parent, `lower` (one page).
//!
//! Every allocation is checked where the kernel makes it, so a failing op
//! leaves the effects the kernel made before it (copy_up.c: the ancestors
//! are copied up and the parent marked impure before the object's copy-up
//! fails; a write updates times and drops set-id bits before its pages are
//! allocated).

use crate::features::UpperMode;
use crate::fs::{Inode, Kind, Layer};
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::Errno;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The pages of a file with holes (`Inode::pages`).
pub(crate) type Pages = Arc<BTreeSet<u64>>;

/// tmpfs page size.
pub(crate) const PAGE: u64 = 4096;

/// Symlink targets of this many bytes or more take a page
/// (shmem.c: shmem_symlink stores `len + 1 <= SHORT_SYMLINK_LEN` inline).
pub(crate) const LONG_SYMLINK: usize = 128;

/// copy_up.c: OVL_COPY_UP_CHUNK_SIZE; holes are looked for at the start
/// of each chunk only.
const COPY_CHUNK: u64 = 1 << 20;

pub(crate) fn file_len(i: &Inode) -> u64 {
    match &i.kind {
        Kind::File(d) => d.len() as u64,
        _ => 0,
    }
}

/// Pages of a `len`-byte file whose data is in `pages` (`None`: all).
pub(crate) fn file_pages(len: u64, pages: Option<&Pages>) -> u64 {
    match pages {
        None => len.div_ceil(PAGE),
        Some(p) => p.len() as u64,
    }
}

/// Pages an inode's data takes on tmpfs.
pub(crate) fn inode_pages(i: &Inode) -> u64 {
    match &i.kind {
        // A metacopy has no data, unless a data copy-up that ran out of
        // space left the pages it wrote ([`NoSpace`]).
        Kind::File(_) if i.ovl.metacopy => i.pages.as_ref().map_or(0, |p| p.len() as u64),
        Kind::File(d) => file_pages(d.len() as u64, i.pages.as_ref()),
        Kind::Symlink(t) if t.len() >= LONG_SYMLINK => 1,
        _ => 0,
    }
}

/// Whether page `n` of a regular file holds data.
fn allocated(i: &Inode, n: u64) -> bool {
    match &i.pages {
        None => n < file_len(i).div_ceil(PAGE),
        Some(p) => p.contains(&n),
    }
}

/// The first page at or after `n` that holds data (SEEK_DATA).
fn next_data(i: &Inode, n: u64) -> Option<u64> {
    let end = file_len(i).div_ceil(PAGE);
    match &i.pages {
        None => (n < end).then_some(n),
        Some(p) => p.range(n..).next().copied(),
    }
}

/// `None` when `pages` are every page of a `len`-byte file.
fn normal(len: u64, pages: BTreeSet<u64>) -> Option<Pages> {
    let n = len.div_ceil(PAGE);
    if pages.len() as u64 == n && pages.iter().all(|p| *p < n) {
        None
    } else {
        Some(Arc::new(pages))
    }
}

/// The pages of a file after a copy wrote into it in place: it had
/// `own_len` bytes in pages `have` (`None`: all of them), the copy wrote
/// the pages `wrote` (`None`: every page of its first `copied` bytes),
/// and it now has `len` bytes.
pub(crate) fn merged_pages(
    own_len: u64,
    have: Option<&Pages>,
    copied: u64,
    wrote: Option<&Pages>,
    len: u64,
) -> Option<Pages> {
    let mut pages: BTreeSet<u64> = match have {
        Some(h) => h.iter().copied().collect(),
        None => (0..own_len.div_ceil(PAGE)).collect(),
    };
    match wrote {
        Some(w) => pages.extend(w.iter().copied()),
        None => pages.extend(0..copied.div_ceil(PAGE)),
    }
    normal(len, pages)
}

/// A data copy-up that ran out of space (ENOSPC): the pages it had
/// written by then. A copy into a temp file loses them with the file; the
/// data copy-up of a metacopy writes into the upper file in place, which
/// keeps them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NoSpace(pub BTreeSet<u64>);

/// The pages of a data copy-up of `src` onto a filesystem with `free`
/// pages left, into a file that already has the pages `have` (copy_up.c:
/// ovl_copy_up_file). Each round looks for data at the current position
/// (SEEK_DATA: a hole is skipped; no more data ends the copy, and
/// ovl_set_size sets the size) and splices up to 1 MiB from there, holes
/// inside it written as zeros. When a page cannot be allocated the splice
/// returns what it wrote: the next round then ends the copy if only holes
/// are left (a success, verified on 6.18), and fails with ENOSPC if data
/// is left, since it cannot write a byte of it.
pub(crate) fn copy_up_pages(
    src: &Inode,
    size: u64,
    free: Option<u64>,
    have: Option<&Pages>,
) -> Result<Option<Pages>, NoSpace> {
    // The copy asks for `size` bytes (the st_size of the file copied up,
    // a metacopy's own) and ends at the end of the data.
    let len = size.min(file_len(src));
    let mut free = free.unwrap_or(u64::MAX);
    let mut out = BTreeSet::new();
    let mut pos = 0;
    while pos < len {
        match next_data(src, pos / PAGE) {
            None => break,
            Some(n) if n * PAGE > pos => {
                pos = n * PAGE;
                continue;
            }
            Some(_) => {}
        }
        let end = (pos + COPY_CHUNK).min(len);
        let mut wrote = pos;
        for n in pos / PAGE..end.div_ceil(PAGE) {
            if !have.is_some_and(|h| h.contains(&n)) {
                if free == 0 {
                    break;
                }
                free -= 1;
            }
            out.insert(n);
            wrote = ((n + 1) * PAGE).min(end);
        }
        if wrote == pos {
            return Err(NoSpace(out));
        }
        pos = wrote;
    }
    Ok(normal(size, out))
}

/// Sets a regular file's size (truncate): pages past the new end go, a
/// larger size adds a hole.
pub(crate) fn set_size(i: &mut Inode, size: u64) {
    let old = file_len(i);
    let keep = size.div_ceil(PAGE);
    let pages: BTreeSet<u64> = match &i.pages {
        Some(p) => p.iter().copied().filter(|p| *p < keep).collect(),
        None => (0..old.div_ceil(PAGE).min(keep)).collect(),
    };
    if let Kind::File(d) = &mut i.kind {
        Arc::make_mut(d).resize(size as usize, 0);
    }
    i.pages = normal(size, pages);
}

/// Writes `data` at `offset` page by page (mm/filemap.c:
/// generic_perform_write), allocating at most `free` new pages; returns
/// how many bytes were written before a page could not be allocated.
pub(crate) fn write(i: &mut Inode, offset: u64, data: &[u8], free: Option<u64>) -> usize {
    let end = offset + data.len() as u64;
    let mut free = free.unwrap_or(u64::MAX);
    let mut done = end;
    let mut new_pages = Vec::new();
    for n in offset / PAGE..end.div_ceil(PAGE) {
        if allocated(i, n) || new_pages.contains(&n) {
            continue;
        }
        if free == 0 {
            done = (n * PAGE).max(offset);
            break;
        }
        free -= 1;
        new_pages.push(n);
    }
    let written = (done - offset) as usize;
    if written == 0 {
        return 0;
    }
    let mut pages: BTreeSet<u64> = match &i.pages {
        Some(p) => (**p).clone(),
        None => (0..file_len(i).div_ceil(PAGE)).collect(),
    };
    pages.extend(new_pages.into_iter().filter(|n| *n * PAGE < done));
    if let Kind::File(d) = &mut i.kind {
        let d = Arc::make_mut(d);
        if (d.len() as u64) < done {
            d.resize(done as usize, 0);
        }
        d[offset as usize..done as usize].copy_from_slice(&data[..written]);
        i.pages = normal(d.len() as u64, pages);
    }
    written
}

/// The overlay2 files of the layer at `position` (0: the base): `link`,
/// and `lower` above a parent; a page each.
fn store_pages(position: usize) -> u64 {
    1 + u64::from(position > 0)
}

fn layer_pages(l: &Layer) -> u64 {
    l.inodes.values().map(|i| inode_pages(i)).sum()
}

impl Model {
    /// Free pages on the sized filesystem; `None` when the upper is not
    /// sized. It holds the upper layer's directory and, when the lowers
    /// share it (`shared_space`), every lower layer's too.
    pub(crate) fn free_pages(&self) -> Option<u64> {
        self.pages_used_of()
            .map(|(used, all)| all.saturating_sub(used))
    }

    /// Whether the sized filesystem would have to hold more than it can:
    /// a commit's new container layer (its `link` and `lower` files) on a
    /// store that the lowers share and that is full fails with ENOSPC.
    pub(crate) fn over_capacity(&self) -> bool {
        self.pages_used_of().is_some_and(|(used, all)| used > all)
    }

    /// The pages the sized filesystem's contents take, and its pages.
    fn pages_used_of(&self) -> Option<(u64, u64)> {
        let UpperMode::Limited(bytes) = self.feat.upper else {
            return None;
        };
        let upper = self.upper.as_ref()?;
        // Data-only layers are base layers of the store (no parent); the
        // regular ones stack above each other from the bottom one.
        let position = |k: usize| k.saturating_sub(self.data_layers);
        let top = self.lowers.len();
        let mut used = store_pages(position(top)) + layer_pages(upper);
        if self.feat.shared_space {
            used += self
                .lowers
                .iter()
                .enumerate()
                .map(|(k, l)| store_pages(position(k)) + layer_pages(l))
                .sum::<u64>();
        }
        Some((used, bytes.div_ceil(PAGE)))
    }

    /// ENOSPC unless `pages` more pages fit.
    pub(crate) fn reserve(&self, pages: u64) -> Result<(), Errno> {
        match self.free_pages() {
            Some(free) if pages > free => {
                self.hit(Rule::NoSpace);
                Err(Errno::ENOSPC)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize, pages: Option<&[u64]>) -> Inode {
        let mut i = Inode::new(Kind::File(Arc::new(vec![b'x'; len])), 0o644, 0, 0);
        i.pages = pages.map(|p| Arc::new(p.iter().copied().collect()));
        i
    }

    #[test]
    fn holes_take_no_pages() {
        let mut i = file(0, None);
        set_size(&mut i, 3 * PAGE);
        assert_eq!(inode_pages(&i), 0);
        assert_eq!(write(&mut i, PAGE + 5, b"ab", None), 2);
        assert_eq!(inode_pages(&i), 1);
        set_size(&mut i, 10);
        assert_eq!(inode_pages(&i), 0);
        assert_eq!(write(&mut i, 0, b"ab", None), 2);
        assert!(i.pages.is_none());
    }

    #[test]
    fn a_write_stops_at_the_first_page_that_does_not_fit() {
        let mut i = file(10, None);
        let data = vec![b'w'; 3 * PAGE as usize];
        assert_eq!(write(&mut i, 0, &data, Some(1)), 2 * PAGE as usize);
        assert_eq!(file_len(&i), 2 * PAGE);
        assert_eq!(write(&mut i, 2 * PAGE, b"z", Some(0)), 0);
        assert_eq!(file_len(&i), 2 * PAGE);
    }

    fn copied(src: &Inode, free: Option<u64>) -> Result<Vec<u64>, Errno> {
        let len = file_len(src).div_ceil(PAGE);
        copy_up_pages(src, file_len(src), free, None)
            .map(|p| p.map_or_else(|| (0..len).collect(), |p| p.iter().copied().collect()))
            .map_err(|_| Errno::ENOSPC)
    }

    #[test]
    fn copy_up_skips_holes_at_the_start_of_a_chunk_only() {
        assert_eq!(copy_up_pages(&file(3, None), 3, None, None), Ok(None));
        let sparse = file(3 * PAGE as usize, Some(&[1]));
        assert_eq!(copied(&sparse, None), Ok(vec![1, 2]));
        assert_eq!(copied(&file(100, Some(&[])), None), Ok(vec![]));
        let big = file(3_000_000, Some(&[0, 300]));
        assert_eq!(copied(&big, None).map(|p| p.len()), Ok(512));
    }

    #[test]
    fn a_copy_up_copies_the_size_asked_for_up_to_the_end_of_the_data() {
        let one: BTreeSet<u64> = [0].into();
        let data = file(3, None);
        assert_eq!(
            copy_up_pages(&data, 2 * PAGE, None, None),
            Ok(Some(Arc::new(one)))
        );
        let two = file(2 * PAGE as usize, None);
        assert_eq!(copy_up_pages(&two, 10, None, None), Ok(None));
        assert_eq!(
            copy_up_pages(&two, 10, Some(0), None),
            Err(NoSpace(BTreeSet::new()))
        );
    }

    #[test]
    fn a_copy_up_short_of_space_ends_well_when_only_holes_are_left() {
        let tail = file(9000, Some(&[0]));
        assert_eq!(copied(&tail, Some(1)), Ok(vec![0]));
        assert_eq!(copied(&tail, Some(0)), Err(Errno::ENOSPC));
        let mid = file(3 * PAGE as usize, Some(&[0, 2]));
        assert_eq!(copied(&mid, Some(1)), Err(Errno::ENOSPC));
        assert_eq!(copied(&mid, Some(2)), Err(Errno::ENOSPC));
        assert_eq!(copied(&mid, Some(3)), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn a_copy_up_short_of_space_reports_what_it_wrote_and_pages_it_has_cost_nothing() {
        let two = file(5000, None);
        let one: BTreeSet<u64> = [0].into();
        assert_eq!(
            copy_up_pages(&two, 5000, Some(1), None),
            Err(NoSpace(one.clone()))
        );
        assert_eq!(
            copy_up_pages(&two, 5000, Some(0), None),
            Err(NoSpace(BTreeSet::new()))
        );
        let have = Arc::new(one);
        assert_eq!(copy_up_pages(&two, 5000, Some(1), Some(&have)), Ok(None));
        assert!(copy_up_pages(&two, 5000, Some(0), Some(&have)).is_err());
    }
}
