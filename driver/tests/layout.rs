//! The overlay2 on-disk layout (moby `overlay2/overlay.go`), the seed
//! article's image + init + container stack, and deep stacks.

mod common;
use common::*;
use ovlcheck_case::{Case, Entry, LayerSpec, Outcome, Profile, RedirectDir, RelPath, Value};
use ovlcheck_driver::mount::{self, Method, MountSpec};
use ovlcheck_driver::store::{Layer, LayerStore, DOCKER_MAX_DEPTH};
use ovlcheck_driver::PooledBackend;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn is_link_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
}

#[test]
fn layout_matches_overlay2() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("overlay2");
    let mut store = LayerStore::init(&home, 42).unwrap();
    assert_eq!(mode(&home), 0o710);
    assert_eq!(mode(&home.join("l")), 0o700);
    let base = store.create(None).unwrap();
    let mid = store.create(Some(&base)).unwrap();
    let top = store.create(Some(&mid)).unwrap();
    for l in [&base, &mid, &top] {
        assert_eq!(l.id.len(), 64);
        assert!(l
            .id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert!(is_link_id(&l.link), "{}", l.link);
        let dir = home.join(&l.id);
        assert_eq!(mode(&dir), 0o710);
        assert_eq!(mode(&dir.join("diff")), 0o755);
        assert_eq!(fs::read_to_string(dir.join("link")).unwrap(), l.link);
        assert_eq!(mode(&dir.join("link")), 0o644);
        let target = fs::read_link(home.join("l").join(&l.link)).unwrap();
        assert_eq!(
            target.to_str().unwrap(),
            format!("../{}/diff", l.id),
            "relative l/ link"
        );
        assert_eq!(
            fs::canonicalize(home.join("l").join(&l.link)).unwrap(),
            fs::canonicalize(dir.join("diff")).unwrap()
        );
    }
    // The base layer: only diff/ and link.
    let mut names: Vec<String> = fs::read_dir(home.join(&base.id))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["committed", "diff", "link"],
        "committed appears once a child exists"
    );
    assert_eq!(mode(&home.join(&base.id).join("committed")), 0o600);
    assert!(!home.join(&base.id).join("lower").exists());
    assert!(!home.join(&base.id).join("work").exists());
    // Children: lower = nearest parent first, work/ 0700.
    assert_eq!(
        fs::read_to_string(home.join(&mid.id).join("lower")).unwrap(),
        format!("l/{}", base.link)
    );
    assert_eq!(
        fs::read_to_string(home.join(&top.id).join("lower")).unwrap(),
        format!("l/{}:l/{}", mid.link, base.link)
    );
    assert_eq!(mode(&home.join(&top.id).join("work")), 0o700);
    assert!(home.join(&mid.id).join("committed").exists());
    assert!(!home.join(&top.id).join("committed").exists());
    assert_eq!(store.open(&top.id).unwrap(), top);
    assert_eq!(
        store.resolve_lower(&top.lower[0]).unwrap(),
        home.join("l").join(format!("../{}/diff", mid.id))
    );
    // Deterministic: a second store with the same seed has the same ids.
    let mut again = LayerStore::init(&tmp.path().join("again"), 42).unwrap();
    assert_eq!(again.create(None).unwrap().id, base.id);
    store.remove(&top).unwrap();
    assert!(!home.join(&top.id).exists());
    assert!(fs::symlink_metadata(home.join("l").join(&top.link)).is_err());
}

#[test]
fn init_layer_has_dockers_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = LayerStore::init(&tmp.path().join("overlay2"), 1).unwrap();
    let image = store.create(None).unwrap();
    let cid = store.new_id();
    let init = store.create_init_layer(&cid, Some(&image)).unwrap();
    assert_eq!(init.id, format!("{cid}-init"));
    let diff = store.diff(&init);
    for d in ["dev/pts", "dev/shm", "proc", "sys"] {
        assert!(diff.join(d).is_dir(), "{d}");
        assert_eq!(mode(&diff.join(d)), 0o755);
    }
    for f in [
        ".dockerenv",
        "etc/resolv.conf",
        "etc/hosts",
        "etc/hostname",
        "dev/console",
    ] {
        let m = fs::symlink_metadata(diff.join(f)).unwrap();
        assert!(m.is_file() && m.len() == 0, "{f}");
    }
    assert_eq!(
        fs::read_link(diff.join("etc/mtab")).unwrap().to_str(),
        Some("/proc/mounts")
    );
    let container = store.create_named(&cid, Some(&init)).unwrap();
    assert!(
        store.dir(&init.id).join("committed").exists(),
        "the init layer is a parent now"
    );
    assert_eq!(
        container.lower,
        vec![format!("l/{}", init.link), format!("l/{}", image.link)]
    );
}

/// A layer that cannot be finished (here its parent is gone, so
/// `committed` cannot be written; on a full store, ENOSPC) leaves nothing
/// behind: no directory, no `l/` link (overlay2 `create` removes it too).
#[test]
fn a_layer_that_fails_part_way_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("overlay2");
    let mut store = LayerStore::init(&home, 7).unwrap();
    let gone = Layer {
        id: "0".repeat(64),
        link: "GONE".into(),
        lower: Vec::new(),
    };
    assert!(store.create(Some(&gone)).is_err());
    let names = |d: &Path| -> Vec<String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&home), vec!["l".to_string()]);
    assert!(names(&home.join("l")).is_empty());
    // The store still works.
    let base = store.create(None).unwrap();
    assert!(store.create(Some(&base)).is_ok());
}

/// Runs `f` in a forked child with its own mount namespace and a tmpfs at
/// `dir`; the child's exit status says whether `f` passed.
fn in_mount_namespace(dir: &Path, f: impl FnOnce(&Path)) {
    fs::create_dir_all(dir).unwrap();
    // SAFETY: the child runs `f` and exits without returning to the harness.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .unwrap();
                mount::mount_tmpfs(dir, None).unwrap();
                f(dir);
            }));
            // SAFETY: leave the forked child without running destructors.
            unsafe { libc::_exit(if r.is_ok() { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(
                st,
                nix::sys::wait::WaitStatus::Exited(child, 0),
                "the namespaced part failed (see its panic above)"
            );
        }
    }
}

fn write(p: &Path, data: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// The seed article: `ubuntu:14.04` (4 layers), `docker run` adds an
/// `-init` layer and a container layer; mountinfo shows the lowers through
/// `l/` links, init first; the container's diff records `Test/`, `root/aa`
/// and the whiteout `bin/ss`.
#[test]
fn seed_article_image_init_and_container() {
    if !kernel_available("seed_article") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    in_mount_namespace(&tmp.path().join("docker"), |dir| {
        let mut store = LayerStore::init(&dir.join("overlay2"), 2019).unwrap();
        let mut image: Vec<Layer> = Vec::new();
        for i in 0..4 {
            let l = store.create(image.last()).unwrap();
            let diff = store.diff(&l);
            if i == 0 {
                for d in [
                    "bin", "boot", "dev", "etc", "home", "lib", "root", "tmp", "usr", "var",
                ] {
                    fs::create_dir(diff.join(d)).unwrap();
                }
                write(&diff.join("bin/ss"), "ss");
            }
            write(&diff.join(format!("etc/layer{i}")), &i.to_string());
            image.push(l);
        }
        let cid = store.new_id();
        let init = store.create_init_layer(&cid, image.last()).unwrap();
        let c = store.create_named(&cid, Some(&init)).unwrap();
        fs::create_dir(store.merged(&c)).unwrap();
        let spec = MountSpec {
            lowers: c.lower.clone(),
            upper: Some(format!("{cid}/diff")),
            work: Some(format!("{cid}/work")),
            target: format!("{cid}/merged"),
            options: vec!["index=off".into()],
            data: Vec::new(),
        };
        assert_eq!(
            mount::mount_kernel(store.home(), &spec).unwrap(),
            Method::Absolute
        );
        let home = store.home().display().to_string();
        let info = mount::mountinfo();
        let line = info
            .lines()
            .find(|l| l.contains(" overlay ") && l.contains(&cid))
            .expect("overlay in mountinfo");
        let mut want = format!("lowerdir={home}/l/{}", init.link);
        for l in image.iter().rev() {
            want.push_str(&format!(":{home}/l/{}", l.link));
        }
        assert!(line.contains(&want), "{line}\nwants {want}");
        assert!(
            line.contains(&format!("upperdir={home}/{cid}/diff")),
            "{line}"
        );
        assert!(
            line.contains(&format!("workdir={home}/{cid}/work")),
            "{line}"
        );
        let merged = store.merged(&c);
        fs::create_dir(merged.join("Test")).unwrap();
        fs::write(merged.join("root/aa"), "").unwrap();
        fs::remove_file(merged.join("bin/ss")).unwrap();
        assert!(merged.join(".dockerenv").exists() && merged.join("etc/layer3").exists());
        let diff = store.diff(&c);
        let mut top: Vec<String> = fs::read_dir(&diff)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["Test", "bin", "root"]);
        assert!(diff.join("root/aa").is_file());
        let ss = fs::symlink_metadata(diff.join("bin/ss")).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&ss.file_type()),
            "a whiteout"
        );
        mount::unmount(&merged).unwrap();
    });
}

fn deep_case(layers: usize) -> Case {
    let mut c = case("lower\n  file base 0644 \"bottom\"\nops\n");
    for i in 1..layers {
        let e = Entry::File {
            path: RelPath::parse(&format!("f{i}")).unwrap(),
            mode: 0o644,
            data: vec![],
        };
        c.lowers.push(LayerSpec::new(vec![e]));
    }
    c
}

fn deep(layers: usize, method: &str) {
    let b = PooledBackend::kernel();
    let mut s = b
        .start_session(&deep_case(layers))
        .unwrap_or_else(|e| panic!("{layers} layers: {e}"));
    assert_eq!(ok(s.mount_method()), method);
    use ovlcheck_driver::Session;
    assert_eq!(
        ok(s.apply(&step("read base"))),
        Outcome::Ok(Value::Bytes(b"bottom".to_vec()))
    );
    assert_eq!(ok(s.merged_view()).nodes.len(), layers + 1);
    assert_eq!(ok(s.apply(&step("remount"))), Outcome::OK);
    assert_eq!(ok(s.mount_method()), method);
    let info = ok(s.mountinfo());
    assert!(info.contains("l/"), "lowers through l/ links");
    ok(Box::new(s).finish());
}

#[test]
fn docker_depth_of_128_layers_fits_a_page() {
    if !kernel_available("deep_128") {
        return;
    }
    // 128 image layers: absolute paths exceed a page, relative ones fit
    // (overlay2 mountFrom).
    deep(DOCKER_MAX_DEPTH, "Relative");
}

#[test]
fn five_hundred_layers_need_the_new_mount_api() {
    if !kernel_available("deep_500") {
        return;
    }
    deep(mount::OVL_MAX_STACK, "NewApi");
}

#[test]
fn small_stacks_mount_with_absolute_paths() {
    if !kernel_available("shallow") {
        return;
    }
    deep(3, "Absolute");
}

/// Lowers `l1` and `l2`, upper `u`, work `w` on `m`, mounted with the
/// options `kernel_options` gives `p`.
fn two_lowers(p: &Profile) -> MountSpec {
    MountSpec {
        lowers: vec!["l1".into(), "l2".into()],
        upper: Some("u".into()),
        work: Some("w".into()),
        target: "m".into(),
        options: mount::kernel_options(p),
        data: Vec::new(),
    }
}

/// The profiles `Profile::validate` refuses for their options are refused
/// by the kernel too (EINVAL, params.c: ovl_fs_params_verify, "conflicting
/// options"), with the options `kernel_options` gives; the neighbouring
/// profiles it accepts mount.
#[test]
fn kernel_refuses_what_validate_refuses() {
    if !kernel_available("kernel_refuses_what_validate_refuses") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    in_mount_namespace(&tmp.path().join("conflicts"), |dir| {
        for d in ["l1", "l2", "u", "w", "m"] {
            fs::create_dir(dir.join(d)).unwrap();
        }
        let with = |f: &dyn Fn(&mut Profile)| {
            let mut p = Profile::default();
            f(&mut p);
            p
        };
        let refused = [
            with(&|p| {
                p.metacopy = true;
                p.redirect_dir = RedirectDir::Off;
            }),
            with(&|p| {
                p.metacopy = true;
                p.redirect_dir = RedirectDir::NoFollow;
            }),
            with(&|p| {
                p.metacopy = true;
                p.redirect_dir = RedirectDir::Follow;
            }),
            with(&|p| {
                p.userxattr = true;
                p.redirect_dir = RedirectDir::Off;
            }),
            with(&|p| {
                p.userxattr = true;
                p.redirect_dir = RedirectDir::On;
            }),
        ];
        for p in &refused {
            assert!(p.validate().is_err(), "{p:?} validates");
            let e = mount::mount_kernel(dir, &two_lowers(p)).unwrap_err();
            assert_eq!(e.errno, nix::errno::Errno::EINVAL, "{p:?}: {e}");
        }
        let accepted = [
            Profile::preset("nofollow").unwrap(),
            Profile::preset("redirect-off").unwrap(),
            Profile::preset("metacopy").unwrap(),
            with(&|p| {
                p.userxattr = true;
                p.redirect_dir = RedirectDir::NoFollow;
            }),
        ];
        for p in &accepted {
            assert_eq!(p.validate(), Ok(()), "{p:?}");
            mount::mount_kernel(dir, &two_lowers(p)).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            mount::unmount(&dir.join("m")).unwrap();
        }
    });
}

/// overlayfs.rst "Volatile mount", observed on this kernel: a volatile
/// mount (and `fsync=volatile`) leaves `work/incompat/volatile/dirty` in
/// its work dir; the next mount of the same upper and work dir, volatile
/// or not, is EINVAL until that directory is removed; a read-only mount
/// of the upper as a lower layer (the kernel view) needs no work dir and
/// mounts; `fsync=strict` and `fsync=auto` leave nothing.
#[test]
fn volatile_work_dir_refuses_the_next_mount() {
    if !kernel_available("volatile_work_dir_refuses_the_next_mount") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    in_mount_namespace(&tmp.path().join("volatile"), |dir| {
        for d in ["l1", "l2", "m"] {
            fs::create_dir(dir.join(d)).unwrap();
        }
        let dirty = dir.join("w/work/incompat/volatile/dirty");
        for (opt, volatile) in [
            ("volatile", true),
            ("fsync=volatile", true),
            ("fsync=strict", false),
            ("fsync=auto", false),
        ] {
            let _ = fs::remove_dir_all(dir.join("u"));
            let _ = fs::remove_dir_all(dir.join("w"));
            fs::create_dir(dir.join("u")).unwrap();
            fs::create_dir(dir.join("w")).unwrap();
            let mut p = Profile::default();
            p.set_option(opt).unwrap();
            mount::mount_kernel(dir, &two_lowers(&p)).unwrap_or_else(|e| panic!("{opt}: {e}"));
            fs::write(dir.join("m/f"), b"x").unwrap();
            mount::unmount(&dir.join("m")).unwrap();
            assert_eq!(dirty.exists(), volatile, "{opt}");
            let again = mount::mount_kernel(dir, &two_lowers(&Profile::default()));
            if !volatile {
                again.unwrap_or_else(|e| panic!("{opt}: remount: {e}"));
                mount::unmount(&dir.join("m")).unwrap();
                continue;
            }
            assert_eq!(again.unwrap_err().errno, nix::errno::Errno::EINVAL, "{opt}");
            let e = mount::mount_kernel(dir, &two_lowers(&p)).unwrap_err();
            assert_eq!(e.errno, nix::errno::Errno::EINVAL, "{opt} again");
            let view = MountSpec {
                lowers: vec!["u".into(), "l1".into()],
                upper: None,
                work: None,
                target: "m".into(),
                options: Vec::new(),
                data: Vec::new(),
            };
            mount::mount_kernel(dir, &view).unwrap_or_else(|e| panic!("{opt}: view: {e}"));
            assert_eq!(fs::read(dir.join("m/f")).unwrap(), b"x");
            mount::unmount(&dir.join("m")).unwrap();
            fs::remove_dir_all(dir.join("w/work/incompat/volatile")).unwrap();
            mount::mount_kernel(dir, &two_lowers(&p))
                .unwrap_or_else(|e| panic!("{opt}: after rm: {e}"));
            assert_eq!(fs::read(dir.join("m/f")).unwrap(), b"x");
            mount::unmount(&dir.join("m")).unwrap();
        }
    });
}

/// A volatile upper's remount on the kernel backend: the remount step and
/// the lifecycle remount are EINVAL, the worker then mounts the same
/// layers again (work/incompat/volatile removed), so the ops after it run
/// and the merged view after the lifecycle remount and the export are
/// taken, not skipped.
#[test]
fn volatile_remount_is_refused_then_mounted_again() {
    if !kernel_available("volatile_remount") {
        return;
    }
    use ovlcheck_driver::{Backend, Wants};
    let c = case(
        "profile volatile\nlower\n  file f 0644 \"lower\"\nops\n  write f 0 \"upper\"\n  remount\n  read f\n",
    );
    let b = PooledBackend::kernel();
    let wants = Wants {
        kernel_view: true,
        export: true,
    };
    let run = b.run_case(&c, wants).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.outcomes[1], err("EINVAL"));
    assert_eq!(
        run.outcomes[2],
        Outcome::Ok(Value::Bytes(b"upper".to_vec()))
    );
    assert_eq!(run.remount, err("EINVAL"));
    let after = run.after_remount.expect("mounted again after the refusal");
    assert!(after.nodes.contains_key("f"), "{after:?}");
    assert!(run.export.is_some(), "the export runs after the remount");
    assert_eq!(run.commit, Outcome::OK);
    assert!(matches!(run.kernel_view, Some(Ok(_))));
}
