//! Verified-token cache (feature `cache`): the claims of tokens already
//! verified, so that a token presented again skips the signature check
//! and the decoding.
//!
//! An entry is found by the **exact token string** (the whole token is
//! compared on every hit: one byte changed anywhere, signature included,
//! is another token) and is served only while all of these hold:
//!
//! - its token's `exp` has not passed. The leeway does not extend a cached
//!   entry: a token accepted inside the leeway is verified again on every
//!   request, and a token whose `nbf` or `iat` is still ahead is not cached;
//! - the cache's [`ttl`](TokenCache::ttl) has not run out since the token
//!   was verified (and its `iat` is younger than the builder's `max_age`);
//! - the key that verified it is still in the layer's
//!   [`KeyStore`](crate::KeyStore): replacing the key set evicts what the
//!   removed keys verified (when the entry is next looked up). A remote key
//!   set refreshed with a key unchanged (same `kid`, algorithm and
//!   material) keeps that key, and the tokens it verified stay cached.
//!
//! A hit runs every check that does not need the signature again, with the
//! same clock a miss uses: `exp`/`nbf`/`iat` with the leeway, issuer,
//! audience, required claims, [`claims_rule`](crate::JwtAuthBuilder::claims_rule),
//! scopes and [`authorize`](crate::JwtAuthBuilder::authorize) (403 as
//! before), and the [`revocation`](crate::JwtAuthBuilder::revocation)
//! check. It hands the inner service a clone of the cached claims: keep
//! the claims type cheap to clone if that matters.
//!
//! The cache is bounded both by entries and by an estimate of the memory
//! its entries hold (the token, its claims and the registered claims kept
//! for the checks), so many distinct valid tokens evict each other rather
//! than grow it. It is a [`quick_cache`](https://docs.rs/quick_cache)
//! (S3-FIFO eviction, sharded locks): a hit takes a shard's read lock and
//! hashes only the token's last 64 bytes (its signature, which the issuer
//! chose); the whole token is then compared.
//!
//! Hits, misses, insertions, evictions, expired entries and entries
//! dropped because their key left the key set are counted
//! ([`TokenCache::stats`]) and logged with `tracing` at trace level (debug
//! for expiry and key removal); the token itself is never logged.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use http::{Request, Response, StatusCode};
//! use serde::Deserialize;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::cache::TokenCache;
//! use tower_jwt_auth::issue::SigningKey;
//! use tower_jwt_auth::{Algorithm, JwtAuthLayer};
//!
//! #[derive(Clone, Deserialize)]
//! struct Claims { sub: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let cache = TokenCache::new()
//!     .max_entries(10_000)
//!     .max_memory(16 << 20)
//!     .ttl(Duration::from_secs(300));
//! let auth = JwtAuthLayer::<Claims>::builder()
//!     .hs256(secret)
//!     .cache(cache.clone())
//!     .build()?;
//! let service = ServiceBuilder::new().layer(auth).service(service_fn(|req: Request<String>| async move {
//!     let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
//!     Ok::<_, std::convert::Infallible>(Response::new(sub.unwrap_or_default()))
//! }));
//!
//! let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 60;
//! let token = SigningKey::hmac(Algorithm::HS256, "k1", secret)?
//!     .sign(&serde_json::json!({ "sub": "ada", "exp": exp }))?;
//! for _ in 0..2 {
//!     let request = Request::builder()
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(String::new())?;
//!     let response = service.clone().oneshot(request).await?;
//!     assert_eq!(response.status(), StatusCode::OK);
//! }
//! let stats = cache.stats();
//! assert_eq!((stats.misses, stats.inserts, stats.hits), (1, 1, 1));
//! # Ok(()) }
//! ```

mod counters;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use counters::CacheStats;
pub(crate) use store::Store;

use counters::Counters;

/// The default [`TokenCache::max_entries`].
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// The default [`TokenCache::max_memory`], in bytes (32 MiB).
pub const DEFAULT_MAX_MEMORY: u64 = 32 << 20;
/// The default [`TokenCache::ttl`].
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The smallest [`TokenCache::max_entries`]; smaller values are raised to it.
pub const MIN_ENTRIES: usize = 32;

/// Configures a verified-token cache and reads its counters; hand it to
/// [`JwtAuthBuilder::cache`](crate::JwtAuthBuilder::cache). See the
/// [module docs](self).
///
/// Cloning gives another handle on the same counters. Each layer built
/// with a handle gets its own entries (entries depend on the layer's
/// keys and rules, so layers never share them); the counters of every
/// layer built with clones of one handle add up.
#[derive(Clone)]
pub struct TokenCache {
    max_entries: usize,
    max_memory: u64,
    ttl: Duration,
    counters: Arc<Counters>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("max_entries", &self.max_entries)
            .field("max_memory", &self.max_memory)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCache {
    /// A cache of at most [`DEFAULT_MAX_ENTRIES`] entries and
    /// [`DEFAULT_MAX_MEMORY`] bytes, each kept at most [`DEFAULT_TTL`].
    pub fn new() -> Self {
        TokenCache {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_memory: DEFAULT_MAX_MEMORY,
            ttl: DEFAULT_TTL,
            counters: Arc::default(),
        }
    }

    /// Most entries held at once (at least [`MIN_ENTRIES`]).
    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries.max(MIN_ENTRIES);
        self
    }

    /// Most bytes the entries hold, estimated per entry as its token's
    /// length, twice its decoded payload (the claims and the registered
    /// claims) and a fixed overhead. The cache splits this between its
    /// shards: a token whose entry would outweigh one shard's share is
    /// verified every time instead of cached.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Longest time an entry is served after its token was verified, in
    /// whole seconds, whatever the token's `exp` says; zero caches nothing.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The counters so far, summed over every layer built with this
    /// handle or its clones.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// The entry store for one layer.
    pub(crate) fn store<C: Clone + Send + Sync + 'static>(&self) -> Store<C> {
        Store::new(
            self.max_entries,
            self.max_memory,
            self.ttl.as_secs(),
            Arc::clone(&self.counters),
        )
    }
}
