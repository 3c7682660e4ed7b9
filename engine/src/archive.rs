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
        "RepoTags": null,
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
/// `Layers`).
pub fn layers(archive: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut files = members(archive)?;
    let manifest = files
        .iter()
        .find(|(n, _)| n == "manifest.json")
        .ok_or("image archive without manifest.json")?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&manifest.1).map_err(|e| format!("manifest.json: {e}"))?;
    let names = parsed[0]["Layers"]
        .as_array()
        .ok_or("manifest.json names no layers")?
        .iter()
        .map(|l| l.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("manifest.json: a layer name that is not a string")?;
    names
        .iter()
        .map(|name| {
            let i = files
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| format!("image archive without its layer {name}"))?;
            // A layer may be named twice (the same diff twice): copy it.
            Ok(files[i].1.clone())
        })
        .collect::<Result<Vec<_>, String>>()
        .inspect(|_| files.clear())
}

/// Every regular file of a tar, by name.
fn members(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries().map_err(|e| format!("image archive: {e}"))? {
        let mut entry = entry.map_err(|e| format!("image archive: {e}"))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| format!("image archive: {e}"))?
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| format!("image archive {name}: {e}"))?;
        out.push((name, data));
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
    fn digest_is_the_sha256_of_the_bytes() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
