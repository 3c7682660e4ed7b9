//! A canonical 64-bit hash of a model state: FNV-1a over a canonical
//! encoding of every raw layer (walked by name, inodes named by their first
//! path so inode numbering does not matter), the index and the mount
//! snapshot. Deterministic across runs and machines.

use crate::fs::{Ident, Ino, Kind, Layer, LayerId};
use crate::Model;
use std::collections::BTreeMap;

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u64(&mut self, v: u64) {
        for x in v.to_le_bytes() {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// The first path (in name order) of every inode of a layer.
fn first_paths(layer: &Layer) -> BTreeMap<Ino, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(layer.root, String::new())];
    while let Some((ino, path)) = stack.pop() {
        if out.contains_key(&ino) {
            continue;
        }
        out.insert(ino, path.clone());
        if let Some(e) = layer.get(ino).entries() {
            for (name, child) in e.iter().rev() {
                stack.push((*child, format!("{path}/{name}")));
            }
        }
    }
    out
}

impl Model {
    /// Equal raw states (layers, index, mount snapshot) give equal hashes.
    pub fn canonical_hash(&self) -> u64 {
        let mut h = Fnv::new();
        h.str(&format!("{:?}", self.feat));
        h.u64(self.data_layers as u64);
        let lower_paths: Vec<BTreeMap<Ino, String>> = self.lowers.iter().map(first_paths).collect();
        let upper_paths = self.upper.as_ref().map(first_paths).unwrap_or_default();
        let name_of = |id: LayerId, ino: Ino| -> String {
            match id {
                LayerId::Lower(i) => format!(
                    "L{i}:{}",
                    lower_paths[i].get(&ino).cloned().unwrap_or_default()
                ),
                LayerId::Upper => {
                    format!("U:{}", upper_paths.get(&ino).cloned().unwrap_or_default())
                }
            }
        };
        for (i, l) in self.lowers.iter().enumerate() {
            h.u64(i as u64);
            hash_layer(&mut h, l, &lower_paths[i], &|r| {
                name_of(LayerId::Lower(r.layer as usize), r.ino)
            });
        }
        if let Some(u) = &self.upper {
            h.str("upper");
            hash_layer(&mut h, u, &upper_paths, &|r| {
                name_of(LayerId::Lower(r.layer as usize), r.ino)
            });
        }
        for (o, u) in self.index.iter() {
            h.str(&name_of(LayerId::Lower(o.layer as usize), o.ino));
            h.str(&name_of(LayerId::Upper, *u));
        }
        for (id, path) in self.snapshot_map().iter() {
            let key = match id {
                Ident::Lower { layer, ino } => name_of(LayerId::Lower(*layer), *ino),
                Ident::Upper(ino) => name_of(LayerId::Upper, *ino),
            };
            h.str(&key);
            h.str(path);
        }
        for (u, o) in self.mem_lower.iter() {
            h.str(&name_of(LayerId::Upper, *u));
            h.str(&name_of(LayerId::Lower(o.layer as usize), o.ino));
        }
        for p in self.fresh_links.iter() {
            h.str("fresh-link");
            h.str(p);
        }
        for (p, u) in self.pending_links.iter() {
            h.str("pending-link");
            h.str(p);
            h.str(&name_of(LayerId::Upper, *u));
        }
        // A mount not walked yet lists the directories it marked impure
        // as they were (module `readdir`).
        if !self.walked && !self.snapshot.marked_impure.is_empty() {
            h.str("unwalked");
        }
        // Open fds, and the contents of held inodes no name reaches.
        for (name, f) in self.fds.files.iter() {
            h.str(name);
            h.str(&format!("{f:?}"));
        }
        for (id, held) in self.fds.held.iter() {
            h.u64(u64::from(*id));
            h.str(&format!("{held:?}"));
            if let Some(u) = held.dentry.upper {
                let inode = self.upper_inode(u);
                if inode.links == 0 {
                    h.str(&format!("{inode:?}"));
                }
            }
        }
        h.0
    }
}

fn hash_layer(
    h: &mut Fnv,
    layer: &Layer,
    paths: &BTreeMap<Ino, String>,
    origin_name: &dyn Fn(crate::fs::LowerRef) -> String,
) {
    let mut stack = vec![(layer.root, String::new())];
    while let Some((ino, path)) = stack.pop() {
        h.str(&path);
        let first = &paths[&ino];
        if *first != path {
            h.str("link");
            h.str(first);
            continue;
        }
        let i = layer.get(ino);
        h.u64(u64::from(i.mode) | u64::from(i.uid) << 16 | u64::from(i.gid) << 40);
        let clock = u64::MAX - u64::from(!i.clock_here);
        h.u64(i.mtime.map_or(clock, |t| t as u64));
        h.u64(u64::from(i.index_link) | u64::from(i.union_nlink.unwrap_or(u32::MAX)) << 1);
        for (k, v) in i.xattrs.iter() {
            h.str(k);
            h.bytes(v);
        }
        if !(i.flags.is_empty() && i.prot.is_empty()) {
            h.str("flags");
            h.u64(u64::from(i.flags.to_fs()) | u64::from(i.prot.to_fs()) << 8);
        }
        let mut ovl = i.ovl.clone();
        let origin = ovl.origin.take();
        h.str(&format!("{ovl:?}"));
        match origin {
            Some(Some(r)) => h.str(&origin_name(r)),
            Some(None) => h.str("root-origin"),
            None => h.str("-"),
        }
        match &i.kind {
            Kind::Dir(e) => {
                h.str("dir");
                for (name, child) in e.iter().rev() {
                    stack.push((*child, format!("{path}/{name}")));
                }
            }
            Kind::File(d) => {
                h.str("file");
                h.bytes(d);
            }
            Kind::Symlink(t) => {
                h.str("symlink");
                h.bytes(t);
            }
            Kind::Fifo => h.str("fifo"),
            Kind::Whiteout => h.str("whiteout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{model, run};

    #[test]
    fn equal_states_hash_equal_whatever_the_inode_numbers() {
        let mut a = model("lower\n  file f 0644 \"f\"\n");
        let mut b = a.clone();
        assert_eq!(run(&mut a, "create x 0644"), "ok");
        assert_eq!(run(&mut a, "create y 0644"), "ok");
        assert_eq!(run(&mut b, "create y 0644"), "ok");
        assert_eq!(run(&mut b, "create x 0644"), "ok");
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        assert_eq!(run(&mut b, "write x 0 \"1\""), "ok");
        assert_ne!(a.canonical_hash(), b.canonical_hash());
    }
}
