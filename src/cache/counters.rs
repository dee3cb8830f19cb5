//! The cache's counters, striped so that threads counting hits do not
//! fight over one cache line, and summed when read.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter set; threads are spread over them round-robin.
const STRIPES: usize = 8;

/// What the cache has done so far; from [`TokenCache::stats`](super::TokenCache::stats).
///
/// Every field only grows. [`CacheStats::counters`] lists them as
/// name/value pairs for a metrics exporter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Tokens answered from the cache.
    pub hits: u64,
    /// Tokens looked up and not served from the cache (absent, expired or
    /// their key gone); each was verified in full.
    pub misses: u64,
    /// Verified tokens stored.
    pub inserts: u64,
    /// Entries evicted to stay within the bounds, or refused as too large.
    pub evictions: u64,
    /// Entries found past their token's `exp`, the TTL or `max_age`, and
    /// dropped (each also counts as a miss).
    pub expired: u64,
    /// Entries found whose verifying key had left the key set, and dropped
    /// (each also counts as a miss).
    pub key_removed: u64,
}

impl CacheStats {
    /// The counters as `(name, value)` pairs, names in snake case.
    pub fn counters(&self) -> [(&'static str, u64); 6] {
        [
            ("hits", self.hits),
            ("misses", self.misses),
            ("inserts", self.inserts),
            ("evictions", self.evictions),
            ("expired", self.expired),
            ("key_removed", self.key_removed),
        ]
    }
}

/// One stripe: every counter, on its own cache line.
#[derive(Default)]
#[repr(align(64))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    key_removed: AtomicU64,
}

/// What a [`TokenCache`](super::TokenCache) handle shares with its stores.
#[derive(Default)]
pub(crate) struct Counters {
    stripes: [Stripe; STRIPES],
}

#[derive(Clone, Copy)]
pub(crate) enum Event {
    Hit,
    Miss,
    Insert,
    Eviction,
    Expired,
    KeyRemoved,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    STRIPE
        .try_with(|stripe| {
            if stripe.get() == usize::MAX {
                stripe.set(NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES);
            }
            stripe.get()
        })
        .unwrap_or(0)
}

impl Counters {
    pub(crate) fn count(&self, event: Event) {
        let stripe = &self.stripes[stripe_index()];
        let counter = match event {
            Event::Hit => &stripe.hits,
            Event::Miss => &stripe.misses,
            Event::Insert => &stripe.inserts,
            Event::Eviction => &stripe.evictions,
            Event::Expired => &stripe.expired,
            Event::KeyRemoved => &stripe.key_removed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::Hit => crate::metrics::cache_hit(),
            // An entry past its time or its key answers as a miss.
            Event::Miss | Event::Expired | Event::KeyRemoved => crate::metrics::cache_miss(),
            Event::Eviction => crate::metrics::cache_evicted(1),
            Event::Insert => {}
        }
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let sum = |field: fn(&Stripe) -> &AtomicU64| {
            self.stripes
                .iter()
                .map(|stripe| field(stripe).load(Ordering::Relaxed))
                .sum()
        };
        CacheStats {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            inserts: sum(|s| &s.inserts),
            evictions: sum(|s| &s.evictions),
            expired: sum(|s| &s.expired),
            key_removed: sum(|s| &s.key_removed),
        }
    }
}
