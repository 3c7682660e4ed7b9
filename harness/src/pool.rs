//! Work sharing: a list of items processed by `jobs` threads, results kept
//! in item order, so a parallel run reports exactly what a serial one does.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Applies `f` to every item with `jobs` threads and returns the results in
/// item order. Items not started because `stop` was set are `None`; `f` may
/// set `stop` itself to end the run early.
pub fn map_in_order<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    stop: &AtomicBool,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for cpu in worker_cpus(jobs.max(1)) {
            let (f, next, slots) = (&f, &next, &slots);
            s.spawn(move || {
                ovlcheck_driver::placement::set_worker_cpu(cpu);
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { return };
                    let r = f(i, item);
                    slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    slots.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The worker CPU of each of `jobs` threads: a CPU of its own when there
/// is one thread per CPU this process may use (`--jobs` at its default),
/// else none, since pinning a few threads of a big machine, or more
/// threads than CPUs, would only keep the scheduler from balancing them
/// (`ovlcheck_driver::placement`).
fn worker_cpus(jobs: usize) -> Vec<Option<usize>> {
    let cpus = ovlcheck_driver::placement::allowed_cpus();
    if jobs > 1 && jobs == cpus.len() {
        cpus.into_iter().map(Some).collect()
    } else {
        vec![None; jobs]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_whatever_the_jobs() {
        let items: Vec<u64> = (0..500).collect();
        let stop = AtomicBool::new(false);
        for jobs in [1, 2, 7] {
            let out = map_in_order(jobs, &items, &stop, |i, x| (i as u64) * 1000 + x * 2);
            let want: Vec<Option<u64>> = items.iter().map(|x| Some(x * 1000 + x * 2)).collect();
            assert_eq!(out, want);
        }
    }

    #[test]
    fn stop_leaves_the_rest_undone() {
        let items: Vec<u32> = (0..100).collect();
        let stop = AtomicBool::new(false);
        let out = map_in_order(1, &items, &stop, |i, _| {
            if i == 9 {
                stop.store(true, Ordering::SeqCst);
            }
            i
        });
        assert!(out[..10].iter().all(Option::is_some));
        assert!(out[10..].iter().all(Option::is_none));
    }
}
