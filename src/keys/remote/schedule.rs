//! The refresher's decisions, as pure functions of the time they are
//! given: when to refresh next, how long to back off, when cached keys are
//! too stale to keep, and whether an unknown `kid` may trigger a refetch.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio::time::Instant;

use super::RemoteOptions;

/// When to refresh after a successful fetch: the document's `max-age`
/// clamped to the configured bounds, or the default interval.
pub(crate) fn next_refresh(
    now: Instant,
    max_age: Option<Duration>,
    options: &RemoteOptions,
) -> Instant {
    let interval = max_age.map_or(options.refresh_interval, |age| {
        age.clamp(options.min_refresh_interval, options.max_refresh_interval)
    });
    now + interval
}

/// Delay before retry number `failures` (1 for the first retry):
/// exponential from the initial backoff, capped, with "equal jitter"
/// (half fixed, half random, `jitter` in `[0, 1)`) so that many instances
/// do not hammer a recovering provider in step.
pub(crate) fn backoff(failures: u32, options: &RemoteOptions, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let base = options
        .initial_backoff
        .saturating_mul(1 << doublings.min(31))
        .min(options.max_backoff);
    base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// Whether keys last confirmed at `last_good` are past the maximum
/// staleness at `now`.
pub(crate) fn too_stale(now: Instant, last_good: Option<Instant>, max_staleness: Duration) -> bool {
    last_good.is_some_and(|good| now.saturating_duration_since(good) >= max_staleness)
}

/// When the keys confirmed at `last_good` become too stale.
pub(crate) fn stale_at(last_good: Option<Instant>, max_staleness: Duration) -> Option<Instant> {
    last_good.map(|good| good + max_staleness)
}

/// A random number in `[0, 1)`, from the standard library's per-process
/// random hash keys.
pub(crate) fn jitter() -> f64 {
    let bits = RandomState::new().hash_one(std::time::SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Single-flight and cooldown for refetches asked for by requests.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// When a request last triggered a refetch.
    last_trigger: Option<Instant>,
    /// A fetch (scheduled or asked for) is running or about to.
    in_flight: bool,
    /// A request asked for a fetch the task has not begun yet.
    requested: bool,
}

/// What a request that met an unknown `kid` does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A fetch is under way: wait for it.
    Join,
    /// Start a fetch and wait for it.
    Trigger,
    /// A refetch ran less than a cooldown ago: answer with the keys held.
    Refuse,
}

impl Gate {
    /// Decides for a request at `now`; `Trigger` is recorded as asked.
    pub(crate) fn decide(&mut self, now: Instant, cooldown: Duration) -> Decision {
        if self.in_flight {
            return Decision::Join;
        }
        if self
            .last_trigger
            .is_some_and(|last| now.saturating_duration_since(last) < cooldown)
        {
            return Decision::Refuse;
        }
        self.force(now);
        Decision::Trigger
    }

    /// Asks for a fetch whatever the cooldown (an explicit refresh).
    /// Returns whether the task must be woken.
    pub(crate) fn force(&mut self, now: Instant) -> bool {
        self.last_trigger = Some(now);
        let wake = !self.in_flight;
        self.in_flight = true;
        self.requested |= wake;
        wake
    }

    /// The task begins a fetch; returns whether a request asked for one.
    pub(crate) fn begin(&mut self) -> bool {
        self.in_flight = true;
        std::mem::take(&mut self.requested)
    }

    /// The task finished a fetch.
    pub(crate) fn end(&mut self) {
        self.in_flight = false;
    }

    /// Whether a fetch is running or about to.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Whether a request asked for a fetch not yet begun.
    pub(crate) fn requested(&self) -> bool {
        self.requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RemoteOptions {
        RemoteOptions::default()
    }

    #[test]
    fn max_age_is_clamped() {
        let o = options();
        let now = Instant::now();
        let after = |age: Option<u64>| next_refresh(now, age.map(Duration::from_secs), &o) - now;
        assert_eq!(after(None), o.refresh_interval);
        assert_eq!(after(Some(0)), o.min_refresh_interval);
        assert_eq!(after(Some(1)), o.min_refresh_interval);
        assert_eq!(after(Some(600)), Duration::from_secs(600));
        assert_eq!(after(Some(u64::MAX / 4)), o.max_refresh_interval);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_within_half() {
        let o = options();
        assert_eq!(backoff(1, &o, 0.0), o.initial_backoff / 2);
        assert_eq!(
            backoff(1, &o, 0.999_999),
            o.initial_backoff.mul_f64(0.999_999_5)
        );
        assert_eq!(backoff(3, &o, 0.0), o.initial_backoff * 2);
        assert_eq!(backoff(1000, &o, 0.0), o.max_backoff / 2);
        assert!(backoff(u32::MAX, &o, 1.0) <= o.max_backoff);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn staleness() {
        let now = Instant::now();
        let max = Duration::from_secs(60);
        assert!(!too_stale(now, None, max));
        assert!(!too_stale(now + Duration::from_secs(59), Some(now), max));
        assert!(too_stale(now + max, Some(now), max));
        assert_eq!(stale_at(Some(now), max), Some(now + max));
    }

    #[test]
    fn gate_is_single_flight_with_a_cooldown() {
        let cooldown = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut gate = Gate::default();
        assert_eq!(gate.decide(t0, cooldown), Decision::Trigger);
        // Everyone else joins the fetch asked for, however many.
        for _ in 0..1000 {
            assert_eq!(gate.decide(t0, cooldown), Decision::Join);
        }
        assert!(gate.begin());
        assert_eq!(gate.decide(t0, cooldown), Decision::Join);
        gate.end();
        // Done: no second refetch within the cooldown.
        assert_eq!(
            gate.decide(t0 + Duration::from_secs(29), cooldown),
            Decision::Refuse
        );
        assert_eq!(gate.decide(t0 + cooldown, cooldown), Decision::Trigger);
    }

    #[test]
    fn scheduled_fetches_are_joined_but_do_not_start_a_cooldown() {
        let cooldown = Duration::from_secs(30);
        let t0 = Instant::now();
        let mut gate = Gate::default();
        assert!(!gate.begin());
        assert_eq!(gate.decide(t0, cooldown), Decision::Join);
        assert!(!gate.requested());
        gate.end();
        assert_eq!(gate.decide(t0, cooldown), Decision::Trigger);
        assert!(gate.requested());
    }
}
