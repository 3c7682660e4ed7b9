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
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { return };
                let r = f(i, item);
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    slots.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// [`map_in_order`] for items that run on a backend: each thread keeps one
/// item in flight. `start(i, item)` hands item `i` to the backend and
/// returns at once; `land` waits for the backend's result; `finish` does
/// the caller's own work on it. A thread lands its previous item, starts
/// the next, and only then finishes the previous one, so that work
/// overlaps the backend's run of the next item. Results do not depend on
/// it: each item is computed from its own start and landing only.
pub fn map_in_order_pipelined<T: Sync, S, L, R: Send>(
    jobs: usize,
    items: &[T],
    stop: &AtomicBool,
    start: impl Fn(usize, &T) -> S + Sync,
    land: impl Fn(S) -> L + Sync,
    finish: impl Fn(usize, &T, L) -> R + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let take = || {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        items.get(i).map(|item| (i, item))
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                let mut flight = take().map(|(i, item)| (i, item, start(i, item)));
                while let Some((i, item, started)) = flight.take() {
                    let landed = land(started);
                    flight = take().map(|(j, next)| (j, next, start(j, next)));
                    let r = finish(i, item, landed);
                    slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    slots.into_inner().unwrap_or_else(|p| p.into_inner())
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
    fn pipelined_results_keep_item_order_and_every_stage_runs_once() {
        let items: Vec<u64> = (0..300).collect();
        let stop = AtomicBool::new(false);
        for jobs in [1, 2, 5] {
            let landed = AtomicUsize::new(0);
            let out = map_in_order_pipelined(
                jobs,
                &items,
                &stop,
                |i, x| (i as u64) * 1000 + x,
                |s| {
                    landed.fetch_add(1, Ordering::SeqCst);
                    s * 2
                },
                |_, x, l| l + x,
            );
            let want: Vec<Option<u64>> = items.iter().map(|x| Some(x * 2002 + x)).collect();
            assert_eq!(out, want);
            assert_eq!(landed.load(Ordering::SeqCst), items.len());
        }
    }

    #[test]
    fn pipelined_stop_finishes_what_was_started_and_starts_nothing_more() {
        let items: Vec<u32> = (0..100).collect();
        let stop = AtomicBool::new(false);
        let started = AtomicUsize::new(0);
        let out = map_in_order_pipelined(
            1,
            &items,
            &stop,
            |i, _| {
                started.fetch_add(1, Ordering::SeqCst);
                i
            },
            |i| i,
            |i, _, _| {
                if i == 9 {
                    stop.store(true, Ordering::SeqCst);
                }
                i
            },
        );
        // Item 10 was already in flight when item 9 set `stop`.
        assert_eq!(started.load(Ordering::SeqCst), 11);
        assert!(out[..11].iter().all(Option::is_some));
        assert!(out[11..].iter().all(Option::is_none));
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
