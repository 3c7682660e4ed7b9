//! Shrinking: delta-debugging passes over steps, layers and layer entries,
//! then per-step simplifications, packaged as a proptest [`ValueTree`] so the
//! same shrinker serves proptest-driven tests and the CLI's fuzzer.
//!
//! Protocol: `simplify()` means "the current value still fails: keep it and
//! try something smaller"; `complicate()` means "the current value passed:
//! drop it and try the next candidate". Candidates are ordered so that big
//! reductions (half of the steps) come before small ones (one entry).

use ovlcheck_case::{Case, Op, OpenFlags, Step};
use proptest::strategy::ValueTree;
use std::time::{Duration, Instant};

/// A case and the candidates still to try for making it smaller.
#[derive(Clone, Debug)]
pub struct CaseTree {
    /// The smallest case known to fail.
    accepted: Case,
    /// The case under test now.
    current: Case,
    /// Candidates derived from `accepted`, next one last.
    pending: Vec<Case>,
    started: bool,
}

impl CaseTree {
    pub fn new(case: Case) -> CaseTree {
        CaseTree {
            accepted: case.clone(),
            current: case,
            pending: Vec::new(),
            started: false,
        }
    }

    /// Moves to the next candidate; false when none is left.
    fn advance(&mut self) -> bool {
        match self.pending.pop() {
            Some(c) => {
                self.current = c;
                true
            }
            None => {
                self.current = self.accepted.clone();
                false
            }
        }
    }
}

impl ValueTree for CaseTree {
    type Value = Case;

    fn current(&self) -> Case {
        self.current.clone()
    }

    fn simplify(&mut self) -> bool {
        // The current value fails: it becomes the new baseline.
        if self.started {
            self.accepted = self.current.clone();
        }
        self.started = true;
        let mut c = candidates(&self.accepted);
        c.reverse();
        self.pending = c;
        self.advance()
    }

    fn complicate(&mut self) -> bool {
        self.advance()
    }
}

/// Shrinks `case` while `fails` holds, within `budget`. `fails` must be
/// deterministic; it is never called on the input itself.
pub fn shrink(case: Case, budget: Duration, mut fails: impl FnMut(&Case) -> bool) -> Case {
    let start = Instant::now();
    let mut tree = CaseTree::new(case);
    if !tree.simplify() {
        return tree.accepted;
    }
    loop {
        if start.elapsed() > budget {
            return tree.accepted;
        }
        let step = if fails(&tree.current) {
            tree.simplify()
        } else {
            tree.complicate()
        };
        if !step {
            return tree.accepted;
        }
    }
}

/// Every smaller variant of `case` worth trying, biggest reductions first.
pub fn candidates(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    drop_chunks(case.steps.len(), |keep| {
        let mut c = case.clone();
        c.steps = without_unopened_fd_uses(filter_index(&case.steps, keep));
        out.push(c);
    });
    // A whole fd at once: its opens and every op on it.
    let fds: std::collections::BTreeSet<&str> =
        case.steps.iter().filter_map(|s| s.op.fd()).collect();
    for fd in fds {
        let mut c = case.clone();
        c.steps.retain(|s| s.op.fd() != Some(fd));
        out.push(c);
    }
    // An fd no op uses any more: opened and closed at once.
    for (i, step) in case.steps.iter().enumerate() {
        if let Op::Open { fd: Some(name), .. } = &step.op {
            let used = case.steps[i + 1..]
                .iter()
                .any(|s| s.op.uses_fd() && s.op.fd() == Some(name));
            if !used {
                let mut c = case.clone();
                if let Op::Open { fd, .. } = &mut c.steps[i].op {
                    *fd = None;
                }
                out.push(c);
            }
        }
    }
    if case.upper.is_some() {
        let mut c = case.clone();
        c.upper = None;
        out.push(c);
    }
    for i in 0..case.lowers.len() {
        if case.lowers.len() > 1 {
            let mut c = case.clone();
            c.lowers.remove(i);
            out.push(c);
        }
    }
    for i in 0..case.data.len() {
        let mut c = case.clone();
        c.data.remove(i);
        out.push(c);
    }
    for i in 0..case.lowers.len() {
        drop_chunks(case.lowers[i].entries.len(), |keep| {
            let mut c = case.clone();
            c.lowers[i].entries = filter_index(&case.lowers[i].entries, keep);
            out.push(c);
        });
    }
    for i in 0..case.data.len() {
        drop_chunks(case.data[i].entries.len(), |keep| {
            let mut c = case.clone();
            c.data[i].entries = filter_index(&case.data[i].entries, keep);
            out.push(c);
        });
    }
    if let Some(upper) = &case.upper {
        drop_chunks(upper.entries.len(), |keep| {
            let mut c = case.clone();
            c.upper.as_mut().expect("checked").entries = filter_index(&upper.entries, keep);
            out.push(c);
        });
    }
    for (i, step) in case.steps.iter().enumerate() {
        for simpler in simplify_step(step) {
            let mut c = case.clone();
            c.steps[i] = simpler;
            out.push(c);
        }
    }
    out
}

/// `steps` without the ops on an fd that no earlier step opens (their
/// `open ... as F` was removed): they could only fail with EBADF.
fn without_unopened_fd_uses(steps: Vec<Step>) -> Vec<Step> {
    let mut opened = std::collections::BTreeSet::new();
    steps
        .into_iter()
        .filter(|s| match &s.op {
            Op::Open { fd: Some(name), .. } => {
                opened.insert(name.clone());
                true
            }
            op if op.uses_fd() => op.fd().is_some_and(|f| opened.contains(f)),
            _ => true,
        })
        .collect()
}

/// Calls `f` with a keep-predicate for every chunk removal of a list of
/// length `n`: halves, quarters, ... single elements (ddmin's subsets'
/// complements).
fn drop_chunks(n: usize, mut f: impl FnMut(&dyn Fn(usize) -> bool)) {
    let mut size = n;
    while size >= 1 {
        let mut start = 0;
        while start < n {
            let end = (start + size).min(n);
            f(&|i| i < start || i >= end);
            start += size;
        }
        if size == 1 {
            break;
        }
        size /= 2;
    }
}

fn filter_index<T: Clone>(items: &[T], keep: &dyn Fn(usize) -> bool) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, t)| t.clone())
        .collect()
}

/// Simpler versions of one step: as root, without a trailing slash,
/// with shorter data, with plainer flags (an open without O_CREAT,
/// O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW), a write at the position, a
/// read to the end.
fn simplify_step(step: &Step) -> Vec<Step> {
    let mut out = Vec::new();
    if step.cred.is_some() {
        out.push(Step {
            cred: None,
            ..step.clone()
        });
    }
    let with = |op: Op| Step { op, ..step.clone() };
    match &step.op {
        Op::Write { path, offset, data } => {
            if *offset != 0 {
                out.push(with(Op::Write {
                    path: path.clone(),
                    offset: 0,
                    data: data.clone(),
                }));
            }
            if data.len() > 1 {
                out.push(with(Op::Write {
                    path: path.clone(),
                    offset: *offset,
                    data: data[..1].to_vec(),
                }));
            }
        }
        Op::Create {
            path,
            mode,
            excl,
            trunc,
        } if *excl || *trunc => {
            out.push(with(Op::Create {
                path: path.clone(),
                mode: *mode,
                excl: false,
                trunc: false,
            }));
        }
        Op::Open {
            path,
            flags,
            mode,
            fd,
        } if flags.append || flags.excl || flags.trunc || flags.nofollow || flags.creat => {
            let plain = OpenFlags {
                access: flags.access,
                directory: flags.directory,
                path: flags.path,
                ..OpenFlags::default()
            };
            out.push(with(Op::Open {
                path: path.clone(),
                flags: plain,
                mode: if plain.creat { *mode } else { 0 },
                fd: fd.clone(),
            }));
        }
        Op::Fwrite { fd, offset, data } => {
            if offset.is_some() {
                out.push(with(Op::Fwrite {
                    fd: fd.clone(),
                    offset: None,
                    data: data.clone(),
                }));
            }
            if data.len() > 1 {
                out.push(with(Op::Fwrite {
                    fd: fd.clone(),
                    offset: *offset,
                    data: data[..1].to_vec(),
                }));
            }
        }
        Op::Fread { fd, len: Some(_) } => out.push(with(Op::Fread {
            fd: fd.clone(),
            len: None,
        })),
        Op::Rename { old, new, flags } if *flags != Default::default() => {
            out.push(with(Op::Rename {
                old: old.clone(),
                new: new.clone(),
                flags: Default::default(),
            }));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovlcheck_case::path::{OpPath, RelPath};
    use ovlcheck_case::LayerSpec;

    fn case_with_steps(n: usize) -> Case {
        Case {
            lowers: vec![LayerSpec::default()],
            steps: (0..n)
                .map(|i| {
                    Step::new(Op::Mkdir {
                        path: OpPath::plain(RelPath::parse(&format!("d{i}")).unwrap()),
                        mode: 0o755,
                    })
                })
                .collect(),
            ..Case::default()
        }
    }

    #[test]
    fn shrinks_to_the_one_step_that_matters() {
        let case = case_with_steps(17);
        let culprit = case.steps[11].clone();
        let small = shrink(case, Duration::from_secs(10), |c| {
            c.steps.contains(&culprit)
        });
        assert_eq!(small.steps, vec![culprit]);
    }

    #[test]
    fn shrinks_to_a_pair_of_steps() {
        let case = case_with_steps(20);
        let (a, b) = (case.steps[3].clone(), case.steps[17].clone());
        let small = shrink(case, Duration::from_secs(10), |c| {
            c.steps.contains(&a) && c.steps.contains(&b)
        });
        assert_eq!(small.steps, vec![a, b]);
    }

    fn step(text: &str) -> Step {
        let case = ovlcheck_case::parse_case("t", &format!("lower\nops\n  {text}\n")).unwrap();
        case.steps[0].clone()
    }

    #[test]
    fn removing_an_open_removes_the_ops_on_its_fd() {
        let mut case = case_with_steps(2);
        case.steps.insert(0, step("open d0 O_RDWR as f"));
        case.steps.push(step("fread f"));
        case.steps.push(step("fwrite f \"x\""));
        let culprit = case.steps[1].clone();
        let small = shrink(case, Duration::from_secs(10), |c| {
            assert!(
                c.steps.iter().all(|s| !s.op.uses_fd())
                    || c.steps.iter().any(|s| matches!(s.op, Op::Open { .. })),
                "a use of f without its open: {c:?}"
            );
            c.steps.contains(&culprit)
        });
        assert_eq!(small.steps, vec![culprit]);
    }

    #[test]
    fn an_unused_fd_is_dropped_and_flags_get_plainer() {
        let mut case = case_with_steps(0);
        case.steps
            .push(step("open a O_WRONLY|O_CREAT|O_APPEND 0644 as f"));
        case.steps.push(step("fwrite f 3 \"xyz\""));
        let small = shrink(case, Duration::from_secs(10), |c| {
            c.steps.iter().any(|s| matches!(s.op, Op::Open { .. }))
        });
        assert_eq!(small.steps, vec![step("open a O_WRONLY")]);
    }

    #[test]
    fn never_tests_the_input_and_keeps_it_when_nothing_smaller_fails() {
        let case = case_with_steps(3);
        let mut calls = 0;
        let small = shrink(case.clone(), Duration::from_secs(10), |c| {
            calls += 1;
            assert_ne!(c, &case);
            false
        });
        assert_eq!(small, case);
        assert!(calls > 0);
    }
}
