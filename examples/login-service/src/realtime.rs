//! `--realtime-workers` (Linux): the runtime's worker threads in the
//! real-time class (`SCHED_RR`, priority 1), so a request never waits
//! behind a password hash for the CPU.
//!
//! During a login storm the hashing threads fill every CPU. A request
//! thread that wakes there competes with them in the fair class, where
//! EEVDF may leave it waiting up to a scheduler tick (4 ms at HZ = 250):
//! one that slept owing time is not eligible when it wakes, and nothing on
//! that CPU asks again before the tick (the `preemption` module says more).
//! A real-time thread is not subject to that: it preempts any fair-class
//! thread the moment it wakes. The workers only run request handling,
//! which awaits rather than computes; hashes stay on their own fair-class
//! threads, and the kernel keeps real-time threads from taking more than
//! their budget of a CPU (`sched_rt_runtime_us`, 95 % by default; the fair
//! class keeps a share of its own since Linux 6.12).
//!
//! It needs the right to use real-time priorities: root, `CAP_SYS_NICE`,
//! or `RLIMIT_RTPRIO` of at least 1 (systemd's `LimitRTPRIO=1`, Docker's
//! `--ulimit rtprio=1`). Without it each worker stays where it was and one
//! warning says why. Measured on a 2-vCPU VM (BENCHMARKS.md, "Real-time
//! workers"): `/auth/me`'s p99 during a login storm fell to about its idle
//! value (from 3–4 ×) and the login rate did not move beyond the VM's
//! noise. Off by default all the same: a process that changes its own
//! scheduling class is the operator's decision, not a library default.

use std::cell::Cell;
use std::io;
use std::sync::Once;

/// The real-time priority the workers get: the lowest, above every
/// fair-class thread and below any real-time thread of anyone else.
pub const PRIORITY: i32 = 1;

/// Makes `builder`'s worker threads real-time, each on its first park
/// (which comes right after it starts: an idle worker parks). Park hooks
/// run on worker threads only, so the blocking pool's threads, which may
/// run long blocking work, stay in the fair class. Replaces any
/// `on_thread_park` hook set before.
pub fn on_workers(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder.on_thread_park(|| {
        thread_local! {
            static DONE: Cell<bool> = const { Cell::new(false) };
        }
        if DONE.with(|done| done.replace(true)) {
            return;
        }
        if let Err(error) = promote_current_thread() {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    %error,
                    "--realtime-workers: workers stay in the fair class (real-time \
                     priorities need root, CAP_SYS_NICE or RLIMIT_RTPRIO >= 1)"
                );
            });
        }
    })
}

/// Puts the calling thread in `SCHED_RR` at [`PRIORITY`].
pub fn promote_current_thread() -> io::Result<()> {
    sys::promote_current_thread()
}

/// Whether this process may use real-time priorities: tried on a
/// throwaway thread, so no thread of the caller's changes class.
pub fn allowed() -> bool {
    std::thread::spawn(|| promote_current_thread().is_ok())
        .join()
        .unwrap_or(false)
}

/// Whether the calling thread is real-time (`SCHED_RR` or `SCHED_FIFO`).
pub fn current_thread_is_realtime() -> bool {
    sys::current_thread_is_realtime()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys {
    use std::io;

    pub fn promote_current_thread() -> io::Result<()> {
        let param = libc::sched_param {
            sched_priority: super::PRIORITY,
        };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn current_thread_is_realtime() -> bool {
        // SAFETY: pid 0 is the calling thread; no pointers.
        let policy = unsafe { libc::sched_getscheduler(0) };
        policy == libc::SCHED_RR || policy == libc::SCHED_FIFO
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;

    pub fn promote_current_thread() -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "real-time workers are Linux only",
        ))
    }

    pub fn current_thread_is_realtime() -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Promoted, a thread is real-time; refused, it is told why (EPERM)
    /// and stays as it was.
    #[test]
    fn a_thread_is_promoted_or_told_why_not() {
        std::thread::spawn(|| {
            assert!(!current_thread_is_realtime());
            match promote_current_thread() {
                Ok(()) => assert!(current_thread_is_realtime()),
                Err(error) => {
                    assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
                    assert!(!current_thread_is_realtime());
                }
            }
        })
        .join()
        .unwrap();
    }

    /// Workers become real-time once they have parked; the blocking pool's
    /// threads and the thread that drives `block_on` do not.
    #[test]
    fn workers_become_realtime_and_nothing_else_does() {
        let allowed = allowed();
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2).enable_all();
        let runtime = on_workers(&mut builder).build().unwrap();
        let (workers, blocking, main) = runtime.block_on(async {
            let workers = tokio::spawn(async {
                // Sleeping parks the worker, so by the time this runs again
                // its thread has been through the hook.
                tokio::time::sleep(Duration::from_millis(10)).await;
                current_thread_is_realtime()
            });
            let blocking = tokio::task::spawn_blocking(current_thread_is_realtime);
            (
                workers.await.unwrap(),
                blocking.await.unwrap(),
                current_thread_is_realtime(),
            )
        });
        assert_eq!(workers, allowed, "a worker after parking");
        assert!(!blocking, "a blocking-pool thread");
        assert!(!main, "the block_on thread");
    }
}
