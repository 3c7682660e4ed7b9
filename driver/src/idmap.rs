//! The id maps of a user-namespace worker (user_namespaces(7)), made the
//! way rootless container engines make theirs.
//!
//! - A root harness maps a large range of its own choosing
//!   ([`ID_BASE`], [`ID_RANGE`]).
//! - A user with subordinate ids (`/etc/subuid` and `/etc/subgid`, given
//!   by `useradd` or `usermod --add-subuids`) maps its own id to 0 and its
//!   first subordinate range above it, with the setuid helpers
//!   `newuidmap`/`newgidmap` (Debian's `uidmap`), as rootless podman does.
//! - Any other user can map only its own id, to 0 (and must deny
//!   `setgroups`).
//!
//! Inside ids `[0, mapped)` are mapped; a case that needs another id
//! (a layer's owner, a step's credentials, a `chown` target) cannot be
//! run there and is refused with the reason
//! ([`crate::support::unmapped_id`]).

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Inside ids `[0, ID_RANGE)` map to outside `[ID_BASE, ID_BASE + ID_RANGE)`
/// in a user namespace made by a root harness (an unprivileged namespace,
/// like rootless containers' subordinate ids).
pub const ID_BASE: u32 = 1_000_000_000;
/// See [`ID_BASE`].
pub const ID_RANGE: u32 = 1_000_000_000;

/// How this process maps the ids of the user namespaces it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdMap {
    /// Root: inside `[0, ID_RANGE)` to outside `[ID_BASE, ..)`.
    Root,
    /// Own ids to 0, then a subordinate range from `/etc/subuid` and
    /// `/etc/subgid`: inside `[1, 1 + count)` to outside `[start, ..)`.
    Subordinate {
        uid: u32,
        gid: u32,
        /// First subordinate uid and gid.
        start: (u32, u32),
        /// Ids mapped above 0: the smaller of the two ranges.
        count: u32,
    },
    /// Own ids to 0 and nothing else (no subordinate range, or no
    /// `newuidmap`/`newgidmap`): `why` says which.
    Single { uid: u32, gid: u32, why: String },
}

impl IdMap {
    /// This process's map, found once.
    pub fn current() -> &'static IdMap {
        static MAP: OnceLock<IdMap> = OnceLock::new();
        MAP.get_or_init(IdMap::find)
    }

    fn find() -> IdMap {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        if uid == 0 {
            return IdMap::Root;
        }
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        let range = |file: &str, id: u32| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            subordinate_range(&text, name.as_deref(), id)
        };
        let helpers = ["newuidmap", "newgidmap"]
            .iter()
            .all(|h| on_path(h).is_some());
        match (range("/etc/subuid", uid), range("/etc/subgid", gid)) {
            (Some(u), Some(g)) if helpers => IdMap::Subordinate {
                uid,
                gid,
                start: (u.0, g.0),
                count: u.1.min(g.1),
            },
            (Some(_), Some(_)) => IdMap::Single {
                uid,
                gid,
                why: "newuidmap/newgidmap are not installed (Debian: apt-get install uidmap)"
                    .into(),
            },
            _ => IdMap::Single {
                uid,
                gid,
                why: format!(
                    "user {} has no subordinate ids in /etc/subuid and /etc/subgid \
                     (usermod --add-subuids/--add-subgids)",
                    name.unwrap_or_else(|| uid.to_string())
                ),
            },
        }
    }

    /// Inside ids `[0, mapped)` are mapped, for users and groups alike.
    pub fn mapped(&self) -> u32 {
        match self {
            IdMap::Root => ID_RANGE,
            IdMap::Subordinate { count, .. } => count.saturating_add(1),
            IdMap::Single { .. } => 1,
        }
    }

    /// One line for reports: what a user-namespace worker maps.
    pub fn describe(&self) -> String {
        match self {
            IdMap::Root => format!("ids 0-{} mapped from {ID_BASE}", ID_RANGE - 1),
            IdMap::Subordinate {
                uid, start, count, ..
            } => format!(
                "id 0 mapped to {uid}, ids 1-{count} to subordinate ids from {} (newuidmap)",
                start.0
            ),
            IdMap::Single { uid, why, .. } => format!("only id 0 mapped (to {uid}): {why}"),
        }
    }

    /// Writes the maps of process `pid`, a child in a new user namespace.
    pub fn write(&self, pid: i32) -> io::Result<()> {
        let proc = Path::new("/proc").join(pid.to_string());
        match self {
            IdMap::Root => {
                let map = format!("0 {ID_BASE} {ID_RANGE}\n");
                std::fs::write(proc.join("uid_map"), &map)?;
                std::fs::write(proc.join("gid_map"), &map)
            }
            IdMap::Subordinate {
                uid,
                gid,
                start,
                count,
            } => {
                helper("newuidmap", pid, *uid, start.0, *count)?;
                helper("newgidmap", pid, *gid, start.1, *count)
            }
            IdMap::Single { uid, gid, .. } => {
                std::fs::write(proc.join("setgroups"), "deny")?;
                std::fs::write(proc.join("uid_map"), format!("0 {uid} 1\n"))?;
                std::fs::write(proc.join("gid_map"), format!("0 {gid} 1\n"))
            }
        }
    }
}

/// `newuidmap PID 0 ID 1 1 START COUNT` (or `newgidmap`).
fn helper(name: &str, pid: i32, own: u32, start: u32, count: u32) -> io::Result<()> {
    let (own, start, count) = (own.to_string(), start.to_string(), count.to_string());
    let out = Command::new(name)
        .arg(pid.to_string())
        .args(["0", &own, "1", "1", &start, &count])
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{name}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The first range (`start`, `count`) of `/etc/subuid`-format `text`
/// (`NAME_OR_ID:START:COUNT` lines, subuid(5)) for user `name` or `id`.
pub fn subordinate_range(text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let mut f = line.trim().splitn(3, ':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let mine = Some(who) == name || who.parse::<u32>().ok() == Some(id);
        let range = (start.parse().ok()?, count.parse().ok()?);
        (mine && range.1 > 0).then_some(range)
    })
}

/// The ranges a `uid_map` or `gid_map` (`INSIDE OUTSIDE COUNT` lines,
/// user_namespaces(7)) maps, as `(inside, count)` in inside order.
pub fn map_ranges(map: &str) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = map
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|w| w.parse::<u64>().ok());
            let (inside, _, count) = (f.next()??, f.next()??, f.next()??);
            Some((inside, count))
        })
        .collect();
    ranges.sort_unstable();
    ranges
}

/// How many ids from 0 on `ranges` ([`map_ranges`]) maps without a gap.
pub fn mapped_from_zero(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().fold(0, |end, &(inside, count)| {
        if inside <= end {
            end.max(inside + count)
        } else {
            end
        }
    })
}

/// Where `name` is on `$PATH`.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_are_found_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            subordinate_range(text, Some("alice"), 7),
            Some((100000, 65536))
        );
        assert_eq!(
            subordinate_range(text, Some("carol"), 1001),
            Some((200000, 1000))
        );
        // An empty range maps nothing.
        assert_eq!(subordinate_range(text, Some("bob"), 9), None);
        assert_eq!(subordinate_range("garbage\n", Some("alice"), 0), None);
    }

    #[test]
    fn mapped_ids_from_zero_are_read_from_a_map() {
        let mapped = |map: &str| mapped_from_zero(&map_ranges(map));
        assert_eq!(mapped("         0          0 4294967295\n"), 4294967295);
        assert_eq!(mapped("0 1001 1\n1 100000 65536\n"), 65537);
        assert_eq!(mapped("1 100000 65536\n0 1001 1\n"), 65537);
        assert_eq!(mapped("1 100000 65536\n"), 0);
        assert_eq!(mapped(""), 0);
        assert_eq!(
            map_ranges("1 100000 65536\n0 1001 1\n"),
            [(0, 1), (1, 65536)]
        );
    }

    #[test]
    fn the_mapped_ids_start_at_0() {
        assert_eq!(IdMap::Root.mapped(), ID_RANGE);
        let sub = IdMap::Subordinate {
            uid: 1000,
            gid: 1000,
            start: (100000, 100000),
            count: 65536,
        };
        assert_eq!(sub.mapped(), 65537);
        let single = IdMap::Single {
            uid: 1000,
            gid: 1000,
            why: String::new(),
        };
        assert_eq!(single.mapped(), 1);
    }
}
