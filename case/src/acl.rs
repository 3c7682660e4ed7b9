//! POSIX ACLs (acl(5)): the `system.posix_acl_access` and
//! `system.posix_acl_default` xattrs, and what the kernel does with them
//! (fs/posix_acl.c).
//!
//! Case files, views and the model spell an ACL in a short text form, one
//! comma-separated entry per ACL entry, in the order the kernel keeps them:
//! `u::rw-,u:1000:r--,g::r--,m::r--,o::---` (`u`ser, `g`roup, `m`ask,
//! `o`ther; an id names a user or group entry, none the owner's or owning
//! group's). The empty text is an ACL with no entries, which removes an
//! ACL when set. The driver writes and reads the kernel's binary form
//! (include/uapi/linux/posix_acl_xattr.h: a version-2 header, then 8 bytes
//! per entry), so nothing between them depends on the acl tools.

use std::borrow::Cow;
use std::fmt;

/// The access ACL's xattr name (posix_acl_xattr.h).
pub const ACCESS: &str = "system.posix_acl_access";
/// The default ACL's xattr name (posix_acl_xattr.h).
pub const DEFAULT: &str = "system.posix_acl_default";

/// Whether `name` is one of the two ACL xattrs.
pub fn is_acl_name(name: &str) -> bool {
    name == ACCESS || name == DEFAULT
}

/// The value to hand the kernel for the xattr `name`: an ACL's text
/// encoded, any other value as it is.
pub fn to_kernel<'v>(name: &[u8], value: &'v [u8]) -> Cow<'v, [u8]> {
    let text = std::str::from_utf8(value).ok();
    match (is_acl_bytes(name), text.map(Acl::parse)) {
        (true, Some(Ok(acl))) => Cow::Owned(acl.to_xattr()),
        _ => Cow::Borrowed(value),
    }
}

/// The value the kernel gave for the xattr `name` as views and results
/// show it: an ACL as text, any other value (or an ACL that does not
/// decode) as it is.
pub fn from_kernel(name: &[u8], value: Vec<u8>) -> Vec<u8> {
    if !is_acl_bytes(name) {
        return value;
    }
    match Acl::from_xattr(&value) {
        Ok(acl) => acl.to_string().into_bytes(),
        Err(_) => value,
    }
}

fn is_acl_bytes(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(is_acl_name)
}

/// The tag of an ACL entry; a user or group entry carries its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    UserObj,
    User(u32),
    GroupObj,
    Group(u32),
    Mask,
    Other,
}

/// One ACL entry: a tag and its `rwx` bits (4, 2, 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AclEntry {
    pub tag: Tag,
    pub perm: u32,
}

/// An ACL: its entries in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Acl {
    pub entries: Vec<AclEntry>,
}

/// `POSIX_ACL_XATTR_VERSION`.
const XATTR_VERSION: u32 = 2;
/// `ACL_UNDEFINED_ID`: the id of an entry that names nobody.
const UNDEFINED_ID: u32 = u32::MAX;

/// The on-disk tag numbers (posix_acl.h: ACL_USER_OBJ ... ACL_OTHER).
const TAGS: [(u16, char); 6] = [
    (0x01, 'u'),
    (0x02, 'u'),
    (0x04, 'g'),
    (0x08, 'g'),
    (0x10, 'm'),
    (0x20, 'o'),
];

impl Tag {
    fn code(self) -> u16 {
        match self {
            Tag::UserObj => 0x01,
            Tag::User(_) => 0x02,
            Tag::GroupObj => 0x04,
            Tag::Group(_) => 0x08,
            Tag::Mask => 0x10,
            Tag::Other => 0x20,
        }
    }

    fn id(self) -> Option<u32> {
        match self {
            Tag::User(id) | Tag::Group(id) => Some(id),
            _ => None,
        }
    }

    fn letter(self) -> char {
        TAGS.iter()
            .find(|(c, _)| *c == self.code())
            .map(|(_, l)| *l)
            .expect("every tag has a letter")
    }
}

impl Acl {
    /// Parses the short text form (module docs).
    pub fn parse(text: &str) -> Result<Acl, String> {
        if text.is_empty() {
            return Ok(Acl::default());
        }
        let entries = text.split(',').map(parse_entry).collect::<Result<_, _>>()?;
        Ok(Acl { entries })
    }

    /// The binary xattr value (posix_acl_to_xattr).
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut out = XATTR_VERSION.to_le_bytes().to_vec();
        for e in &self.entries {
            out.extend_from_slice(&e.tag.code().to_le_bytes());
            out.extend_from_slice(&(e.perm as u16).to_le_bytes());
            out.extend_from_slice(&e.tag.id().unwrap_or(UNDEFINED_ID).to_le_bytes());
        }
        out
    }

    /// Reads a binary xattr value as the kernel returns it.
    pub fn from_xattr(value: &[u8]) -> Result<Acl, String> {
        let (head, body) = value
            .split_first_chunk::<4>()
            .ok_or("an ACL xattr shorter than its header")?;
        if u32::from_le_bytes(*head) != XATTR_VERSION || body.len() % 8 != 0 {
            return Err(format!("not a version-2 ACL xattr ({} bytes)", value.len()));
        }
        let entries = body
            .chunks_exact(8)
            .map(|c| {
                let code = u16::from_le_bytes([c[0], c[1]]);
                let perm = u32::from(u16::from_le_bytes([c[2], c[3]]));
                let id = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                let tag = match code {
                    0x01 => Tag::UserObj,
                    0x02 => Tag::User(id),
                    0x04 => Tag::GroupObj,
                    0x08 => Tag::Group(id),
                    0x10 => Tag::Mask,
                    0x20 => Tag::Other,
                    _ => return Err(format!("unknown ACL tag {code:#x}")),
                };
                Ok(AclEntry { tag, perm })
            })
            .collect::<Result<_, _>>()?;
        Ok(Acl { entries })
    }

    /// The ids the user and group entries name.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter_map(|e| e.tag.id())
    }

    /// posix_acl_valid: the owner's entry, users, the owning group's
    /// entry, groups, a mask (needed when a user or group entry is there),
    /// others, in that order, each perm within `rwx`.
    pub fn valid(&self) -> bool {
        #[derive(PartialEq)]
        enum State {
            UserObj,
            User,
            Group,
            Other,
            Done,
        }
        let mut state = State::UserObj;
        let mut needs_mask = false;
        for e in &self.entries {
            if e.perm & !7 != 0 {
                return false;
            }
            state = match (e.tag, &state) {
                (Tag::UserObj, State::UserObj) => State::User,
                (Tag::User(_), State::User) => {
                    needs_mask = true;
                    State::User
                }
                (Tag::GroupObj, State::User) => State::Group,
                (Tag::Group(_), State::Group) => {
                    needs_mask = true;
                    State::Group
                }
                (Tag::Mask, State::Group) => State::Other,
                (Tag::Other, State::Other) => State::Done,
                (Tag::Other, State::Group) if !needs_mask => State::Done,
                _ => return false,
            };
        }
        state == State::Done
    }

    /// posix_acl_equiv_mode: the permission bits of `mode` the ACL stands
    /// for (owner, mask or owning group, other), and whether the mode
    /// alone says all the ACL does (then the kernel keeps no ACL).
    pub fn equiv_mode(&self, mode: u32) -> (u32, bool) {
        let mut bits = 0;
        let mut equiv = true;
        for e in &self.entries {
            match e.tag {
                Tag::UserObj => bits |= (e.perm & 7) << 6,
                Tag::GroupObj => bits |= (e.perm & 7) << 3,
                Tag::Other => bits |= e.perm & 7,
                Tag::Mask => {
                    bits = (bits & !0o070) | ((e.perm & 7) << 3);
                    equiv = false;
                }
                Tag::User(_) | Tag::Group(_) => equiv = false,
            }
        }
        ((mode & !0o777) | bits, equiv)
    }

    /// __posix_acl_chmod: the owner's, the mask's (else the owning
    /// group's) and the others' entries take the bits of `mode`.
    pub fn chmod(&mut self, mode: u32) {
        let has_mask = self.entries.iter().any(|e| e.tag == Tag::Mask);
        for e in &mut self.entries {
            match e.tag {
                Tag::UserObj => e.perm = (mode >> 6) & 7,
                Tag::Mask => e.perm = (mode >> 3) & 7,
                Tag::GroupObj if !has_mask => e.perm = (mode >> 3) & 7,
                Tag::Other => e.perm = mode & 7,
                _ => {}
            }
        }
    }

    /// posix_acl_create_masq: a default ACL made the access ACL of a new
    /// inode created with `mode`: the owner's, the mask's (else the owning
    /// group's) and the others' entries lose the bits `mode` lacks, and
    /// `mode` the bits they lack. Whether the result says more than the
    /// mode (else no access ACL is kept).
    pub fn create_masq(&mut self, mode: &mut u32) -> bool {
        let mut m = *mode;
        let mut not_equiv = false;
        let has_mask = self.entries.iter().any(|e| e.tag == Tag::Mask);
        for e in &mut self.entries {
            match e.tag {
                Tag::UserObj => {
                    e.perm &= (m >> 6) & 7;
                    m &= (e.perm << 6) | !0o700;
                }
                Tag::User(_) | Tag::Group(_) => not_equiv = true,
                Tag::Other => {
                    e.perm &= m & 7;
                    m &= e.perm | !0o007;
                }
                Tag::Mask => not_equiv = true,
                Tag::GroupObj => {}
            }
        }
        for e in &mut self.entries {
            if e.tag == Tag::Mask || (e.tag == Tag::GroupObj && !has_mask) {
                e.perm &= (m >> 3) & 7;
                m &= (e.perm << 3) | !0o070;
            }
        }
        *mode = (*mode & !0o777) | (m & 0o777);
        not_equiv
    }

    /// posix_acl_permission for a caller who does not own the inode (the
    /// owner is decided by the mode bits first): the first user entry that
    /// names `uid`, else the group entries of the groups `in_group`
    /// accepts (any that grants `want`), each limited by the mask; else
    /// the others' entry, unless a group entry matched.
    pub fn permits(&self, uid: u32, in_group: impl Fn(u32) -> bool, want: u32) -> bool {
        let mask = self
            .entries
            .iter()
            .find(|e| e.tag == Tag::Mask)
            .map_or(7, |e| e.perm);
        let mut found = false;
        for e in &self.entries {
            match e.tag {
                Tag::User(id) if id == uid => return e.perm & mask & want == want,
                Tag::GroupObj | Tag::Group(_) if in_group_of(e.tag, &in_group) => {
                    found = true;
                    if e.perm & want == want {
                        return e.perm & mask & want == want;
                    }
                }
                Tag::Other => return !found && e.perm & want == want,
                _ => {}
            }
        }
        false
    }
}

/// Whether a group entry's group is one of the caller's; the owning
/// group's entry passes its id as [`u32::MAX`] and `in_group` decides it.
fn in_group_of(tag: Tag, in_group: &impl Fn(u32) -> bool) -> bool {
    match tag {
        Tag::GroupObj => in_group(UNDEFINED_ID),
        Tag::Group(id) => in_group(id),
        _ => false,
    }
}

fn parse_entry(text: &str) -> Result<AclEntry, String> {
    let bad = || {
        format!(
            "`{text}` is not an ACL entry (`u::rw-`, `u:1000:r--`, `g::r-x`, `m::rwx`, `o::---`)"
        )
    };
    let mut parts = text.split(':');
    let (Some(tag), Some(id), Some(perm), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let id = match id {
        "" => None,
        digits if digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u32>().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    let tag = match (tag, id) {
        ("u", None) => Tag::UserObj,
        ("u", Some(id)) => Tag::User(id),
        ("g", None) => Tag::GroupObj,
        ("g", Some(id)) => Tag::Group(id),
        ("m", None) => Tag::Mask,
        ("o", None) => Tag::Other,
        _ => return Err(bad()),
    };
    let perm = parse_perm(perm).ok_or_else(bad)?;
    Ok(AclEntry { tag, perm })
}

fn parse_perm(text: &str) -> Option<u32> {
    let b = text.as_bytes();
    if b.len() != 3 {
        return None;
    }
    let mut perm = 0;
    for (c, (letter, bit)) in b.iter().zip([(b'r', 4), (b'w', 2), (b'x', 1)]) {
        match *c {
            c if c == letter => perm |= bit,
            b'-' => {}
            _ => return None,
        }
    }
    Some(perm)
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let id = e.tag.id().map(|id| id.to_string()).unwrap_or_default();
            let p = e.perm;
            let bit = |b: u32, c: char| if p & b != 0 { c } else { '-' };
            write!(
                f,
                "{}:{id}:{}{}{}",
                e.tag.letter(),
                bit(4, 'r'),
                bit(2, 'w'),
                bit(1, 'x')
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        Acl::parse(text).unwrap()
    }

    /// The binary form of `setfacl -m u:1000:rw` on a 0640 file, read with
    /// `getfattr -e hex` on 6.18.
    #[test]
    fn text_and_binary_round_trip() {
        let a = acl("u::rw-,u:1000:rw-,g::r--,m::rw-,o::---");
        let hex = "0200000001000600ffffffff02000600e803000004000400ffffffff10000600ffffffff20000000ffffffff";
        let bin: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(a.to_xattr(), bin);
        assert_eq!(Acl::from_xattr(&bin).unwrap(), a);
        assert_eq!(a.to_string(), "u::rw-,u:1000:rw-,g::r--,m::rw-,o::---");
        assert_eq!(Acl::parse("").unwrap().to_xattr(), vec![2, 0, 0, 0]);
    }

    #[test]
    fn kernel_values_round_trip_and_other_values_pass() {
        let name = ACCESS.as_bytes();
        let text = b"u::rw-,u:1000:r--,g::r--,m::r--,o::---";
        let bin = to_kernel(name, text);
        assert_eq!(bin.len(), 4 + 8 * 5);
        assert_eq!(from_kernel(name, bin.into_owned()), text.to_vec());
        assert_eq!(to_kernel(b"user.k", text).as_ref(), text);
        assert_eq!(from_kernel(name, b"\x01".to_vec()), b"\x01".to_vec());
    }

    #[test]
    fn bad_text_is_refused() {
        for t in [
            "u:rw-", "x::rw-", "m:5:rw-", "u::rwz", "u::rw", "u:-1:r--", "u::rw-,",
        ] {
            assert!(Acl::parse(t).is_err(), "{t}");
        }
    }

    /// The validity verdicts the kernel gave setxattr on 6.18 (EINVAL or
    /// not): a missing mask, an unsorted ACL, no owner entry.
    #[test]
    fn validity_follows_posix_acl_valid() {
        assert!(acl("u::rw-,g::r--,o::---").valid());
        assert!(acl("u::rw-,u:1000:rw-,u:1000:r--,g::r--,m::rw-,o::---").valid());
        assert!(acl("u::rw-,g::r--,m::r--,o::---").valid());
        assert!(!acl("u::rw-,u:1000:rw-,g::r--,o::---").valid());
        assert!(!acl("u::rw-,g::r--,u:1000:rw-,m::rw-,o::---").valid());
        assert!(!acl("g::r--,o::---").valid());
        assert!(!acl("").valid());
    }

    /// `setfacl -d -m u:1000:rx,g::rwx,o::r` then a file created 0640 and
    /// a directory 0700 (observed on 6.18).
    #[test]
    fn create_masq_as_observed() {
        let d = acl("u::rwx,u:1000:r-x,g::rwx,m::rwx,o::r--");
        let (mut f, mut mode) = (d.clone(), 0o100640);
        assert!(f.create_masq(&mut mode));
        assert_eq!(mode, 0o100640);
        assert_eq!(f.to_string(), "u::rw-,u:1000:r-x,g::rwx,m::r--,o::---");
        let (mut s, mut mode) = (d, 0o040700);
        s.create_masq(&mut mode);
        assert_eq!(mode, 0o040700);
        assert_eq!(s.to_string(), "u::rwx,u:1000:r-x,g::rwx,m::---,o::---");
    }

    /// chmod 0600 of a file with `u:1000:rw` (observed on 6.18).
    #[test]
    fn chmod_rewrites_the_base_entries() {
        let mut a = acl("u::rw-,u:1000:rw-,g::r--,m::rw-,o::---");
        a.chmod(0o600);
        assert_eq!(a.to_string(), "u::rw-,u:1000:rw-,g::r--,m::---,o::---");
        let mut b = acl("u::rw-,g::r--,o::---");
        b.chmod(0o754);
        assert_eq!(b.to_string(), "u::rwx,g::r-x,o::r--");
        assert_eq!(
            acl("u::rw-,g::r--,o::r--").equiv_mode(0o2000),
            (0o2644, true)
        );
        assert_eq!(
            acl("u::rw-,g::rwx,m::r--,o::---").equiv_mode(0),
            (0o640, false)
        );
    }

    #[test]
    fn permission_follows_posix_acl_permission() {
        let a = acl("u::rw-,u:1000:rw-,g::r--,g:5:rwx,m::r-x,o::---");
        let none = |_: u32| false;
        assert!(a.permits(1000, none, 4));
        assert!(!a.permits(1000, none, 2), "masked");
        assert!(!a.permits(1001, none, 4), "other");
        assert!(a.permits(1001, |g| g == 5, 1));
        assert!(!a.permits(1001, |g| g == 5 || g == u32::MAX, 2));
        let b = acl("u::rw-,g::---,g:5:---,m::rwx,o::r--");
        assert!(
            !b.permits(1001, |g| g == 5, 4),
            "a matching group entry shuts out others"
        );
        assert!(b.permits(1001, none, 4));
    }
}
