//! `ovlcheck inspect` on a real Docker data-root made here by a private
//! dockerd (tests/common/dockerd.rs): images imported from tars made in the
//! test, a docker-archive with whiteouts and an opaque directory loaded, a
//! commit on top, containers created and changed with `docker cp`. The
//! store must show 0 problems and every layer `docker inspect` names;
//! copies damaged on purpose must name each problem; `--case` must give a
//! case that parses and runs.

mod common;

use common::dockerd::{mounts_beneath, unmount_beneath, Dockerd};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ovlcheck;

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sh(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().expect(cmd);
    assert!(o.status.success(), "{cmd} {args:?}: {}", text(&o));
}

/// `tar --numeric-owner -C DIR -cf OUT .`
fn tar_dir(dir: &Path, out: &Path) {
    sh(
        "tar",
        &[
            "--numeric-owner",
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum");
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A tree of files to tar: (path, contents); a path ending in `/` is a
/// directory, `@` a symlink `path@target`.
fn tree(dir: &Path, entries: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (p, data) in entries {
        if let Some(d) = p.strip_suffix('/') {
            fs::create_dir_all(dir.join(d)).unwrap();
        } else if let Some((link, target)) = p.split_once('@') {
            std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
        } else {
            fs::write(dir.join(p), data).unwrap();
        }
    }
}

/// A docker-archive (`docker save` format) of a two-layer image `wh:1`
/// whose top layer deletes `a` (`.wh.a`) and makes `d` opaque
/// (`d/.wh..wh..opq`): docker's own apply turns them into a char 0/0
/// whiteout and `trusted.overlay.opaque=y`.
fn whiteout_archive(work: &Path) -> PathBuf {
    let arch = work.join("arch");
    fs::create_dir_all(arch.join("l1")).unwrap();
    fs::create_dir_all(arch.join("l2")).unwrap();
    tree(
        &work.join("w1"),
        &[("a", "a\n"), ("d/", ""), ("d/x", "x\n"), ("keep", "k\n")],
    );
    tree(
        &work.join("w2"),
        &[
            ("d/", ""),
            ("d/z", "z\n"),
            (".wh.a", ""),
            ("d/.wh..wh..opq", ""),
        ],
    );
    let mut diff_ids = Vec::new();
    for (src, l) in [("w1", "l1"), ("w2", "l2")] {
        let tar = arch.join(l).join("layer.tar");
        sh(
            "tar",
            &[
                "--numeric-owner",
                "--sort=name",
                "-C",
                work.join(src).to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        diff_ids.push(format!("\"sha256:{}\"", sha256(&tar)));
    }
    fs::write(
        arch.join("config.json"),
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            diff_ids.join(",")
        ),
    )
    .unwrap();
    fs::write(
        arch.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["wh:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
    )
    .unwrap();
    let out = work.join("wh.tar");
    sh(
        "tar",
        &[
            "-C",
            arch.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            ".",
        ],
    );
    out
}

/// The layer directories `docker inspect` names for an image or container
/// (GraphDriver.Data: UpperDir and each LowerDir entry).
fn layer_dirs(d: &Dockerd, what: &str, id: &str) -> Vec<String> {
    let out = d.docker(&[
        what,
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}:{{.GraphDriver.Data.LowerDir}}",
        id,
    ]);
    out.split(':')
        .filter(|p| p.ends_with("/diff"))
        .map(|p| {
            Path::new(p)
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn inspect_a_real_docker_data_root() {
    let Some(mut d) = Dockerd::start("inspect_a_real_docker_data_root") else {
        return;
    };
    let work = d.dir().join("work");
    // A base image from a tar made here: files, a hard link, a symlink.
    tree(
        &work.join("base"),
        &[
            ("etc/", ""),
            ("etc/a", "hi\n"),
            ("b", "x\n"),
            ("lib/", ""),
            ("lib/sh@../b", ""),
        ],
    );
    sh(
        "ln",
        &[
            work.join("base/b").to_str().unwrap(),
            work.join("base/hl").to_str().unwrap(),
        ],
    );
    let base_tar = work.join("base.tar");
    tar_dir(&work.join("base"), &base_tar);
    d.docker(&["import", base_tar.to_str().unwrap(), "base:1"]);
    // A container changed with docker cp, committed: a two-layer image.
    d.docker(&["create", "--name", "c1", "base:1", "/bin/true"]);
    fs::write(work.join("n"), "new\n").unwrap();
    d.docker(&["cp", work.join("n").to_str().unwrap(), "c1:/etc/n"]);
    d.docker(&["commit", "c1", "two:1"]);
    d.docker(&["create", "--name", "c2", "two:1", "x"]);
    d.docker(&["cp", work.join("n").to_str().unwrap(), "c2:/top"]);
    // An image whose top layer has a whiteout and an opaque directory.
    let wh = whiteout_archive(&work);
    d.docker(&["load", "-i", wh.to_str().unwrap()]);
    d.docker(&["create", "--name", "c3", "wh:1", "x"]);

    let mut expected: BTreeSet<String> = BTreeSet::new();
    for img in ["base:1", "two:1", "wh:1"] {
        expected.extend(layer_dirs(&d, "image", img));
    }
    let mut c2_stack = Vec::new();
    for c in ["c1", "c2", "c3"] {
        let dirs = layer_dirs(&d, "container", c);
        if c == "c2" {
            c2_stack = dirs.clone();
        }
        expected.extend(dirs);
    }
    assert_eq!(
        c2_stack.len(),
        4,
        "c2: upper, -init, two layers: {c2_stack:?}"
    );
    assert!(
        expected.iter().any(|l| l.ends_with("-init")),
        "{expected:?}"
    );

    d.stop();
    assert!(
        mounts_beneath(d.dir()).is_empty(),
        "left mounted: {:?}",
        mounts_beneath(d.dir())
    );
    let root = d.data_root();
    let root_s = root.to_str().unwrap();

    // The store as Docker left it: every layer drawn, no problem.
    let o = ovlcheck(&["inspect", root_s]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("\nno problems"), "{out}");
    for l in &expected {
        assert!(
            out.contains(&format!("\n  {l}\n")),
            "layer {l} not drawn:\n{out}"
        );
    }
    assert!(
        out.contains("/c2") && out.contains("init layer of /c2"),
        "{out}"
    );
    assert!(
        out.contains("whiteout") && out.contains("dir+opaque"),
        "c3's table:\n{out}"
    );
    let o = ovlcheck(&["inspect", root_s, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["kind"], "docker");
    assert_eq!(j["problems"].as_array().unwrap().len(), 0);
    assert_eq!(j["containers"].as_array().unwrap().len(), 3);
    let found: BTreeSet<String> = j["layers"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(found, expected);

    // The overlay2 folder alone reads too.
    let o = ovlcheck(&["inspect", root.join("overlay2").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // --case: c2 as a case that parses and runs on the model.
    let o = ovlcheck(&["inspect", root_s, "--case", "c2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let case_text = String::from_utf8_lossy(&o.stdout).into_owned();
    let case = ovlcheck_case::parse_case("c2.ovl", &case_text).expect("the case parses");
    assert_eq!(case.lowers.len(), 3, "{case_text}");
    assert!(
        case_text.contains("file etc/n 0644 \"new\\n\""),
        "{case_text}"
    );
    assert!(
        case_text.contains("file top 0644 \"new\\n\""),
        "{case_text}"
    );
    assert!(case_text.contains("hardlink hl b"), "{case_text}");
    let file = d.dir().join("c2.ovl");
    fs::write(&file, &case_text).unwrap();
    let o = ovlcheck(&["run", file.to_str().unwrap(), "--backend", "model"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = ovlcheck(&["show", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // c3's whiteout and opaque directory come through as markers.
    let o = ovlcheck(&["inspect", root_s, "--case", "c3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c3 = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(c3.contains("whiteout a") && c3.contains("opaque d"), "{c3}");
    let file3 = d.dir().join("c3.ovl");
    fs::write(&file3, &c3).unwrap();
    let o = ovlcheck(&["run", file3.to_str().unwrap(), "--backend", "model"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // On the kernel too, where it can mount.
    if common::kernel("inspect_a_real_docker_data_root (kernel run of the exported cases)")
        .is_some()
    {
        for f in [&file, &file3] {
            let o = ovlcheck(&["run", f.to_str().unwrap(), "--backend", "kernel"]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        }
    }
    let o = ovlcheck(&["inspect", root_s, "--case", "nosuch"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Damaged copies, each naming its problem with exit status 1.
    let c2_upper = &c2_stack[0];
    // The bottom layer of c2's stack (the last LowerDir entry).
    let base = c2_stack.last().unwrap().clone();
    let copy = |name: &str| {
        let dst = d.dir().join(name);
        sh("cp", &["-a", root_s, dst.to_str().unwrap()]);
        dst
    };
    // A deleted l/ link (the base layer's).
    let r = copy("no-link");
    let short = fs::read_to_string(r.join("overlay2").join(&base).join("link")).unwrap();
    fs::remove_file(r.join("overlay2/l").join(short.trim())).unwrap();
    let o = ovlcheck(&["inspect", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        out.contains(&format!(
            "overlay2/{base}/link: names l/{}, which does not exist: missing short link",
            short.trim()
        )),
        "{out}"
    );
    // A truncated lower file (c2's read-write layer's, cut mid-entry).
    let r = copy("short-lower");
    let lower = r.join("overlay2").join(c2_upper).join("lower");
    let full = fs::read_to_string(&lower).unwrap();
    fs::write(&lower, &full[..full.len() - 10]).unwrap();
    let o = ovlcheck(&["inspect", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        out.contains(&format!("overlay2/{c2_upper}/lower: entry 3"))
            && out.contains("truncated or unparseable"),
        "{out}"
    );
    // The same cut at an entry boundary.
    let cut = full.rfind(':').unwrap();
    fs::write(&lower, &full[..cut]).unwrap();
    let o = ovlcheck(&["inspect", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        out.contains(&format!("overlay2/{c2_upper}/lower: lists 2 layers")),
        "{out}"
    );
    // An orphan layer directory.
    let r = copy("orphan");
    let orphan = "0".repeat(64);
    fs::create_dir_all(r.join("overlay2").join(&orphan).join("diff")).unwrap();
    let o = ovlcheck(&["inspect", r.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        out.contains(&format!("overlay2/{orphan}: orphan layer directory")),
        "{out}"
    );
    let o = ovlcheck(&["inspect", r.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(j["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["path"].as_str().unwrap().ends_with(&orphan)));

    // Not a store at all.
    let o = ovlcheck(&["inspect", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        text(&o)
    );
}

/// Without a daemon: a hand-made overlay2 folder through the command line,
/// and a directory that is no store.
#[test]
fn inspect_exit_statuses_without_a_daemon() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("overlay2");
    let short = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    fs::create_dir_all(h.join("base/diff/etc")).unwrap();
    fs::write(h.join("base/diff/etc/f"), "f").unwrap();
    fs::write(h.join("base/link"), short).unwrap();
    fs::create_dir_all(h.join("l")).unwrap();
    std::os::unix::fs::symlink("../base/diff", h.join("l").join(short)).unwrap();
    let o = ovlcheck(&["inspect", h.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("link   {short}")),
        "{}",
        text(&o)
    );
    fs::remove_file(h.join("l").join(short)).unwrap();
    let o = ovlcheck(&["inspect", h.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        j["problems"][0]["path"],
        h.join("base/link").to_str().unwrap()
    );
    let o = ovlcheck(&["inspect", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a store") && err.lines().count() == 1,
        "{}",
        text(&o)
    );
    let o = ovlcheck(&["inspect", h.to_str().unwrap(), "--case", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `podman` on a private containers/storage root, or `None` after a loud
/// SKIP (a failure under `OVL_REQUIRE_KERNEL=1`).
fn podman(test: &str, dir: &Path) -> Option<impl Fn(&[&str]) -> String> {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root (a rootful store is inspected)".to_string())
    } else if Command::new("podman")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        Some("`podman` missing (Debian package podman)".to_string())
    } else {
        None
    };
    if let Some(why) = why {
        if common::kernel_required() {
            panic!("{test}: podman is required (OVL_REQUIRE_KERNEL=1) but unusable: {why}");
        }
        eprintln!(
            "\n*** SKIP {test}: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n"
        );
        return None;
    }
    let root = dir.join("root");
    let run = dir.join("run");
    Some(move |args: &[&str]| {
        let o = Command::new("podman")
            .arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&run)
            .args(["--storage-driver", "overlay"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("podman");
        assert!(o.status.success(), "podman {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    })
}

/// A podman store (containers/storage): an imported image, a container
/// changed with `podman cp` and committed, a container on the commit.
#[test]
fn inspect_a_real_podman_store() {
    let t = tempfile::Builder::new()
        .prefix("ovl-podman.")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = t.path();
    let Some(pm) = podman("inspect_a_real_podman_store", dir) else {
        return;
    };
    tree(
        &dir.join("base"),
        &[("etc/", ""), ("etc/a", "hi\n"), ("b", "x\n")],
    );
    let tar = dir.join("base.tar");
    tar_dir(&dir.join("base"), &tar);
    pm(&["import", tar.to_str().unwrap(), "pbase:1"]);
    pm(&["create", "--name", "p1", "pbase:1", "/bin/true"]);
    fs::write(dir.join("n"), "new\n").unwrap();
    pm(&["cp", dir.join("n").to_str().unwrap(), "p1:/etc/n"]);
    pm(&["commit", "-q", "p1", "ptwo:1"]);
    pm(&["create", "--name", "p2", "ptwo:1", "x"]);
    let dirs = pm(&[
        "inspect",
        "--format",
        "{{.GraphDriver.Data.UpperDir}}:{{.GraphDriver.Data.LowerDir}}",
        "p2",
    ]);
    let p2: Vec<String> = dirs
        .split(':')
        .map(|p| {
            Path::new(p)
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(p2.len(), 3, "{dirs}");
    unmount_beneath(dir);
    let root = dir.join("root");
    let o = ovlcheck(&["inspect", root.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.starts_with("containers-storage store"), "{out}");
    for l in &p2 {
        assert!(
            out.contains(&format!("\n  {l}\n")),
            "layer {l} not drawn:\n{out}"
        );
    }
    let o = ovlcheck(&["inspect", root.to_str().unwrap(), "--case", "p2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let case_text = String::from_utf8_lossy(&o.stdout).into_owned();
    let case = ovlcheck_case::parse_case("p2.ovl", &case_text).expect("the case parses");
    assert_eq!(case.lowers.len(), 2, "{case_text}");
    assert!(
        case_text.contains("file etc/n 0644 \"new\\n\""),
        "{case_text}"
    );
    let file = dir.join("p2.ovl");
    fs::write(&file, &case_text).unwrap();
    let o = ovlcheck(&["run", file.to_str().unwrap(), "--backend", "model"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A deleted short link.
    let link = fs::read_to_string(root.join("overlay").join(&p2[2]).join("link")).unwrap();
    fs::remove_file(root.join("overlay/l").join(link.trim())).unwrap();
    let o = ovlcheck(&["inspect", root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("missing short link"),
        "{}",
        text(&o)
    );
    assert!(
        mounts_beneath(dir).is_empty(),
        "left mounted: {:?}",
        mounts_beneath(dir)
    );
}

/// A private containerd (engine/src/containerd.rs, `CONTAINERD_DAEMON`),
/// or `None` after a loud SKIP (a failure under `OVL_REQUIRE_KERNEL=1`).
fn containerd(test: &str) -> Option<ovlcheck_engine::daemon::Daemon> {
    use ovlcheck_engine::containerd::{CONTAINERD, CONTAINERD_DAEMON, CTR};
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root (a private containerd needs root)".to_string())
    } else if !Path::new(CONTAINERD).exists() || !Path::new(CTR).exists() {
        Some(format!(
            "{CONTAINERD} or {CTR} missing (Debian package containerd)"
        ))
    } else {
        None
    };
    let started = match why {
        Some(why) => Err(why),
        None => ovlcheck_engine::daemon::Daemon::start_program(CONTAINERD_DAEMON)
            .map_err(|e| e.to_string()),
    };
    match started {
        Ok(d) => Some(d),
        Err(why) if common::kernel_required() => {
            panic!("{test}: containerd is required (OVL_REQUIRE_KERNEL=1) but unusable: {why}")
        }
        Err(why) => {
            eprintln!(
                "\n*** SKIP {test}: {why}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n"
            );
            None
        }
    }
}

/// The snapshot number N of a `.../snapshots/N/fs` path.
fn snapshot_number(fs_path: &str) -> String {
    let p = Path::new(fs_path);
    assert!(p.ends_with("fs"), "{fs_path}");
    p.parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The snapshot numbers an overlay mount stacks, upper first: from `ctr
/// snapshots prepare --mounts` JSON, its `upperdir=` then each
/// `lowerdir=` entry.
fn mounted_chain(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("ctr mounts json");
    let m = &v[0];
    let opts: Vec<&str> = m["Options"]
        .as_array()
        .expect("Options")
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(m["Type"], "overlay", "{json}");
    let upper = opts
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .expect("upperdir");
    let mut chain = vec![snapshot_number(upper)];
    let lower = opts
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .expect("lowerdir");
    chain.extend(lower.split(':').map(snapshot_number));
    chain
}

/// A containerd root: an image of two layers imported (a whiteout and an
/// opaque directory on top), an active snapshot on it and another on its
/// base layer. Each snapshot is drawn with its key, kind and the chain
/// containerd mounts; copies with a snapshot directory deleted and an
/// orphan added name each problem.
#[test]
fn inspect_a_real_containerd_root() {
    let Some(d) = containerd("inspect_a_real_containerd_root") else {
        return;
    };
    let dir = d.scratch().expect("a private daemon").to_path_buf();
    let ctr = |args: &[&str]| {
        let o = Command::new(ovlcheck_engine::containerd::CTR)
            .arg("--address")
            .arg(&d.socket)
            .args(["--namespace", "inspect"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ctr");
        assert!(o.status.success(), "ctr {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // The daemon serves once `ctr version` answers.
    let mut tries = 0;
    while !Command::new(ovlcheck_engine::containerd::CTR)
        .arg("--address")
        .arg(&d.socket)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        tries += 1;
        assert!(tries < 600, "containerd does not answer: {}", d.log_tail());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let work = dir.join("work");
    let wh = whiteout_archive(&work);
    ctr(&[
        "images",
        "import",
        "--snapshotter",
        "overlayfs",
        wh.to_str().unwrap(),
    ]);
    // KEY PARENT KIND; the committed snapshot with a parent is the top.
    let ls = ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"]);
    let rows: Vec<Vec<&str>> = ls
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{ls}");
    let top = rows.iter().find(|r| r.len() == 3).expect("a top layer")[0];
    let base = rows.iter().find(|r| r.len() == 2).expect("a base layer")[0];
    let c1 = ctr(&[
        "snapshots",
        "--snapshotter",
        "overlayfs",
        "prepare",
        "--mounts",
        "c1",
        top,
    ]);
    // A second active snapshot, not a view: `ctr snapshots view` gives
    // its snapshot no containerd.io/gc.root label (`prepare` does), so
    // the daemon's garbage collector may remove it at any moment.
    let c0 = ctr(&[
        "snapshots",
        "--snapshotter",
        "overlayfs",
        "prepare",
        "--mounts",
        "c0",
        base,
    ]);
    let c1_chain = mounted_chain(&c1);
    let c0_chain = mounted_chain(&c0);
    assert_eq!(c1_chain.len(), 3, "{c1}");
    // Inspected while the daemon lives and holds metadata.db's lock.
    let root = dir.join("root");
    let o = ovlcheck(&["inspect", root.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.starts_with("containerd store"), "{out}");
    assert!(out.contains("\nno problems\n"), "{out}");
    let drawn = |n: &str, kind: &str, key: &str, chain: &[String]| {
        let block = format!("\n  {n}\n    is     {kind} snapshot inspect/");
        let at = out
            .find(&block)
            .unwrap_or_else(|| panic!("snapshot {n} not drawn as {kind}:\n{out}"));
        let rest = &out[at + block.len()..];
        let is_line = rest.lines().next().unwrap();
        assert!(
            is_line.ends_with(&format!("/{key}")),
            "{n}: {is_line}\n{out}"
        );
        let chain_line = format!("    chain  {} (base)", chain.join(" -> "));
        assert!(
            rest.lines()
                .skip(1)
                .take_while(|l| l.starts_with("    "))
                .any(|l| l == chain_line),
            "{n}: no {chain_line:?} in\n{out}"
        );
    };
    drawn(&c1_chain[0], "active", "c1", &c1_chain);
    drawn(&c1_chain[1], "committed", top, &c1_chain[1..]);
    drawn(&c1_chain[2], "committed", base, &c1_chain[2..]);
    assert_eq!(c0_chain.len(), 2, "{c0}");
    assert_eq!(c0_chain[1], c1_chain[2], "{c0}");
    drawn(&c0_chain[0], "active", "c0", &c0_chain);
    assert_eq!(out.matches("    chain  ").count(), 4, "{out}");
    // Damaged copies of the snapshotter directory.
    let snap = root.join("io.containerd.snapshotter.v1.overlayfs");
    let damaged = dir.join("damaged");
    sh(
        "cp",
        &["-a", snap.to_str().unwrap(), damaged.to_str().unwrap()],
    );
    let gone = &c1_chain[1];
    sh(
        "rm",
        &[
            "-rf",
            damaged.join("snapshots").join(gone).to_str().unwrap(),
        ],
    );
    fs::create_dir_all(damaged.join("snapshots/999/fs")).unwrap();
    let o = ovlcheck(&["inspect", damaged.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let db = damaged.join("metadata.db");
    for line in [
        format!("{}: committed snapshot inspect/", db.display()),
        format!("/{top} has id {gone}, but there is no directory"),
        format!(
            "{}: orphan layer directory",
            damaged.join("snapshots/999").display()
        ),
    ] {
        assert!(out.contains(&line), "{line:?} not in\n{out}");
    }
    assert!(out.contains("\nproblems (2):\n"), "{out}");
    // The user's store was read, never written: the daemon still lists
    // the same snapshots.
    let after = ctr(&["snapshots", "--snapshotter", "overlayfs", "ls"]);
    assert_eq!(after.lines().count(), 5, "{after}");
}
