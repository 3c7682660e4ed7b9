//! Divergence signatures: the short, stable key of a kind of disagreement
//! between the model and an implementation. Two divergences with the same
//! signature are taken to be the same bug: campaigns report one of each, and
//! a case under `corpus/known-<backend>/` names the signatures it is known
//! to show (`known BACKEND "SIGNATURE"`), so campaigns and replays can tell
//! known divergences from new ones (docs/architecture.md, "Known
//! divergences").
//!
//! The text form is what reports print and case files hold:
//!
//! - `chmod: model ok / backend EIO`: step outcomes (`ok` or an errno);
//! - `merged view: nlink+data`: the fields of the first differing path;
//! - `upper view: missing on backend` / `upper view: extra on backend`;
//! - `kernel view: mount EINVAL`: the kernel refused to mount the layers
//!   an implementation left.
//!
//! A `known` line may name a class of step outcomes with `*` for the op or
//! for either outcome (`*: model EROFS / backend *`): one behaviour of an
//! implementation that shows up in many ops, each with the errno of its
//! own checks ([`Signature::matches`]).

use crate::errno::Errno;
use crate::outcome::Outcome;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Which view a comparison was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Which {
    /// The merged tree after the case's steps.
    Merged,
    /// The raw upper layer after the case's steps.
    Upper,
    /// The merged tree after a remount.
    AfterRemount,
    /// The merged tree after a commit (upper became a lower layer).
    AfterCommit,
    /// The container layer's changeset: the tar entries a store's `Diff`
    /// wrote (docs/images.md).
    Changeset,
    /// The merged tree of the image with that changeset applied as its top
    /// layer (`ApplyDiff`), mounted with a fresh container layer.
    Exported,
    /// The layers an implementation left at the end, mounted read-only by
    /// the kernel's overlay (contract `layout`).
    Kernel,
}

impl Which {
    pub const ALL: [Which; 7] = [
        Which::Merged,
        Which::Upper,
        Which::AfterRemount,
        Which::AfterCommit,
        Which::Changeset,
        Which::Exported,
        Which::Kernel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Which::Merged => "merged",
            Which::Upper => "upper",
            Which::AfterRemount => "merged-after-remount",
            Which::AfterCommit => "merged-after-commit",
            Which::Changeset => "changeset",
            Which::Exported => "merged-exported",
            Which::Kernel => "kernel",
        }
    }

    pub fn from_name(s: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.name() == s)
    }
}

/// One compared field of a view's node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Kind,
    Mode,
    Uid,
    Gid,
    Size,
    Data,
    Target,
    Nlink,
    Mtime,
    /// The inode identity label (`=P`, `+P`): identity across copy-up.
    Ino,
    /// Which other names of the view are the same file (hard links), as
    /// a program sees it with `stat`; weaker than [`Field::Ino`].
    SameFile,
    Dev,
    /// The inode flags (`chattr`).
    Flags,
    /// An ordinary xattr, by full name.
    Xattr(String),
    /// An overlay-private xattr, by short name (`opaque`, `redirect`, ...).
    Overlay(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Field::Kind => "kind",
            Field::Mode => "mode",
            Field::Uid => "uid",
            Field::Gid => "gid",
            Field::Size => "size",
            Field::Data => "data",
            Field::Target => "target",
            Field::Nlink => "nlink",
            Field::Mtime => "mtime",
            Field::Ino => "ino",
            Field::SameFile => "same-file",
            Field::Dev => "dev",
            Field::Flags => "flags",
            Field::Xattr(k) => return write!(f, "xattr[{k}]"),
            Field::Overlay(k) => return write!(f, "overlay[{k}]"),
        };
        f.write_str(word)
    }
}

impl FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Field, String> {
        let bracketed = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(']'))
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        };
        Ok(match s {
            "kind" => Field::Kind,
            "mode" => Field::Mode,
            "uid" => Field::Uid,
            "gid" => Field::Gid,
            "size" => Field::Size,
            "data" => Field::Data,
            "target" => Field::Target,
            "nlink" => Field::Nlink,
            "mtime" => Field::Mtime,
            "ino" => Field::Ino,
            "same-file" => Field::SameFile,
            "dev" => Field::Dev,
            "flags" => Field::Flags,
            _ => {
                if let Some(k) = bracketed("xattr[") {
                    Field::Xattr(k)
                } else if let Some(k) = bracketed("overlay[") {
                    Field::Overlay(k)
                } else {
                    return Err(format!("unknown view field `{s}`"));
                }
            }
        })
    }
}

/// An outcome reduced to what a signature keeps: success or the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Ok,
    Err(Errno),
    /// `*`, in a known line only: any outcome.
    Any,
}

impl Class {
    pub fn of(o: &Outcome) -> Class {
        match o {
            Outcome::Ok(_) => Class::Ok,
            Outcome::Err(e) => Class::Err(*e),
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Class::Ok => f.write_str("ok"),
            Class::Err(e) => write!(f, "{e}"),
            Class::Any => f.write_str("*"),
        }
    }
}

impl FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> Result<Class, String> {
        match s {
            "ok" => Ok(Class::Ok),
            "*" => Ok(Class::Any),
            _ => Errno::from_name(s)
                .map(Class::Err)
                .ok_or_else(|| format!("expected `ok`, an errno name or `*`, found `{s}`")),
        }
    }
}

/// What differs first in a view.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewSig {
    /// A path the model has and the implementation lacks.
    Missing,
    /// A path the implementation has and the model lacks.
    Extra,
    /// The differing fields of the first path present on both sides.
    Fields(Vec<Field>),
}

/// The key of a divergence (see the module doc for its text form).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signature {
    /// A step's outcome: the op's keyword, the model's and the backend's.
    Outcome {
        op: String,
        model: Class,
        backend: Class,
    },
    /// A view differs.
    View { which: Which, diff: ViewSig },
    /// The kernel refused to mount the layers an implementation left.
    KernelMount { errno: Errno },
    /// The layer tar made of the container layer is not a valid OCI layer
    /// (a duplicate name, a hard link to no earlier entry, a name leaving
    /// the layer): `changeset view: invalid tar`.
    InvalidChangeset,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signature::Outcome { op, model, backend } => {
                write!(f, "{op}: model {model} / backend {backend}")
            }
            Signature::View { which, diff } => {
                write!(f, "{} view: ", which.name())?;
                match diff {
                    ViewSig::Missing => f.write_str("missing on backend"),
                    ViewSig::Extra => f.write_str("extra on backend"),
                    ViewSig::Fields(fields) => {
                        for (i, field) in fields.iter().enumerate() {
                            if i > 0 {
                                f.write_str("+")?;
                            }
                            write!(f, "{field}")?;
                        }
                        Ok(())
                    }
                }
            }
            Signature::KernelMount { errno } => write!(f, "kernel view: mount {errno}"),
            Signature::InvalidChangeset => f.write_str("changeset view: invalid tar"),
        }
    }
}

impl FromStr for Signature {
    type Err = String;
    fn from_str(s: &str) -> Result<Signature, String> {
        if let Some((head, rest)) = s.split_once(" view: ") {
            let which = Which::from_name(head).ok_or_else(|| {
                let names: Vec<&str> = Which::ALL.iter().map(|w| w.name()).collect();
                format!("unknown view `{head}`: use {}", names.join(", "))
            })?;
            if which == Which::Kernel {
                if let Some(e) = rest.strip_prefix("mount ") {
                    let errno =
                        Errno::from_name(e).ok_or_else(|| format!("unknown errno `{e}`"))?;
                    return Ok(Signature::KernelMount { errno });
                }
            }
            if which == Which::Changeset && rest == "invalid tar" {
                return Ok(Signature::InvalidChangeset);
            }
            let diff = match rest {
                "missing on backend" => ViewSig::Missing,
                "extra on backend" => ViewSig::Extra,
                _ => ViewSig::Fields(
                    rest.split('+')
                        .map(str::parse)
                        .collect::<Result<Vec<Field>, String>>()?,
                ),
            };
            return Ok(Signature::View { which, diff });
        }
        let (op, rest) = s
            .split_once(": model ")
            .ok_or("expected `OP: model A / backend B` or `VIEW view: FIELDS`")?;
        let (model, backend) = rest
            .split_once(" / backend ")
            .ok_or("expected `OP: model A / backend B`")?;
        if op != "*" && (op.is_empty() || !op.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(format!("`{op}` is not an op keyword or `*`"));
        }
        Ok(Signature::Outcome {
            op: op.to_string(),
            model: model.parse()?,
            backend: backend.parse()?,
        })
    }
}

impl Class {
    /// Whether this outcome, as a known line gives it, covers `actual`.
    fn covers(self, actual: Class) -> bool {
        self == Class::Any || self == actual
    }
}

impl Signature {
    /// Whether this signature, as a known line gives it, covers the
    /// divergence signature `actual`: the same one, or an outcome class
    /// with `*` for the op or an outcome.
    pub fn matches(&self, actual: &Signature) -> bool {
        match (self, actual) {
            (
                Signature::Outcome { op, model, backend },
                Signature::Outcome {
                    op: a_op,
                    model: a_model,
                    backend: a_backend,
                },
            ) => (op == "*" || op == a_op) && model.covers(*a_model) && backend.covers(*a_backend),
            _ => self == actual,
        }
    }
}

/// JSON carries the text form.
impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A divergence a case is known to show on one implementation: the case
/// file's `known BACKEND "SIGNATURE"` line.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Known {
    /// The backend's name (`kernel`, `fuse-overlayfs`, ...).
    pub backend: String,
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form prints and parses back to itself.
    #[test]
    fn text_round_trips() {
        let sigs = [
            Signature::Outcome {
                op: "chmod".into(),
                model: Class::Ok,
                backend: Class::Err(Errno::EIO),
            },
            Signature::View {
                which: Which::Merged,
                diff: ViewSig::Fields(vec![
                    Field::Nlink,
                    Field::Xattr("user.a".into()),
                    Field::Overlay("uuid".into()),
                    Field::SameFile,
                ]),
            },
            Signature::View {
                which: Which::AfterCommit,
                diff: ViewSig::Missing,
            },
            Signature::InvalidChangeset,
            Signature::View {
                which: Which::Kernel,
                diff: ViewSig::Extra,
            },
            Signature::KernelMount {
                errno: Errno::EINVAL,
            },
        ];
        for s in sigs {
            let text = s.to_string();
            assert_eq!(text.parse::<Signature>(), Ok(s), "{text}");
        }
        assert_eq!(
            "upper view: overlay[uuid]"
                .parse::<Signature>()
                .unwrap()
                .to_string(),
            "upper view: overlay[uuid]"
        );
    }

    /// `*` stands for any op or outcome in a known line's signature, and
    /// only there: a view signature matches itself alone.
    #[test]
    fn classes_cover_the_outcomes_they_name() {
        let sig = |s: &str| s.parse::<Signature>().unwrap();
        let class = sig("*: model EROFS / backend *");
        assert_eq!(class.to_string(), "*: model EROFS / backend *");
        assert!(class.matches(&sig("rmdir: model EROFS / backend EACCES")));
        assert!(class.matches(&sig("link: model EROFS / backend ok")));
        assert!(!class.matches(&sig("link: model ok / backend EROFS")));
        assert!(sig("link: model * / backend EIO").matches(&sig("link: model ok / backend EIO")));
        assert!(!sig("chmod: model * / backend EIO").matches(&sig("link: model ok / backend EIO")));
        let view = sig("merged view: nlink");
        assert!(view.matches(&view) && !view.matches(&sig("merged view: mode")));
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        for bad in [
            "",
            "chmod",
            "chmod: model ok / backend",
            "chmod: model maybe / backend ok",
            "Chmod: model ok / backend ok",
            "sideways view: mode",
            "merged view: colour",
            "merged view: xattr[]",
            "kernel view: mount ENOPE",
        ] {
            assert!(bad.parse::<Signature>().is_err(), "{bad:?}");
        }
    }
}
