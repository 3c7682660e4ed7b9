//! Isolation: hostile symlinks cannot reach outside the mount; a SIGKILLed
//! harness leaves no mount and no process behind; an unprivileged harness
//! runs `userxattr` cases in a user namespace.

mod common;
use common::*;
use ovlcheck_case::{Outcome, Value};
use ovlcheck_driver::{Backend, DriverError, PooledBackend};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Everything observable about a canary tree.
fn fingerprint(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let data = if m.is_file() {
            fs::read(&p).unwrap()
        } else {
            vec![]
        };
        let xattrs = xattr_names(&p);
        out.push(format!(
            "{} {:o} {}:{} {} {:?} {xattrs:?}",
            p.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            data
        ));
        if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            stack.extend(names);
        }
    }
    out.sort();
    out
}

fn xattr_names(p: &Path) -> Vec<u8> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C string and buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(n.max(0) as usize);
    buf
}

#[test]
fn hostile_symlinks_stay_inside_the_mount() {
    if !kernel_available("confinement") {
        return;
    }
    let canary_root = tempfile::Builder::new()
        .prefix("ovlcheck-canary")
        .tempdir()
        .unwrap();
    let dir = canary_root.path().join("dir");
    fs::create_dir(&dir).unwrap();
    let file = canary_root.path().join("canary");
    fs::write(&file, "canary").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fingerprint(canary_root.path());
    let (d, f) = (dir.display().to_string(), file.display().to_string());
    let rel_up = "../".repeat(40);
    let text = format!(
        r#"
lower
  file a 0644 "a"
  symlink esc "/"
  symlink absdir "{d}"
  symlink absfile "{f}"
  symlink up "{rel_up}"
  symlink updir "{rel_up}{d}"
  symlink upfile "{rel_up}{f}"
  symlink loop1 "loop2"
  symlink loop2 "loop1"
  dir sub 0755
  symlink sub/back "../../../../.."
ops
"#
    );
    let mut s = ok(PooledBackend::kernel().start(&case(&text)));
    let ops = [
        "write absfile 0 \"PWNED\"",
        "write upfile 0 \"PWNED\"",
        "write sub/back/a 0 \"in\"",
        "truncate absfile 0",
        "truncate upfile 0",
        "chmod absfile 0777",
        "chmod absdir 0777",
        "chmod updir 0777",
        "chown absfile 12 12",
        "chown upfile 12 12",
        "utimes absfile 1",
        "utimes updir 1",
        "setxattr absfile user.pwned \"1\"",
        "setxattr updir user.pwned \"1\"",
        "create absdir/new 0644",
        "create updir/new 0644",
        "create up/new 0644",
        "create absfile 0644 trunc",
        "mkdir absdir/newdir 0755",
        "mkdir updir/newdir 0755",
        "mkfifo absdir/fifo 0644",
        "symlink \"x\" absdir/s",
        "symlink \"x\" updir/s",
        "rename a absdir/moved",
        "link a updir/lnk",
        "link absfile absdir/lnk2",
        "rename absfile updir/x",
        "open absfile rdwr trunc",
        "create loop1 0644",
        "write loop1 0 \"x\"",
        "create esc/x 0644",
        "write esc/x 0 \"inside\"",
        "mkdir esc/tmp 0755",
        "create esc/tmp/y 0644",
    ];
    for op in ops {
        let o = ok(s.apply(&step(op)));
        if op == "create loop1 0644" || op == "write loop1 0 \"x\"" {
            assert_eq!(o, err("ELOOP"), "{op}");
        }
    }
    // Reads through the links see the overlay, not the host.
    assert_eq!(
        ok(s.apply(&step("read esc/x"))),
        Outcome::Ok(Value::Bytes(b"inside".to_vec()))
    );
    assert_eq!(
        ok(s.apply(&step("read up/x"))),
        Outcome::Ok(Value::Bytes(b"inside".to_vec()))
    );
    assert_ne!(
        ok(s.apply(&step("read upfile"))),
        Outcome::Ok(Value::Bytes(b"canary".to_vec()))
    );
    let m = ok(s.merged_view());
    assert_eq!(
        m.nodes["x"].data.as_deref(),
        Some(&b"inside"[..]),
        "`create esc/x` lands inside the mount"
    );
    assert!(m.nodes.contains_key("tmp/y"));
    ok(s.finish());
    assert_eq!(fingerprint(canary_root.path()), before, "canaries changed");
}

/// Reads `/proc/PID/task/PID/children`.
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn wait_gone(pids: &[i32]) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| ovlcheck_driver::process::is_alive(*p))
            .collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Helper run in a child process by `sigkill_leaves_nothing_behind`: starts
/// a session, prints `WORKER <pid>`, then waits to be killed.
#[test]
#[ignore = "helper for sigkill_leaves_nothing_behind"]
fn kill_helper() {
    let Ok(kind) = std::env::var("OVL_KILL_HELPER") else {
        return;
    };
    let c = case("lower\n  file a 0644 \"a\"\nops\n");
    let backend: Box<dyn Backend> = if kind == "fuse" {
        Box::new(PooledBackend::fuse_overlayfs())
    } else {
        Box::new(PooledBackend::kernel())
    };
    let _s = backend.start(&c).unwrap();
    // The worker is our only child besides the spawner thread's forks.
    let me = std::process::id() as i32;
    let kids: Vec<i32> = fs::read_dir(format!("/proc/{me}/task"))
        .unwrap()
        .flat_map(|t| children_of_task(me, t.unwrap().file_name().to_str().unwrap()))
        .collect();
    for k in kids {
        println!("WORKER {k}");
    }
    println!("READY");
    std::thread::sleep(Duration::from_secs(600));
}

fn children_of_task(pid: i32, tid: &str) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The mount points whose path names ovlcheck, from /proc/mounts.
fn ovlcheck_mounts() -> Vec<String> {
    fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains("ovlcheck"))
        .map(str::to_string)
        .collect()
}

fn sigkill_run(kind: &str) {
    // Mounts another process left (a killed earlier run, say) are not this
    // run's leak: only mounts that appear during it count.
    let before = ovlcheck_mounts();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "kill_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OVL_KILL_HELPER", kind)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut workers = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints `test kill_helper ... ` before the helper's output.
        if let Some(i) = line.find("WORKER ") {
            workers.push(line[i + 7..].trim().parse::<i32>().unwrap());
        }
        if line.ends_with("READY") {
            break;
        }
    }
    assert!(!workers.is_empty(), "the helper reported its worker");
    let mut all = workers.clone();
    for w in &workers {
        all.extend(children(*w)); // fuse-overlayfs daemons
    }
    if kind == "fuse" {
        assert!(
            all.len() > workers.len(),
            "a fuse-overlayfs daemon runs under the worker"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(
        wait_gone(&all),
        Vec::<i32>::new(),
        "processes survived the harness"
    );
    let leaked: Vec<String> = ovlcheck_mounts()
        .into_iter()
        .filter(|m| !before.contains(m))
        .collect();
    assert_eq!(leaked, Vec::<String>::new(), "mounts leaked to the host");
}

#[test]
fn sigkill_leaves_nothing_behind() {
    if !kernel_available("sigkill") {
        return;
    }
    sigkill_run("kernel");
}

#[test]
fn sigkill_leaves_no_fuse_daemon_behind() {
    if !available("sigkill_fuse", ovlcheck_driver::BackendKind::FuseOverlayfs) {
        return;
    }
    sigkill_run("fuse");
}

/// Helper run as uid 65534 by `unprivileged_userxattr_session`.
#[test]
#[ignore = "helper for unprivileged_userxattr_session"]
fn unprivileged_helper() {
    if std::env::var("OVL_UNPRIV_HELPER").is_err() {
        return;
    }
    assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
    let b = PooledBackend::kernel();
    // Profiles that need trusted.* xattrs are refused with a clear message.
    match b.start(&case("lower\n  file a 0644 \"a\"\nops\n")) {
        Err(DriverError::Environment(m)) => assert!(m.contains("userxattr"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let text =
        "profile userxattr\nlower\n  file a 0644 \"a\"\n  dir d 0755\n  file d/f 0644 \"f\"\nops\n";
    let mut s = b.start(&case(text)).unwrap();
    assert_eq!(ok(s.apply(&step("unlink a"))), Outcome::OK);
    for op in ["unlink d/f", "rmdir d", "mkdir d 0755"] {
        assert_eq!(ok(s.apply(&step(op))), Outcome::OK, "{op}");
    }
    let up = ok(s.upper_view()).unwrap();
    assert_eq!(up.nodes["a"].kind, ovlcheck_case::NodeKind::Whiteout);
    assert_eq!(
        up.nodes["d"].overlay.get("opaque").map(String::as_str),
        Some("y")
    );
    assert_eq!(up.nodes["d"].uid, 0, "root inside the namespace");
    // Other uids are not mapped in a one-id namespace.
    assert!(matches!(
        s.apply(&step("as 1000:1000 read d")),
        Err(DriverError::Io(_))
    ));
    ok(s.finish());
    println!("UNPRIVILEGED OK");
}

#[test]
fn unprivileged_userxattr_session() {
    if !kernel_available("unprivileged") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "unprivileged_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OVL_UNPRIV_HELPER", "1")
        .env("TMPDIR", "/tmp")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("cannot create a user namespace") {
        eprintln!(
            "\n*** SKIP unprivileged_userxattr_session: no unprivileged user namespaces here ***\n"
        );
        assert_ne!(
            std::env::var("OVL_REQUIRE_KERNEL").as_deref(),
            Ok("1"),
            "{stderr}"
        );
        return;
    }
    assert!(
        out.status.success() && stdout.contains("UNPRIVILEGED OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
