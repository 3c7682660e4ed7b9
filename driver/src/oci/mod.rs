//! OCI layer tars as an overlay2 store makes and takes them
//! (docs/images.md; the OCI image spec's layer.md): the store's `Diff` of a
//! container layer ([`write_native`], [`write_naive`]), its `ApplyDiff`
//! of a tar into a new layer ([`apply`]), and the tar's entries read back
//! as a changeset [`View`](ovlcheck_case::View) ([`read`], in the
//! representation of [`ovlcheck_case::oci`]).
//!
//! The tars are what moby writes: a header per entry, directories named
//! `NAME/`, hard links as link entries naming the first name written, and
//! xattrs as PAX records `SCHILY.xattr.NAME` (layer.md, "Extended
//! Attributes"). Names and symlink targets that do not fit the header go
//! in PAX `path` / `linkpath` records, and an mtime before the epoch in a
//! PAX `mtime` record, so every byte of them comes back as written.

mod apply;
mod diff;
mod read;

pub use apply::apply;
pub use diff::{write_naive, write_native, write_native_unmarked};
pub use read::read;

use std::io;

/// The PAX record key prefix of an xattr (the form GNU tar, Go's
/// archive/tar and the tar crate read).
const PAX_XATTR: &str = "SCHILY.xattr.";

/// Owner, permission bits and mtime of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    /// Permission bits (07777).
    mode: u32,
    uid: u32,
    gid: u32,
    /// Seconds since the epoch.
    mtime: i64,
}

impl Meta {
    fn of(st: &crate::sys::Stat) -> Meta {
        Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
        }
    }
}

/// What an entry holds.
#[derive(Clone, Copy, Debug)]
enum Body<'a> {
    Dir,
    File(&'a [u8]),
    Symlink(&'a [u8]),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// A hard link to the earlier entry of this name.
    Link(&'a [u8]),
}

/// An xattr: name and value.
type Xattr = (Vec<u8>, Vec<u8>);

/// A tar being written in memory.
struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
}

impl TarWriter {
    fn new() -> TarWriter {
        TarWriter {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends entry `name` (a layer path without `/` at either end).
    fn entry(&mut self, name: &[u8], meta: Meta, body: Body, xattrs: &[Xattr]) -> io::Result<()> {
        use tar::EntryType;
        let mut header = tar::Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut full_name = name.to_vec();
        if matches!(body, Body::Dir) {
            full_name.push(b'/');
        }
        if !set_field(&mut header.as_old_mut().name, &full_name) {
            pax.push(("path".into(), full_name.clone()));
            let cut = full_name.len().min(100);
            set_field(&mut header.as_old_mut().name, &full_name[..cut]);
        }
        let (kind, data): (EntryType, &[u8]) = match body {
            Body::Dir => (EntryType::Directory, b""),
            Body::File(data) => (EntryType::Regular, data),
            Body::Symlink(_) => (EntryType::Symlink, b""),
            Body::Char(..) => (EntryType::Char, b""),
            Body::Block(..) => (EntryType::Block, b""),
            Body::Fifo => (EntryType::Fifo, b""),
            Body::Link(_) => (EntryType::Link, b""),
        };
        header.set_entry_type(kind);
        if let Body::Symlink(target) | Body::Link(target) = body {
            if !set_field(&mut header.as_old_mut().linkname, target) {
                pax.push(("linkpath".into(), target.to_vec()));
            }
        }
        let (major, minor) = match body {
            Body::Char(major, minor) | Body::Block(major, minor) => (major, minor),
            _ => (0, 0),
        };
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
        header.set_mode(meta.mode & 0o7777);
        header.set_uid(meta.uid.into());
        header.set_gid(meta.gid.into());
        match u64::try_from(meta.mtime) {
            Ok(secs) => header.set_mtime(secs),
            Err(_) => {
                pax.push(("mtime".into(), meta.mtime.to_string().into_bytes()));
                header.set_mtime(0);
            }
        }
        header.set_size(data.len() as u64);
        for (k, v) in xattrs {
            let key = format!("{PAX_XATTR}{}", String::from_utf8_lossy(k));
            pax.push((key, v.clone()));
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        header.set_cksum();
        self.builder.append(&header, data)
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        self.builder.into_inner()
    }
}

/// What an entry's PAX records say besides its name and link target.
struct Pax {
    /// The `mtime` record, in whole seconds.
    mtime: Option<i64>,
    /// The `SCHILY.xattr.*` records, in tar order.
    xattrs: Vec<Xattr>,
}

impl Pax {
    fn of<R: io::Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Pax> {
        let mut pax = Pax {
            mtime: None,
            xattrs: Vec::new(),
        };
        let Some(records) = entry.pax_extensions()? else {
            return Ok(pax);
        };
        for r in records {
            let r = r?;
            if let Some(name) = r.key_bytes().strip_prefix(PAX_XATTR.as_bytes()) {
                pax.xattrs.push((name.to_vec(), r.value_bytes().to_vec()));
            } else if r.key_bytes() == b"mtime" {
                let bad = || invalid(format!("PAX mtime {:?}", r.value_bytes()));
                let v = r.value().map_err(|_| bad())?;
                let secs = v.split('.').next().unwrap_or(v);
                pax.mtime = Some(secs.parse().map_err(|_| bad())?);
            }
        }
        Ok(pax)
    }

    /// The entry's mtime: the PAX record, else the header's.
    fn mtime(&self, header: &tar::Header) -> io::Result<i64> {
        match self.mtime {
            Some(t) => Ok(t),
            None => {
                i64::try_from(header.mtime()?).map_err(|_| invalid("mtime out of range".into()))
            }
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Copies `value` into a NUL-padded header field when it fits (a field
/// may be full, without a NUL); `false` when it does not fit or holds a
/// NUL.
fn set_field(field: &mut [u8], value: &[u8]) -> bool {
    if value.len() > field.len() || value.contains(&0) {
        return false;
    }
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
    true
}

/// The layer path an entry name stands for (a leading `./` and a
/// trailing `/` dropped), or why it cannot be one: empty (the layer
/// root), absolute, or with an empty, `.` or `..` component (layer.md:
/// entries are relative paths within the layer; a `..` escapes it).
fn entry_path(raw: &[u8]) -> Result<&[u8], String> {
    let show = || String::from_utf8_lossy(raw).into_owned();
    let mut name = raw.strip_prefix(b"./").unwrap_or(raw);
    if let Some(n) = name.strip_suffix(b"/") {
        name = n;
    }
    if name.is_empty() {
        return Err(format!("entry {:?}: names the layer root", show()));
    }
    if name.starts_with(b"/") {
        return Err(format!("entry {:?}: absolute name", show()));
    }
    if name
        .split(|b| *b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(format!(
            "entry {:?}: not a plain relative path (empty, `.` or `..` component)",
            show()
        ));
    }
    Ok(name)
}

/// `(parent, base)` of a layer path (`parent` empty at the top).
fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn errno_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// An I/O error that names what was done to which path.
fn annotate(what: &str, path: &[u8]) -> impl FnOnce(io::Error) -> io::Error {
    let what = format!("{what} {}", String::from_utf8_lossy(path));
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(entry_path(b"a/b/").unwrap(), b"a/b");
        assert_eq!(entry_path(b"./a").unwrap(), b"a");
        for bad in [&b"/a"[..], b"a/../b", b"..", b"a//b", b"a/./b", b"./", b""] {
            assert!(
                entry_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(split_path(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_path(b"c"), (&b""[..], &b"c"[..]));
    }
}
