//! Docker image archives, the format of `docker save` and `docker load`
//! (moby image/tarexport: `manifest.json` naming a config and the layer
//! tars, the config's `rootfs.diff_ids` the SHA-256 of each uncompressed
//! layer tar, bottom first; the image id is the SHA-256 of the config).

use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Read;

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An image archive of `layers` (layer tars, bottom first) with an empty
/// container config, and the image id `docker load` gives it.
pub fn image_archive(layers: &[Vec<u8>]) -> std::io::Result<(Vec<u8>, String)> {
    image_archive_tagged(layers, None)
}

/// [`image_archive`] naming the image `tag` (its `RepoTags`): an engine
/// that keeps images by name (containerd) needs one.
pub fn image_archive_tagged(
    layers: &[Vec<u8>],
    tag: Option<&str>,
) -> std::io::Result<(Vec<u8>, String)> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let history: Vec<_> = layers
        .iter()
        .map(|_| json!({"created_by": "ovlcheck"}))
        .collect();
    // No `created` time: nothing in an image ovlcheck builds depends on
    // the clock, so the same case gives the same image id.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))?;
    let id = digest(&config);
    let hex = id.trim_start_matches("sha256:");
    let config_name = format!("{hex}.json");
    let layer_names: Vec<String> = (0..layers.len())
        .map(|i| format!("layer{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": tag.map(|t| vec![t]),
        "Layers": layer_names,
    }]))?;
    let mut out = tar::Builder::new(Vec::new());
    append(&mut out, &config_name, &config)?;
    for (name, layer) in layer_names.iter().zip(layers) {
        append(&mut out, name, layer)?;
    }
    append(&mut out, "manifest.json", &manifest)?;
    Ok((out.into_inner()?, id))
}

fn append(out: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    out.append_data(&mut h, name, data)
}

/// The layer tars of a saved image archive, bottom first (its manifest's
/// `Layers`). A layer saved twice (two layers with the same diff) is
/// stored once, and the later name is a symlink to it (moby
/// image/tarexport `saveLayer`).
pub fn layers(archive: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let files = members(archive)?;
    let manifest = files
        .get("manifest.json")
        .and_then(Member::data)
        .ok_or("image archive without manifest.json")?;
    let parsed: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("manifest.json: {e}"))?;
    let names = parsed[0]["Layers"]
        .as_array()
        .ok_or("manifest.json names no layers")?
        .iter()
        .map(|l| l.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("manifest.json: a layer name that is not a string")?;
    names
        .iter()
        .map(|name| resolve(&files, name).map(<[u8]>::to_vec))
        .collect()
}

/// One member of an image archive.
enum Member {
    File(Vec<u8>),
    /// A symlink, its target relative to the member's directory.
    Link(String),
}

impl Member {
    fn data(&self) -> Option<&[u8]> {
        match self {
            Member::File(d) => Some(d),
            Member::Link(_) => None,
        }
    }
}

/// The data of member `name`, through at most a few symlinks.
fn resolve<'a>(
    files: &'a std::collections::BTreeMap<String, Member>,
    name: &str,
) -> Result<&'a [u8], String> {
    let mut name = name.to_string();
    for _ in 0..8 {
        match files.get(&name) {
            Some(Member::File(d)) => return Ok(d),
            Some(Member::Link(target)) => name = join(&name, target),
            None => return Err(format!("image archive without its layer {name}")),
        }
    }
    Err(format!("image archive: symlink loop at {name}"))
}

/// `target` relative to the directory of `name` (`..` steps resolved).
fn join(name: &str, target: &str) -> String {
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Every regular file and symlink of a tar, by name.
fn members(archive: &[u8]) -> Result<std::collections::BTreeMap<String, Member>, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().map_err(|e| format!("image archive: {e}"))? {
        let mut entry = entry.map_err(|e| format!("image archive: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| format!("image archive: {e}"))?
            .to_string_lossy()
            .into_owned();
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| format!("image archive {name}: {e}"))?;
                Member::File(data)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| format!("image archive {name}: {e}"))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Member::Link(target)
            }
            _ => continue,
        };
        out.insert(name, member);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_names_its_layers_in_order_and_gives_back_the_top_one() {
        let (ar, id) = image_archive(&[b"bottom".to_vec(), b"top".to_vec()]).unwrap();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
        assert_eq!(
            layers(&ar).unwrap(),
            vec![b"bottom".to_vec(), b"top".to_vec()]
        );
        let (again, id2) = image_archive(&[b"bottom".to_vec(), b"top".to_vec()]).unwrap();
        assert_eq!((ar, id), (again, id2), "same layers, same archive and id");
    }

    #[test]
    fn a_layer_saved_twice_is_read_through_its_symlink() {
        let mut b = tar::Builder::new(Vec::new());
        append(
            &mut b,
            "manifest.json",
            br#"[{"Layers":["a/layer.tar","b/layer.tar"]}]"#,
        )
        .unwrap();
        append(&mut b, "a/layer.tar", b"same").unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let ar = b.into_inner().unwrap();
        assert_eq!(
            layers(&ar).unwrap(),
            vec![b"same".to_vec(), b"same".to_vec()]
        );
    }

    #[test]
    fn digest_is_the_sha256_of_the_bytes() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
