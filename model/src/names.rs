//! Directory entry names as the model keys them: ordered bytewise, as
//! `str` and the kernel's listings in the views are, but compared inline.

use std::borrow::Borrow;
use std::cmp::Ordering;

pub(crate) use ovlcheck_case::cmp_names;

/// A directory entry name, the key of a directory's entries: a `String`
/// ordered by [`cmp_names`]. Entries are looked up by `&str`: `cmp_names`
/// orders exactly as `str` does, so both orders agree as `Borrow` requires.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct EntryName(String);

impl EntryName {
    pub fn new(name: &str) -> EntryName {
        EntryName(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for EntryName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EntryName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for EntryName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Ord for EntryName {
    fn cmp(&self, other: &EntryName) -> Ordering {
        cmp_names(&self.0, &other.0)
    }
}

impl PartialOrd for EntryName {
    fn partial_cmp(&self, other: &EntryName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Entry names sort exactly as `str` does, short or long, so every
        /// listing the model makes is in the kernel's (and the views') order.
        #[test]
        fn names_order_as_str_does(a in "[a-c./é-]{0,20}", b in "[a-c./é-]{0,20}") {
            prop_assert_eq!(cmp_names(&a, &b), a.cmp(&b));
            prop_assert_eq!(EntryName::new(&a).cmp(&EntryName::new(&b)), a.cmp(&b));
        }
    }
}
