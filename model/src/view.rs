//! Views: the merged tree as users see it, and raw layers as on disk.

use crate::features::InoMode;
use crate::fs::{Ident, Ino, Inode, Kind, Layer, LayerId, LowerRef};
use crate::lookup::Dentry;
use crate::names::cmp_names;
use crate::resolve::push_name;
use crate::rules::Rule;
use crate::Model;
use ovlcheck_case::{DevClass, FileKind, InodeFlags, Node, NodeKind, StatInfo, View};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Model {
    /// The lower an upper non-directory at merged `path` is known to come
    /// from, as the overlay inode sees it. Normally its origin xattr (or, for
    /// objects copied up without one, the in-memory lower). With userxattr
    /// the origin xattr is never used by a lookup in the user namespace
    /// (observed on 6.18: after a remount st_ino is the upper's and listing
    /// a directory clears its stale `impure`); only the copied-up dentry,
    /// cached since before its copy-up in this mount, keeps its lower, and
    /// names made by `link` are fresh (`Model::fresh_links`).
    pub(crate) fn known_origin(
        &self,
        path: &str,
        upper: Ino,
        xattr: Option<LowerRef>,
    ) -> Option<LowerRef> {
        let xattr = xattr.filter(|&r| {
            let decoded = self.decodes_origin(r);
            if !decoded {
                self.hit(self.undecoded_origin_rule(r));
            }
            decoded
        });
        xattr
            .or_else(|| self.mem_lower.get(&upper).copied())
            .filter(|_| !self.fresh_links.contains(path))
    }

    /// The st_ino identity of a merged non-directory (inode.c:
    /// ovl_getattr): an upper object keeps the st_ino of the lower its
    /// overlay inode is hashed by ([`Model::hashed_lower`]).
    pub(crate) fn ident(&self, path: &str, d: &Dentry) -> Ident {
        match d.upper {
            Some(u) => match self.hashed_lower(|| path.to_string(), d) {
                Some(o) => {
                    self.hit(Rule::StatOriginIno);
                    lower_ident(o)
                }
                None => Ident::Upper(u),
            },
            None => lower_ident(d.lowers[0]),
        }
    }

    /// Visits every positive merged path (root `""` first), in sorted
    /// order, with its dentry; `phantom` gets each *phantom* with `None`: a
    /// name readdir lists but whose lookup is negative (a raw whiteout in a
    /// directory read straight from one layer, see
    /// [`Model::dir_is_real`]; the driver's walk shows it as a whiteout
    /// node with mode 0 and owner 0:0), and each name readdir lists but
    /// whose lookup fails with the errno (a redirect under
    /// `redirect_dir=nofollow`: EPERM; the driver's walk shows it as
    /// unreadable).
    pub(crate) fn walk_merged(
        &self,
        f: &mut dyn FnMut(&str, &Dentry),
        phantom: &mut dyn FnMut(&str, Option<ovlcheck_case::Errno>),
    ) {
        fn rec(
            m: &Model,
            path: &mut String,
            d: &Dentry,
            f: &mut dyn FnMut(&str, &Dentry),
            phantom: &mut dyn FnMut(&str, Option<ovlcheck_case::Errno>),
        ) {
            f(path, d);
            if !d.is_dir {
                return;
            }
            let len = path.len();
            // A directory whose listing fails is shown as such, after its
            // own node (the walk met it, then could not list it).
            let names = match m.readdir_names_ref(d) {
                Ok(names) => names,
                Err(e) => return phantom(path, Some(e)),
            };
            for name in names {
                push_name(path, name);
                match m.lookup(d, name) {
                    // The walk stats it, then cannot open it to read it.
                    Ok(c) if c.lowerdata_missing => {
                        phantom(path, Some(ovlcheck_case::Errno::ENOENT))
                    }
                    Ok(c) if c.is_positive() => rec(m, path, &c, f, phantom),
                    Ok(_) | Err(ovlcheck_case::Errno::ENOENT) => phantom(path, None),
                    Err(e) => phantom(path, Some(e)),
                }
                path.truncate(len);
            }
        }
        rec(self, &mut String::new(), &self.root_dentry(), f, phantom);
    }

    /// The link count overlay reports (inode.c: ovl_getattr): 1 for a
    /// merged directory, the union count of an indexed inode, else the real
    /// inode's.
    pub(crate) fn overlay_nlink(&self, d: &Dentry) -> u32 {
        if d.is_dir && d.is_merge_dir() {
            self.hit(Rule::StatMergedDirNlink);
            return 1;
        }
        match d.upper {
            Some(u) => match self.upper_inode(u).union_nlink {
                Some(n) => {
                    self.hit(Rule::StatIndexNlink);
                    n
                }
                None => self.layer(LayerId::Upper).nlink(u),
            },
            None => {
                let r = d.lowers[0];
                if self.lower_inode(r).nlink.is_some() {
                    self.hit(Rule::NestedLowerNlink);
                }
                self.lowers[r.layer as usize].nlink(r.ino)
            }
        }
    }

    /// The id stat and the views show for an inode's `id`: the overflow id
    /// for one the layer's idmapped mount does not map.
    pub(crate) fn seen_id(&self, id: u32) -> u32 {
        if id == crate::fs::UNMAPPED {
            self.hit(Rule::StatUnmappedId);
        }
        crate::fs::seen_id(id)
    }

    /// `stat(2)` of a merged dentry.
    pub(crate) fn stat_info(&self, d: &Dentry) -> StatInfo {
        let a = self.attr(d);
        let size = match &a.kind {
            Kind::File(_) => self.file_size(d),
            Kind::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        StatInfo {
            kind: file_kind(a),
            mode: a.mode,
            uid: self.seen_id(a.uid),
            gid: self.seen_id(a.gid),
            size,
            nlink: self.overlay_nlink(d),
        }
    }

    /// The merged tree as users see it.
    pub fn merged_view(&self) -> View {
        View {
            nodes: self.merged_nodes().into_iter().collect(),
        }
    }

    /// [`Model::merged_view`]'s nodes as a list sorted by path, for a
    /// comparison that needs no map.
    pub fn merged_nodes(&self) -> Vec<(String, Node)> {
        let inodes: usize = self.lowers.iter().map(|l| l.inodes.len()).sum::<usize>()
            + self.upper.as_ref().map_or(0, |u| u.inodes.len());
        // In walk order (phantoms in place), which is nearly sorted.
        let list: RefCell<Vec<(String, Node)>> = RefCell::new(Vec::with_capacity(inodes));
        // Non-directories: index into `list`, and identity.
        let mut ids: Vec<(usize, Ident)> = Vec::new();
        self.walk_merged(
            &mut |path: &str, d: &Dentry| {
                let mut list = list.borrow_mut();
                if !d.is_dir {
                    ids.push((list.len(), self.ident(path, d)));
                }
                list.push((path.to_string(), self.merged_node(d)));
            },
            &mut |path: &str, errno| {
                let kind = errno.map_or(NodeKind::Whiteout, NodeKind::Unreadable);
                let mut list = list.borrow_mut();
                match list.last_mut() {
                    // A directory that could not be listed keeps its stat.
                    Some((last, node)) if last == path => node.kind = kind,
                    _ => list.push((path.to_string(), Node::new(kind, 0, 0, 0))),
                }
            },
        );
        let mut list = list.into_inner();
        ids.sort_by(|a, b| list[a.0].0.cmp(&list[b.0].0));
        let mut smallest: BTreeMap<Ident, usize> = BTreeMap::new();
        for (i, id) in &ids {
            smallest.entry(*id).or_insert(*i);
        }
        // Unchanged since the mount: this walk is the snapshot walk.
        let snapshot = match self.snapshot.map.get() {
            Some(s) => Some(s),
            None if self.is_mount_state() && self.snapshot.unwalked.is_empty() => None,
            None => Some(self.snapshot_map()),
        };
        let mut labels: Vec<(usize, String)> = Vec::with_capacity(ids.len());
        for (i, id) in &ids {
            let label = match snapshot {
                Some(snap) => match snap.get(id) {
                    Some(old) => ino_label('=', old),
                    None => ino_label('+', &list[smallest[id]].0),
                },
                None => ino_label('=', &list[smallest[id]].0),
            };
            labels.push((*i, label));
        }
        if snapshot.is_none() {
            let snap = smallest
                .iter()
                .map(|(id, i)| (*id, list[*i].0.clone()))
                .collect();
            let _ = self.snapshot.map.set(snap);
        }
        for (i, label) in labels {
            list[i].1.ino = Some(label);
        }
        sorted(list)
    }

    /// The node of a merged dentry: what [`Model::stat_info`] gives, plus
    /// contents, computed once (a directory's link count is not observed).
    fn merged_node(&self, d: &Dentry) -> Node {
        let a = self.attr(d);
        let mut n = Node::new(
            node_kind(a),
            a.mode,
            self.seen_id(a.uid),
            self.seen_id(a.gid),
        );
        n.xattrs = self
            .visible_xattrs(a)
            .filter(|(k, _)| ovlcheck_case::view::merged_xattr(k.as_bytes()))
            .map(|(k, v)| (k, v.clone()))
            .collect();
        n.flags = observed_flags(a, a.seen_flags());
        if d.is_dir {
            return n;
        }
        n.nlink = Some(self.overlay_nlink(d));
        n.mtime = a.mtime;
        set_contents(&mut n, &a.kind, |_| self.file_data(d));
        if n.kind == NodeKind::File {
            // A metacopy file reads its data but stats its own size.
            n.size = self.file_size(d);
        }
        n.dev = Some(match self.feat.ino {
            InoMode::SameFs => DevClass::Overlay,
            InoMode::Xino => {
                self.hit(Rule::StatXino);
                DevClass::Overlay
            }
            InoMode::PseudoDev => {
                self.hit(Rule::StatPseudoDev);
                DevClass::Other
            }
        });
        n
    }

    /// The raw upper layer as on disk; `None` for a read-only overlay. It
    /// is the upper as seen after a walk of the merged tree (how views are
    /// observed: merged first), which reads every directory and so drops
    /// stale `impure` xattrs (readdir_clears_impure).
    pub fn upper_view(&self) -> Option<View> {
        self.upper_nodes().map(|list| View {
            nodes: list.into_iter().collect(),
        })
    }

    /// [`Model::upper_view`]'s nodes as a list sorted by path.
    pub fn upper_nodes(&self) -> Option<Vec<(String, Node)>> {
        let upper = self.upper.as_ref()?;
        // Only the candidates are read: an upper directory is the merged
        // directory of the same path (the upper layer is on top), found by
        // looking its path up from the root.
        let mut candidates = Vec::new();
        stale_impure_dirs(upper, upper.root, &mut String::new(), &mut candidates);
        if candidates.is_empty() {
            return Some(self.raw_nodes(upper));
        }
        let mut clear = Vec::new();
        for path in candidates {
            let mut d = self.root_dentry();
            for name in path.split('/') {
                match self.lookup(&d, name) {
                    Ok(c) if c.is_positive() => d = c,
                    _ => break,
                }
            }
            if d.is_dir && d.upper.is_some() {
                clear.extend(self.readdir_clears_impure(&path, &d));
            }
        }
        if clear.is_empty() {
            return Some(self.raw_nodes(upper));
        }
        let mut m = self.clone();
        for u in clear {
            m.upper_mut().get_mut(u).ovl.impure = false;
        }
        m.upper.as_ref().map(|u| m.raw_nodes(u))
    }

    /// The raw lower layer `i` (0 is the bottom regular layer) as on disk.
    /// Data-only layers have no view: nothing writes them.
    pub fn lower_view(&self, i: usize) -> View {
        self.raw_view(&self.lowers[self.data_layers + i])
    }

    fn raw_view(&self, layer: &Layer) -> View {
        View {
            nodes: self.raw_nodes(layer).into_iter().collect(),
        }
    }

    fn raw_nodes(&self, layer: &Layer) -> Vec<(String, Node)> {
        let mut list = Vec::with_capacity(layer.inodes.len());
        raw_rec(self, layer, layer.root, &mut String::new(), &mut list);
        sorted(list)
    }

    /// Overlay xattrs by short name, binary values normalised.
    fn overlay_names(&self, inode: &Inode) -> BTreeMap<String, String> {
        let o = &inode.ovl;
        let mut m = BTreeMap::new();
        if let Some(c) = o.opaque {
            m.insert("opaque".into(), c.to_string());
        }
        if let Some(r) = &o.redirect {
            m.insert("redirect".into(), r.clone());
        }
        if o.origin.is_some() {
            m.insert("origin".into(), "fh".into());
        }
        if o.impure {
            m.insert("impure".into(), "y".into());
        }
        if o.metacopy {
            m.insert("metacopy".into(), String::new());
        }
        if let Some(n) = &o.nlink {
            m.insert("nlink".into(), n.clone());
        }
        if o.whiteout {
            m.insert("whiteout".into(), String::new());
        }
        if o.uuid {
            m.insert("uuid".into(), "uuid".into());
        }
        if !o.protattr.is_empty() {
            m.insert("protattr".into(), o.protattr.protattr_value());
        }
        for (k, v) in &o.escaped {
            m.insert(
                format!("overlay.{k}"),
                String::from_utf8_lossy(v).into_owned(),
            );
        }
        m
    }
}

/// Paths of the upper directories below `dir` that are impure without an
/// origin: the ones whose `impure` a merged readdir may find stale.
fn stale_impure_dirs(upper: &Layer, dir: Ino, path: &mut String, out: &mut Vec<String>) {
    let Some(entries) = upper.get(dir).entries() else {
        return;
    };
    for (name, &c) in entries.iter() {
        let inode = upper.get(c);
        if !inode.is_dir() {
            continue;
        }
        let len = path.len();
        push_name(path, name);
        if inode.ovl.impure && inode.ovl.origin.is_none() {
            out.push(path.clone());
        }
        stale_impure_dirs(upper, c, path, out);
        path.truncate(len);
    }
}

/// A node's size and contents: a file's data, which `data` gives from the
/// inode's own (a merged metacopy file shows its lower's), or a symlink's
/// target.
fn set_contents(n: &mut Node, kind: &Kind, data: impl FnOnce(&Arc<Vec<u8>>) -> Arc<Vec<u8>>) {
    match kind {
        Kind::File(own) => {
            let data = data(own);
            n.size = data.len() as u64;
            n.data = Some(data.to_vec());
        }
        Kind::Symlink(t) => {
            n.size = t.len() as u64;
            n.target = Some(t.to_vec());
        }
        _ => {}
    }
}

/// The flags a view shows of `inode`: FS_IOC_GETFLAGS needs an open
/// regular file or directory (a symlink cannot be opened, a fifo has no
/// such ioctl), so other kinds show none.
fn observed_flags(inode: &Inode, flags: InodeFlags) -> InodeFlags {
    if inode.is_dir() || inode.is_reg() {
        flags
    } else {
        InodeFlags::NONE
    }
}

fn raw_rec(m: &Model, layer: &Layer, ino: Ino, path: &mut String, nodes: &mut Vec<(String, Node)>) {
    let inode = layer.get(ino);
    let (uid, gid) = (m.seen_id(inode.uid), m.seen_id(inode.gid));
    let mut n = Node::new(node_kind(inode), inode.mode, uid, gid);
    n.xattrs = inode
        .xattrs
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    n.overlay = m.overlay_names(inode);
    n.flags = observed_flags(inode, inode.flags);
    set_contents(&mut n, &inode.kind, Arc::clone);
    if !inode.is_dir() && !inode.is_whiteout() {
        n.nlink = Some(layer.nlink(ino));
        n.mtime = inode.mtime;
    }
    nodes.push((path.clone(), n));
    if let Some(entries) = inode.entries() {
        let len = path.len();
        for (name, child) in entries.iter() {
            push_name(path, name);
            raw_rec(m, layer, *child, path, nodes);
            path.truncate(len);
        }
    }
}

fn lower_ident(r: LowerRef) -> Ident {
    Ident::Lower {
        layer: r.layer as usize,
        ino: r.ino,
    }
}

pub(crate) fn file_kind(i: &Inode) -> FileKind {
    match i.kind {
        Kind::Dir(_) => FileKind::Dir,
        Kind::File(_) => FileKind::File,
        Kind::Symlink(_) => FileKind::Symlink,
        Kind::Fifo => FileKind::Fifo,
        Kind::Whiteout => FileKind::Char,
    }
}

/// `list` sorted by path, as a view's map orders it (a walk visits a
/// directory's entries in name order, which differs from path order only
/// for names with bytes below `/`; the sort then has little to do).
fn sorted(mut list: Vec<(String, Node)>) -> Vec<(String, Node)> {
    list.sort_by(|a, b| cmp_names(&a.0, &b.0));
    list
}

/// `View::ino` of a node: `=P` (the inode path `P` had at mount time) or
/// `+P` (an inode made since, `P` its smallest path now).
fn ino_label(mark: char, path: &str) -> String {
    let mut s = String::with_capacity(1 + path.len());
    s.push(mark);
    s.push_str(path);
    s
}

fn node_kind(i: &Inode) -> NodeKind {
    match i.kind {
        Kind::Dir(_) => NodeKind::Dir,
        Kind::File(_) => NodeKind::File,
        Kind::Symlink(_) => NodeKind::Symlink,
        Kind::Fifo => NodeKind::Fifo,
        Kind::Whiteout => NodeKind::Whiteout,
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{merged, model, run};

    #[test]
    fn ino_labels_follow_origin_and_mark_new_inodes() {
        let mut m = model("lower\n  file a 0644 \"a\"\n  file b 0644 \"b\"\n  hardlink c b\n");
        assert_eq!(run(&mut m, "write a 0 \"A\""), "ok");
        assert_eq!(run(&mut m, "write b 0 \"B\""), "ok");
        assert_eq!(run(&mut m, "create n 0644"), "ok");
        let v = merged(&m);
        assert!(
            v.contains("a file 0644 0:0 size=1 nlink=1 ino==a dev=ovl"),
            "{v}"
        );
        assert!(v.contains("b file 0644 0:0 size=1 nlink=1 ino=+b"), "{v}");
        assert!(
            v.contains("c file 0644 0:0 size=1 nlink=2 mtime=1600000000 ino==b"),
            "{v}"
        );
        assert!(v.contains("n file 0644 0:0 size=0 nlink=1 ino=+n"), "{v}");
        assert_eq!(run(&mut m, "remount"), "ok");
        assert!(merged(&m).contains("n file 0644 0:0 size=0 nlink=1 ino==n"));
    }

    #[test]
    fn dev_class_per_profile() {
        let text = "lower\n  file a 0644 \"a\"\n";
        assert!(merged(&model(text)).contains("dev=ovl"));
        assert!(merged(&model(&format!("profile xdev\n{text}"))).contains("dev=other"));
        assert!(merged(&model(&format!("profile xino\n{text}"))).contains("dev=ovl"));
    }
}
