//! Worker placement: a thread's workers run on the CPU it asks for, and go
//! back to every allowed CPU when it stops asking.

mod common;

use ovlcheck_driver::placement::{allowed_cpus, set_worker_cpu};
use ovlcheck_driver::{process, Backend, PooledBackend, Wants};
use std::time::Duration;

/// `Cpus_allowed_list` of a process, e.g. `0-1` or `1`.
fn allowed_list(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_string()
}

/// The last allowed CPU, when the kernel backend can run and at least two
/// CPUs are allowed (with one, every process runs on it and placement shows
/// nothing): else a loud SKIP.
fn last_of_two_cpus(test: &str) -> Option<usize> {
    if !common::kernel_available(test) {
        return None;
    }
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!("\n*** SKIP {test}: one CPU allowed, placement is not observable ***\n");
        return None;
    }
    cpus.last().copied()
}

/// Every live process whose parent is this one.
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out.retain(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|s| s.split_whitespace().nth(3) == Some(me.as_str()))
            .unwrap_or(false)
    });
    out
}

#[test]
fn a_worker_moves_to_a_cpu_and_back() {
    let Some(last) = last_of_two_cpus("a_worker_moves_to_a_cpu_and_back") else {
        return;
    };
    let everywhere = allowed_list(std::process::id() as i32);
    let mut w = process::spawn(false, Duration::from_secs(30)).expect("worker");
    assert_eq!(
        allowed_list(w.pid()),
        everywhere,
        "a new worker runs anywhere"
    );
    w.place(Some(last));
    assert_eq!(w.cpu(), Some(last));
    assert_eq!(allowed_list(w.pid()), last.to_string());
    w.place(None);
    assert_eq!(w.cpu(), None);
    assert_eq!(allowed_list(w.pid()), everywhere);
}

#[test]
fn a_threads_cases_run_on_its_worker_cpu() {
    let Some(last) = last_of_two_cpus("a_threads_cases_run_on_its_worker_cpu") else {
        return;
    };
    let backend = PooledBackend::kernel();
    let case = common::case("lower\n  file a 0644 \"x\"\nops\n  stat a\n");
    std::thread::spawn(move || {
        set_worker_cpu(Some(last));
        backend
            .run_case(&case, Wants::default())
            .expect("case runs");
        let placed: Vec<i32> = children()
            .into_iter()
            .filter(|&p| allowed_list(p) == last.to_string())
            .collect();
        assert!(
            !placed.is_empty(),
            "no worker of this process runs on CPU {last} alone"
        );
    })
    .join()
    .expect("thread");
}
