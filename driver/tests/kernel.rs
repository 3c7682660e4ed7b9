//! Sessions on the kernel's overlayfs: ops and their errnos on a real
//! overlay, credentials, lifecycle ops, every profile, views.

mod common;
use common::*;
use ovlcheck_case::{DevClass, LowerFs, NodeKind, Outcome, Profile, Value, View};
use ovlcheck_driver::proto::Mounter;
use ovlcheck_driver::{Backend, BackendOptions, DriverError, PooledBackend, Session, Wants};
use std::time::Duration;

const IMAGE: &str = r#"
lower
  dir d 0755
  file d/x 0644 "q"
  dir ld 0755
  file ld/f 0644 "f"
  file a 0644 "hi"
  dir priv 0700
  file priv/s 0600 "secret"
  file mine 0644 "m"
  owner mine 1000 1000
  dir pub 0777
lower
  file b 0644 "top"
  whiteout a2
"#;

fn start(text: &str) -> Box<dyn Session> {
    ok(PooledBackend::kernel().start(&case(text)))
}

fn run(s: &mut Box<dyn Session>, text: &str) -> Outcome {
    ok(s.apply(&step(text)))
}

fn bytes(b: &str) -> Outcome {
    Outcome::Ok(Value::Bytes(b.as_bytes().to_vec()))
}

#[test]
fn overlay_errnos() {
    if !kernel_available("overlay_errnos") {
        return;
    }
    let mut s = start(IMAGE);
    assert_eq!(run(&mut s, "read a"), bytes("hi"));
    assert_eq!(run(&mut s, "read b"), bytes("top"));
    assert_eq!(run(&mut s, "read missing"), err("ENOENT"));
    assert_eq!(run(&mut s, "mkdir d 0755"), err("EEXIST"));
    assert_eq!(run(&mut s, "mkdir a/x 0755"), err("ENOTDIR"));
    assert_eq!(run(&mut s, "open d rdwr"), err("EISDIR"));
    assert_eq!(run(&mut s, "rmdir d"), err("ENOTEMPTY"));
    assert_eq!(run(&mut s, "rename d/x d/x/y"), err("ENOTDIR"));
    assert_eq!(run(&mut s, "rename d d/sub"), err("EINVAL"));
    // A lower directory cannot be renamed without redirect_dir.
    assert_eq!(run(&mut s, "rename ld ld2"), err("EXDEV"));
    assert_eq!(run(&mut s, "symlink \"loop\" loop"), Outcome::OK);
    assert_eq!(run(&mut s, "stat loop"), err("ELOOP"));
    // Another uid without capabilities.
    assert_eq!(run(&mut s, "as 1000:1000 read priv/s"), err("EACCES"));
    assert_eq!(run(&mut s, "as 1000:1000 create d/new 0644"), err("EACCES"));
    assert_eq!(run(&mut s, "as 1000:1000 chown a 1000 1000"), err("EPERM"));
    assert_eq!(run(&mut s, "as 1000:1000 chmod a 0777"), err("EPERM"));
    assert_eq!(run(&mut s, "as 1000:1000 write mine 0 \"M\""), Outcome::OK);
    assert_eq!(run(&mut s, "as 1000:1000 create pub/f 0600"), Outcome::OK);
    assert_eq!(
        run(&mut s, "as 1000:1000 setxattr a trusted.x \"1\""),
        err("EPERM")
    );
    // Root again: the creds were restored.
    assert_eq!(run(&mut s, "read priv/s"), bytes("secret"));
    assert_eq!(
        run(&mut s, "stat pub/f"),
        Outcome::Ok(Value::Stat(stat("file", 0o600, 1000, 1000, 0, 1)))
    );
    ok(s.finish());
}

fn stat(
    kind: &str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    nlink: u32,
) -> ovlcheck_case::StatInfo {
    ovlcheck_case::StatInfo {
        kind: ovlcheck_case::FileKind::from_keyword(kind).unwrap(),
        mode,
        uid,
        gid,
        size,
        nlink,
    }
}

#[test]
fn views_show_whiteouts_opaque_dirs_and_inode_labels() {
    if !kernel_available("views") {
        return;
    }
    let mut s = start(IMAGE);
    for op in [
        "unlink a",
        "rmdir ld/f",
        "unlink ld/f",
        "rmdir ld",
        "mkdir ld 0700",
        "link b b2",
        "create n 0644",
    ] {
        s.apply(&step(op)).unwrap();
    }
    let up = ok(s.upper_view()).expect("an upper");
    assert_eq!(up.nodes["a"].kind, NodeKind::Whiteout);
    assert_eq!(up.nodes["a"].nlink, None);
    assert_eq!(
        up.nodes["ld"].overlay.get("opaque").map(String::as_str),
        Some("y")
    );
    assert_eq!(
        up.nodes[""].overlay.get("uuid").map(String::as_str),
        Some("uuid")
    );
    let m = ok(s.merged_view());
    assert!(!m.nodes.contains_key("a"));
    assert!(!m.nodes.contains_key("a2"));
    assert_eq!(m.nodes["d/x"].ino.as_deref(), Some("=d/x"));
    assert_eq!(
        m.nodes["b2"].ino, m.nodes["b"].ino,
        "hard links share a label"
    );
    assert_eq!(m.nodes["b"].ino.as_deref(), Some("=b"));
    assert_eq!(m.nodes["n"].ino.as_deref(), Some("+n"));
    assert_eq!(m.nodes["n"].dev, Some(DevClass::Overlay));
    assert_eq!(m.nodes["b"].nlink, Some(2));
    let lowers = ok(s.lower_views());
    assert_eq!(lowers.len(), 2);
    assert_eq!(lowers[1].nodes["a2"].kind, NodeKind::Whiteout);
    assert_eq!(lowers[0].nodes["mine"].uid, 1000);
    assert_eq!(
        lowers[0].nodes["a"].mtime,
        Some(ovlcheck_case::layer::DEFAULT_MTIME)
    );
    ok(s.finish());
}

fn names(v: &View) -> Vec<&str> {
    v.nodes.keys().map(String::as_str).collect()
}

#[test]
fn remount_and_commit() {
    if !kernel_available("remount_and_commit") {
        return;
    }
    let mut s = start(IMAGE);
    run(&mut s, "write a 0 \"HI\"");
    run(&mut s, "unlink d/x");
    let before = ok(s.merged_view());
    assert_eq!(run(&mut s, "remount"), Outcome::OK);
    let after = ok(s.merged_view());
    assert_eq!(names(&before), names(&after));
    assert_eq!(after.nodes["a"].data.as_deref(), Some(&b"HI"[..]));
    // After a remount, labels refer to the new mount's snapshot.
    assert_eq!(after.nodes["a"].ino.as_deref(), Some("=a"));
    assert_eq!(run(&mut s, "commit"), Outcome::OK);
    let lowers = ok(s.lower_views());
    assert_eq!(lowers.len(), 3, "the committed container is the top lower");
    assert_eq!(lowers[2].nodes["d/x"].kind, NodeKind::Whiteout);
    let up = ok(s.upper_view()).unwrap();
    assert_eq!(names(&up), vec![""], "a fresh container layer");
    let m = ok(s.merged_view());
    assert_eq!(names(&m), names(&after));
    assert_eq!(run(&mut s, "read a"), bytes("HI"));
    assert_eq!(run(&mut s, "commit"), Outcome::OK);
    assert_eq!(ok(s.lower_views()).len(), 4);
    ok(s.finish());
}

#[test]
fn every_profile_mounts() {
    if !kernel_available("every_profile_mounts") {
        return;
    }
    let b = PooledBackend::kernel();
    for p in ovlcheck_case::profile::PRESETS {
        let mut c = case(IMAGE);
        c.profile = Profile::preset(p.name).unwrap();
        let mut s = b
            .start(&c)
            .unwrap_or_else(|e| panic!("profile {}: {e}", p.name));
        let w = s.apply(&step("write a 0 \"x\"")).unwrap();
        if p.name == "readonly" {
            assert_eq!(w, err("EROFS"));
            assert_eq!(ok(s.upper_view()), None);
        } else {
            assert_eq!(w, Outcome::OK, "profile {}", p.name);
            assert!(ok(s.upper_view()).unwrap().nodes.contains_key("a"));
        }
        if p.name == "userxattr" {
            s.apply(&step("rmdir ld/f")).unwrap();
            s.apply(&step("unlink ld/f")).unwrap();
            s.apply(&step("rmdir ld")).unwrap();
            s.apply(&step("mkdir ld 0755")).unwrap();
            let up = ok(s.upper_view()).unwrap();
            assert_eq!(
                up.nodes["ld"].overlay.get("opaque").map(String::as_str),
                Some("y"),
                "user.overlay.opaque"
            );
        }
        if p.name == "redirect" || p.name == "metacopy" {
            assert_eq!(s.apply(&step("rename ld ld2")).unwrap(), Outcome::OK);
            let up = ok(s.upper_view()).unwrap();
            assert_eq!(
                up.nodes["ld2"].overlay.get("redirect").map(String::as_str),
                Some("ld")
            );
        }
        if p.name == "xdev" {
            let m = ok(s.merged_view());
            assert_eq!(
                m.nodes["b"].dev,
                Some(DevClass::Other),
                "lower files on another fs without xino"
            );
        }
        if p.name == "volatile" {
            // Refused (work/incompat/volatile), then mounted again.
            assert_eq!(s.apply(&step("remount")).unwrap(), err("EINVAL"));
            assert_eq!(run(&mut s, "read a"), bytes("xi"));
        } else {
            assert_eq!(s.apply(&step("remount")).unwrap(), Outcome::OK);
        }
        assert_eq!(s.apply(&step("commit")).unwrap(), Outcome::OK);
        s.finish().unwrap();
    }
}

#[test]
fn enospc_profile_hits_enospc() {
    if !kernel_available("enospc") {
        return;
    }
    assert_eq!(
        fill_up(&PooledBackend::kernel(), Profile::preset("enospc").unwrap()),
        Some(err("ENOSPC"))
    );
}

/// A worker makes the next session's scratch (an unsized tmpfs) while it
/// waits; a case whose whole store must be on a small tmpfs never gets it.
#[test]
fn a_sized_store_never_gets_the_spare_scratch() {
    if !kernel_available("sized_store") {
        return;
    }
    let b = PooledBackend::kernel();
    // Both workers this thread takes turns between end a case, so each
    // holds a spare scratch.
    for _ in 0..2 {
        ok(b.run_case(&case(IMAGE), Wants::default()));
    }
    let p = Profile {
        upper_size: Some(64 * 1024),
        ..Profile::default()
    };
    assert_eq!(p.lower_fs, LowerFs::Same);
    assert_eq!(fill_up(&b, p), Some(err("ENOSPC")));
}

/// Writes 64 KiB files into a case with `profile` until a write fails;
/// the failure.
fn fill_up(b: &PooledBackend, profile: Profile) -> Option<Outcome> {
    let mut c = case("lower\n  file f 0644 \"x\"\nops\n");
    c.profile = profile;
    let mut s = ok(b.start(&c));
    let big = "x".repeat(64 * 1024);
    let mut saw = None;
    for i in 0..16 {
        let o = run(&mut s, &format!("write f{i} 0 \"{big}\""));
        let o = if o == err("ENOENT") {
            run(&mut s, &format!("create f{i} 0644"))
        } else {
            o
        };
        let o = if o == Outcome::OK {
            run(&mut s, &format!("write f{i} 0 \"{big}\""))
        } else {
            o
        };
        if o != Outcome::OK {
            saw = Some(o);
            break;
        }
    }
    ok(s.finish());
    saw
}

#[test]
fn pinned_step_creds_do_not_leak_and_sessions_reuse_workers() {
    if !kernel_available("reuse") {
        return;
    }
    let b = PooledBackend::kernel();
    let mut pids = Vec::new();
    for i in 0..5 {
        let mut s = b.start_session(&case(IMAGE)).unwrap();
        pids.push(s.worker_pid());
        assert_eq!(
            ok(s.apply(&step("as 1000:1000 read priv/s"))),
            err("EACCES")
        );
        assert_eq!(
            ok(s.apply(&step(&format!("create n{i} 0644")))),
            Outcome::OK
        );
        let v = ok(s.merged_view());
        assert_eq!(v.nodes[&format!("n{i}")].uid, 0);
        assert!(!v.nodes.contains_key(&format!("n{}", i.max(1) - 1)) || i == 0 || i == 1);
        ok(Box::new(s).finish());
    }
    // Two pooled workers take turns: one settles while the other serves.
    assert!(
        pids.windows(2).all(|w| w[0] != w[1]) && pids.windows(3).all(|w| w[0] == w[2]),
        "two pooled workers take turns: {pids:?}"
    );
}

#[test]
fn watchdog_kills_a_hung_worker() {
    if !kernel_available("watchdog") {
        return;
    }
    let opts = BackendOptions {
        timeout: Duration::from_millis(300),
        ..BackendOptions::default()
    };
    let b = PooledBackend::new(Mounter::Kernel, opts);
    let mut s = b.start_session(&case(IMAGE)).unwrap();
    let pid = s.worker_pid();
    match s.stall(5) {
        Err(DriverError::Hung { op }) => assert_eq!(op, "sleep"),
        other => panic!("{other:?}"),
    }
    assert!(!ovlcheck_driver::process::is_alive(pid));
    match s.apply(&step("read a")) {
        Err(DriverError::Died(_)) => {}
        other => panic!("{other:?}"),
    }
    // The backend recovers with a new worker.
    let mut s2 = b.start_session(&case(IMAGE)).unwrap();
    assert_ne!(s2.worker_pid(), pid);
    assert_eq!(ok(s2.apply(&step("read a"))), bytes("hi"));
}

/// `.` names the overlay root; ops on it behave as on a container's `/`.
#[test]
fn ops_on_the_root() {
    if !kernel_available("ops_on_the_root") {
        return;
    }
    let mut s = start(IMAGE);
    let expect = [
        ("readlink .", err("EINVAL")),
        ("mkdir . 0755", err("EEXIST")),
        ("mkfifo . 0644", err("EEXIST")),
        ("symlink \"x\" .", err("EEXIST")),
        ("unlink .", err("EISDIR")),
        ("rmdir .", err("EBUSY")),
        ("link . x", err("EPERM")),
        ("link a .", err("EEXIST")),
        ("rename . x", err("EBUSY")),
        ("rename a .", err("EBUSY")),
        ("as 1000:1000 rmdir .", err("EBUSY")),
        ("create . 0644", err("EISDIR")),
        ("read .", err("EISDIR")),
        ("chmod . 0700", Outcome::OK),
        ("setxattr . user.k \"v\"", Outcome::OK),
        ("getxattr . user.k", bytes("v")),
    ];
    for (op, want) in expect {
        assert_eq!(run(&mut s, op), want, "{op}");
    }
    assert_eq!(
        run(&mut s, "lstat ."),
        Outcome::Ok(Value::Stat(stat("dir", 0o700, 0, 0, 0, 1)))
    );
    match run(&mut s, "readdir .") {
        Outcome::Ok(Value::Names(n)) => assert!(n.contains(&"a".to_string())),
        o => panic!("{o:?}"),
    }
    // The worker left its chroot: later ops and views still work.
    assert_eq!(run(&mut s, "read a"), bytes("hi"));
    assert_eq!(ok(s.merged_view()).nodes[""].mode, 0o700);
    ok(s.finish());
}

#[test]
fn a_whiteout_in_a_pure_upper_dir_is_a_phantom() {
    if !kernel_available("phantom") {
        return;
    }
    // An upper dir above a lower whiteout is not a merge dir: the kernel
    // lists the upper whiteout `a/b` in readdir but cannot look it up.
    let text = "lower\n  dir a 0755\n  file a/b 0644 \"x\"\nlower\n  whiteout a\nupper\n  dir a 0755\n  whiteout a/b\nops\n";
    let mut s = start(text);
    assert_eq!(
        run(&mut s, "readdir a"),
        Outcome::Ok(Value::Names(vec!["b".into()]))
    );
    assert_eq!(run(&mut s, "lstat a/b"), err("ENOENT"));
    let m = ok(s.merged_view());
    assert_eq!(m.nodes["a/b"], ovlcheck_driver::observe::phantom_node());
    ok(s.finish());
}

#[test]
fn a_pooled_worker_killed_while_idle_is_replaced() {
    if !kernel_available("idle_worker_killed") {
        return;
    }
    let b = PooledBackend::kernel();
    // Two sessions leave both of the workers a thread takes turns between
    // in the pool; the next session goes to the first, killed meanwhile.
    let mut pids = Vec::new();
    for _ in 0..2 {
        let s = b.start_session(&case(IMAGE)).unwrap();
        pids.push(s.worker_pid());
        ok(Box::new(s).finish());
    }
    assert_ne!(pids[0], pids[1]);
    for &pid in &pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let mut s = b.start_session(&case(IMAGE)).unwrap();
    assert!(!pids.contains(&s.worker_pid()), "{pids:?}");
    assert_eq!(ok(s.apply(&step("read a"))), bytes("hi"));
}

#[test]
fn userxattr_runs_other_uids_in_its_user_namespace() {
    if !kernel_available("userxattr_creds") || !nix::unistd::geteuid().is_root() {
        return;
    }
    let mut c = case(IMAGE);
    c.profile = Profile::preset("userxattr").unwrap();
    let mut s = ok(PooledBackend::kernel().start(&c));
    assert_eq!(run(&mut s, "as 1000:1000 read priv/s"), err("EACCES"));
    assert_eq!(run(&mut s, "as 1000:1000 write mine 0 \"M\""), Outcome::OK);
    assert_eq!(run(&mut s, "as 1000:1000 create pub/f 0600"), Outcome::OK);
    assert_eq!(
        run(&mut s, "stat pub/f"),
        Outcome::Ok(Value::Stat(stat("file", 0o600, 1000, 1000, 0, 1)))
    );
    assert_eq!(
        ok(s.upper_view()).unwrap().nodes["mine"].uid,
        1000,
        "ids as seen inside the namespace"
    );
    ok(s.finish());
}

/// Whole cases run again and again on the two pooled workers that take
/// turns give the same outcomes; their sessions are torn down and never
/// pile up: after 30 cases a worker holds only the current session's
/// overlay.
#[test]
fn repeated_cases_match_and_ended_sessions_leave_no_mounts() {
    if !kernel_available("repeated_cases") {
        return;
    }
    let b = PooledBackend::kernel();
    let text = format!(
        "{IMAGE}ops\n  write a 0 \"W\"\n  unlink d/x\n  remount\n  mkdir n 0755\n  commit\n  \
         rename b n/b\n  readdir n\n"
    );
    let c = case(&text);
    let direct = ok(b.run_case(&c, Wants::default()));
    assert_eq!(direct.outcomes.len(), c.steps.len());
    assert!(direct.outcomes.iter().all(|o| *o != err("EIO")));
    for _ in 0..30 {
        let landed = ok(b.run_case(&c, Wants::default()));
        assert_eq!(landed.outcomes, direct.outcomes);
        let paths = |v: &View| v.nodes.keys().cloned().collect::<Vec<_>>();
        assert_eq!(paths(&landed.merged), paths(&direct.merged));
        assert_eq!(
            landed.after_commit.as_ref().map(paths),
            direct.after_commit.as_ref().map(paths)
        );
    }
    let mut s = b.start_session(&c).unwrap();
    let info = ok(s.mountinfo());
    let overlays = info.lines().filter(|l| l.contains(" - overlay ")).count();
    assert_eq!(overlays, 1, "overlay mounts:\n{info}");
    ok(Box::new(s).finish());
}

/// The `idmapped` profile: every layer directory (the two lowers and the
/// container layer) is an idmapped mount, the overlay shows the case's
/// owners, and what it creates as a user is that user's; a commit's new
/// container layer is idmapped too.
#[test]
fn idmapped_layers_are_idmapped_mounts_showing_the_case_ids() {
    if !kernel_available("idmapped_layers") {
        return;
    }
    let mut c = case(IMAGE);
    c.profile = Profile::preset("idmapped").unwrap();
    let b = PooledBackend::kernel();
    let mut s = ok(b.start_session(&c));
    let home = ok(s.store_home());
    let idmapped = |info: &str| {
        info.lines()
            .filter(|l| {
                l.contains(&home) && l.split(' ').nth(5).is_some_and(|o| o.contains("idmapped"))
            })
            .count()
    };
    assert_eq!(
        idmapped(&ok(s.mountinfo())),
        3,
        "two lowers and the container layer"
    );
    assert_eq!(
        ok(s.apply(&step("as 1000:1000 create pub/n 0644"))),
        Outcome::OK
    );
    assert_eq!(ok(s.apply(&step("write mine 0 \"x\""))), Outcome::OK);
    let merged = ok(s.merged_view());
    assert_eq!(
        (merged.nodes["pub/n"].uid, merged.nodes["pub/n"].gid),
        (1000, 1000)
    );
    assert_eq!(
        (merged.nodes["mine"].uid, merged.nodes["mine"].gid),
        (1000, 1000)
    );
    let upper = ok(s.upper_view()).unwrap();
    assert_eq!(
        upper.nodes["pub/n"].uid, 1000,
        "the upper read through its mount"
    );
    assert_eq!(upper.nodes["mine"].uid, 1000, "copied up with its owner");
    assert_eq!(ok(s.apply(&step("commit"))), Outcome::OK);
    assert_eq!(
        idmapped(&ok(s.mountinfo())),
        4,
        "the new container layer too"
    );
    ok(Box::new(s).finish());
}
