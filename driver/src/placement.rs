//! Which CPU a harness thread's workers run on.
//!
//! A campaign thread and the worker that runs its case take turns: the
//! thread sends a case, the worker runs it (sleeping in every unmount's RCU
//! grace periods), the thread judges the answer. With two such pairs on two
//! CPUs the scheduler tends to wake a worker next to the thread that woke
//! it, so both workers often share one CPU while the other idles. Pinning
//! each thread's workers to a CPU of their own (the threads themselves stay
//! free, to fill the gaps) keeps the pairs apart: `fuzz --jobs 2` on two
//! CPUs ran 1.44-1.68x `--jobs 1` (median 1.56) instead of 1.26-1.44x
//! (median 1.34), measured round by round (`harness/benches/ratios.rs`).

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::cell::Cell;

thread_local! {
    static WORKER_CPU: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Runs the workers that this thread's cases use on `cpu` from now on;
/// `None` lets them run on any CPU the harness may use.
pub fn set_worker_cpu(cpu: Option<usize>) {
    WORKER_CPU.with(|c| c.set(cpu));
}

/// The CPU set by [`set_worker_cpu`] on this thread.
pub(crate) fn worker_cpu() -> Option<usize> {
    WORKER_CPU.with(Cell::get)
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Moves process `pid` to `cpu`, or back to every CPU the harness may use.
pub(crate) fn place(pid: Pid, cpu: Option<usize>) -> Result<(), nix::Error> {
    let set = match cpu {
        Some(c) => {
            let mut s = CpuSet::new();
            s.set(c)?;
            s
        }
        None => sched_getaffinity(Pid::from_raw(0))?,
    };
    sched_setaffinity(pid, &set)
}
