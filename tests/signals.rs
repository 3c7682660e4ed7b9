//! Faults from outside, scripted: SIGINT and SIGTERM stop a
//! campaign cleanly with the summary so far; SIGKILL at several points leaves
//! no mount on the host, no backend process and no half-written corpus file.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

fn spawn_fuzz(backend: &str, save: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args([
            "fuzz",
            "--backend",
            backend,
            "--cases",
            "1000000",
            "--jobs",
            "2",
            "--json",
            "--save",
        ])
        .arg(save)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns ovlcheck")
}

fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mounts").unwrap_or_default()
}

/// Processes (pid, comm) whose command line mentions `needle`.
fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && pid != std::process::id() {
            out.push((pid, cmd));
        }
    }
    out
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        sleep(Duration::from_millis(50));
    }
    None
}

fn no_partial_files(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(!name.contains("partial"), "half-written file left: {name}");
            let text = std::fs::read_to_string(e.path()).unwrap();
            ovlcheck_case::parse_case(&name, &text)
                .unwrap_or_else(|err| panic!("corrupt corpus file: {err}"));
        }
    }
}

#[test]
fn sigint_and_sigterm_stop_cleanly_with_a_summary() {
    if common::kernel("sigint_and_sigterm_stop_cleanly").is_none() {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let save = tempfile::tempdir().unwrap();
        let mounts_before = host_mounts();
        let mut child = spawn_fuzz("kernel", save.path());
        sleep(Duration::from_secs(2));
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status =
            wait_with_timeout(&mut child, Duration::from_secs(60)).expect("stops within a minute");
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(status.code(), Some(1) | Some(2)),
            "signal {sig}: status {status:?}\n{stderr}"
        );
        let last = stdout.lines().last().unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}\n{stderr}"));
        assert_eq!(json["interrupted"], true);
        assert!(
            json["cases"].as_u64().unwrap() > 0,
            "no case finished in 2 s"
        );
        assert!(stderr.contains("INTERRUPTED"));
        // Every divergence found before the signal is kept.
        let saved = json["saved"].as_array().unwrap();
        assert_eq!(saved.is_empty(), json["divergences"] == 0, "{json}");
        for p in saved {
            assert!(Path::new(p.as_str().unwrap()).exists(), "{p} not on disk");
        }
        assert_eq!(host_mounts(), mounts_before, "mounts leaked onto the host");
        no_partial_files(save.path());
    }
}

#[test]
fn sigkill_leaves_no_mount_no_process_no_partial_file() {
    if common::kernel("sigkill_leaves_nothing").is_none() {
        return;
    }
    let mut backends = vec!["kernel"];
    if Path::new("/usr/bin/fuse-overlayfs").exists() {
        backends.push("fuse-overlayfs");
    } else if common::kernel_required() {
        panic!("fuse-overlayfs is required in CI (apt-get install fuse-overlayfs)");
    }
    let mut kill_points = 0;
    for backend in backends {
        for delay_ms in [300u64, 900, 1700, 2600] {
            let save = tempfile::tempdir().unwrap();
            let mounts_before = host_mounts();
            let fuse_before = processes_matching("fuse-overlayfs").len();
            let mut child = spawn_fuzz(backend, save.path());
            sleep(Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();
            kill_points += 1;
            // Workers die with their parent (PR_SET_PDEATHSIG); give them a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let fuse_now = processes_matching("fuse-overlayfs").len();
                if host_mounts() == mounts_before && fuse_now <= fuse_before {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{backend} killed at {delay_ms} ms: leftovers\nmounts:\n{}\nfuse: {:?}",
                    host_mounts(),
                    processes_matching("fuse-overlayfs")
                );
                sleep(Duration::from_millis(100));
            }
            no_partial_files(save.path());
        }
    }
    eprintln!("sigkill: {kill_points} kill points, nothing left behind");
}
