//! The vm backend on Debian's 6.1 kernel (docs/vm.md): the guest says who
//! it is and what its overlay does, refuses what it cannot run with the
//! reason, replays corpus cases and a short campaign with no divergence,
//! and a hung or dead guest is a backend failure carrying its console,
//! after which the next case gets a fresh guest; a campaign starts when
//! its executable's file was replaced. Skips loudly without qemu or a 6.1
//! kernel under /boot; fails instead under `OVL_REQUIRE_KERNEL=1`.

mod common;

use ovlcheck_case::profile::KernelVersion;
use ovlcheck_case::{parse_case, Profile};
use ovlcheck_driver::{Backend, BackendOptions, DriverError, Wants};
use ovlcheck_vm::guest::ChannelKind;
use ovlcheck_vm::{VmBackend, VmOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Debian's 6.1 kernel (`apt-get install linux-image-amd64` on bookworm)
/// and qemu, or `None` after a loud SKIP message.
fn guest_kernel(test: &str) -> Option<PathBuf> {
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        let mut v: Vec<PathBuf> = d
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-6.1."))
            })
            .collect();
        v.sort();
        v.pop()
    });
    let qemu = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()));
    let missing = match (&kernel, qemu) {
        (Some(_), true) => return kernel,
        (None, _) => "no /boot/vmlinuz-6.1.* (apt-get install linux-image-amd64 on Debian 12)",
        (_, false) => "no qemu-system-x86_64 (apt-get install qemu-system-x86)",
    };
    if common::kernel_required() {
        panic!("{test}: the vm backend is required (OVL_REQUIRE_KERNEL=1): {missing}");
    }
    eprintln!(
        "\n*** SKIP {test}: {missing}\n*** (set OVL_REQUIRE_KERNEL=1 to make this a failure)\n"
    );
    None
}

/// A vm backend whose guest runs this build's ovlcheck binary.
fn backend(kernel: PathBuf, timeout: Option<Duration>) -> VmBackend {
    let mut opts = VmOptions::new(kernel);
    opts.guest_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_ovlcheck")));
    if let Some(t) = timeout {
        opts.backend = BackendOptions {
            timeout: t,
            ..BackendOptions::default()
        };
    }
    VmBackend::new(opts).unwrap_or_else(|e| panic!("the 6.1 guest boots: {e}"))
}

#[test]
fn the_guest_says_its_kernel_and_refuses_what_it_cannot_run() {
    let Some(kernel) = guest_kernel("the_guest_says_its_kernel") else {
        return;
    };
    let vm = backend(kernel, None);
    assert!(vm.release().starts_with("6.1."), "{}", vm.describe());
    let f = vm.features();
    // Measured on Debian's 6.1: overlay is a module; no lowerdir+ (v6.8),
    // no uuid xattr (v6.6), no user xattrs on tmpfs (v6.6).
    assert!(f.module_loaded, "{}", vm.describe());
    assert!(!f.layer_append && !f.uuid_xattr && !f.layer_user_xattrs);
    // Its tmpfs reads an empty directory again (dcache_readdir; v6.13
    // keeps the end), as its version tells the model.
    assert!(!f.tmpfs_keeps_end, "{}", vm.describe());
    let adapted = vm.adapt_profile(&Profile::default()).unwrap();
    assert!(!ovlcheck_model::tmpfs_keeps_end(&adapted));
    assert!(ovlcheck_vm::version_notes(&vm).is_empty());
    // Debian builds virtio-console as modules; the initramfs carries them.
    assert_eq!(
        vm.channel(),
        ChannelKind::VirtioConsole,
        "{}",
        vm.describe()
    );
    // No fsync= (upstream 1f6ee9be92f8 went to the 6.12 and 6.18 stable
    // series only); volatile (v5.10) runs.
    assert!(!f.fsync_option, "{}", vm.describe());
    let mut strict = Profile::default();
    strict.set_option("fsync=strict").unwrap();
    let why = vm.adapt_profile(&strict).unwrap_err();
    assert!(why.contains("no fsync= option"), "{why}");
    assert!(vm
        .adapt_profile(&Profile::preset("volatile").unwrap())
        .is_ok());

    let p = vm.adapt_profile(&Profile::default()).unwrap();
    assert_eq!(
        p.kernel,
        Some(KernelVersion::new(6, 1)),
        "the model is told"
    );
    let why = vm
        .adapt_profile(&Profile::preset("userxattr").unwrap())
        .unwrap_err();
    assert!(why.contains("tmpfs has no user.* xattrs"), "{why}");
    let why = vm
        .adapt_profile(&Profile::preset("idmapped").unwrap())
        .unwrap_err();
    assert!(why.contains("no idmapped mounts (v6.3)"), "{why}");
    // A layer with a user xattr cannot be laid out; an op on one runs
    // (the model predicts the layer's EOPNOTSUPP).
    let layer = "lower\n  file f 0644 \"\"\n  xattr f user.k \"v\"\nops\n  stat f\n";
    let why = vm.adapt_case(&parse_case("t", layer).unwrap()).unwrap_err();
    assert!(why.contains("user.* xattrs"), "{why}");
    let op = "lower\n  file f 0644 \"\"\nops\n  getxattr f user.k\n";
    assert!(vm.adapt_case(&parse_case("t", op).unwrap()).is_ok());
}

/// A module tree with `overlay.ko` alone (no `modules.dep`, no virtio
/// modules): the guest finds no virtio-console port, says why on its
/// console and talks over its serial port, and cases run as before.
#[test]
fn without_virtio_modules_the_guest_talks_over_its_serial_port() {
    let Some(kernel) = guest_kernel("without_virtio_modules") else {
        return;
    };
    let name = kernel.file_name().unwrap().to_string_lossy().into_owned();
    let release = name.trim_start_matches("vmlinuz-");
    let tree = tempfile::tempdir().unwrap();
    let overlay = format!("/lib/modules/{release}/kernel/fs/overlayfs/overlay.ko");
    std::fs::copy(&overlay, tree.path().join("overlay.ko"))
        .unwrap_or_else(|e| panic!("{overlay}: {e}"));
    let mut opts = VmOptions::new(kernel);
    opts.guest_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_ovlcheck")));
    opts.modules = Some(tree.path().to_path_buf());
    let vm = VmBackend::new(opts).unwrap_or_else(|e| panic!("the 6.1 guest boots: {e}"));
    assert_eq!(vm.channel(), ChannelKind::Serial, "{}", vm.describe());
    let case = parse_case(
        "serial",
        "lower\n  dir d 0755\n  file d/f 0644 \"lower\"\nops\n  write d/f 0 \"upper\"\n  rename d e\n",
    )
    .unwrap();
    let case = ovlcheck_harness::runner::adapted(&vm, &case).expect("6.1 runs it");
    let run = ovlcheck_harness::run_case(&vm, &case).unwrap_or_else(|e| panic!("runs: {e}"));
    assert!(run.divergence.is_none(), "{:#?}", run.divergence);
}

#[test]
fn corpus_rules_version_and_sysctl_cases_replay_on_the_guest() {
    let Some(kernel) = guest_kernel("corpus_rules_version_and_sysctl_cases_replay") else {
        return;
    };
    let corpus = common::corpus_dir();
    let out = common::ovlcheck(&[
        "replay",
        corpus.join("rules").to_str().unwrap(),
        corpus.join("versions").to_str().unwrap(),
        corpus.join("sysctls").to_str().unwrap(),
        "--backend",
        "vm",
        "--kernel",
        kernel.to_str().unwrap(),
        "--jobs",
        "2",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("guest kernel 6.1."), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(summary["backend_failures"], 0, "{summary}");
    // corpus/versions holds cases pinned on 6.1; they run.
    assert!(
        [
            "6.1-xwhiteout-is-a-file.ovl: ok",
            "6.1-posix-acl-checks-after-copy-up.ovl: ok",
            "6.1-no-uuid-xattr.ovl: ok",
            "6.1-tmpfs-has-no-user-xattrs.ovl: ok",
            "6.1-private-xattrs-not-escaped.ovl: ok",
        ]
        .iter()
        .all(|line| stderr.contains(line)),
        "{stderr}"
    );
    // corpus/sysctls runs with the guest's fs.protected_* set to each
    // case's (Debian's kernel starts with protected_symlinks=1, which
    // 05-default-sticky-creat.ovl would show).
    for name in [
        "01-protected-symlinks.ovl: ok",
        "02-protected-hardlinks-off.ovl: ok",
        "03-protected-regular-fifos.ovl: ok",
        "04-protected-regular-fifos-group.ovl: ok",
        "05-default-sticky-creat.ovl: ok",
    ] {
        assert!(stderr.contains(name), "{name} not in\n{stderr}");
    }
}

#[test]
fn a_short_campaign_on_the_guest_finds_nothing() {
    let Some(kernel) = guest_kernel("a_short_campaign_on_the_guest") else {
        return;
    };
    let out = common::ovlcheck(&[
        "fuzz",
        "--backend",
        "vm",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cases",
        "20",
        "--seed",
        "1",
        "--profile",
        "default",
        "--jobs",
        "1",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(summary["cases"], 20, "{summary}");
    assert!(
        summary["kernel"].as_str().unwrap().starts_with("6.1."),
        "the guest's release: {summary}"
    );
    assert_eq!(summary["divergences"], 0, "{summary}");
    assert_eq!(summary["backend_failures"], 0, "{summary}");
    let unsupported = summary["unsupported"].as_u64().unwrap();
    assert!(unsupported < 20, "some cases run: {summary}");
}

#[test]
fn a_hung_guest_carries_its_console_and_the_next_case_gets_a_fresh_one() {
    let Some(kernel) = guest_kernel("a_hung_guest_carries_its_console") else {
        return;
    };
    let vm = backend(kernel, Some(Duration::from_secs(3)));
    let case = parse_case("t", "lower\n  dir a 0755\nops\n  stat a\n").unwrap();
    let mut s = vm.start_session(&case).expect("a session starts");
    match s.stall(600) {
        Err(DriverError::Hung { op }) => {
            // The guest's init says who it is on the console at boot.
            assert!(op.contains("ovlcheck guest: 6.1."), "{op}");
        }
        other => panic!("a stalled guest is a hang: {other:?}"),
    }
    drop(s);
    let run = vm
        .run_case(&case, Wants::default())
        .expect("a fresh guest runs the next case");
    assert_eq!(run.outcomes.len(), 1);
    assert!(run.outcomes[0].is_ok(), "{:?}", run.outcomes);
}

#[test]
fn a_dead_guest_carries_its_console_and_the_next_case_gets_a_fresh_one() {
    let Some(kernel) = guest_kernel("a_dead_guest_carries_its_console") else {
        return;
    };
    let vm = backend(kernel, None);
    let case = parse_case("t", "lower\n  dir a 0755\nops\n  stat a\n").unwrap();
    let mut s = vm.start_session(&case).expect("a session starts");
    let pid = s.qemu_pid() as i32;
    // SAFETY: kill(2) on a process this test's backend started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let step = &case.steps[0];
    match ovlcheck_driver::Session::apply(&mut s, step) {
        Err(DriverError::Died(msg)) => {
            assert!(msg.contains("ovlcheck guest: 6.1."), "{msg}");
        }
        other => panic!("a killed guest is a dead backend: {other:?}"),
    }
    drop(s);
    let run = vm
        .run_case(&case, Wants::default())
        .expect("a fresh guest runs the next case");
    assert!(run.outcomes[0].is_ok(), "{:?}", run.outcomes);
}

/// The guest's init is the running ovlcheck, read through `/proc/PID/exe`:
/// a rebuild that replaced the executable's file while a campaign started
/// does not stop it. The program here runs from a copy already unlinked
/// (executed through an fd of it), so its path names no file.
#[test]
fn a_campaign_starts_when_its_executable_was_replaced() {
    use std::os::fd::AsRawFd;
    let Some(kernel) = guest_kernel("a_campaign_starts_when_its_executable_was_replaced") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ovlcheck");
    std::fs::copy(env!("CARGO_BIN_EXE_ovlcheck"), &copy).unwrap();
    let file = std::fs::File::open(&copy).unwrap();
    std::fs::remove_file(&copy).unwrap();
    let exe = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
    let out = std::process::Command::new(exe)
        .args(["fuzz", "--backend", "vm", "--cases", "4", "--kernel"])
        .arg(&kernel)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("fuzz: 4 cases"), "{stderr}");
}
