//! The canonical printer.

use crate::case::Case;
use crate::layer::{Entry, LayerFormat, LayerSpec};
use crate::op::{Access, Op, Step};
use crate::path::OpPath;
use crate::profile::Profile;
use crate::quote::{quote, word};
use std::fmt::Write;

fn op_path(p: &OpPath) -> String {
    word(&p.to_string())
}

fn profile_line(p: &Profile) -> Option<String> {
    if let Some(name) = p.preset_name() {
        return (name != "default").then(|| format!("profile {name}"));
    }
    Some(format!("profile {}", p.options().join(" ")))
}

/// One layer entry, without indentation.
pub(crate) fn entry(e: &Entry) -> String {
    let p = word(&e.path().to_string());
    match e {
        Entry::Dir { mode, .. } => format!("dir {p} {mode:04o}"),
        Entry::File { mode, data, .. } => format!("file {p} {mode:04o} {}", quote(data)),
        Entry::Symlink { target, .. } => format!("symlink {p} {}", quote(target)),
        Entry::Hardlink { existing, .. } => {
            format!("hardlink {p} {}", word(&existing.to_string()))
        }
        Entry::Fifo { mode, .. } => format!("fifo {p} {mode:04o}"),
        Entry::Whiteout { .. } => format!("whiteout {p}"),
        Entry::Opaque { .. } => format!("opaque {p}"),
        Entry::XwhiteoutDir { .. } => format!("xwhiteouts {p}"),
        Entry::Xwhiteout { .. } => format!("xwhiteout {p}"),
        Entry::Metacopy { .. } => format!("metacopy {p}"),
        Entry::Redirect { target, .. } => format!("redirect {p} {}", quote(target.as_bytes())),
        Entry::Xattr { name, value, .. } => {
            format!("xattr {p} {} {}", word(name), quote(value))
        }
        Entry::Owner { uid, gid, .. } => format!("owner {p} {uid} {gid}"),
        Entry::Mtime { secs, .. } => format!("mtime {p} {secs}"),
        Entry::Attr { flags, .. } => format!("attr {p} {flags}"),
    }
}

/// One op, without credentials or expectation.
pub(crate) fn op(o: &Op) -> String {
    let k = o.keyword();
    match o {
        Op::Lstat { path }
        | Op::Stat { path }
        | Op::Read { path }
        | Op::Readlink { path }
        | Op::Readdir { path }
        | Op::Listxattr { path }
        | Op::Statfs { path }
        | Op::Unlink { path }
        | Op::Rmdir { path } => format!("{k} {}", op_path(path)),
        Op::Getxattr { path, name } | Op::Removexattr { path, name } => {
            format!("{k} {} {}", op_path(path), word(name))
        }
        Op::Open {
            path,
            flags,
            mode,
            fd,
        } => {
            let mut s = format!("open {}", op_path(path));
            if flags.is_plain() {
                if flags.access == Access::Rdwr {
                    s.push_str(" rdwr");
                }
                if flags.trunc {
                    s.push_str(" trunc");
                }
            } else {
                let _ = write!(s, " {}", flags.names());
                if flags.creat {
                    let _ = write!(s, " {mode:04o}");
                }
            }
            if let Some(fd) = fd {
                let _ = write!(s, " as {fd}");
            }
            s
        }
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } => {
            let mut s = format!("create {} {mode:04o}", op_path(path));
            if *excl {
                s.push_str(" excl");
            }
            if *trunc {
                s.push_str(" trunc");
            }
            s
        }
        Op::Write { path, offset, data } => {
            format!("write {} {offset} {}", op_path(path), quote(data))
        }
        Op::Truncate { path, size } => format!("truncate {} {size}", op_path(path)),
        Op::Mkdir { path, mode } | Op::Mkfifo { path, mode } | Op::Chmod { path, mode } => {
            format!("{k} {} {mode:04o}", op_path(path))
        }
        Op::Chattr { path, flags } => format!("chattr {} {flags}", op_path(path)),
        Op::Symlink { target, path } => format!("symlink {} {}", quote(target), op_path(path)),
        Op::Link { old, new } => format!("link {} {}", op_path(old), op_path(new)),
        Op::Rename { old, new, flags } => {
            let mut s = format!("rename {} {}", op_path(old), op_path(new));
            if flags.noreplace {
                s.push_str(" noreplace");
            }
            if flags.exchange {
                s.push_str(" exchange");
            }
            if flags.whiteout {
                s.push_str(" whiteout");
            }
            s
        }
        Op::Chown { path, uid, gid } => format!("chown {} {uid} {gid}", op_path(path)),
        Op::Utimes { path, mtime } => match mtime {
            Some(t) => format!("utimes {} {t}", op_path(path)),
            None => format!("utimes {} now", op_path(path)),
        },
        Op::Fstat { fd } | Op::Freaddir { fd } | Op::Fsync { fd } | Op::Close { fd } => {
            format!("{k} {fd}")
        }
        Op::Fread { fd, len } => match len {
            Some(n) => format!("fread {fd} {n}"),
            None => format!("fread {fd}"),
        },
        Op::Fwrite { fd, offset, data } => match offset {
            Some(o) => format!("fwrite {fd} {o} {}", quote(data)),
            None => format!("fwrite {fd} {}", quote(data)),
        },
        Op::Lseek { fd, offset, whence } => {
            format!("lseek {fd} {offset} {}", whence.keyword())
        }
        Op::Setxattr { path, name, value } => {
            format!("setxattr {} {} {}", op_path(path), word(name), quote(value))
        }
        Op::Remount | Op::Commit => k.to_string(),
        Op::Offline { layer, change } => match change {
            crate::OfflineChange::Remove(p) => format!("offline {layer} remove {p}"),
            crate::OfflineChange::File { path, mode, data } => {
                format!("offline {layer} file {path} {mode:04o} {}", quote(data))
            }
        },
    }
}

/// One step: `[as UID:GID] OP [=> EXPECT]`.
pub(crate) fn step(s: &Step) -> String {
    let mut out = String::new();
    if let Some(c) = s.cred {
        let _ = write!(out, "as {}:{} ", c.uid, c.gid);
    }
    out.push_str(&op(&s.op));
    if let Some(e) = &s.expect {
        let _ = write!(out, " => {e}");
    }
    out
}

fn layer(out: &mut String, header: &str, spec: &LayerSpec) {
    out.push_str(header);
    match spec.format {
        LayerFormat::Overlay => {}
        LayerFormat::Oci => out.push_str(" oci"),
        LayerFormat::Escaped => out.push_str(" escaped"),
    }
    out.push('\n');
    for e in &spec.entries {
        out.push_str("  ");
        out.push_str(&entry(e));
        out.push('\n');
    }
}

pub(crate) fn print(case: &Case) -> String {
    let mut out = String::new();
    if let Some(line) = profile_line(&case.profile) {
        out.push_str(&line);
        out.push('\n');
    }
    for k in &case.known {
        let sig = k.signature.to_string();
        out.push_str(&format!(
            "known {} {}\n",
            word(&k.backend),
            quote(sig.as_bytes())
        ));
    }
    for l in &case.data {
        layer(&mut out, "data", l);
    }
    for l in &case.lowers {
        layer(&mut out, "lower", l);
    }
    if let Some(u) = &case.upper {
        layer(&mut out, "upper", u);
    }
    out.push_str("ops\n");
    for s in &case.steps {
        out.push_str("  ");
        out.push_str(&step(s));
        out.push('\n');
    }
    out
}
