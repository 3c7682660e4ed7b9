//! POSIX ACLs in generated cases (docs/semantics.md §1.19): ACLs in the
//! layers, and steps that set, remove and read them, create in
//! directories with a default ACL, change modes and act as users whom
//! the ACLs name.

use super::{op_path, pick, universe, USERS};
use ovlcheck_case::acl::{ACCESS, DEFAULT};
use ovlcheck_case::layer::Entry;
use ovlcheck_case::{Case, Cred, Name, Op, RelPath, Step};
use proptest::prelude::RngExt;
use proptest::test_runner::TestRng;

/// One case in this many has POSIX ACLs.
pub(super) const ACL_ODDS: u32 = 8;

/// The highest id the ACLs here name: a user namespace must map it.
pub(super) const HIGHEST_ID: u32 = 1002;

/// Access ACLs of layer entries and steps: named users and groups, a
/// group entry that shuts others out, an empty group class (mask), a
/// mask alone.
const ACCESS_ACLS: &[&str] = &[
    "u::rw-,u:1000:rw-,g::r--,m::rw-,o::---",
    "u::rwx,u:1001:r-x,g::r-x,m::r-x,o::---",
    "u::rw-,g::r--,g:1000:rw-,m::rw-,o::---",
    "u::rwx,g::---,g:5:---,m::rwx,o::r-x",
    "u::rw-,u:1000:rw-,g::---,m::---,o::r--",
    "u::rw-,g::r--,m::r--,o::r--",
];

/// Default ACLs of directories, the last one the mode's alone.
const DEFAULT_ACLS: &[&str] = &[
    "u::rwx,u:1000:rwx,g::r-x,m::rwx,o::r-x",
    "u::rwx,g::rwx,g:1000:r-x,m::r-x,o::---",
    "u::rwx,g::r-x,o::r-x",
];

/// Values only steps set: ACLs the kernel refuses (no mask, out of
/// order, an id with no mapping), the empty one (it removes), and one the
/// mode says all of.
const STEP_ACLS: &[&str] = &[
    "u::rw-,u:1000:rw-,g::r--,o::---",
    "g::r--,u::rw-,o::---",
    "u::rw-,u:4294967295:r--,g::r--,m::r--,o::---",
    "",
    "u::rwx,g::r-x,o::r-x",
];

/// Who acts: users and a group the ACLs name, and one they do not.
const ACL_CREDS: &[Cred] = &[USERS[0], USERS[1], Cred { uid: 1002, gid: 5 }];

/// Gives some directories and files of the layers ACLs and inserts up to
/// `room` steps about them.
///
/// Not on an entry whose owner idmapped layers do not map: the views are
/// walked as root, who has no capability over it, and an ACL could shut
/// root out of it, a walk the model does not predict (docs/semantics.md
/// §2).
pub(super) fn acls(rng: &mut TestRng, case: &mut Case, room: usize) {
    let profile = case.profile.clone();
    for layer in case.lowers.iter_mut().chain(case.upper.as_mut()) {
        let unmapped: Vec<RelPath> = layer
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Owner { path, uid, gid }
                    if profile.unmapped(*uid) || profile.unmapped(*gid) =>
                {
                    Some(path.clone())
                }
                _ => None,
            })
            .collect();
        let mut added = Vec::new();
        for e in &layer.entries {
            let (path, dir) = match e {
                Entry::Dir { path, .. } => (path, true),
                Entry::File { path, .. } => (path, false),
                _ => continue,
            };
            if unmapped.contains(path) {
                continue;
            }
            if dir && rng.random_ratio(1, 3) {
                let text: &&str = pick(rng, DEFAULT_ACLS);
                added.push(acl_entry(path, DEFAULT, text));
            }
            if rng.random_ratio(1, 3) {
                let text: &&str = pick(rng, ACCESS_ACLS);
                added.push(acl_entry(path, ACCESS, text));
            }
        }
        layer.entries.extend(added);
    }
    let universe = universe(&case.lowers, case.upper.as_ref());
    let mut room = room;
    while room > 0 {
        let steps = if room >= 3 && rng.random_ratio(1, 6) {
            set_gid_steps(rng, &universe)
        } else {
            vec![acl_step(rng, &universe)]
        };
        room -= steps.len();
        let at = rng.random_range(0..=case.steps.len());
        case.steps.splice(at..at, steps);
        if rng.random_ratio(1, 3) {
            break;
        }
    }
}

/// A set-gid object handed to a user outside its group, who then sets or
/// removes its access ACL: it loses set-gid (rule `acl.kill-sgid`).
fn set_gid_steps(rng: &mut TestRng, u: &[&RelPath]) -> Vec<Step> {
    let path = op_path(rng, u);
    let value = if rng.random_ratio(1, 2) {
        Some(pick(rng, ACCESS_ACLS).as_bytes().to_vec())
    } else {
        None
    };
    let user = Cred {
        uid: 1000,
        gid: 1000,
    };
    let acl_op = match value {
        Some(value) => Op::Setxattr {
            path: path.clone(),
            name: ACCESS.to_string(),
            value,
        },
        None => Op::Removexattr {
            path: path.clone(),
            name: ACCESS.to_string(),
        },
    };
    vec![
        Step::new(Op::Chown {
            path: path.clone(),
            uid: 1000,
            gid: 5,
        }),
        Step::new(Op::Chmod { path, mode: 0o2775 }),
        Step {
            op: acl_op,
            cred: Some(user),
            expect: None,
        },
    ]
}

fn acl_entry(path: &RelPath, name: &str, text: &str) -> Entry {
    Entry::Xattr {
        path: path.clone(),
        name: name.to_string(),
        value: text.as_bytes().to_vec(),
    }
}

fn acl_step(rng: &mut TestRng, u: &[&RelPath]) -> Step {
    let path = op_path(rng, u);
    let name = if rng.random_ratio(1, 2) {
        ACCESS
    } else {
        DEFAULT
    };
    let value = |rng: &mut TestRng| {
        let table = match (rng.random_ratio(1, 4), name == ACCESS) {
            (true, _) => STEP_ACLS,
            (false, true) => ACCESS_ACLS,
            (false, false) => DEFAULT_ACLS,
        };
        pick(rng, table).as_bytes().to_vec()
    };
    let new_name = |rng: &mut TestRng| {
        let mut p = path.clone();
        p.path = p
            .path
            .join(&Name::new(pick::<&str>(rng, &["n", "m"])).expect("valid"));
        p
    };
    let (op, as_user) = match rng.random_range(0..8) {
        0 | 1 => (
            Op::Setxattr {
                path,
                name: name.to_string(),
                value: value(rng),
            },
            3,
        ),
        2 => (
            Op::Removexattr {
                path,
                name: name.to_string(),
            },
            3,
        ),
        3 => (
            Op::Getxattr {
                path,
                name: name.to_string(),
            },
            4,
        ),
        4 => (
            Op::Create {
                path: new_name(rng),
                mode: *pick(rng, &[0o666, 0o640, 0o600]),
                excl: false,
                trunc: false,
            },
            3,
        ),
        5 => (
            Op::Mkdir {
                path: new_name(rng),
                mode: *pick(rng, &[0o777, 0o750]),
            },
            3,
        ),
        6 => (
            Op::Chmod {
                path,
                mode: *pick(rng, &[0o600, 0o640, 0o604, 0o755]),
            },
            3,
        ),
        _ => (
            match rng.random_range(0..3) {
                0 => Op::Read { path },
                1 => Op::Readdir { path },
                _ => Op::Write {
                    path,
                    offset: 0,
                    data: b"acl".to_vec(),
                },
            },
            1,
        ),
    };
    let cred = rng.random_ratio(1, as_user).then(|| *pick(rng, ACL_CREDS));
    Step {
        op,
        cred,
        expect: None,
    }
}
