//! The `podman` backend (docs/engines.md, "podman") on a private `podman
//! system service` started in a scratch directory: a short campaign, and
//! one test per behaviour of containers/storage's overlay driver that the
//! backend models. Without root or podman every test skips loudly; with
//! `OVL_REQUIRE_KERNEL=1` it fails instead. Each test stops its service,
//! which leaves nothing mounted or running.

mod common;

use ovlcheck_case::oci::TarXattrs;
use ovlcheck_case::text::parse_case;
use ovlcheck_case::{Case, LayerSpec, Profile};
use ovlcheck_driver::{Backend, BackendOptions};
use ovlcheck_engine::PodmanBackend;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A private podman service, or `None` after saying why loudly (a failure
/// under `OVL_REQUIRE_KERNEL=1`).
fn podman(test: &str) -> Option<PodmanBackend> {
    match PodmanBackend::new(None, BackendOptions::default()) {
        Ok(b) => Some(b),
        Err(e) if common::kernel_required() => {
            panic!("{test}: a private podman is required (OVL_REQUIRE_KERNEL=1) but unusable: {e}")
        }
        Err(e) => {
            eprintln!("\n*** SKIP {test}: no private podman here: {e}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n");
            None
        }
    }
}

fn case(text: &str) -> Case {
    parse_case("test.ovl", text).expect("a valid case")
}

#[test]
fn campaign_of_30_cases_has_no_divergence() {
    let _serial = common::serial(); // a private daemon per test
    let test = "campaign_of_30_cases_has_no_divergence";
    // The CLI starts (and stops) its own service; this one only checks
    // that podman is usable here.
    let Some(probe) = podman(test) else { return };
    drop(probe);
    // A killed earlier run may have left mounts; only new ones are a leak.
    let before = common::mounted_under("/tmp/ovlcheck-podman.");
    let out = Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args([
            "fuzz",
            "--backend",
            "podman",
            "--cases",
            "30",
            "--seed",
            "1",
        ])
        .args(["--jobs", "1"])
        .output()
        .expect("run ovlcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .find(|l| l.starts_with("fuzz: "))
        .unwrap_or_else(|| panic!("no summary:\n{text}"));
    assert!(
        summary.contains("fuzz: 30 cases")
            && summary.contains(" 0 divergent cases")
            && summary.contains(" 0 backend failures"),
        "{text}"
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(common::mounted_under("/tmp/ovlcheck-podman."), before);
}

/// Cases packed in one container (`--pack 8`) are judged as alone.
#[test]
fn packed_campaign_reports_what_its_cases_alone_report() {
    let _serial = common::serial(); // a private daemon per test
    let Some(probe) = podman("packed_campaign_reports_what_its_cases_alone_report") else {
        return;
    };
    drop(probe);
    let before = common::mounted_under("/tmp/ovlcheck-podman.");
    common::engine_pack_reports_as_alone(&["--backend", "podman"]);
    assert_eq!(common::mounted_under("/tmp/ovlcheck-podman."), before);
}

/// containers/storage creates a container layer right on the image's top
/// layer: no `-init` layer is added to the case, only the empty layer an
/// image needs when the case has none.
#[test]
fn containers_have_no_init_layer() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = podman("containers_have_no_init_layer") else {
        return;
    };
    let c = case("lower\n  file a 0644 \"a\"\nops\n  stat a => {file 0644 0:0 size=1 nlink=1}\n");
    let adapted = b.adapt_case(&c).unwrap();
    assert_eq!(adapted.lowers, c.lowers);
    assert_eq!(b.adapt_case(&adapted).unwrap(), adapted, "idempotent");
    let mut bare = c.clone();
    bare.lowers.clear();
    assert_eq!(
        b.adapt_case(&bare).unwrap().lowers,
        vec![LayerSpec::default()]
    );
    assert!(
        b.store_home().ends_with("root/overlay"),
        "{:?}",
        b.store_home()
    );
}

/// The driver mounts with the module's defaults and nothing of its own:
/// the `default` profile and only it; `metacopy` and the rest are refused
/// with the reason.
#[test]
fn only_the_default_profile_is_run() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = podman("only_the_default_profile_is_run") else {
        return;
    };
    let p = |n: &str| Profile::preset(n).unwrap();
    assert_eq!(b.adapt_profile(&p("default")), Ok(p("default")));
    for name in ["metacopy", "redirect", "index"] {
        let e = b.adapt_profile(&p(name)).unwrap_err();
        assert!(e.contains("podman") && e.contains("default profile"), "{e}");
    }
}

/// containers/storage gives a base layer's `diff/` mode 0555 and a child
/// its parent's, whatever the layer tar's `./` entry says (podman 4.3):
/// seen with the podman CLI on a scratch store.
#[test]
fn layer_roots_are_0555_whatever_the_tar_says() {
    let _serial = common::serial(); // a private daemon per test
    let test = "layer_roots_are_0555_whatever_the_tar_says";
    let Some(probe) = podman(test) else { return };
    drop(probe);
    let dir = tempfile::Builder::new()
        .prefix("ovlcheck-podman-cli.")
        .tempdir()
        .unwrap();
    let d = dir.path();
    let src = d.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("a/f"), "f").unwrap();
    let tar = d.join("l.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .arg(format!("--root={}", d.join("root").display()))
            .arg(format!("--runroot={}", d.join("run").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .args(["--storage-driver=overlay", "--events-backend=none"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "podman {args:?}: {out:?}");
    };
    podman(&["import", "-q", tar.to_str().unwrap(), "img"]);
    podman(&["create", "-q", "--name", "c", "img", "/x"]);
    let home = d.join("root/overlay");
    let mut modes = Vec::new();
    for e in std::fs::read_dir(&home).unwrap() {
        let p = e.unwrap().path();
        if p.join("diff").is_dir() {
            modes.push(mode(&p.join("diff")));
        }
    }
    podman(&["rm", "-a"]);
    podman(&["rmi", "-a"]);
    ovlcheck_engine::daemon::unmount_under(d);
    assert_eq!(
        modes,
        vec![0o555, 0o555],
        "the image layer and the container's"
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// containers/storage writes an opaque directory's marker only where a
/// lower layer holds the directory: a directory made opaque by a rename
/// (redirect_dir off) over nothing gets none, one over a lower directory
/// does, and the model predicts both.
#[test]
fn opaque_markers_only_over_lower_directories() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = podman("opaque_markers_only_over_lower_directories") else {
        return;
    };
    let c = b
        .adapt_case(&case(
            "lower\n  file a/d 0644 \"x\"\n  dir o 0755\n  file o/f 0644 \"f\"\nops\n  mkdir c 0777 => ok\n  rename c a/e => ok\n  rmdir o => ENOTEMPTY\n  unlink o/f => ok\n  rmdir o => ok\n  mkdir o 0755 => ok\n",
        ))
        .unwrap();
    let mut s = b.start(&c).unwrap();
    for step in &c.steps {
        s.apply(step).unwrap();
    }
    let upper = s.upper_view().unwrap().unwrap();
    let export = s.export().unwrap().expect("an engine exports");
    Box::new(s).finish().unwrap();
    let changeset = export.changeset.unwrap();
    let opaque = |p: &str| upper.nodes[p].overlay.get("opaque").map(String::as_str) == Some("y");
    assert!(opaque("a/e") && opaque("o"), "{upper:?}");
    assert!(
        !changeset.nodes.contains_key("a/e/.wh..wh..opq"),
        "{changeset:?}"
    );
    assert!(
        changeset.nodes.contains_key("o/.wh..wh..opq"),
        "{changeset:?}"
    );
    let mut model = ovlcheck_model::Model::new(&c).unwrap();
    for step in &c.steps {
        model = model.step(step).1;
    }
    let lowers: Vec<_> = (0..model.lower_count())
        .map(|i| model.lower_view(i))
        .collect();
    let predicted = TarXattrs::CapabilityAndUser.written(model.changeset().unwrap().1, &lowers);
    assert_eq!(
        predicted.nodes.keys().collect::<Vec<_>>(),
        changeset.nodes.keys().collect::<Vec<_>>()
    );
}

/// A commit through podman keeps `user.*` xattrs (containers/storage
/// pkg/archive), writes whiteouts (mode 0, read back as the model writes
/// them) and gives an empty changeset for an empty diff (podman adds an
/// empty layer where Docker adds none); the merged root is a case's 0755.
#[test]
fn commits_carry_user_xattrs_and_whiteouts() {
    let _serial = common::serial(); // a private daemon per test
    let Some(b) = podman("commits_carry_user_xattrs_and_whiteouts") else {
        return;
    };
    let c = b
        .adapt_case(&case(
            "lower\n  file a 0644 \"a\"\n  file b 0644 \"b\"\nops\n  unlink a => ok\n  setxattr b user.k \"v\" => ok\n",
        ))
        .unwrap();
    let mut s = b.start(&c).unwrap();
    for step in &c.steps {
        s.apply(step).unwrap();
    }
    let root = s.merged_view().unwrap().nodes[""].mode;
    assert_eq!(root, 0o755, "the container's root");
    let export = s.export().unwrap().expect("an engine exports");
    assert_eq!(export.commit.xattrs, TarXattrs::CapabilityAndUser);
    let changeset = export.changeset.unwrap();
    let wh = &changeset.nodes[".wh.a"];
    assert_eq!(wh.mode, 0o600, "mode 0 in the tar, read back as 0600");
    assert_eq!(
        changeset.nodes["b"].xattrs.get("user.k").map(Vec::as_slice),
        Some(&b"v"[..]),
        "{changeset:?}"
    );
    Box::new(s).finish().unwrap();
    // An empty diff still exports an (empty) layer.
    let c = b
        .adapt_case(&case(
            "lower\n  file a 0644 \"a\"\nops\n  stat a => {file 0644 0:0 size=1 nlink=1}\n",
        ))
        .unwrap();
    let mut s = b.start(&c).unwrap();
    let export = s.export().unwrap().expect("an engine exports");
    assert_eq!(export.changeset, Ok(Default::default()));
    Box::new(s).finish().unwrap();
}

/// The whole corpus on podman: no new divergence, no backend failure, and
/// corpus/known-podman shows what its README says.
#[test]
fn corpus_on_podman_shows_only_known_divergences() {
    let _serial = common::serial(); // a private daemon per test
    let test = "corpus_on_podman_shows_only_known_divergences";
    let Some(probe) = podman(test) else { return };
    drop(probe);
    let before = common::mounted_under("/tmp/ovlcheck-podman.");
    let corpus = common::corpus_dir();
    let out = common::ovlcheck(&[
        "replay",
        corpus.to_str().unwrap(),
        "--backend",
        "podman",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(j["new_divergences"], 0, "{j}");
    assert_eq!(j["backend_failures"], 0, "{j}");
    assert!(j["known_divergences"].as_u64().unwrap() >= 1, "{j}");
    assert!(j["exported"].as_u64().unwrap() >= 100, "{j}");
    assert_eq!(common::mounted_under("/tmp/ovlcheck-podman."), before);
}
