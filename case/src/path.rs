//! Validated relative paths. Every path a case names is relative to the
//! overlay root (or a layer root): no leading `/`, no `.` or `..`
//! components, no empty component, no NUL and no component over `NAME_MAX`.
//! Symlink *targets* are free-form bytes and are not `RelPath`s: hostile
//! targets are the driver's confinement problem, not a parse error.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Linux `NAME_MAX`: the longest directory entry name in bytes.
pub const NAME_MAX: usize = 255;
/// Linux `PATH_MAX` including the terminating NUL.
pub const PATH_MAX: usize = 4096;

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is absolute (paths are relative to the overlay root)")]
    Absolute,
    #[error("path has an empty component (`//` or a trailing `/`)")]
    EmptyComponent,
    #[error("path has a `.` or `..` component")]
    Dot,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path component is {0} bytes long (NAME_MAX is 255)")]
    TooLong(usize),
    #[error("path is {0} bytes long (PATH_MAX is 4096)")]
    PathTooLong(usize),
}

/// One directory entry name: non-empty, no `/`, no NUL, not `.`/`..`, at most
/// 255 bytes. Shared: a clone copies a pointer, not the name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Name(Arc<str>);

/// Orders names (and paths) bytewise, as `str` does, comparing short ones
/// inline: names are compared all the time (sorting, indexing, looking up
/// entries), they are a few bytes, and a libc `memcmp` call per comparison
/// costs more than the comparison.
pub fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > 16 || b.len() > 16 {
        return a.cmp(b);
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// As `str` orders (see [`cmp_names`]).
impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        cmp_names(&self.0, &other.0)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Name {
    pub fn new(s: &str) -> Result<Name, PathError> {
        if s.is_empty() {
            return Err(PathError::EmptyComponent);
        }
        if s == "." || s == ".." {
            return Err(PathError::Dot);
        }
        if s.contains('\0') {
            return Err(PathError::Nul);
        }
        if s.contains('/') {
            return Err(PathError::EmptyComponent);
        }
        if s.len() > NAME_MAX {
            return Err(PathError::TooLong(s.len()));
        }
        Ok(Name(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated path relative to a root, as a list of names. The root itself
/// is the empty path (only produced by [`RelPath::root`] and [`RelPath::parent`],
/// never parsed). Shared and immutable: cases, layers and ops clone paths
/// often, and a clone copies a pointer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct RelPath(Arc<[Name]>);

impl RelPath {
    /// The root of the tree (no components).
    pub fn root() -> RelPath {
        RelPath::default()
    }

    /// Parses and validates `a/b/c`.
    pub fn parse(s: &str) -> Result<RelPath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if s.len() >= PATH_MAX {
            return Err(PathError::PathTooLong(s.len()));
        }
        let names = s.split('/').map(Name::new).collect::<Result<Vec<_>, _>>()?;
        Ok(RelPath(names.into()))
    }

    pub fn from_names(names: Vec<Name>) -> RelPath {
        RelPath(names.into())
    }

    pub fn names(&self) -> &[Name] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last component, `None` for the root.
    pub fn file_name(&self) -> Option<&Name> {
        self.0.last()
    }

    /// The containing directory, `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(RelPath(self.0[..self.0.len() - 1].into()))
        }
    }

    /// This path with `name` appended.
    pub fn join(&self, name: &Name) -> RelPath {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend_from_slice(&self.0);
        v.push(name.clone());
        RelPath(v.into())
    }

    /// True if `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0.len() >= other.0.len() && self.0[..other.0.len()] == other.0[..]
    }

    /// `a/b/c` (the root prints as the empty string).
    pub fn as_string(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                s.push('/');
            }
            s.push_str(n.as_str());
        }
        s
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// A path as an operation names it: a [`RelPath`], optionally with a trailing
/// slash (which makes the kernel require a directory at the end, following a
/// final symlink).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpPath {
    pub path: RelPath,
    pub trailing_slash: bool,
}

impl OpPath {
    /// Parses `a/b` or `a/b/`; `.` alone names the overlay root.
    pub fn parse(s: &str) -> Result<OpPath, PathError> {
        if s == "." {
            return Ok(OpPath::plain(RelPath::root()));
        }
        match s.strip_suffix('/') {
            Some(rest) if !rest.is_empty() && !rest.ends_with('/') => Ok(OpPath {
                path: RelPath::parse(rest)?,
                trailing_slash: true,
            }),
            _ => Ok(OpPath {
                path: RelPath::parse(s)?,
                trailing_slash: false,
            }),
        }
    }

    pub fn plain(path: RelPath) -> OpPath {
        OpPath {
            path,
            trailing_slash: false,
        }
    }
}

impl fmt::Display for OpPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            return f.write_str(".");
        }
        write!(
            f,
            "{}{}",
            self.path,
            if self.trailing_slash { "/" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Names order as `str` does, short or long, so paths sort and
        /// index the same as their text.
        #[test]
        fn names_order_as_str_does(a in "[a-c.é-]{1,20}", b in "[a-c.é-]{1,20}") {
            prop_assume!(Name::new(&a).is_ok() && Name::new(&b).is_ok());
            let (na, nb) = (Name::new(&a).unwrap(), Name::new(&b).unwrap());
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
            prop_assert_eq!(cmp_names(&a, &b), a.cmp(&b));
        }
    }
}
