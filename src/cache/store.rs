//! One layer's entries: a `quick_cache` keyed by the whole token, each
//! entry remembering its verifying key and the instant it stops being
//! served.

use std::hash::{Hash, Hasher};
use std::mem::size_of;
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, Weighter};

use super::counters::{Counters, Event};
use crate::authorize::TokenPayload;
use crate::claims::{Registered, Rules};
use crate::keys::KeyStore;

/// Bytes of the token's end that are hashed: its signature (or, for the
/// shortest HMAC ones, the signature and the payload's end), which only
/// the issuer chooses for a token that verifies. Equality compares the
/// whole token.
const HASHED_TAIL: usize = 64;

/// What an entry costs beyond its token and payload: the entry and key
/// allocations, reference counts, the map's slot.
const OVERHEAD: u64 = 128;

/// A hit: what the checks that remain need.
pub(crate) struct Entry<C> {
    pub(crate) claims: C,
    pub(crate) registered: Registered<'static>,
    /// The verified payload JSON, for route policies reading roles.
    pub(crate) payload: TokenPayload,
    pub(crate) typ_at_jwt: bool,
    key_id: u64,
    /// Seconds since the epoch from which the entry is no longer served.
    valid_until: u64,
    weight: u64,
}

/// The stored token.
struct Key(Box<[u8]>);

/// A token being looked up, without copying it.
struct Probe<'a>(&'a [u8]);

fn fingerprint<H: Hasher>(token: &[u8], state: &mut H) {
    state.write_usize(token.len());
    state.write(&token[token.len().saturating_sub(HASHED_TAIL)..]);
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fingerprint(&self.0, state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fingerprint(self.0, state);
    }
}

impl Equivalent<Key> for Probe<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.0 == *key.0
    }
}

/// Each entry weighs its estimated bytes, and at least the memory bound
/// divided by the entry bound: the sum of weights staying under the
/// memory bound then keeps the count under the entry bound too.
#[derive(Clone)]
struct Weigh;

impl<C> Weighter<Key, Arc<Entry<C>>> for Weigh {
    fn weight(&self, _key: &Key, entry: &Arc<Entry<C>>) -> u64 {
        entry.weight
    }
}

/// Counts evictions (and entries refused as too heavy).
#[derive(Clone)]
struct Evictions(Arc<Counters>);

impl<C> Lifecycle<Key, Arc<Entry<C>>> for Evictions {
    type RequestState = ();

    fn begin_request(&self) {}

    fn on_evict(&self, (): &mut (), _key: Key, _entry: Arc<Entry<C>>) {
        self.0.count(Event::Eviction);
        tracing::trace!("verified-token cache eviction");
    }
}

type Map<C> = Cache<Key, Arc<Entry<C>>, Weigh, DefaultHashBuilder, Evictions>;

/// The entries of one layer.
pub(crate) struct Store<C> {
    map: Map<C>,
    ttl: u64,
    min_weight: u64,
    counters: Arc<Counters>,
}

impl<C: Clone + Send + Sync + 'static> Store<C> {
    pub(super) fn new(
        max_entries: usize,
        max_memory: u64,
        ttl: u64,
        counters: Arc<Counters>,
    ) -> Self {
        // Shards spread the lock; each keeps room for at least 32 entries
        // and 256 KiB, so that one shard's share still admits large tokens.
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        let mut shards = (parallelism * 4).next_power_of_two();
        while shards > 1
            && (max_entries / shards < super::MIN_ENTRIES
                || max_memory / (shards as u64) < 256 << 10)
        {
            shards /= 2;
        }
        // Whole shards: the shards' capacities add up to at most
        // `max_memory`.
        let capacity = max_memory / shards as u64 * shards as u64;
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(max_entries)
            .weight_capacity(capacity)
            .build()
            .expect("every option is set");
        Store {
            map: Cache::with_options(
                options,
                Weigh,
                DefaultHashBuilder::default(),
                Evictions(Arc::clone(&counters)),
            ),
            ttl,
            min_weight: max_memory.div_ceil(max_entries.max(1) as u64).max(1),
            counters,
        }
    }

    /// The entry for exactly `token`, if it may still be served at `now`
    /// and its verifying key is still in `keys`. An entry that may not is
    /// dropped.
    pub(crate) fn get(&self, token: &[u8], keys: &KeyStore, now: u64) -> Option<Arc<Entry<C>>> {
        let probe = Probe(token);
        let Some(entry) = self.map.get(&probe) else {
            self.counters.count(Event::Miss);
            tracing::trace!("verified-token cache miss");
            return None;
        };
        let refused = if now >= entry.valid_until {
            tracing::debug!("verified-token cache: entry expired");
            Event::Expired
        } else if !keys.guard().contains_id(entry.key_id) {
            tracing::debug!("verified-token cache: the verifying key left the key set");
            Event::KeyRemoved
        } else {
            self.counters.count(Event::Hit);
            tracing::trace!("verified-token cache hit");
            return Some(entry);
        };
        // Only this entry: another thread may have stored a fresh one.
        self.map
            .remove_if(&probe, |stored| Arc::ptr_eq(stored, &entry));
        self.counters.count(refused);
        self.counters.count(Event::Miss);
        None
    }

    /// Stores a token that just passed every 401-class check at `now`,
    /// unless it was accepted only thanks to the leeway (`exp` passed,
    /// `nbf` or `iat` ahead): such a token is verified again each time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &self,
        token: &[u8],
        claims: &C,
        registered: Registered<'_>,
        payload: &[u8],
        typ_at_jwt: bool,
        key_id: u64,
        rules: &Rules,
        now: u64,
    ) {
        let Some(valid_until) = valid_until(&registered, rules, self.ttl, now) else {
            return;
        };
        let estimate = (token.len() as u64)
            .saturating_add(2 * payload.len() as u64)
            .saturating_add(size_of::<Entry<C>>() as u64)
            .saturating_add(OVERHEAD);
        let entry = Entry {
            claims: claims.clone(),
            registered: registered.into_owned(),
            payload: TokenPayload::new(payload),
            typ_at_jwt,
            key_id,
            valid_until,
            weight: estimate.max(self.min_weight),
        };
        self.map.insert(Key(token.into()), Arc::new(entry));
        self.counters.count(Event::Insert);
        tracing::trace!("verified-token cache insert");
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(super) fn weight(&self) -> u64 {
        self.map.weight()
    }
}

/// The first second at which an entry made at `now` is no longer served:
/// its `exp` (no leeway), the TTL, the end of `max_age`, whichever comes
/// first; `None` when that is not after `now` or when `nbf`/`iat` are
/// still ahead.
fn valid_until(registered: &Registered<'_>, rules: &Rules, ttl: u64, now: u64) -> Option<u64> {
    let seconds = |date: Option<i64>| date.and_then(|d| u64::try_from(d).ok());
    let exp = seconds(registered.exp)?;
    if seconds(registered.nbf).is_some_and(|nbf| nbf > now)
        || seconds(registered.iat).is_some_and(|iat| iat > now)
    {
        return None;
    }
    let mut until = exp.min(now.saturating_add(ttl));
    if let Some(max_age) = rules.max_age {
        until = until.min(seconds(registered.iat)?.saturating_add(max_age));
    }
    (until > now).then_some(until)
}
