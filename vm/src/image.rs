//! What a guest boots: the kernel image qemu loads (a vmlinux taken out of
//! a bzImage when it can boot through its PVH entry, else the bzImage) and
//! the initramfs that makes the ovlcheck binary the guest's init
//! (docs/vm.md, "The guest image").

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the guest finds the overlay module in its initramfs.
pub const GUEST_MODULE: &str = "lib/modules/overlay.ko";

/// Where the guest finds the modules of its virtio-console channel, to
/// load in name order ([`find_channel_modules`]).
pub const CHANNEL_MODULES: &str = "lib/modules/channel";

/// The drivers of the guest's virtio-console channel: the PCI transport
/// and the console (ports) driver.
const CHANNEL_DRIVERS: [&str; 2] = ["virtio_pci", "virtio_console"];

/// The kernel qemu loads, and the release it says it is.
#[derive(Clone, Debug)]
pub struct KernelImage {
    /// A vmlinux with a PVH entry, or the image as given.
    pub boot: PathBuf,
    /// The release from the image (`6.1.0-57-amd64`), when it tells.
    pub release: Option<String>,
    /// How the image is booted, for reports: `vmlinux (PVH)` or `bzImage`.
    pub how: &'static str,
}

/// Reads `path` (a bzImage or a vmlinux) and, for a bzImage whose payload
/// is xz or gzip and holds a PVH entry, writes that vmlinux into `dir`:
/// under TCG it boots in a third of the time (the decompressor runs
/// emulated otherwise: 2.6 s against 8 s to init for Debian's 6.1).
pub fn prepare_kernel(path: &Path, dir: &Path) -> Result<KernelImage, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.starts_with(b"\x7fELF") {
        if !has_pvh_note(&data) {
            return Err(format!(
                "{}: a vmlinux without a PVH entry (CONFIG_PVH) cannot be booted by qemu -kernel; \
                 give the bzImage instead",
                path.display()
            ));
        }
        return Ok(KernelImage {
            boot: path.to_path_buf(),
            release: elf_release(&data),
            how: "vmlinux (PVH)",
        });
    }
    if data.get(0x202..0x206) != Some(b"HdrS") {
        return Err(format!(
            "{}: neither a vmlinux (ELF) nor a bzImage (no HdrS boot header)",
            path.display()
        ));
    }
    let release = bzimage_release(&data);
    let image = |boot: PathBuf, how| KernelImage {
        boot,
        release: release.clone(),
        how,
    };
    match payload(&data) {
        Some(vmlinux) if vmlinux.starts_with(b"\x7fELF") && has_pvh_note(&vmlinux) => {
            let out = dir.join("vmlinux");
            std::fs::write(&out, &vmlinux).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(image(out, "vmlinux (PVH)"))
        }
        _ => Ok(image(path.to_path_buf(), "bzImage")),
    }
}

/// The decompressed payload of a bzImage: the first xz or gzip stream
/// whose output is an ELF file (extract-vmlinux's search).
fn payload(data: &[u8]) -> Option<Vec<u8>> {
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    const GZIP: &[u8] = b"\x1f\x8b\x08";
    for (magic, xz) in [(XZ, true), (GZIP, false)] {
        let mut from = 0;
        while let Some(i) = find(&data[from..], magic).map(|i| i + from) {
            let mut out = Vec::new();
            let r = if xz {
                xz2::read::XzDecoder::new(&data[i..]).read_to_end(&mut out)
            } else {
                flate2::read::GzDecoder::new(&data[i..]).read_to_end(&mut out)
            };
            // A stream followed by other bytes may end in an error after
            // its data: what was decoded counts.
            let _ = r;
            if out.starts_with(b"\x7fELF") {
                return Some(out);
            }
            from = i + 1;
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether an ELF64 file has the Xen PVH entry note (name `Xen`, type
/// 18, XEN_ELFNOTE_PHYS32_ENTRY), which qemu's `-kernel` needs to boot an
/// uncompressed kernel.
fn has_pvh_note(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    if elf.get(4) != Some(&2) {
        return false; // not ELFCLASS64
    }
    let (Some(phoff), Some(phsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    for i in 0..phnum as usize {
        let ph = phoff + i * phsize as usize;
        if u32_at(ph) != Some(4) {
            continue; // not PT_NOTE
        }
        let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 0x20)) else {
            continue;
        };
        let mut n = off;
        while n + 12 <= off + size {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(n), u32_at(n + 4), u32_at(n + 8))
            else {
                break;
            };
            let name = elf.get(n + 12..n + 12 + namesz as usize);
            if kind == 18 && name == Some(b"Xen\0") {
                return true;
            }
            n += 12 + align4(namesz as usize) + align4(descsz as usize);
        }
    }
    false
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The release a bzImage's setup header points at (boot.rst:
/// `kernel_version`, an offset from 0x200 of `"6.1.0-57-amd64 (...) #1 ..."`).
fn bzimage_release(data: &[u8]) -> Option<String> {
    let at = u16::from_le_bytes([*data.get(0x20e)?, *data.get(0x20f)?]) as usize + 0x200;
    let s = data.get(at..)?;
    let end = s.iter().position(|&b| b == 0 || b == b' ')?;
    String::from_utf8(s[..end].to_vec()).ok()
}

/// The release in a vmlinux's `Linux version R (...)` banner.
fn elf_release(data: &[u8]) -> Option<String> {
    let at = find(data, b"Linux version ")? + 14;
    let s = &data[at..];
    let end = s.iter().position(|&b| b == 0 || b == b' ')?;
    String::from_utf8(s[..end].to_vec()).ok()
}

/// The module tree [`find_module`] and [`find_channel_modules`] read:
/// `modules` when given, else `/lib/modules/RELEASE` when the image says
/// its release; `None` when there is none (only a given `modules` that is
/// not a directory is an error).
fn module_tree(modules: Option<&Path>, release: Option<&str>) -> Result<Option<PathBuf>, String> {
    let dir = match (modules, release) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(r)) => PathBuf::from("/lib/modules").join(r),
        (None, None) => return Ok(None),
    };
    if dir.is_dir() {
        Ok(Some(dir))
    } else if let Some(d) = modules {
        Err(format!("--modules {}: not a directory", d.display()))
    } else {
        Ok(None)
    }
}

/// The overlay module to put in the initramfs: `kernel/fs/overlayfs/
/// overlay.ko` (or the first `overlay.ko` found) under `modules`, else
/// under `/lib/modules/RELEASE` when the image says its release; `None`
/// when neither has one (overlay built in, or missing: the guest says
/// which). An xz or gzip module is decompressed here.
pub fn find_module(
    modules: Option<&Path>,
    release: Option<&str>,
) -> Result<Option<(PathBuf, Vec<u8>)>, String> {
    let Some(dir) = module_tree(modules, release)? else {
        return Ok(None);
    };
    let mut found = None;
    for name in ["overlay.ko", "overlay.ko.xz", "overlay.ko.gz"] {
        let p = dir.join("kernel/fs/overlayfs").join(name);
        if p.is_file() {
            found = Some(p);
            break;
        }
    }
    if found.is_none() {
        found = walk_for(&dir, 6);
    }
    let Some(path) = found else {
        return match modules {
            Some(d) => Err(format!("--modules {}: no overlay.ko in it", d.display())),
            None => Ok(None),
        };
    };
    let bytes = module_bytes(&path)?;
    Ok(Some((path, bytes)))
}

/// The modules a guest's initramfs holds, as [`write_initramfs`] takes
/// them: the overlay module ([`find_module`]) at [`GUEST_MODULE`] and
/// the channel's ([`find_channel_modules`]).
pub fn guest_modules(
    modules: Option<&Path>,
    release: Option<&str>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out: Vec<(String, Vec<u8>)> = find_module(modules, release)?
        .map(|(_, m)| (GUEST_MODULE.to_string(), m))
        .into_iter()
        .collect();
    out.extend(find_channel_modules(modules, release)?);
    Ok(out)
}

/// A module file's bytes, an xz or gzip module decompressed.
fn module_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    let r = if name.ends_with(".xz") {
        xz2::read::XzDecoder::new(&raw[..]).read_to_end(&mut out)
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)
    } else {
        return Ok(raw);
    };
    r.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// The modules a virtio-console channel needs where the kernel has them
/// as modules (Debian: `CONFIG_VIRTIO_PCI=m`, `CONFIG_VIRTIO_CONSOLE=m`),
/// each with what `modules.dep` says it needs, as initramfs entries
/// under [`CHANNEL_MODULES`] numbered in a loading order (a module's
/// dependencies first: `modules.dep` lists them so that the last loads
/// first). Empty when the tree has no `modules.dep` or lists neither
/// module: the guest then talks over its serial port, or over a
/// virtio-console built into its kernel.
pub fn find_channel_modules(
    modules: Option<&Path>,
    release: Option<&str>,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let Some(dir) = module_tree(modules, release)? else {
        return Ok(Vec::new());
    };
    let Ok(dep) = std::fs::read_to_string(dir.join("modules.dep")) else {
        return Ok(Vec::new());
    };
    let mut order: Vec<&str> = Vec::new();
    for wanted in CHANNEL_DRIVERS {
        let Some((module, needs)) = dep.lines().find_map(|l| {
            let (m, needs) = l.split_once(':')?;
            let base = m.rsplit('/').next()?;
            (base.split('.').next() == Some(wanted)).then_some((m, needs))
        }) else {
            return Ok(Vec::new());
        };
        for m in needs.split_whitespace().rev().chain([module]) {
            if !order.contains(&m) {
                order.push(m);
            }
        }
    }
    let mut out = Vec::new();
    for (i, m) in order.iter().enumerate() {
        let path = dir.join(m);
        let base = m.rsplit('/').next().unwrap_or(m);
        let stem = base.split(".ko").next().unwrap_or(base);
        out.push((
            format!("{CHANNEL_MODULES}/{i:02}-{stem}.ko"),
            module_bytes(&path)?,
        ));
    }
    Ok(out)
}

/// The first `overlay.ko*` at most `depth` levels below `dir`, in name
/// order.
fn walk_for(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in &entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if e.path().is_file() && (name == "overlay.ko" || name.starts_with("overlay.ko.")) {
            return Some(e.path());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| walk_for(&e.path(), depth - 1))
}

/// The shared objects `binary` loads (its ELF interpreter among them), as
/// `ldd` lists them; empty for a static binary.
fn shared_objects(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd {}: {e} (install libc-bin)", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The binary without its debug sections (`strip --strip-debug`): the
/// guest unpacks the initramfs under emulation, and a debug build's
/// binary is four times the size. The binary as it is when `strip` fails.
fn stripped(binary: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("init");
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(binary)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        out
    } else {
        binary.to_path_buf()
    }
}

/// One file of the initramfs.
struct Entry {
    name: String,
    mode: u32,
    rdev: Option<(u32, u32)>,
    data: Vec<u8>,
}

/// Writes the guest's initramfs (a newc archive) to `out`: `binary` as
/// `/init`, the shared objects it loads at their own paths, `/dev/console`
/// (so the kernel gives init a console), the mount points the guest mounts
/// on, and `modules`: each an initramfs name and its bytes (the overlay
/// module at [`GUEST_MODULE`], the channel's under [`CHANNEL_MODULES`]).
/// `extra`, a user's initrd, goes first: the kernel unpacks concatenated archives in order,
/// so the guest's `/init` wins.
pub fn write_initramfs(
    out: &Path,
    binary: &Path,
    modules: &[(String, Vec<u8>)],
    extra: Option<&Path>,
    dir: &Path,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", out.display());
    let binary_path = stripped(binary, dir);
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut entries = vec![
        Entry {
            name: "init".into(),
            mode: 0o100755,
            rdev: None,
            data: read(&binary_path)?,
        },
        Entry {
            name: "dev/console".into(),
            mode: 0o020600,
            rdev: Some((5, 1)),
            data: Vec::new(),
        },
    ];
    for lib in shared_objects(binary)? {
        entries.push(Entry {
            name: lib.to_string_lossy().trim_start_matches('/').to_string(),
            mode: 0o100755,
            rdev: None,
            data: read(&lib)?,
        });
    }
    for (name, data) in modules {
        entries.push(Entry {
            name: name.clone(),
            mode: 0o100644,
            rdev: None,
            data: data.clone(),
        });
    }
    let mut dirs: BTreeSet<String> = ["proc", "sys", "dev", "tmp", "run"]
        .into_iter()
        .map(String::from)
        .collect();
    for e in &entries {
        let mut p = Path::new(&e.name).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_string_lossy().into_owned());
            p = d.parent();
        }
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    if let Some(x) = extra {
        f.write_all(&read(x)?).map_err(io)?;
    }
    let mut ino = 1;
    let mut next = || {
        ino += 1;
        ino
    };
    // Parents sort before their children.
    for d in &dirs {
        let w = cpio::newc::Builder::new(d)
            .ino(next())
            .mode(0o040755)
            .nlink(2)
            .write(&mut f, 0);
        w.finish().map_err(io)?;
    }
    for e in &entries {
        let mut b = cpio::newc::Builder::new(&e.name)
            .ino(next())
            .mode(e.mode)
            .nlink(1);
        if let Some((major, minor)) = e.rdev {
            b = b.rdev_major(major).rdev_minor(minor);
        }
        let size = u32::try_from(e.data.len())
            .map_err(|_| format!("{}: over 4 GiB, too big for newc", e.name))?;
        let mut w = b.write(&mut f, size);
        w.write_all(&e.data).map_err(io)?;
        w.finish().map_err(io)?;
    }
    cpio::newc::trailer(&mut f).map_err(io)?;
    f.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bzimage_header_release() {
        let mut d = vec![0u8; 0x400];
        d[0x202..0x206].copy_from_slice(b"HdrS");
        d[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        d[0x300..0x314].copy_from_slice(b"6.1.0-57-amd64 (x) \0");
        assert_eq!(bzimage_release(&d).as_deref(), Some("6.1.0-57-amd64"));
    }

    #[test]
    fn not_a_kernel_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, b"hello").unwrap();
        let e = prepare_kernel(&p, dir.path()).unwrap_err();
        assert!(e.contains("neither a vmlinux"), "{e}");
    }

    #[test]
    fn channel_modules_come_with_their_dependencies_first() {
        // Debian 6.1's modules.dep lines for the two drivers.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let v = "kernel/drivers/virtio";
        let dep = format!(
            "kernel/fs/overlayfs/overlay.ko:\n\
             {v}/virtio_pci.ko: {v}/virtio_pci_legacy_dev.ko {v}/virtio_pci_modern_dev.ko \
             {v}/virtio.ko {v}/virtio_ring.ko\n\
             kernel/drivers/char/virtio_console.ko: {v}/virtio.ko {v}/virtio_ring.ko\n"
        );
        std::fs::write(d.join("modules.dep"), &dep).unwrap();
        std::fs::create_dir_all(d.join(v)).unwrap();
        std::fs::create_dir_all(d.join("kernel/drivers/char")).unwrap();
        for m in [
            "virtio_pci",
            "virtio_pci_legacy_dev",
            "virtio_pci_modern_dev",
            "virtio",
            "virtio_ring",
        ] {
            std::fs::write(d.join(v).join(format!("{m}.ko")), m).unwrap();
        }
        std::fs::write(
            d.join("kernel/drivers/char/virtio_console.ko"),
            "virtio_console",
        )
        .unwrap();
        let found = find_channel_modules(Some(d), None).unwrap();
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib/modules/channel/00-virtio_ring.ko",
                "lib/modules/channel/01-virtio.ko",
                "lib/modules/channel/02-virtio_pci_modern_dev.ko",
                "lib/modules/channel/03-virtio_pci_legacy_dev.ko",
                "lib/modules/channel/04-virtio_pci.ko",
                "lib/modules/channel/05-virtio_console.ko",
            ]
        );
        assert_eq!(found[5].1, b"virtio_console");
        // A tree without the console driver gives none: the serial port.
        std::fs::write(
            d.join("modules.dep"),
            dep.lines().take(2).collect::<Vec<_>>().join("\n"),
        )
        .unwrap();
        assert!(find_channel_modules(Some(d), None).unwrap().is_empty());
    }

    #[test]
    fn initramfs_holds_init_console_and_module() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("initramfs");
        let sh = Path::new("/bin/sh");
        let channel = format!("{CHANNEL_MODULES}/00-virtio.ko");
        let modules = [
            (GUEST_MODULE.to_string(), b"module".to_vec()),
            (channel.clone(), b"virtio".to_vec()),
        ];
        write_initramfs(&out, sh, &modules, None, dir.path()).unwrap();
        let mut names = Vec::new();
        let mut f = std::fs::File::open(&out).unwrap();
        loop {
            let r = cpio::newc::Reader::new(f).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            names.push((r.entry().name().to_string(), r.entry().mode()));
            f = r.finish().unwrap();
        }
        let has = |n: &str| names.iter().any(|(m, _)| m == n);
        assert!(
            has("init") && has("dev/console") && has(GUEST_MODULE) && has(&channel),
            "{names:?}"
        );
        assert!(has("lib/modules") && has("proc"), "{names:?}");
        // Every entry's parent comes before it.
        for (i, (n, _)) in names.iter().enumerate() {
            if let Some(p) = Path::new(n).parent().filter(|p| !p.as_os_str().is_empty()) {
                let p = p.to_string_lossy();
                assert!(names[..i].iter().any(|(m, _)| *m == p), "{n} before {p}");
            }
        }
    }
}
