//! Inode flags (ioctl_iflags(2), what `chattr` sets and `lsattr` shows)
//! that tmpfs keeps: immutable (`i`), append-only (`a`), no-dump (`d`) and
//! no-atime (`A`). overlayfs copies them up as overlayfs.rst does not say
//! but copy_up.c (`ovl_copy_fileattr`) does: `A` on the upper inode,
//! `i` and `a` in `overlay.protattr`, `d` not at all (docs/semantics.md
//! §1.17).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A set of inode flags, written as lsattr's letters in lsattr's order
/// (`iadA`), `-` for none.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct InodeFlags(u8);

/// Each flag: its letter, its bit here, its `FS_*_FL` value.
const TABLE: [(char, u8, u32); 4] = [
    ('i', 1, 0x10),
    ('a', 2, 0x20),
    ('d', 4, 0x40),
    ('A', 8, 0x80),
];

impl InodeFlags {
    pub const NONE: InodeFlags = InodeFlags(0);
    /// `FS_IMMUTABLE_FL`: no write, attribute change, link or removal.
    pub const IMMUTABLE: InodeFlags = InodeFlags(1);
    /// `FS_APPEND_FL`: writes only with O_APPEND, no removal or link.
    pub const APPEND: InodeFlags = InodeFlags(2);
    /// `FS_NODUMP_FL`.
    pub const NODUMP: InodeFlags = InodeFlags(4);
    /// `FS_NOATIME_FL`.
    pub const NOATIME: InodeFlags = InodeFlags(8);
    /// The flags only CAP_LINUX_IMMUTABLE may change (fileattr_set_prepare),
    /// which overlayfs keeps in `overlay.protattr` on the upper inode
    /// (`OVL_PROT_FS_FLAGS_MASK`).
    pub const PROTECTED: InodeFlags = InodeFlags(1 | 2);
    /// The flags a new tmpfs inode takes from its directory
    /// (`SHMEM_FL_INHERITED`).
    pub const INHERITED: InodeFlags = InodeFlags(4 | 8);
    /// The flags copy-up sets on the upper inode (`OVL_COPY_FS_FLAGS_MASK`
    /// is sync and noatime; tmpfs has no sync flag).
    pub const COPIED: InodeFlags = InodeFlags(8);

    /// `-` or distinct letters among `iadA`.
    pub fn parse(word: &str) -> Result<InodeFlags, String> {
        if word == "-" {
            return Ok(InodeFlags::NONE);
        }
        let mut flags = InodeFlags::NONE;
        for ch in word.chars() {
            let Some(&(_, bit, _)) = TABLE.iter().find(|(c, _, _)| *c == ch) else {
                return Err(format!(
                    "`{ch}` is not an inode flag tmpfs keeps (i, a, d or A; `-` for none)"
                ));
            };
            if flags.0 & bit != 0 {
                return Err(format!("inode flag `{ch}` given twice"));
            }
            flags.0 |= bit;
        }
        if flags.is_empty() {
            return Err("no inode flags: write `-` for none".to_string());
        }
        Ok(flags)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: InodeFlags) -> bool {
        self.0 & other.0 == other.0 && !other.is_empty()
    }

    /// Whether any flag of `other` is set.
    pub fn intersects(self, other: InodeFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn union(self, other: InodeFlags) -> InodeFlags {
        InodeFlags(self.0 | other.0)
    }

    pub fn intersection(self, other: InodeFlags) -> InodeFlags {
        InodeFlags(self.0 & other.0)
    }

    pub fn without(self, other: InodeFlags) -> InodeFlags {
        InodeFlags(self.0 & !other.0)
    }

    /// The `FS_*_FL` word of FS_IOC_SETFLAGS.
    pub fn to_fs(self) -> u32 {
        TABLE
            .iter()
            .filter(|(_, bit, _)| self.0 & bit != 0)
            .fold(0, |w, (_, _, fs)| w | fs)
    }

    /// Every `FS_*_FL` bit these flags can name: what a `chattr` op sets
    /// exactly; the bits outside it are the layer filesystem's own.
    pub fn fs_mask() -> u32 {
        TABLE.iter().fold(0, |w, (_, _, fs)| w | fs)
    }

    /// The flags of an FS_IOC_GETFLAGS word; others are dropped.
    pub fn from_fs(word: u32) -> InodeFlags {
        InodeFlags(
            TABLE
                .iter()
                .filter(|(_, _, fs)| word & fs != 0)
                .fold(0, |b, (_, bit, _)| b | bit),
        )
    }

    /// The value overlayfs writes to `overlay.protattr` for the protected
    /// flags among these (`ovl_set_protattr`: `a` before `i`).
    pub fn protattr_value(self) -> String {
        let mut v = String::new();
        if self.intersects(InodeFlags::APPEND) {
            v.push('a');
        }
        if self.intersects(InodeFlags::IMMUTABLE) {
            v.push('i');
        }
        v
    }

    /// Every set of flags, for test strategies.
    pub fn all() -> impl Iterator<Item = InodeFlags> {
        (0..16).map(InodeFlags)
    }
}

impl fmt::Display for InodeFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (ch, bit, _) in TABLE {
            if self.0 & bit != 0 {
                write!(f, "{ch}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip_in_lsattr_order() {
        for f in InodeFlags::all() {
            assert_eq!(InodeFlags::parse(&f.to_string()), Ok(f));
            assert_eq!(InodeFlags::from_fs(f.to_fs()), f);
        }
        assert_eq!(InodeFlags::parse("Ai").unwrap().to_string(), "iA");
        assert_eq!(InodeFlags::parse("ia").unwrap().protattr_value(), "ai");
        assert!(InodeFlags::parse("ii").is_err());
        assert!(InodeFlags::parse("S").is_err());
        assert!(InodeFlags::parse("").is_err());
    }
}
