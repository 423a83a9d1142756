//! Running requests with bounded concurrency: `n` jobs, at most `workers` in flight, answers
//! back in job order whatever order they finished in. With `stop_on_error`, no new job starts
//! after one failed (the ones not started are `None`). The one home of this pattern for every
//! LLM use (reformulation, MLLM annotation).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Runs `job(i)` for `i` in `0..n` on up to `workers` threads; see the module doc.
pub fn run_bounded<T, E, F>(
    n: usize,
    workers: usize,
    stop_on_error: bool,
    job: F,
) -> Vec<Option<Result<T, E>>>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
{
    let workers = workers.clamp(1, n.max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || {
        let mut done = Vec::new();
        while !(stop_on_error && failed.load(Ordering::Relaxed)) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let result = job(i);
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            done.push((i, result));
        }
        done
    };
    let done: Vec<(usize, Result<T, E>)> = if workers <= 1 {
        work()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut out: Vec<Option<Result<T, E>>> = (0..n).map(|_| None).collect();
    for (i, result) in done {
        out[i] = Some(result);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_come_back_in_job_order() {
        let out = run_bounded(20, 4, false, |i| {
            std::thread::sleep(std::time::Duration::from_millis((20 - i as u64) % 5));
            Ok::<_, ()>(i * 10)
        });
        let got: Vec<usize> = out.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(got, (0..20).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn no_job_starts_after_a_failure_when_asked() {
        let out = run_bounded(50, 1, true, |i| if i == 3 { Err(i) } else { Ok(i) });
        assert_eq!(out[3], Some(Err(3)));
        assert!(out[4..].iter().all(Option::is_none));
        let all = run_bounded(5, 1, false, |i| if i == 1 { Err(i) } else { Ok(i) });
        assert!(all.iter().all(Option::is_some));
    }
}
