//! Preemption points while password hashes fill every CPU (Linux).
//!
//! A hash is 15–25 ms of computation without a system call. Linux's
//! scheduler (EEVDF, 6.6 and later) chooses what runs on a CPU only when
//! something happens there: a thread on it wakes, blocks or yields, or the
//! tick comes (every 4 ms at HZ = 250). A request-handling thread that
//! wakes with a small negative lag (it ran a little longer than its share
//! before it slept; since 6.12 such a sleeper stays queued, "delayed") is
//! not yet eligible when it wakes, so it does not preempt the hash, even a
//! niced or `SCHED_IDLE` one. It becomes eligible microseconds later, but
//! nothing on that CPU asks again until the tick: during a login storm a
//! request could wait up to a tick behind a hash (`perf sched` showed
//! 2–3 ms waits; `/auth/me`'s p99 was 3–6 × its idle value).
//!
//! Opt-in (`--hashing-tick-us`): while any hash runs, a ticker thread
//! pinned to each CPU sleeps the given period at a time; each of its
//! wake-ups is such an event, so a thread that became eligible waits at
//! most about a period. When no hash runs the tickers wait on a condition
//! variable and cost nothing. They are started only when the hashing
//! threads can fill every CPU the process may run on; with a CPU to spare,
//! a woken thread goes there instead. Elsewhere than on Linux there are
//! none.
//!
//! Why not by default: each wake-up costs the CPU it preempts a few
//! microseconds and some of the hash's cache. Measured at 500 µs on a
//! 2-vCPU VM, the storm's `/auth/me` p99 went from 3.4 × idle to 2.1 ×,
//! but hashing throughput fell by a few percent in isolation and the
//! storm's login rate from 0.91 to 0.81 of the argon2id limit (noisy, same
//! run; BENCHMARKS.md, "Preemption points"). A login service whose other
//! routes matter more than its login rate during a storm can turn it on.
//! Where the service may use real-time priorities, `--realtime-workers`
//! (the `realtime` module) does better: the request threads preempt the
//! hash themselves when they wake, and no hash pays for ticks.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The tickers of one set of hashing threads; dropping it stops them.
pub struct PreemptionPoints {
    shared: Arc<Shared>,
    tickers: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Hashes running now.
    hashing: usize,
    /// Tickers waiting for a hash.
    parked: usize,
    /// Wake-ups so far, all tickers together.
    ticks: u64,
    /// The CPUs each ticker is pinned to, as it reads them back.
    pinned: Vec<Vec<usize>>,
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is fine.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PreemptionPoints {
    /// Tickers waking every `period` for `hashing_threads` threads: one
    /// per CPU the process may run on, if the hashing threads can fill them
    /// all; otherwise, or without a period, none.
    pub fn start(hashing_threads: usize, period: Option<Duration>) -> Self {
        let cpus = allowed_cpus();
        match period {
            Some(period) if hashing_threads >= cpus.len() => Self::on(cpus, period),
            _ => Self::on(Vec::new(), Duration::ZERO),
        }
    }

    /// One ticker on each of `cpus`, waking every `period` while hashing.
    fn on(cpus: Vec<usize>, period: Duration) -> Self {
        let shared = Arc::new(Shared::default());
        let mut tickers = 0;
        for cpu in cpus {
            let ticker = shared.clone();
            let started = std::thread::Builder::new()
                .name("argon2id-tick".into())
                .spawn(move || tick(&ticker, cpu, period));
            match started {
                Ok(_) => tickers += 1,
                // Fewer preemption points, not fewer logins.
                Err(error) => tracing::warn!(%error, "cannot start a hashing ticker"),
            }
        }
        Self { shared, tickers }
    }

    /// How many tickers run: one per CPU, or none.
    pub fn tickers(&self) -> usize {
        self.tickers
    }

    /// Marks a hash as running until the guard drops; the tickers wake
    /// while any is.
    pub fn hashing(&self) -> Hashing<'_> {
        let mut state = self.shared.lock();
        state.hashing += 1;
        if state.hashing == 1 {
            self.shared.changed.notify_all();
        }
        Hashing(self)
    }
}

#[cfg(test)]
impl PreemptionPoints {
    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.shared.lock().hashing
    }
}

impl Drop for PreemptionPoints {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

/// A running hash (see [`PreemptionPoints::hashing`]).
pub struct Hashing<'a>(&'a PreemptionPoints);

impl Drop for Hashing<'_> {
    fn drop(&mut self) {
        self.0.shared.lock().hashing -= 1;
    }
}

/// A ticker's life: pinned to `cpu`, it sleeps `period` at a time while
/// any hash runs and waits for one otherwise, until its owner is dropped.
fn tick(shared: &Shared, cpu: usize, period: Duration) {
    let pinned = pin(cpu);
    let mut state = shared.lock();
    state.pinned.push(pinned);
    loop {
        if state.stop {
            return;
        }
        if state.hashing == 0 {
            state.parked += 1;
            shared.changed.notify_all();
            state = shared
                .changed
                .wait_while(state, |s| s.hashing == 0 && !s.stop)
                .unwrap_or_else(PoisonError::into_inner);
            state.parked -= 1;
            continue;
        }
        drop(state);
        std::thread::sleep(period);
        state = shared.lock();
        state.ticks += 1;
    }
}

/// The CPUs the process may run on; empty where that cannot be known.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_getaffinity};
        if let Ok(set) = sched_getaffinity(None) {
            return (0..CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect();
        }
    }
    Vec::new()
}

/// Pins the calling thread to `cpu` and returns the CPUs it may then run
/// on. A ticker that cannot be pinned still ticks, wherever it runs.
fn pin(cpu: usize) -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        use rustix::thread::{CpuSet, sched_setaffinity};
        let mut set = CpuSet::new();
        set.set(cpu);
        if let Err(error) = sched_setaffinity(None, &set) {
            tracing::debug!(%error, cpu, "cannot pin a hashing ticker");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
    allowed_cpus()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const PERIOD: Duration = Duration::from_micros(500);

    /// Waits until `done` holds of the state, or fails after 30 s.
    fn wait_for(points: &PreemptionPoints, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = points.shared.lock();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            state = points
                .shared
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(10)))
                .unwrap()
                .0;
        }
    }

    fn cpus() -> Vec<usize> {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "Linux tells a thread its CPUs");
        cpus
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn one_ticker_pinned_to_each_cpu_when_hashing_can_fill_them() {
        let cpus = cpus();
        let points = PreemptionPoints::start(cpus.len(), Some(PERIOD));
        assert_eq!(points.tickers(), cpus.len());
        wait_for(&points, "every ticker pinned", |s| {
            s.pinned.len() == cpus.len()
        });
        let mut pinned = points.shared.lock().pinned.clone();
        assert!(pinned.iter().all(|set| set.len() == 1), "{pinned:?}");
        pinned.sort();
        assert_eq!(pinned.concat(), cpus);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn no_tickers_while_a_cpu_stays_free_of_hashing() {
        let cpus = cpus();
        let points = PreemptionPoints::start(cpus.len() - 1, Some(PERIOD));
        assert_eq!(points.tickers(), 0);
        let points = PreemptionPoints::start(cpus.len(), None);
        assert_eq!(points.tickers(), 0);
    }

    /// Idle, the tickers wait for a hash; while one runs they wake again
    /// and again; once it ends they wait again. The ticks are counted by
    /// the tickers themselves, after each sleep.
    #[test]
    fn tickers_wake_only_while_a_hash_runs() {
        let points = PreemptionPoints::on(vec![cpus()[0], cpus()[0]], Duration::from_micros(100));
        wait_for(&points, "both tickers idle", |s| s.parked == 2);
        assert_eq!(points.shared.lock().ticks, 0);

        let hashing = points.hashing();
        wait_for(&points, "ticks while hashing", |s| s.ticks >= 10);
        let second = points.hashing();
        drop(hashing);
        let ticks = points.shared.lock().ticks;
        wait_for(&points, "ticks while the second hash runs", |s| {
            s.ticks >= ticks + 10
        });
        drop(second);
        wait_for(&points, "both tickers idle again", |s| s.parked == 2);
        assert_eq!(points.shared.lock().hashing, 0);
    }

    /// Dropping the owner stops its tickers, idle or ticking.
    #[test]
    fn tickers_stop_with_their_owner() {
        for hashing in [false, true] {
            let points = PreemptionPoints::on(vec![cpus()[0]], Duration::from_micros(100));
            let shared = Arc::downgrade(&points.shared);
            wait_for(&points, "the ticker idle", |s| s.parked == 1);
            if hashing {
                std::mem::forget(points.hashing());
            }
            drop(points);
            let deadline = Instant::now() + Duration::from_secs(30);
            while shared.upgrade().is_some() {
                assert!(Instant::now() < deadline, "the ticker outlived its owner");
                std::thread::yield_now();
            }
        }
    }
}
