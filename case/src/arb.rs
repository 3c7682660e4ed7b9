//! proptest strategies for cases, steps, outcomes and views (feature
//! `arbitrary`), for the property tests: the text format's round trip and
//! robustness and the serde round trip (this crate's tests), and the laws of
//! the model (`model/tests/properties.rs`, and `model/examples/gen.rs`,
//! which writes such cases out as files).
//!
//! Each part of a value is drawn on its own over the whole vocabulary: any
//! preset profile, layers (overlay or OCI) of any entries over a small or a
//! wild name alphabet, any op with any credentials, random pins, any errno.
//! Every value is well formed: layers pass [`LayerSpec::objects`] and every
//! [`Case`] prints and parses back to itself. Beyond that a case need not
//! make sense: its layers are unrelated to each other, its ops often name
//! paths that exist nowhere, its credentials and pins are random. That
//! breadth is what the format and serde tests need, and the model's laws
//! must hold on any case.
//!
//! Campaigns use another generator, `ovlcheck_harness::gen`, which makes
//! meaningful cases instead: correlated layers, ops mostly on paths that
//! exist, no pins, drawn straight from a seeded RNG for speed and shrunk
//! with delta debugging (docs/testing.md, "Generation").

use crate::case::Case;
use crate::errno::Errno;
use crate::iflags::InodeFlags;
use crate::layer::{Entry, LayerFormat, LayerSpec};
use crate::oci::{opaque_name, whiteout_name};
use crate::op::{Access, Cred, Op, OpenFlags, RenameFlags, Step, Whence};
use crate::outcome::{FileKind, Fsid, Outcome, StatInfo, Value};
use crate::path::{Name, OpPath, RelPath};
use crate::profile::{Profile, PRESETS};
use crate::view::{DevClass, Node, NodeKind, View};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

/// The default small name alphabet: few names, so ops collide.
const NAMES: &[&str] = &["a", "b", "c", "d"];

fn nm(s: &str) -> Name {
    Name::new(s).unwrap_or_else(|_| unreachable!("arb name `{s}` is valid"))
}

/// A name from [`NAMES`].
fn name() -> impl Strategy<Value = Name> {
    select(NAMES).prop_map(nm)
}

/// Any valid name, biased toward ones the text format must quote or escape
/// (spaces, quotes, `#`, `=>`, brackets, control characters, non-ASCII).
fn wild_name() -> impl Strategy<Value = Name> {
    prop_oneof![
        2 => name().prop_map(|n| n.to_string()),
        1 => "[a-z0-9._-]{1,12}",
        2 => "[ a-z\"#=>\\[\\]{},\\\\\t\n\u{7f}é😀]{1,8}",
        1 => "\\PC{1,6}",
    ]
    .prop_filter_map("not a valid name", |s: String| Name::new(&s).ok())
}

/// A path of 1..=`max_depth` components drawn from `names`.
fn rel_path_from(
    names: impl Strategy<Value = Name>,
    max_depth: usize,
) -> impl Strategy<Value = RelPath> {
    vec(names, 1..=max_depth.max(1)).prop_map(RelPath::from_names)
}

/// A path over [`NAMES`], at most 3 deep.
fn rel_path() -> impl Strategy<Value = RelPath> {
    rel_path_from(name(), 3)
}

/// Every path over `names` up to `max_depth` components, shallow first: a
/// finite universe for [`op`], [`entry`] and [`layer_spec`].
fn all_paths(names: &[&str], max_depth: usize) -> Vec<RelPath> {
    let mut out = Vec::new();
    let mut level = vec![RelPath::root()];
    for _ in 0..max_depth {
        let mut next = Vec::new();
        for p in &level {
            for n in names {
                next.push(p.join(&nm(n)));
            }
        }
        out.extend(next.iter().cloned());
        level = next;
    }
    out
}

/// The default path universe: the names `a` to `d`, up to two deep.
pub fn default_paths() -> Vec<RelPath> {
    all_paths(NAMES, 2)
}

fn pick(paths: &[RelPath]) -> BoxedStrategy<RelPath> {
    if paths.is_empty() {
        Just(RelPath::from_names(vec![nm("a")])).boxed()
    } else {
        select(paths.to_vec()).boxed()
    }
}

/// A path from `paths`, with a trailing `/` one time in eight.
fn op_path(paths: Vec<RelPath>) -> impl Strategy<Value = OpPath> {
    (pick(&paths), prop::bool::weighted(0.125)).prop_map(|(path, trailing_slash)| OpPath {
        path,
        trailing_slash,
    })
}

/// A permission mode: usually a common one, sometimes any of 0..=07777.
fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => select(vec![0o755u32, 0o644, 0o700, 0o600, 0o777, 0o1777, 0o4755, 0]),
        1 => 0u32..=0o7777,
    ]
}

/// A uid or gid: mostly 0 or 1000.
fn id() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 2 => Just(1000u32), 1 => any::<u32>()]
}

/// A timestamp in seconds.
fn secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => select(vec![0i64, 1_600_000_000, 1_700_000_000]),
        1 => any::<i64>(),
    ]
}

/// File contents or xattr values: short text or arbitrary bytes.
fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[a-z]{0,6}".prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..12),
    ]
}

/// A symlink target as a layer may hold it: non-empty, no NUL.
fn target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => rel_path().prop_map(|p| p.to_string().into_bytes()),
        1 => "/[a-z]{1,3}(/[a-z]{1,3})?".prop_map(String::into_bytes),
        1 => "\\.\\./[a-z]{1,3}".prop_map(String::into_bytes),
        1 => vec(1u8..=255, 1..10),
    ]
}

/// A redirect target: relative (a name) or absolute (`/a/b`).
fn redirect_target() -> impl Strategy<Value = String> {
    prop_oneof![
        name().prop_map(|n| n.to_string()),
        rel_path().prop_map(|p| format!("/{p}")),
    ]
}

/// An ordinary xattr name a layer may hold.
fn layer_xattr_name() -> impl Strategy<Value = String> {
    select(vec!["user.a", "user.b", "trusted.t"]).prop_map(String::from)
}

/// An xattr name an op may use, including overlay-private and invalid ones.
fn op_xattr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => layer_xattr_name(),
        1 => select(vec![
            "trusted.overlay.opaque",
            "user.overlay.redirect",
            "security.x",
            "nonamespace",
        ])
        .prop_map(String::from),
    ]
}

/// One layer entry on a path from `paths` (not necessarily valid in context).
fn entry(paths: Vec<RelPath>) -> impl Strategy<Value = Entry> {
    let p = pick(&paths);
    let arms: Vec<(u32, BoxedStrategy<Entry>)> = vec![
        (
            4,
            (p.clone(), mode())
                .prop_map(|(path, mode)| Entry::Dir { path, mode })
                .boxed(),
        ),
        (
            4,
            (p.clone(), mode(), data())
                .prop_map(|(path, mode, data)| Entry::File { path, mode, data })
                .boxed(),
        ),
        (
            1,
            (p.clone(), target())
                .prop_map(|(path, target)| Entry::Symlink { path, target })
                .boxed(),
        ),
        (
            1,
            (p.clone(), p.clone())
                .prop_map(|(path, existing)| Entry::Hardlink { path, existing })
                .boxed(),
        ),
        (
            1,
            (p.clone(), mode())
                .prop_map(|(path, mode)| Entry::Fifo { path, mode })
                .boxed(),
        ),
        (
            2,
            p.clone().prop_map(|path| Entry::Whiteout { path }).boxed(),
        ),
        (1, p.clone().prop_map(|path| Entry::Opaque { path }).boxed()),
        (
            1,
            p.clone()
                .prop_map(|path| Entry::XwhiteoutDir { path })
                .boxed(),
        ),
        (
            1,
            p.clone().prop_map(|path| Entry::Xwhiteout { path }).boxed(),
        ),
        (
            1,
            p.clone().prop_map(|path| Entry::Metacopy { path }).boxed(),
        ),
        (
            1,
            (p.clone(), redirect_target())
                .prop_map(|(path, target)| Entry::Redirect { path, target })
                .boxed(),
        ),
        (
            1,
            (p.clone(), layer_xattr_name(), data())
                .prop_map(|(path, name, value)| Entry::Xattr { path, name, value })
                .boxed(),
        ),
        (
            1,
            (p.clone(), id(), id())
                .prop_map(|(path, uid, gid)| Entry::Owner { path, uid, gid })
                .boxed(),
        ),
        (
            1,
            (p.clone(), secs())
                .prop_map(|(path, secs)| Entry::Mtime { path, secs })
                .boxed(),
        ),
        (
            1,
            // No immutable or append-only flags: an upper layer cannot
            // hold them (the parser refuses them there).
            (p, select(vec!["d", "A", "dA"]))
                .prop_map(|(path, f)| Entry::Attr {
                    path,
                    flags: InodeFlags::parse(f).expect("flags"),
                })
                .boxed(),
        ),
    ];
    Union::new_weighted(arms)
}

/// `e` as an OCI changeset writes it: a whiteout or an opaque marker as its
/// empty `.wh.` file, any other entry as it is (the overlay-only markers
/// are then invalid, and dropped like any invalid candidate).
fn oci_form(e: Entry) -> Entry {
    let marker = match &e {
        Entry::Whiteout { path } => whiteout_name(&path.to_string()),
        Entry::Opaque { path } => opaque_name(&path.to_string()),
        _ => return e,
    };
    match RelPath::parse(&marker) {
        Ok(path) => Entry::File {
            path,
            mode: 0o644,
            data: Vec::new(),
        },
        // A name too long for the prefix: invalid, so dropped.
        Err(_) => e,
    }
}

/// A layer of up to `max_entries` entries over `paths` that passes
/// [`LayerSpec::objects`]: candidate entries that would make it invalid are
/// dropped. One layer in four is an OCI changeset.
pub fn layer_spec(paths: Vec<RelPath>, max_entries: usize) -> impl Strategy<Value = LayerSpec> {
    (
        prop::bool::weighted(0.25),
        vec(entry(paths), 0..=max_entries),
    )
        .prop_map(|(oci, cands)| {
            let mut spec = LayerSpec::default();
            if oci {
                spec.format = LayerFormat::Oci;
            }
            for e in cands {
                spec.entries.push(if oci { oci_form(e) } else { e });
                if spec.objects().is_err() {
                    spec.entries.pop();
                }
            }
            spec
        })
}

/// Any errno that prints and parses back to itself: a named one, or an
/// unnamed positive number.
fn errno() -> impl Strategy<Value = Errno> {
    prop_oneof![
        8 => select(Errno::NAMED),
        1 => (1i32..4096).prop_filter_map("named", |n| match Errno::from_code(n) {
            e @ Errno::Other(_) => Some(e),
            _ => None,
        }),
    ]
}

/// Any file kind.
fn file_kind() -> impl Strategy<Value = FileKind> {
    select(vec![
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::Fifo,
        FileKind::Char,
        FileKind::Other,
    ])
}

/// Stat fields.
fn stat_info() -> impl Strategy<Value = StatInfo> {
    (
        file_kind(),
        0u32..=0o7777,
        id(),
        id(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(kind, mode, uid, gid, size, nlink)| StatInfo {
            kind,
            mode,
            uid,
            gid,
            size,
            nlink,
        })
}

/// Any value.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Unit),
        data().prop_map(Value::Bytes),
        vec(
            prop_oneof![3 => select(NAMES).prop_map(String::from), 1 => any::<String>()],
            0..4
        )
        .prop_map(Value::Names),
        stat_info().prop_map(Value::Stat),
        select(&Fsid::ALL[..]).prop_map(Value::Fsid),
    ]
}

/// Any outcome.
pub fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        value().prop_map(Outcome::Ok),
        errno().prop_map(Outcome::Err)
    ]
}

/// Credentials: usually none (root), sometimes an unprivileged user.
fn cred() -> impl Strategy<Value = Option<Cred>> {
    prop_oneof![
        4 => Just(None),
        1 => (id(), id()).prop_map(|(uid, gid)| Some(Cred { uid, gid })),
    ]
}

/// One op over `paths`.
fn op(paths: Vec<RelPath>) -> impl Strategy<Value = Op> {
    let p = op_path(paths).boxed();
    let arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (2, p.clone().prop_map(|path| Op::Lstat { path }).boxed()),
        (2, p.clone().prop_map(|path| Op::Stat { path }).boxed()),
        (2, p.clone().prop_map(|path| Op::Read { path }).boxed()),
        (1, p.clone().prop_map(|path| Op::Readlink { path }).boxed()),
        (2, p.clone().prop_map(|path| Op::Readdir { path }).boxed()),
        (
            1,
            (p.clone(), op_xattr_name())
                .prop_map(|(path, name)| Op::Getxattr { path, name })
                .boxed(),
        ),
        (1, p.clone().prop_map(|path| Op::Listxattr { path }).boxed()),
        (1, p.clone().prop_map(|path| Op::Statfs { path }).boxed()),
        (
            2,
            (p.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(path, write, trunc)| Op::Open {
                    path,
                    flags: OpenFlags::plain(write, trunc),
                    mode: 0,
                    fd: None,
                })
                .boxed(),
        ),
        (
            3,
            (p.clone(), open_flags(), mode(), option::of(fd_name()))
                .prop_map(|(path, flags, mode, fd)| Op::Open {
                    path,
                    flags,
                    mode: if flags.creat { mode } else { 0 },
                    fd,
                })
                .boxed(),
        ),
        (
            3,
            (p.clone(), mode(), any::<bool>(), any::<bool>())
                .prop_map(|(path, mode, excl, trunc)| Op::Create {
                    path,
                    mode,
                    excl,
                    trunc,
                })
                .boxed(),
        ),
        (
            3,
            (p.clone(), 0u64..8, data())
                .prop_map(|(path, offset, data)| Op::Write { path, offset, data })
                .boxed(),
        ),
        (
            2,
            (p.clone(), 0u64..8)
                .prop_map(|(path, size)| Op::Truncate { path, size })
                .boxed(),
        ),
        (
            3,
            (p.clone(), mode())
                .prop_map(|(path, mode)| Op::Mkdir { path, mode })
                .boxed(),
        ),
        (
            1,
            (p.clone(), mode())
                .prop_map(|(path, mode)| Op::Mkfifo { path, mode })
                .boxed(),
        ),
        (
            1,
            (prop_oneof![4 => target(), 1 => Just(Vec::new())], p.clone())
                .prop_map(|(target, path)| Op::Symlink { target, path })
                .boxed(),
        ),
        (3, p.clone().prop_map(|path| Op::Unlink { path }).boxed()),
        (3, p.clone().prop_map(|path| Op::Rmdir { path }).boxed()),
        (
            1,
            (p.clone(), p.clone())
                .prop_map(|(old, new)| Op::Link { old, new })
                .boxed(),
        ),
        (
            3,
            (p.clone(), p.clone(), any::<[bool; 3]>())
                .prop_map(|(old, new, [noreplace, exchange, whiteout])| Op::Rename {
                    old,
                    new,
                    flags: RenameFlags {
                        noreplace,
                        exchange,
                        whiteout,
                    },
                })
                .boxed(),
        ),
        (
            1,
            (p.clone(), mode())
                .prop_map(|(path, mode)| Op::Chmod { path, mode })
                .boxed(),
        ),
        (
            1,
            (p.clone(), inode_flags())
                .prop_map(|(path, flags)| Op::Chattr { path, flags })
                .boxed(),
        ),
        (
            1,
            (p.clone(), id(), id())
                .prop_map(|(path, uid, gid)| Op::Chown { path, uid, gid })
                .boxed(),
        ),
        (
            1,
            (p.clone(), option::weighted(0.8, secs()))
                .prop_map(|(path, mtime)| Op::Utimes { path, mtime })
                .boxed(),
        ),
        (
            1,
            (p.clone(), op_xattr_name(), data())
                .prop_map(|(path, name, value)| Op::Setxattr { path, name, value })
                .boxed(),
        ),
        (
            1,
            (p, op_xattr_name())
                .prop_map(|(path, name)| Op::Removexattr { path, name })
                .boxed(),
        ),
        (1, fd_name().prop_map(|fd| Op::Fstat { fd }).boxed()),
        (
            2,
            (fd_name(), option::of(0u64..8))
                .prop_map(|(fd, len)| Op::Fread { fd, len })
                .boxed(),
        ),
        (1, fd_name().prop_map(|fd| Op::Freaddir { fd }).boxed()),
        (
            1,
            (
                fd_name(),
                -8i64..8,
                prop_oneof![Just(Whence::Set), Just(Whence::Cur), Just(Whence::End)],
            )
                .prop_map(|(fd, offset, whence)| Op::Lseek { fd, offset, whence })
                .boxed(),
        ),
        (1, fd_name().prop_map(|fd| Op::Fsync { fd }).boxed()),
        (
            2,
            (fd_name(), option::of(0u64..8), data())
                .prop_map(|(fd, offset, data)| Op::Fwrite { fd, offset, data })
                .boxed(),
        ),
        (1, fd_name().prop_map(|fd| Op::Close { fd }).boxed()),
        (1, Just(Op::Remount).boxed()),
        (1, Just(Op::Commit).boxed()),
    ];
    Union::new_weighted(arms)
}

/// A few fd names, so that opens and fd ops meet.
fn fd_name() -> impl Strategy<Value = String> {
    select(&["f", "g", "fd_2"][..]).prop_map(str::to_string)
}

/// Any combination of `open(2)` flags.
fn open_flags() -> impl Strategy<Value = OpenFlags> {
    (
        prop_oneof![
            Just(Access::Rdonly),
            Just(Access::Wronly),
            Just(Access::Rdwr)
        ],
        any::<[bool; 7]>(),
    )
        .prop_map(
            |(access, [creat, excl, trunc, append, directory, nofollow, path])| OpenFlags {
                access,
                creat,
                excl,
                trunc,
                append,
                directory,
                nofollow,
                path,
            },
        )
}

/// One step over `paths`: an op, maybe credentials, maybe a pinned outcome.
pub fn step(paths: Vec<RelPath>) -> impl Strategy<Value = Step> {
    (op(paths), cred(), option::weighted(0.3, outcome())).prop_map(|(op, cred, expect)| Step {
        op,
        cred,
        expect,
    })
}

/// A profile from [`PRESETS`].
fn profile() -> impl Strategy<Value = Profile> {
    select(PRESETS).prop_map(|p| Profile::preset(p.name).unwrap_or_default())
}

/// A case over `paths`: 1..=`max_lowers` lowers and maybe an upper, each of
/// at most `max_entries` entries, and at most `max_ops` steps.
fn case_with(
    paths: Vec<RelPath>,
    max_lowers: usize,
    max_entries: usize,
    max_ops: usize,
) -> impl Strategy<Value = Case> {
    (
        profile(),
        vec(
            layer_spec(paths.clone(), max_entries),
            1..=max_lowers.max(1),
        ),
        option::of(layer_spec(paths.clone(), max_entries)),
        vec(step(paths.clone()), 0..=max_ops),
        // A data-only layer in one case in four.
        vec(layer_spec(paths, max_entries), 0..=1).prop_map(|d| {
            let keep = |l: &LayerSpec| {
                l.format == LayerFormat::Overlay && l.entries.len().is_multiple_of(4)
            };
            if d.first().is_some_and(keep) {
                d
            } else {
                Vec::new()
            }
        }),
    )
        .prop_map(|(profile, lowers, upper, steps, data)| Case {
            profile,
            known: Vec::new(),
            data,
            lowers,
            upper,
            steps,
        })
}

/// A small case over [`default_paths`].
pub fn case() -> impl Strategy<Value = Case> {
    case_with(default_paths(), 3, 8, 12)
}

/// A case over a few paths of wild names (spaces, quotes, `#`, `=>`,
/// control characters, non-ASCII): stresses quoting and escaping.
pub fn wild_case() -> impl Strategy<Value = Case> {
    vec(rel_path_from(wild_name(), 3), 1..6).prop_flat_map(|paths| case_with(paths, 2, 8, 10))
}

/// Any node kind.
fn node_kind() -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        select(vec![
            NodeKind::Dir,
            NodeKind::File,
            NodeKind::Symlink,
            NodeKind::Fifo,
            NodeKind::Whiteout,
            NodeKind::Other,
        ]),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| NodeKind::Char(a, b)),
    ]
}

/// Any node (fields not necessarily consistent with each other).
fn node() -> impl Strategy<Value = Node> {
    (
        (node_kind(), 0u32..=0o7777, id(), id(), 0u64..64),
        (
            option::of(data()),
            option::of(target()),
            option::of(1u32..4),
            option::of(secs()),
        ),
        (
            btree_map(layer_xattr_name(), data(), 0..3),
            btree_map(
                select(vec!["opaque", "redirect", "origin"]).prop_map(String::from),
                "[a-z/]{1,4}",
                0..2,
            ),
            option::of("[=+][a-z]{1,3}"),
            option::of(select(vec![DevClass::Overlay, DevClass::Other])),
            inode_flags(),
        ),
    )
        .prop_map(
            |(
                (kind, mode, uid, gid, size),
                (data, target, nlink, mtime),
                (xattrs, overlay, ino, dev, flags),
            )| {
                Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    size,
                    data,
                    target,
                    nlink,
                    mtime,
                    xattrs,
                    overlay,
                    ino,
                    dev,
                    flags,
                }
            },
        )
}

/// Any set of inode flags.
fn inode_flags() -> impl Strategy<Value = InodeFlags> {
    select(InodeFlags::all().collect::<Vec<_>>())
}

/// A view over [`default_paths`] (plus the root).
pub fn view() -> impl Strategy<Value = View> {
    let paths: Vec<String> = std::iter::once(String::new())
        .chain(default_paths().iter().map(|p| p.to_string()))
        .collect();
    btree_map(select(paths), node(), 0..8).prop_map(|nodes| View { nodes })
}
