//! POSIX ACL xattr values between the case's text form and the kernel's
//! binary form (ovlcheck_case::acl): layers and steps write the binary
//! form, views and results read it back as text.

use ovlcheck_case::acl::{is_acl_name, Acl};
use std::borrow::Cow;

/// The value to hand the kernel for the xattr `name`: an ACL's text
/// encoded, any other value as it is.
pub fn to_kernel<'v>(name: &[u8], value: &'v [u8]) -> Cow<'v, [u8]> {
    let text = std::str::from_utf8(value).ok();
    match (is_acl(name), text.map(Acl::parse)) {
        (true, Some(Ok(acl))) => Cow::Owned(acl.to_xattr()),
        _ => Cow::Borrowed(value),
    }
}

/// The value the kernel gave for the xattr `name` as views and results
/// show it: an ACL as text, any other value (or an ACL that does not
/// decode) as it is.
pub fn from_kernel(name: &[u8], value: Vec<u8>) -> Vec<u8> {
    if !is_acl(name) {
        return value;
    }
    match Acl::from_xattr(&value) {
        Ok(acl) => acl.to_string().into_bytes(),
        Err(_) => value,
    }
}

fn is_acl(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(is_acl_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_round_trip_and_other_values_pass() {
        let name = b"system.posix_acl_access";
        let text = b"u::rw-,u:1000:r--,g::r--,m::r--,o::---";
        let bin = to_kernel(name, text);
        assert_eq!(bin.len(), 4 + 8 * 5);
        assert_eq!(from_kernel(name, bin.into_owned()), text.to_vec());
        assert_eq!(to_kernel(b"user.k", text).as_ref(), text);
        assert_eq!(from_kernel(name, b"\x01".to_vec()), b"\x01".to_vec());
    }
}
