//! Unit tests of the verified-token cache, through the layer's own
//! `verify` (every check but the token's location) with a controlled
//! clock, and on the entry store directly for the bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::keys::VERIFICATIONS;
use crate::{Algorithm, JwtAuthBuilder, JwtAuthLayer, KeySet, KeyStore, Reason, VerifyingKey};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";
const T: u64 = 1_700_000_000;

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct User {
    sub: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 token over `claims`, with `kid` in its header.
fn mint(secret: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    crate::crypto::ensure_default_installed();
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
    format!("{input}.{signature}")
}

fn token(exp: u64) -> String {
    mint(SECRET, "k1", &json!({ "sub": "ada", "exp": exp }))
}

/// A clock the test moves; starts at `T`.
#[derive(Clone)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn new() -> Self {
        Clock(Arc::new(AtomicU64::new(T)))
    }
    fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

fn key(secret: &[u8], kid: &str) -> VerifyingKey {
    VerifyingKey::hmac(Algorithm::HS256, secret)
        .unwrap()
        .with_kid(kid)
}

/// A builder with one HS256 key, the test clock, no leeway and `cache`.
fn builder(clock: &Clock, cache: &TokenCache) -> JwtAuthBuilder<User> {
    let clock = clock.clone();
    JwtAuthLayer::<User>::builder()
        .key(key(SECRET, "k1"))
        .leeway(Duration::ZERO)
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock.0.load(Ordering::SeqCst)))
        .cache(cache.clone())
}

fn reason(result: Result<User, crate::Rejection>) -> Reason {
    match result.unwrap_err().kind() {
        crate::RejectionKind::InvalidToken(reason) => *reason,
        other => panic!("not an invalid token: {other:?}"),
    }
}

/// Signature checks `f` made on this thread.
fn verifications<R>(f: impl FnOnce() -> R) -> (R, usize) {
    VERIFICATIONS.with(|count| count.set(0));
    let result = f();
    (result, VERIFICATIONS.with(std::cell::Cell::get))
}

#[test]
fn a_hit_skips_the_signature_and_serves_the_same_claims() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let layer = builder(&clock, &cache).build().unwrap();
    let token = token(T + 60);

    let (first, checks) = verifications(|| layer.verify(&token));
    assert_eq!(first.unwrap().sub, "ada");
    assert_eq!(checks, 1);
    let (second, checks) = verifications(|| layer.verify(&token));
    assert_eq!(second.unwrap().sub, "ada");
    assert_eq!(checks, 0, "a hit must not check the signature again");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.inserts, stats.hits), (1, 1, 1));
}

#[test]
fn an_entry_is_never_served_at_or_after_exp_and_the_leeway_does_not_extend_it() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let layer = builder(&clock, &cache)
        .leeway(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = token(T + 10);
    layer.verify(&token).unwrap();
    clock.set(T + 9);
    layer.verify(&token).unwrap();
    assert_eq!(cache.stats().hits, 1);

    // From `exp` on, the entry is dropped; the token is verified in full
    // and accepted inside the leeway, but not cached again.
    clock.set(T + 10);
    let (accepted, checks) = verifications(|| layer.verify(&token));
    accepted.unwrap();
    assert_eq!(checks, 1);
    let (accepted, checks) = verifications(|| layer.verify(&token));
    accepted.unwrap();
    assert_eq!(checks, 1, "a token inside the leeway is never cached");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.expired, stats.inserts), (1, 1, 1));

    clock.set(T + 40);
    assert_eq!(reason(layer.verify(&token)), Reason::Expired);
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn the_ttl_bounds_an_entry_whatever_exp_says() {
    let (clock, cache) = (Clock::new(), TokenCache::new().ttl(Duration::from_secs(5)));
    let layer = builder(&clock, &cache).build().unwrap();
    let token = token(T + 3600);
    layer.verify(&token).unwrap();
    clock.set(T + 4);
    let (_, checks) = verifications(|| layer.verify(&token).unwrap());
    assert_eq!(checks, 0);
    clock.set(T + 5);
    let (_, checks) = verifications(|| layer.verify(&token).unwrap());
    assert_eq!(checks, 1, "the TTL ran out: verified again");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.expired, stats.inserts), (1, 1, 2));
    // Cached again from the second verification, for another TTL.
    clock.set(T + 9);
    let (_, checks) = verifications(|| layer.verify(&token).unwrap());
    assert_eq!(checks, 0);

    let none = TokenCache::new().ttl(Duration::ZERO);
    let layer = builder(&clock, &none).build().unwrap();
    layer.verify(&token).unwrap();
    layer.verify(&token).unwrap();
    assert_eq!((none.stats().inserts, none.stats().hits), (0, 0));
}

#[test]
fn tokens_accepted_only_thanks_to_the_leeway_are_not_cached() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let layer = builder(&clock, &cache)
        .leeway(Duration::from_secs(30))
        .build()
        .unwrap();
    let early = mint(
        SECRET,
        "k1",
        &json!({ "sub": "a", "exp": T + 60, "nbf": T + 10 }),
    );
    let fresh = mint(
        SECRET,
        "k1",
        &json!({ "sub": "a", "exp": T + 60, "iat": T + 5 }),
    );
    for token in [&early, &fresh] {
        layer.verify(token).unwrap();
        layer.verify(token).unwrap();
    }
    assert_eq!((cache.stats().inserts, cache.stats().hits), (0, 0));

    // The clock going back past `nbf` after caching: the hit re-runs the
    // `nbf` rule.
    let strict = TokenCache::new();
    let layer = builder(&clock, &strict).build().unwrap();
    clock.set(T + 10);
    layer.verify(&early).unwrap();
    clock.set(T + 9);
    assert_eq!(reason(layer.verify(&early)), Reason::NotYetValid);
}

#[test]
fn max_age_ends_an_entry() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let layer = builder(&clock, &cache)
        .max_age(Duration::from_secs(20))
        .build()
        .unwrap();
    let token = mint(
        SECRET,
        "k1",
        &json!({ "sub": "a", "exp": T + 600, "iat": T }),
    );
    layer.verify(&token).unwrap();
    clock.set(T + 19);
    layer.verify(&token).unwrap();
    clock.set(T + 21);
    assert_eq!(reason(layer.verify(&token)), Reason::IssuedAt);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.expired), (1, 1));
}

/// Replaces the byte at `at` with another base64url character.
fn altered(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn an_altered_token_never_hits() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let layer = builder(&clock, &cache).build().unwrap();
    let token = token(T + 60);
    layer.verify(&token).unwrap();
    layer.verify(&token).unwrap();
    let (header_end, signature_start) = (token.find('.').unwrap(), token.rfind('.').unwrap() + 1);
    // One byte in the header, the payload, the signature, at either end
    // of each.
    for at in [
        0,
        header_end - 2,
        header_end + 1,
        signature_start - 3,
        signature_start,
        token.len() - 2,
    ] {
        let forged = altered(&token, at);
        assert!(layer.verify(&forged).is_err(), "byte {at}");
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.inserts), (1, 1));
}

/// A layer reading keys from `store`, on the test clock.
fn with_store(clock: &Clock, cache: &TokenCache, store: &KeyStore) -> JwtAuthLayer<User> {
    let clock = clock.clone();
    JwtAuthLayer::<User>::builder()
        .key_store(store.clone())
        .leeway(Duration::ZERO)
        .clock(move || UNIX_EPOCH + Duration::from_secs(clock.0.load(Ordering::SeqCst)))
        .cache(cache.clone())
        .build()
        .unwrap()
}

#[test]
fn same_header_and_payload_with_another_valid_signature_is_another_entry() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    // Two secrets under one kid: both tokens below verify.
    let store = KeyStore::new(KeySet::new([key(SECRET, "k1"), key(OTHER_SECRET, "k1")]));
    let layer = with_store(&clock, &cache, &store);
    let claims = json!({ "sub": "ada", "exp": T + 60 });
    let (a, b) = (
        mint(SECRET, "k1", &claims),
        mint(OTHER_SECRET, "k1", &claims),
    );
    assert_eq!(a[..a.rfind('.').unwrap()], b[..b.rfind('.').unwrap()]);
    layer.verify(&a).unwrap();
    layer.verify(&b).unwrap();
    assert_eq!((cache.stats().misses, cache.stats().hits), (2, 0));
    layer.verify(&a).unwrap();
    layer.verify(&b).unwrap();
    assert_eq!(cache.stats().hits, 2);
}

#[test]
fn whole_tokens_are_compared_not_their_hashed_tail() {
    let cache = TokenCache::new();
    let store = cache.store::<serde_json::Value>();
    let keys = KeyStore::new(KeySet::new([key(SECRET, "k1")]));
    let id = keys.load().keys()[0].id();
    let payload = format!(r#"{{"exp":{}}}"#, T + 60);
    let (claims, registered) =
        crate::claims::decode::<serde_json::Value>(payload.as_bytes(), &[]).unwrap();
    let tail = "x".repeat(100);
    let stored = format!("aaaa.{tail}");
    let rules = crate::claims::Rules::default();
    store.insert(
        stored.as_bytes(),
        &claims,
        registered,
        payload.as_bytes(),
        false,
        id,
        &rules,
        T,
    );
    assert!(store.get(stored.as_bytes(), &keys, T).is_some());
    // Same length, same last 64 bytes (same hash), another token.
    assert!(
        store
            .get(format!("aaab.{tail}").as_bytes(), &keys, T)
            .is_none()
    );
    assert!(
        store
            .get(format!("aaa.{tail}").as_bytes(), &keys, T)
            .is_none()
    );
}

#[test]
fn a_key_removed_from_the_store_evicts_what_it_verified() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let k1 = key(SECRET, "k1");
    let store = KeyStore::new(KeySet::new([k1.clone(), key(OTHER_SECRET, "k2")]));
    let layer = with_store(&clock, &cache, &store);
    let token = token(T + 60);
    layer.verify(&token).unwrap();

    // The same key in a new set: still served.
    store.replace(KeySet::new([k1, key(OTHER_SECRET, "k2")]));
    layer.verify(&token).unwrap();
    assert_eq!(cache.stats().hits, 1);

    // k1 gone: the entry is dropped and the token refused.
    store.replace(KeySet::new([key(OTHER_SECRET, "k2")]));
    assert_eq!(reason(layer.verify(&token)), Reason::UnknownKey);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.key_removed), (1, 1));

    // The same secret as a new key: verified in full, cached anew.
    store.replace(KeySet::new([key(SECRET, "k1")]));
    let (_, checks) = verifications(|| layer.verify(&token).unwrap());
    assert_eq!(checks, 1);
    let (_, checks) = verifications(|| layer.verify(&token).unwrap());
    assert_eq!(checks, 0);

    // No keys at all: unavailable, never a cached answer.
    store.replace(KeySet::default());
    let err = layer.verify(&token).unwrap_err();
    assert!(matches!(err.kind(), crate::RejectionKind::Unavailable));
}

#[test]
fn scopes_authorization_and_claim_rules_run_on_every_hit() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let allow = Arc::new(AtomicBool::new(true));
    let valid = Arc::new(AtomicBool::new(true));
    let (a, v) = (Arc::clone(&allow), Arc::clone(&valid));
    let layer = builder(&clock, &cache)
        .authorize(move |_| a.load(Ordering::SeqCst))
        .claims_rule(move |_| v.load(Ordering::SeqCst))
        .build()
        .unwrap();
    let token = token(T + 60);
    layer.verify(&token).unwrap();
    layer.verify(&token).unwrap();

    allow.store(false, Ordering::SeqCst);
    let err = layer.verify(&token).unwrap_err();
    assert!(matches!(err.kind(), crate::RejectionKind::Forbidden));
    allow.store(true, Ordering::SeqCst);
    valid.store(false, Ordering::SeqCst);
    assert_eq!(reason(layer.verify(&token)), Reason::ClaimsRule);
    assert_eq!(cache.stats().hits, 3);

    // A token lacking a required scope is cached and refused (403) on
    // every hit.
    let scoped = TokenCache::new();
    let layer = builder(&clock, &scoped)
        .require_scope("movies:write")
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = layer.verify(&token).unwrap_err();
        assert!(matches!(
            err.kind(),
            crate::RejectionKind::InsufficientScope { .. }
        ));
    }
    assert_eq!((scoped.stats().inserts, scoped.stats().hits), (1, 2));
}

/// Stores `count` distinct entries of about `padding` payload bytes each.
fn fill(cache: &TokenCache, count: usize, padding: usize) -> Store<serde_json::Value> {
    let store = cache.store::<serde_json::Value>();
    let rules = crate::claims::Rules::default();
    for i in 0..count {
        let payload = format!(r#"{{"exp":{},"pad":"{}"}}"#, T + 60, "p".repeat(padding));
        let (claims, registered) =
            crate::claims::decode::<serde_json::Value>(payload.as_bytes(), &[]).unwrap();
        let token = format!("header.{}.signature-{i:08}", "t".repeat(padding));
        store.insert(
            token.as_bytes(),
            &claims,
            registered,
            payload.as_bytes(),
            false,
            1,
            &rules,
            T,
        );
    }
    store
}

#[test]
fn entries_are_bounded_by_count() {
    let cache = TokenCache::new().max_entries(40).max_memory(64 << 20);
    let store = fill(&cache, 400, 10);
    assert!(store.len() <= 40, "{} entries", store.len());
    assert!(
        store.len() >= 20,
        "the cache still holds entries: {}",
        store.len()
    );
    let stats = cache.stats();
    assert_eq!(stats.inserts, 400);
    assert_eq!(stats.evictions, 400 - store.len() as u64);
}

#[test]
fn entries_are_bounded_by_memory() {
    let max = 1 << 20;
    let cache = TokenCache::new().max_entries(100_000).max_memory(max);
    // About 3 × 4 KiB each: a few hundred fit.
    let store = fill(&cache, 2_000, 4096);
    assert!(store.weight() <= max, "weight {}", store.weight());
    assert!(
        store.len() * 3 * 4096 <= max as usize,
        "{} entries",
        store.len()
    );
    assert!(store.len() >= 20, "{} entries", store.len());
    assert_eq!(cache.stats().evictions, 2_000 - store.len() as u64);
}

#[test]
fn an_entry_too_heavy_for_a_shard_is_not_cached() {
    let cache = TokenCache::new().max_entries(32).max_memory(64 << 10);
    let store = fill(&cache, 1, 40 << 10);
    assert_eq!(store.len(), 0);
    assert_eq!(cache.stats().evictions, 1);
}

#[test]
fn counters_export_as_pairs() {
    let stats = CacheStats {
        hits: 3,
        misses: 2,
        ..CacheStats::default()
    };
    assert_eq!(stats.counters()[0], ("hits", 3));
    assert_eq!(stats.counters()[1], ("misses", 2));
    assert!(stats.counters()[2..].iter().all(|&(_, value)| value == 0));
}

#[test]
fn once_a_key_is_replaced_no_thread_is_served_what_it_verified() {
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let store = KeyStore::new(KeySet::new([key(SECRET, "k1")]));
    let layer = with_store(&clock, &cache, &store);
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            mint(
                SECRET,
                "k1",
                &json!({ "sub": format!("u{i}"), "exp": T + 60 }),
            )
        })
        .collect();
    let replaced = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (layer, tokens, replaced) = (&layer, &tokens, &replaced);
            scope.spawn(move || {
                // Until 500 lookups after the replacement (bounded, so that
                // a cache that never hits fails instead of hanging).
                let mut after_replacement = 0;
                for round in 0..1_000_000 {
                    // Read the flag first: a replacement finished before
                    // this point must be honoured by the lookup after it.
                    let after = replaced.load(Ordering::SeqCst);
                    let verdict = layer.verify(&tokens[(round + worker) % tokens.len()]);
                    if after {
                        assert!(verdict.is_err(), "served after the key left");
                        after_replacement += 1;
                        if after_replacement == 500 {
                            return;
                        }
                    }
                }
                panic!("the key was never replaced");
            });
        }
        // Let the workers fill the cache, then take the key away.
        while cache.stats().hits < 100 && cache.stats().misses < 1_000_000 {
            std::thread::yield_now();
        }
        store.replace(KeySet::new([key(OTHER_SECRET, "k2")]));
        replaced.store(true, Ordering::SeqCst);
    });
    assert!(cache.stats().key_removed >= 1);
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn hits_misses_and_drops_are_traced_without_the_token() {
    // tracing caches each call site's interest process-wide. A call site
    // first reached on another test's thread, while no subscriber wanted
    // TRACE, can keep a stale "never" until its registration is over; the
    // second round, with every call site registered and the interest
    // rebuilt, sees all events. Every round must log no token.
    let mut missing = Vec::new();
    for _ in 0..2 {
        let (log, token) = traced_round();
        for segment in token.split('.') {
            assert!(!log.contains(segment), "a token segment was logged: {log}");
        }
        missing = ["cache miss", "cache insert", "cache hit", "entry expired"]
            .into_iter()
            .filter(|event| !log.contains(event))
            .collect();
        if missing.is_empty() {
            return;
        }
    }
    panic!("{missing:?} missing from the trace");
}

/// One miss, one hit and one expiry under a TRACE subscriber: its output
/// and the token.
fn traced_round() -> (String, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let (clock, cache) = (Clock::new(), TokenCache::new());
    let store = KeyStore::new(KeySet::new([key(SECRET, "k1")]));
    let layer = with_store(&clock, &cache, &store);
    let token = token(T + 60);
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        layer.verify(&token).unwrap();
        layer.verify(&token).unwrap();
        clock.set(T + 60);
        layer.verify(&token).unwrap_err();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    (log, token)
}
