//! Replay stores: every accepted proof's key thumbprint and `jti`,
//! remembered while the proof could still be accepted.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::BoxError;

/// What [`ReplayStore::check_and_record`] returns: `Ok(true)` when the key
/// was new (and is now recorded), `Ok(false)` when it was already there (a
/// replay), an error when the store cannot tell (answered 503, gRPC 14).
pub type ReplayFuture = Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'static>>;

/// Remembers the proofs a layer accepted, so that none is accepted twice.
///
/// The layer (or a [`ProofVerifier`](super::ProofVerifier)) calls it once
/// per proof that passed every other check, with a key derived from the
/// proof's key thumbprint and `jti` (the base64url SHA-256 of both: 43
/// characters whatever the `jti`), the time read from its clock, and
/// `expires`, the instant from which the proof's `iat` is outside the
/// accepted window: an entry need not outlive it.
///
/// Both methods must record and answer in one atomic step: two requests
/// carrying the same proof at once must not both see it as new.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_jwt_auth::dpop::{MemoryReplayStore, ReplayStore};
///
/// let store = MemoryReplayStore::new();
/// let now = SystemTime::now();
/// let expires = now + Duration::from_secs(60);
/// assert!(store.check_and_record_now("key", now, expires).unwrap().unwrap());
/// assert!(!store.check_and_record_now("key", now, expires).unwrap().unwrap());
/// // Once the proof could no longer be accepted, its entry is gone.
/// assert!(store.check_and_record_now("key", expires, expires + Duration::from_secs(60)).unwrap().unwrap());
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` until `expires` unless it is already recorded; the
    /// future owns what it needs.
    fn check_and_record(&self, key: &str, now: SystemTime, expires: SystemTime) -> ReplayFuture;

    /// The same, without waiting, for stores that hold their entries in
    /// memory: `Some` answers the request at once (no future is boxed),
    /// `None` (the default) makes the layer await
    /// [`check_and_record`](Self::check_and_record).
    fn check_and_record_now(
        &self,
        key: &str,
        now: SystemTime,
        expires: SystemTime,
    ) -> Option<Result<bool, BoxError>> {
        let _ = (key, now, expires);
        None
    }
}

/// The default capacity of a [`MemoryReplayStore`], in entries (about
/// 40 bytes each once the map has grown to it).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 20;

/// Shards, each behind its own lock.
const SHARDS: usize = 16;

/// A bounded in-memory [`ReplayStore`] for one process (or one layer);
/// for several instances behind a load balancer use a shared store such
/// as `RedisReplayStore` (feature `redis`), or a proof refused by one
/// instance is accepted by the next.
///
/// It answers synchronously ([`ReplayStore::check_and_record_now`]): the
/// layer boxes no future for it. Clones share the entries.
///
/// Entries are kept until their proof's `iat` leaves the accepted window,
/// so it holds about (accepted DPoP requests per second) × (the window).
/// When it is full of entries that are all still live, it **refuses** new
/// proofs (503 with `Retry-After`, gRPC 14) rather than forgetting an
/// entry, which would let that proof be replayed; only requests whose
/// access token and proof passed every other check reach it, so only
/// holders of valid tokens can fill it. Size it for your peak rate with
/// [`with_capacity`](Self::with_capacity).
///
/// Keys are kept as 128-bit keyed hashes (SipHash under two random keys
/// of this process), not as text.
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    per_shard: usize,
    hashers: (RandomState, RandomState),
}

#[derive(Default)]
struct Shard {
    /// Key hash → expiry, seconds since the epoch.
    entries: HashMap<u128, u64, BuildHasherDefault<Prehashed>>,
    /// No entry expires before this (`u64::MAX` when empty): a full shard
    /// is swept only when a sweep can free something.
    soonest: u64,
}

/// The keys are hashes already: their low bits are the map's hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 = n as u64;
        }
    }
}

/// The store holds as many live entries as its capacity allows: a new
/// proof is refused rather than an entry forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayStoreFull {
    /// The store's capacity, in entries.
    pub capacity: usize,
}

impl fmt::Display for ReplayStoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DPoP replay store full ({} live entries): proof refused rather than an entry forgotten",
            self.capacity
        )
    }
}

impl std::error::Error for ReplayStoreFull {}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl MemoryReplayStore {
    /// A store of [`DEFAULT_REPLAY_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store of at most `capacity` entries (at least 16), spread over
    /// 16 shards of `capacity / 16` each.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryReplayStore {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::default(),
                        soonest: u64::MAX,
                    })
                }),
                per_shard: capacity.div_ceil(SHARDS).max(1),
                hashers: (RandomState::new(), RandomState::new()),
            }),
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.inner.per_shard * SHARDS
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| lock(shard).entries.len())
            .sum()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, key: &str, now: SystemTime, expires: SystemTime) -> Result<bool, BoxError> {
        let (now, expires) = (seconds(now), seconds(expires));
        let (a, b) = &self.inner.hashers;
        let hash = u128::from(a.hash_one(key)) << 64 | u128::from(b.hash_one(key));
        #[allow(clippy::cast_possible_truncation)]
        let shard = &self.inner.shards[(hash >> 124) as usize % SHARDS];
        let mut shard = lock(shard);
        match shard.entries.get(&hash) {
            Some(&until) if until > now => return Ok(false),
            Some(_) => {}
            None if shard.entries.len() >= self.inner.per_shard => {
                shard.sweep(now);
                if shard.entries.len() >= self.inner.per_shard {
                    return Err(Box::new(ReplayStoreFull {
                        capacity: self.capacity(),
                    }));
                }
            }
            None => {}
        }
        shard.entries.insert(hash, expires);
        shard.soonest = shard.soonest.min(expires);
        Ok(true)
    }
}

impl Shard {
    /// Drops the entries that expired, when any can have.
    fn sweep(&mut self, now: u64) {
        if now < self.soonest {
            return;
        }
        self.entries.retain(|_, until| *until > now);
        self.soonest = self.entries.values().copied().min().unwrap_or(u64::MAX);
    }
}

/// A panic while a shard was locked leaves it consistent (every update is
/// one map operation): keep using it.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ReplayStore for MemoryReplayStore {
    fn check_and_record(&self, key: &str, now: SystemTime, expires: SystemTime) -> ReplayFuture {
        let answer = self.record(key, now, expires);
        Box::pin(async move { answer })
    }

    fn check_and_record_now(
        &self,
        key: &str,
        now: SystemTime,
        expires: SystemTime,
    ) -> Option<Result<bool, BoxError>> {
        Some(self.record(key, now, expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn record(store: &MemoryReplayStore, key: &str, now: u64, expires: u64) -> bool {
        store
            .check_and_record_now(key, at(now), at(expires))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_key_is_new_once_until_it_expires() {
        let store = MemoryReplayStore::new();
        assert!(record(&store, "a", 100, 160));
        assert!(!record(&store, "a", 100, 160));
        assert!(!record(&store, "a", 159, 219));
        assert!(record(&store, "b", 100, 160));
        assert!(record(&store, "a", 160, 220));
        assert!(!record(&store, "a", 161, 221));
        let clone = store.clone();
        assert!(!record(&clone, "b", 101, 161));
    }

    #[test]
    fn a_full_store_sweeps_then_refuses_rather_than_forgets() {
        let store = MemoryReplayStore::with_capacity(1024);
        assert_eq!(store.capacity(), 1024);
        let mut refused = 0;
        let mut recorded = Vec::new();
        for i in 0..5000 {
            let key = format!("k{i}");
            match store.check_and_record_now(&key, at(100), at(160)).unwrap() {
                Ok(true) => recorded.push(key),
                Ok(false) => panic!("{key} seen twice"),
                Err(err) => {
                    assert!(err.downcast_ref::<ReplayStoreFull>().is_some(), "{err}");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused + recorded.len(), 5000);
        assert_eq!(recorded.len(), 1024);
        assert_eq!(store.len(), recorded.len());
        // Nothing recorded was forgotten.
        for key in &recorded {
            assert!(!record(&store, key, 120, 180), "{key}");
        }
        // Once they expired, there is room again.
        for i in 5000..5100 {
            assert!(record(&store, &format!("k{i}"), 160, 220));
        }
        assert!(store.len() <= 1024);
    }

    #[tokio::test]
    async fn the_future_and_the_synchronous_answer_agree() {
        let store = MemoryReplayStore::new();
        assert!(store.check_and_record("x", at(1), at(2)).await.unwrap());
        assert!(
            !store
                .check_and_record_now("x", at(1), at(2))
                .unwrap()
                .unwrap()
        );
        assert!(!store.check_and_record("x", at(1), at(2)).await.unwrap());
    }
}
