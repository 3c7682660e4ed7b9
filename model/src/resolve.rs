//! Path resolution on the merged tree (fs/namei.c: link_path_walk,
//! walk_component, trailing_symlink) with `RESOLVE_IN_ROOT` semantics:
//! absolute symlink targets start at the overlay root and `..` at the root
//! stays there (the driver resolves with openat2 RESOLVE_IN_ROOT).

use crate::fs::{Inode, Kind};
use crate::lookup::Dentry;
use crate::perm::{may_follow_link, permission, MAY_EXEC};
use crate::Model;
use ovlcheck_case::path::NAME_MAX;
use ovlcheck_case::{Cred, Errno, OpPath};
use std::borrow::Cow;
use std::collections::VecDeque;

/// fs/namei.c: MAXSYMLINKS.
pub(crate) const MAXSYMLINKS: usize = 40;

/// One directory level of a resolved path.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    pub name: String,
    pub dentry: Dentry,
}

/// A resolved path: the root frame first, the object last.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    pub frames: Vec<Frame>,
}

impl Walk {
    pub fn last(&self) -> &Dentry {
        &self.frames.last().expect("root frame").dentry
    }

    pub fn name(&self) -> &str {
        &self.frames.last().expect("root frame").name
    }

    /// The merged path names, root excluded.
    pub fn names(&self) -> Vec<String> {
        self.frames[1..].iter().map(|f| f.name.clone()).collect()
    }

    /// The merged path of the object (empty for the root).
    pub fn path(&self) -> String {
        self.names().join("/")
    }

    /// The parent's dentry (the root's parent is the root).
    pub fn parent_dentry(&self) -> &Dentry {
        let n = self.frames.len();
        &self.frames[n.saturating_sub(2)].dentry
    }

    /// The parent's names, root excluded.
    pub fn parent_names(&self) -> Vec<String> {
        let n = self.frames.len().saturating_sub(1).max(1);
        self.frames[1..n].iter().map(|f| f.name.clone()).collect()
    }

    /// The parent walk (the root's parent is the root).
    pub fn parent(&self) -> Walk {
        let n = self.frames.len().saturating_sub(1).max(1);
        Walk {
            frames: self.frames[..n].to_vec(),
        }
    }
}

/// The merged path of `name` in the directory whose merged path is `dir`
/// (`name` itself in the root, whose path is empty).
pub(crate) fn join_path(dir: &str, name: &str) -> String {
    let mut path = dir.to_string();
    push_name(&mut path, name);
    path
}

/// [`join_path`] in place: the tree walks extend one path buffer and
/// truncate it again.
pub(crate) fn push_name(path: &mut String, name: &str) {
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(name);
}

/// The end of a resolution: an object, or a missing last component.
#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    Found(Walk),
    /// The last component is negative: `dir` is its parent, `neg` the
    /// negative dentry (possibly a whiteout). `slash` when the name was
    /// followed by `/`.
    Missing {
        dir: Walk,
        name: String,
        neg: Dentry,
        slash: bool,
    },
}

/// Where a last-component op acts (the driver's `place`): a directory
/// and a name, or the root itself (the path `/` in a chroot).
#[derive(Clone, Debug)]
pub(crate) enum Place {
    Root,
    At {
        dir: Walk,
        name: String,
        slash: bool,
    },
}

/// How to treat the final component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Follow a final symlink (stat, open).
    Yes,
    /// Do not (lstat, unlink, the old name of link); a trailing slash still
    /// follows.
    No,
    /// Never, not even with a trailing slash (the new name of creating
    /// ops: filename_create).
    Never,
}

impl Model {
    /// The inode whose attributes a merged dentry shows: the upper, else the
    /// topmost lower (overlayfs.rst: directories take the upper's metadata).
    pub(crate) fn attr(&self, d: &Dentry) -> &Inode {
        match d.upper {
            Some(u) => self.upper_inode(u),
            None => self.lower_inode(d.lowers[0]),
        }
    }

    /// The walk of the root alone.
    pub(crate) fn root_walk(&self) -> Walk {
        Walk {
            frames: vec![Frame {
                name: String::new(),
                dentry: self.root_dentry(),
            }],
        }
    }

    /// Resolves `path` from the overlay root as `cred`, as the driver's
    /// full-path `openat2(root, path, RESOLVE_IN_ROOT)` does: the root
    /// itself is the path `.`, whose walk needs search permission on the
    /// root (fs/namei.c: link_path_walk calls may_lookup before every
    /// component, the last one and `.` included).
    pub(crate) fn resolve(
        &self,
        path: &OpPath,
        follow: Follow,
        cred: Cred,
    ) -> Result<Resolved, Errno> {
        self.resolve_names(path.path.names(), path.trailing_slash, follow, cred)
    }

    /// [`Model::resolve`] of a path given by its names.
    fn resolve_names(
        &self,
        names: &[ovlcheck_case::Name],
        trailing_slash: bool,
        follow: Follow,
        cred: Cred,
    ) -> Result<Resolved, Errno> {
        if names.is_empty() {
            permission(cred, self.attr(&self.root_dentry()), MAY_EXEC)?;
            return Ok(Resolved::Found(self.root_walk()));
        }
        let todo: VecDeque<(Cow<'_, str>, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    Cow::Borrowed(n.as_str()),
                    i + 1 == names.len() && trailing_slash,
                )
            })
            .collect();
        self.walk_from(self.root_walk().frames, todo, follow, cred)
    }

    /// Resolves the object a last-component op names (lstat, readlink,
    /// mkdir, mkfifo, symlink, unlink, rmdir): the driver opens the parent
    /// and calls the `*at` syscall with the last name, which for a normal
    /// name walks exactly like [`Model::resolve`]; the root itself is
    /// named `/` inside a chroot, whose walk checks no permission
    /// (link_path_walk returns at once for a path of slashes: LAST_ROOT).
    pub(crate) fn resolve_last(
        &self,
        path: &OpPath,
        follow: Follow,
        cred: Cred,
    ) -> Result<Resolved, Errno> {
        let place = self.place(path, cred)?;
        self.lookup_at(&place, follow, cred)
    }

    /// Where a last-component op acts, as the driver finds it before the
    /// syscall: the parent opened `O_PATH | O_DIRECTORY` with openat2
    /// (following a final symlink; ENOENT/ENOTDIR when it is not a
    /// directory), or the root itself.
    pub(crate) fn place(&self, path: &OpPath, cred: Cred) -> Result<Place, Errno> {
        let names = path.path.names();
        let Some((name, parent)) = names.split_last() else {
            return Ok(Place::Root);
        };
        let dir = match self.resolve_names(parent, false, Follow::Yes, cred)? {
            Resolved::Found(w) if w.last().is_dir => w,
            Resolved::Found(_) => return Err(Errno::ENOTDIR),
            Resolved::Missing { .. } => return Err(Errno::ENOENT),
        };
        Ok(Place::At {
            dir,
            name: name.as_str().to_string(),
            slash: path.trailing_slash,
        })
    }

    /// The `*at` syscall's own walk of the last name from a [`Place`]:
    /// search permission on the directory, then the lookup (the root has
    /// no walk at all).
    pub(crate) fn lookup_at(
        &self,
        place: &Place,
        follow: Follow,
        cred: Cred,
    ) -> Result<Resolved, Errno> {
        match place {
            Place::Root => Ok(Resolved::Found(self.root_walk())),
            Place::At { dir, name, slash } => {
                let todo = VecDeque::from([(Cow::Borrowed(name.as_str()), *slash)]);
                self.walk_from(dir.frames.clone(), todo, follow, cred)
            }
        }
    }

    /// filename_parentat's walk of the last name: search permission on a
    /// place's directory (none for the root: LAST_ROOT).
    pub(crate) fn search_place(&self, place: &Place, cred: Cred) -> Result<(), Errno> {
        match place {
            Place::Root => Ok(()),
            Place::At { dir, .. } => permission(cred, self.attr(dir.last()), MAY_EXEC),
        }
    }

    /// The name-by-name walk (link_path_walk, walk_component) from `frames`.
    fn walk_from(
        &self,
        mut frames: Vec<Frame>,
        mut todo: VecDeque<(Cow<'_, str>, bool)>,
        follow: Follow,
        cred: Cred,
    ) -> Result<Resolved, Errno> {
        let mut links = 0;
        while let Some((name, slash)) = todo.pop_front() {
            let is_last = todo.is_empty();
            let cur = &frames.last().expect("root").dentry;
            if !cur.is_dir {
                return Err(Errno::ENOTDIR);
            }
            permission(cred, self.attr(cur), MAY_EXEC)?;
            if name == "." {
                continue;
            }
            if name == ".." {
                if frames.len() > 1 {
                    frames.pop();
                }
                continue;
            }
            if name.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let child = self.lookup(cur, &name)?;
            if !child.is_positive() {
                if is_last {
                    return Ok(Resolved::Missing {
                        dir: Walk { frames },
                        name: name.into_owned(),
                        neg: child,
                        slash,
                    });
                }
                return Err(Errno::ENOENT);
            }
            if let Kind::Symlink(target) = &self.attr(&child).kind {
                if !is_last || follow == Follow::Yes || (slash && follow == Follow::No) {
                    links += 1;
                    if links > MAXSYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    if is_last {
                        let link = self.attr(&child);
                        may_follow_link(self.feat.sysctls, cred, self.attr(cur), link)?;
                    }
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    splice_target(&mut todo, &mut frames, target, slash);
                    continue;
                }
            }
            let is_dir = child.is_dir;
            frames.push(Frame {
                name: name.into_owned(),
                dentry: child,
            });
            if slash && !is_dir && follow != Follow::Never {
                return Err(Errno::ENOTDIR);
            }
        }
        Ok(Resolved::Found(Walk { frames }))
    }

    /// Resolves a path that must exist.
    pub(crate) fn resolve_existing(
        &self,
        path: &OpPath,
        follow: Follow,
        cred: Cred,
    ) -> Result<Walk, Errno> {
        match self.resolve(path, follow, cred)? {
            Resolved::Found(w) => Ok(w),
            Resolved::Missing { .. } => Err(Errno::ENOENT),
        }
    }
}

/// Puts a symlink's target in front of the remaining components; an
/// absolute target restarts at the root. A target ending in `/` makes its
/// last component require a directory, as does a slash after the link.
fn splice_target(
    todo: &mut VecDeque<(Cow<'_, str>, bool)>,
    frames: &mut Vec<Frame>,
    target: &[u8],
    slash: bool,
) {
    let text = String::from_utf8_lossy(target).into_owned();
    if text.starts_with('/') {
        frames.truncate(1);
    }
    let comps: Vec<&str> = text.split('/').filter(|c| !c.is_empty()).collect();
    let n = comps.len();
    let ends_slash = text.ends_with('/');
    for (i, c) in comps.into_iter().enumerate().rev() {
        let s = i + 1 == n && (slash || ends_slash);
        todo.push_front((Cow::Owned(c.to_string()), s));
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn absolute_targets_and_dotdot_stay_in_the_root() {
        let text = "lower\n  file f 0644 \"f\"\n  dir d 0755\n  symlink d/abs \"/f\"\n  symlink d/up \"../../../f\"\n";
        let mut m = model(text);
        assert_eq!(run(&mut m, "read d/abs"), "\"f\"");
        assert_eq!(run(&mut m, "read d/up"), "\"f\"");
    }

    #[test]
    fn symlink_loops_are_eloop() {
        let mut m = model("lower\n  symlink a \"b\"\n  symlink b \"a\"\n");
        assert_eq!(run(&mut m, "stat a"), "ELOOP");
        assert_eq!(run(&mut m, "lstat a"), "{symlink 0777 0:0 size=1 nlink=1}");
    }

    #[test]
    fn trailing_slash_needs_a_directory() {
        let mut m = model("lower\n  file f 0644 \"f\"\n  dir d 0755\n  symlink l \"d\"\n");
        assert_eq!(run(&mut m, "stat f/"), "ENOTDIR");
        assert_eq!(run(&mut m, "lstat l/"), "{dir 0755 0:0 size=0 nlink=2}");
        assert_eq!(run(&mut m, "mkfifo p/ 0644"), "ENOENT");
        assert_eq!(run(&mut m, "mkdir q/ 0755"), "ok");
    }

    #[test]
    fn search_permission_on_every_directory() {
        let mut m = model("lower\n  dir c 0700\n  file c/f 0644 \"f\"\n");
        assert_eq!(run(&mut m, "as 1000:1000 stat c/f"), "EACCES");
        assert_eq!(run(&mut m, "stat c/f"), "{file 0644 0:0 size=1 nlink=1}");
    }
}
