//! An overlay2-style driver home, as Docker's overlay2 driver and
//! containers/storage's overlay driver lay it out (docs/inspect.md,
//! "Layers"; the driver's own layout in `driver/src/store.rs`):
//!
//! ```text
//! HOME/l/SHORT            -> ../ID/diff   one relative symlink per layer
//! HOME/ID/diff/           the layer's own contents
//! HOME/ID/link            SHORT (26 characters of base32)
//! HOME/ID/lower           l/SHORT-parent:l/SHORT-grandparent:...  (not in base layers)
//! HOME/ID/work/           overlay's work dir (not in Docker's base layers)
//! HOME/ID/committed       Docker: the layer has a child
//! ```

use super::{Layer, LowerEntry, ShortLink, Store};
use std::fs;
use std::path::Path;

/// Directories of a driver home that are not layers: the short links and
/// containers/storage's staging folders.
pub const NOT_LAYERS: &[&str] = &["l", "staging", "tempdirs"];

/// Length of a short link name (moby overlay.go `idLength`).
pub const SHORT_LEN: usize = 26;

/// True for a well-formed short link name: 26 characters of RFC 4648
/// base32 (`A`-`Z`, `2`-`7`), as `GenerateID` makes them.
pub fn is_short_name(s: &str) -> bool {
    s.len() == SHORT_LEN
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

/// A small file's content with trailing newlines and spaces removed;
/// `None` when it does not exist or is no regular file.
pub fn read_small(p: &Path) -> Option<String> {
    let m = fs::symlink_metadata(p).ok()?;
    if !m.is_file() {
        return None;
    }
    let data = fs::read(p).ok()?;
    Some(String::from_utf8_lossy(&data).trim_end().to_string())
}

fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Reads every layer directory and short link of `store.home`, and
/// resolves each `lower` entry to a layer. Errors only when the home
/// itself cannot be listed.
pub fn read_home(store: &mut Store) -> Result<(), String> {
    let home = store.home.clone();
    let entries = fs::read_dir(&home).map_err(|e| format!("{}: {e}", home.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if NOT_LAYERS.contains(&name.as_str()) {
            store.not_layers.insert(name);
            continue;
        }
        let dir = home.join(&name);
        let layer = Layer {
            id: name.clone(),
            has_diff: is_real_dir(&dir.join("diff")),
            has_work: is_real_dir(&dir.join("work")),
            committed: dir.join("committed").exists(),
            link: read_small(&dir.join("link")),
            lower: fs::symlink_metadata(dir.join("lower"))
                .ok()
                .filter(|m| m.is_file())
                .map(|_| {
                    let raw = fs::read(dir.join("lower")).unwrap_or_default();
                    String::from_utf8_lossy(&raw).into_owned()
                }),
            path: dir,
            ..Layer::default()
        };
        store.layers.insert(name, layer);
    }
    if let Ok(entries) = fs::read_dir(home.join("l")) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = fs::read_link(e.path())
                .ok()
                .map(|t| t.to_string_lossy().into_owned());
            let layer = target.as_deref().and_then(|t| {
                let id = t.strip_prefix("../")?.strip_suffix("/diff")?;
                (!id.contains('/') && store.layers.contains_key(id)).then(|| id.to_string())
            });
            store.links.insert(
                name.clone(),
                ShortLink {
                    name,
                    target,
                    layer,
                },
            );
        }
    }
    let links = store.links.clone();
    for layer in store.layers.values_mut() {
        layer.lowers = match &layer.lower {
            Some(raw) => lower_entries(raw)
                .into_iter()
                .map(|entry| {
                    let layer = resolve(&entry, &links, &home);
                    LowerEntry { entry, layer }
                })
                .collect(),
            None => Vec::new(),
        };
    }
    Ok(())
}

/// The entries of a `lower` file's content, uppermost first (a trailing
/// newline is not part of the last one).
pub fn lower_entries(raw: &str) -> Vec<String> {
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    raw.split(':').map(str::to_string).collect()
}

/// The layer a `lower` entry names: `l/SHORT` through its short link, or
/// (newer containers/storage) `ID/diff` directly.
fn resolve(
    entry: &str,
    links: &std::collections::BTreeMap<String, ShortLink>,
    home: &Path,
) -> Option<String> {
    if let Some(short) = entry.strip_prefix("l/") {
        return links.get(short)?.layer.clone();
    }
    let id = entry.strip_suffix("/diff")?;
    (!id.is_empty() && !id.contains('/') && is_real_dir(&home.join(id))).then(|| id.to_string())
}
