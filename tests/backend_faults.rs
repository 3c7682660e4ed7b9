//! A backend that dies mid-run: fuse-overlayfs daemons are killed
//! while a campaign runs. Each such case is reported as a backend failure (an
//! environment failure, never a divergence), the campaign goes on, and it
//! ends with exit status 2 as documented.

mod common;

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

/// Parent pid of `pid`, from /proc.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        match ppid(pid) {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Live fuse-overlayfs daemons below `root` (zombies are left out: a
/// daemon that already exited is not a kill).
fn fuse_daemons_under(root: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                stat.contains("(fuse-overlayfs)") && state != Some("Z")
            }) && descends_from(*pid, root)
        })
        .collect()
}

#[test]
fn killed_fuse_daemons_are_backend_failures_not_divergences() {
    if common::kernel("killed_fuse_daemons").is_none() {
        return;
    }
    if !std::path::Path::new("/usr/bin/fuse-overlayfs").exists() {
        assert!(
            !common::kernel_required(),
            "fuse-overlayfs is required in CI"
        );
        eprintln!("*** SKIP killed_fuse_daemons: fuse-overlayfs not installed");
        return;
    }
    // Phase 1 only (`--max-reported 0`): a kill while a divergence is being
    // shrunk only makes that shrink step fail to reproduce.
    const CASES: u64 = 200;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovlcheck"))
        .args([
            "fuzz",
            "--backend",
            "fuse-overlayfs",
            "--profile",
            "default",
            "--cases",
            &CASES.to_string(),
            "--jobs",
            "1",
            "--max-reported",
            "0",
            "--json",
        ])
        // Only the kills may fail cases: a watchdog that fires on a machine
        // busy with the rest of the suite would be a failure without one.
        .env(ovlcheck_driver::TIMEOUT_ENV, "60000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A case mounts three daemons in turn (start, remount, commit); a kill
    // lands in a live one most of the time, and every such kill before the
    // case's last observation must surface as a backend failure. Killing
    // every 50 ms for the whole campaign makes a run without one vanishingly
    // unlikely.
    let mut kills = 0u64;
    while child.try_wait().unwrap().is_none() {
        sleep(Duration::from_millis(50));
        for pid in fuse_daemons_under(child.id()) {
            // SAFETY: kill(2) on a daemon our child started.
            if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                kills += 1;
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON summary ({e})\n{stdout}\n{stderr}"));
    let failures = json["backend_failures"].as_u64().unwrap();
    eprintln!("killed_fuse_daemons: {kills} kills, {failures} backend failures");
    assert!(kills >= 5, "too few daemons were killed ({kills}): {json}");
    assert!(
        failures >= 1,
        "{kills} kills, none reported as a backend failure: {json}\n{stderr}"
    );
    assert!(
        failures <= kills,
        "more backend failures than kills: {json}\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("case #") && l.contains("fuse-overlayfs")),
        "no failure names the dead daemon:\n{stderr}"
    );
    assert_eq!(json["cases"], CASES, "the campaign did not go on: {json}");
    // fuse-overlayfs also diverges from the model on its own (exit 1 for a
    // divergence not known in corpus/known-fuse-overlayfs);
    // without divergences, backend failures alone give exit status 2.
    let expected = if json["new_divergences"] == 0 { 2 } else { 1 };
    assert_eq!(
        out.status.code(),
        Some(expected),
        "exit status: {json}\n{stderr}"
    );
}
