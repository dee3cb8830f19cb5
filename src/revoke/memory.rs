//! [`MemoryRevocations`]: revocations held in this process's memory,
//! looked up synchronously. Used alone it is always current; built as a
//! mirror ([`MemoryRevocationsBuilder::mirror`]) it is fed by a source
//! (Redis, a database poll) that confirms it current, and answers by its
//! [`StalePolicy`] once that source has been silent for too long.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Revocation, RevocationCheck, RevocationFuture, StaleError, StalePolicy};
use crate::claims::{DEFAULT_LEEWAY, RegisteredClaims};
use crate::error::BoxError;

/// How often [`MemoryRevocations::revoke`] sweeps out expired entries.
const PRUNE_EVERY_SECS: i64 = 60;

/// Where a store reads the time: injected in tests to move time without
/// sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the Unix epoch, compared with tokens' `exp` (when an
    /// entry may go).
    fn unix_now(&self) -> i64;
    /// Monotonic time, for how long ago a mirror heard from its source:
    /// wall-clock steps must not make a silent mirror look current.
    fn instant(&self) -> Instant;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// Revocations in memory, shared by its clones; see the
/// [module docs](super).
///
/// Lookups take a read lock and at most three hash lookups; nothing is
/// awaited, so the layer answers from
/// [`is_revoked_now`](RevocationCheck::is_revoked_now) without boxing a
/// future. Entries go once `until` plus the leeway has passed: expired
/// entries are swept at most once a minute by [`revoke`](Self::revoke),
/// or by [`prune`](Self::prune).
#[derive(Clone)]
pub struct MemoryRevocations {
    shared: Arc<Shared>,
}

struct Shared {
    entries: RwLock<Entries>,
    clock: Arc<dyn Clock>,
    /// Seconds an entry outlives `until`: verifiers accept a token until
    /// its `exp` plus their leeway. Only ever widened, by
    /// [`RevocationCheck::keep_past_exp`].
    leeway: AtomicI64,
    /// `None`: always current (the store is the source).
    freshness: Option<Freshness>,
}

/// Issuer → name (`jti`, `sid` or `sub`) → value: looked up by `&str`
/// without building a key.
type ByIssuer<V> = HashMap<String, HashMap<String, V>>;

#[derive(Default)]
struct Entries {
    /// `exp` of each revoked token.
    tokens: ByIssuer<i64>,
    /// `until` of each revoked session.
    sessions: ByIssuer<i64>,
    subjects: ByIssuer<Mark>,
    next_prune: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    issued_before: i64,
    until: i64,
}

/// When a mirror last heard from its source, and what it answers after.
struct Freshness {
    origin: Instant,
    /// Nanoseconds from `origin` to the latest confirmation, plus one; 0
    /// until the first.
    heard: AtomicU64,
    max_staleness: Duration,
    policy: StalePolicy,
}

impl Freshness {
    fn last_heard(&self, now: Instant) -> Option<Duration> {
        match self.heard.load(Ordering::Acquire) {
            0 => None,
            heard => {
                let since_origin = now.saturating_duration_since(self.origin);
                Some(since_origin.saturating_sub(Duration::from_nanos(heard - 1)))
            }
        }
    }
}

/// Configures a [`MemoryRevocations`]; from [`MemoryRevocations::builder`].
#[derive(Debug)]
pub struct MemoryRevocationsBuilder {
    clock: Arc<dyn Clock>,
    leeway: Duration,
    mirror: Option<(Duration, StalePolicy)>,
}

impl MemoryRevocationsBuilder {
    /// Reads the time from `clock` instead of the system's.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long entries outlive the `exp` of the tokens they revoke: the
    /// leeway of the verifiers that consult it ([`DEFAULT_LEEWAY`] unless
    /// changed). Shorter than theirs would let a revoked token through for
    /// the difference, so every layer built with the store widens it to its
    /// own ([`RevocationCheck::keep_past_exp`]); set it here for verifiers
    /// that consult the store otherwise.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Makes the store a mirror of a source that must confirm it current
    /// ([`MemoryRevocations::confirm_current`]) at least every
    /// `max_staleness`; until its first confirmation and whenever the last
    /// one is older, the check answers by `policy`.
    pub fn mirror(mut self, max_staleness: Duration, policy: StalePolicy) -> Self {
        self.mirror = Some((max_staleness, policy));
        self
    }

    /// The empty store.
    pub fn build(self) -> MemoryRevocations {
        let origin = self.clock.instant();
        MemoryRevocations {
            shared: Arc::new(Shared {
                entries: RwLock::default(),
                leeway: AtomicI64::new(seconds(self.leeway)),
                freshness: self.mirror.map(|(max_staleness, policy)| Freshness {
                    origin,
                    heard: AtomicU64::new(0),
                    max_staleness,
                    policy,
                }),
                clock: self.clock,
            }),
        }
    }
}

impl Default for MemoryRevocations {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRevocations {
    /// An empty store that is its own source: always current.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures the clock, the leeway, or a mirror.
    pub fn builder() -> MemoryRevocationsBuilder {
        MemoryRevocationsBuilder {
            clock: Arc::new(SystemClock),
            leeway: DEFAULT_LEEWAY,
            mirror: None,
        }
    }

    /// Records a revocation. Revoking what is already revoked keeps the
    /// wider of the two (later `issued_before`, later `until`).
    pub fn revoke(&self, revocation: Revocation) {
        self.extend(std::iter::once(revocation));
    }

    /// Records several revocations under one lock.
    pub fn extend(&self, revocations: impl IntoIterator<Item = Revocation>) {
        let now = self.shared.clock.unix_now();
        let mut entries = self.write();
        for revocation in revocations {
            entries.insert(revocation);
        }
        if now >= entries.next_prune {
            entries.prune(now.saturating_sub(self.shared.leeway()));
            entries.next_prune = now.saturating_add(PRUNE_EVERY_SECS);
        }
    }

    /// Drops every entry whose `until` plus the leeway has passed.
    pub fn prune(&self) {
        let now = self.shared.clock.unix_now();
        self.write().prune(now.saturating_sub(self.shared.leeway()));
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        fn count<V>(map: &ByIssuer<V>) -> usize {
            map.values().map(HashMap::len).sum()
        }
        let entries = self.read();
        count(&entries.tokens) + count(&entries.sessions) + count(&entries.subjects)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an entry revokes these claims, current or not.
    pub fn contains(&self, claims: &RegisteredClaims) -> bool {
        self.read().revokes(claims)
    }

    /// Records that the source has delivered everything it held as of
    /// `as_of` (take the instant *before* asking it). Older confirmations
    /// than the latest are ignored. Without effect on a store that is not a
    /// mirror.
    pub fn confirm_current(&self, as_of: Instant) {
        if let Some(freshness) = &self.shared.freshness {
            let since_origin = as_of.saturating_duration_since(freshness.origin);
            let nanos = u64::try_from(since_origin.as_nanos()).unwrap_or(u64::MAX - 1);
            freshness.heard.fetch_max(nanos + 1, Ordering::AcqRel);
        }
    }

    /// Whether the store can vouch for every token: always for a store
    /// that is not a mirror; for a mirror, whether its source confirmed it
    /// within the staleness bound.
    pub fn is_current(&self) -> bool {
        self.stale().is_none()
    }

    /// How long ago the source last confirmed the mirror; `None` if never
    /// or if the store is not a mirror.
    pub fn last_heard(&self) -> Option<Duration> {
        let freshness = self.shared.freshness.as_ref()?;
        freshness.last_heard(self.shared.clock.instant())
    }

    /// The answer for these claims: revoked (`Ok(true)`) whenever an entry
    /// says so, even on a stale mirror; otherwise `Ok(false)`, or a
    /// [`StaleError`] from a stale mirror that fails closed.
    ///
    /// # Errors
    /// [`StaleError`], as above.
    pub fn check(&self, claims: &RegisteredClaims) -> Result<bool, StaleError> {
        if self.contains(claims) {
            return Ok(true);
        }
        match self.stale() {
            Some(error) if self.policy() == StalePolicy::FailClosed => Err(error),
            _ => Ok(false),
        }
    }

    fn policy(&self) -> StalePolicy {
        self.shared
            .freshness
            .as_ref()
            .map_or(StalePolicy::FailClosed, |f| f.policy)
    }

    /// The error a stale mirror answers; `None` while current.
    fn stale(&self) -> Option<StaleError> {
        let freshness = self.shared.freshness.as_ref()?;
        let last_heard = freshness.last_heard(self.shared.clock.instant());
        match last_heard {
            Some(ago) if ago < freshness.max_staleness => None,
            _ => Some(StaleError {
                last_heard,
                max_staleness: freshness.max_staleness,
            }),
        }
    }

    // A panic while holding the lock cannot leave the maps half-updated in
    // a way that matters (each insert is one map operation): keep serving.
    fn read(&self) -> RwLockReadGuard<'_, Entries> {
        self.shared
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.shared
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Entries {
    fn insert(&mut self, revocation: Revocation) {
        match revocation {
            Revocation::Token { iss, jti, exp } => {
                let held = self
                    .tokens
                    .entry(iss)
                    .or_default()
                    .entry(jti)
                    .or_insert(exp);
                *held = (*held).max(exp);
            }
            Revocation::Session { iss, sid, until } => {
                let held = self
                    .sessions
                    .entry(iss)
                    .or_default()
                    .entry(sid)
                    .or_insert(until);
                *held = (*held).max(until);
            }
            Revocation::Subject {
                iss,
                sub,
                issued_before,
                until,
            } => {
                let mark = self
                    .subjects
                    .entry(iss)
                    .or_default()
                    .entry(sub)
                    .or_insert(Mark {
                        issued_before,
                        until,
                    });
                mark.issued_before = mark.issued_before.max(issued_before);
                mark.until = mark.until.max(until);
            }
        }
    }

    fn revokes(&self, claims: &RegisteredClaims) -> bool {
        let iss = claims.iss.as_deref().unwrap_or("");
        let held = |map: &ByIssuer<_>, name: &Option<String>| {
            name.as_deref()
                .and_then(|name| map.get(iss)?.get(name))
                .is_some()
        };
        held(&self.tokens, &claims.jti)
            || held(&self.sessions, &claims.sid)
            || claims
                .sub
                .as_deref()
                .and_then(|sub| self.subjects.get(iss)?.get(sub))
                .is_some_and(|mark| claims.iat.is_none_or(|iat| iat < mark.issued_before))
    }

    /// Drops entries whose `until` is before `before`.
    fn prune(&mut self, before: i64) {
        fn sweep<V>(map: &mut ByIssuer<V>, live: impl Fn(&V) -> bool) {
            map.retain(|_, names| {
                names.retain(|_, value| live(value));
                !names.is_empty()
            });
        }
        sweep(&mut self.tokens, |exp| *exp >= before);
        sweep(&mut self.sessions, |until| *until >= before);
        sweep(&mut self.subjects, |mark| mark.until >= before);
    }
}

impl RevocationCheck for MemoryRevocations {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let answer = self.check(claims).map_err(BoxError::from);
        Box::pin(std::future::ready(answer))
    }

    fn is_revoked_now(&self, claims: &RegisteredClaims) -> Option<Result<bool, BoxError>> {
        Some(self.check(claims).map_err(BoxError::from))
    }

    fn keep_past_exp(&self, leeway: Duration) {
        self.shared
            .leeway
            .fetch_max(seconds(leeway), Ordering::Relaxed);
    }
}

impl Shared {
    /// Seconds an entry outlives `until`.
    fn leeway(&self) -> i64 {
        self.leeway.load(Ordering::Relaxed)
    }
}

/// Whole seconds, saturating far below `i64::MAX` so that adding a time
/// stays in range.
fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("MemoryRevocations");
        debug.field("len", &self.len());
        if let Some(freshness) = &self.shared.freshness {
            debug
                .field("current", &self.is_current())
                .field("max_staleness", &freshness.max_staleness)
                .field("policy", &freshness.policy);
        }
        debug.finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;

    const ISS: &str = "https://auth.example.com";

    /// Time that moves only when told to.
    #[derive(Debug, Clone)]
    struct ManualClock(Arc<(Instant, AtomicU64, AtomicI64)>);

    impl ManualClock {
        fn at(unix: i64) -> Self {
            ManualClock(Arc::new((
                Instant::now(),
                AtomicU64::new(0),
                AtomicI64::new(unix),
            )))
        }

        fn advance(&self, by: Duration) {
            self.0.1.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
            self.0.2.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn unix_now(&self) -> i64 {
            self.0.2.load(Ordering::SeqCst)
        }

        fn instant(&self) -> Instant {
            self.0.0 + Duration::from_nanos(self.0.1.load(Ordering::SeqCst))
        }
    }

    fn claims(sub: &str, jti: &str, sid: &str, iat: Option<i64>) -> RegisteredClaims {
        RegisteredClaims {
            iss: Some(ISS.into()),
            sub: Some(sub.into()),
            jti: Some(jti.into()),
            sid: Some(sid.into()),
            exp: Some(2_000),
            iat,
            ..RegisteredClaims::default()
        }
    }

    #[test]
    fn a_revoked_token_is_refused_by_issuer_and_jti_only() {
        let store = MemoryRevocations::new();
        store.revoke(Revocation::token(ISS, "t-1", i64::MAX / 2));
        assert_eq!(store.check(&claims("ada", "t-1", "s", Some(1))), Ok(true));
        assert_eq!(store.check(&claims("ada", "t-2", "s", Some(1))), Ok(false));
        let mut other_issuer = claims("ada", "t-1", "s", Some(1));
        other_issuer.iss = Some("https://elsewhere.example.com".into());
        assert_eq!(store.check(&other_issuer), Ok(false));
        let mut no_jti = claims("ada", "t-1", "s", Some(1));
        no_jti.jti = None;
        assert_eq!(store.check(&no_jti), Ok(false));
    }

    #[test]
    fn a_revoked_session_takes_every_token_of_it() {
        let store = MemoryRevocations::new();
        store.revoke(Revocation::session(ISS, "family-1", i64::MAX / 2));
        assert_eq!(
            store.check(&claims("ada", "a", "family-1", Some(1))),
            Ok(true)
        );
        assert_eq!(
            store.check(&claims("bob", "b", "family-1", Some(9))),
            Ok(true)
        );
        assert_eq!(
            store.check(&claims("ada", "c", "family-2", Some(1))),
            Ok(false)
        );
    }

    #[test]
    fn a_subject_mark_revokes_tokens_issued_before_it_only() {
        let store = MemoryRevocations::new();
        store.revoke(Revocation::subject(ISS, "ada", 1_000, i64::MAX / 2));
        assert_eq!(store.check(&claims("ada", "a", "s", Some(999))), Ok(true));
        assert_eq!(
            store.check(&claims("ada", "b", "s", Some(1_000))),
            Ok(false)
        );
        assert_eq!(
            store.check(&claims("ada", "c", "s", Some(1_001))),
            Ok(false)
        );
        // No `iat`: cannot prove it was issued after the mark.
        assert_eq!(store.check(&claims("ada", "d", "s", None)), Ok(true));
        assert_eq!(store.check(&claims("bob", "e", "s", Some(999))), Ok(false));
    }

    #[test]
    fn a_later_mark_widens_an_earlier_one_and_an_earlier_never_narrows() {
        let store = MemoryRevocations::new();
        store.revoke(Revocation::subject(ISS, "ada", 1_000, 5_000));
        store.revoke(Revocation::subject(ISS, "ada", 2_000, 6_000));
        store.revoke(Revocation::subject(ISS, "ada", 500, 5_500));
        assert_eq!(store.check(&claims("ada", "a", "s", Some(1_500))), Ok(true));
        assert_eq!(
            store.check(&claims("ada", "a", "s", Some(2_000))),
            Ok(false)
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn entries_expire_with_their_tokens_plus_the_leeway() {
        let clock = ManualClock::at(10_000);
        let store = MemoryRevocations::builder()
            .clock(clock.clone())
            .leeway(Duration::from_secs(30))
            .build();
        store.extend([
            Revocation::token(ISS, "t-1", 10_100),
            Revocation::session(ISS, "s-1", 10_200),
            Revocation::subject(ISS, "ada", 10_000, 10_300),
        ]);
        assert_eq!(store.len(), 3);

        // At exp + leeway the token's entry is still needed.
        clock.advance(Duration::from_secs(130));
        store.prune();
        assert_eq!(store.len(), 3);
        assert!(store.contains(&claims("x", "t-1", "x", Some(1))));

        clock.advance(Duration::from_secs(1));
        store.prune();
        assert_eq!(store.len(), 2);
        assert!(!store.contains(&claims("x", "t-1", "x", Some(1))));
        assert!(store.contains(&claims("x", "y", "s-1", Some(1))));

        clock.advance(Duration::from_secs(100));
        store.prune();
        assert_eq!(store.len(), 1);
        assert!(store.contains(&claims("ada", "y", "z", Some(9_999))));

        clock.advance(Duration::from_secs(100));
        store.prune();
        assert!(store.is_empty());
        assert!(!store.contains(&claims("ada", "y", "z", Some(9_999))));
    }

    /// A layer whose verifiers allow more leeway than the store was built
    /// with widens the store's: the revoked token must not verify again
    /// between the store's leeway and the layer's.
    #[test]
    fn a_layer_with_a_longer_leeway_widens_the_stores() {
        let clock = ManualClock::at(10_000);
        let store = MemoryRevocations::builder()
            .clock(clock.clone())
            .leeway(Duration::ZERO)
            .build();
        store.revoke(Revocation::token(ISS, "t-1", 10_100));
        let _layer = crate::JwtAuthLayer::<serde_json::Value>::builder()
            .hs256([7u8; 32])
            .leeway(Duration::from_secs(120))
            .revocation(store.clone())
            .build()
            .unwrap();
        // A narrower layer never narrows it again.
        let _other = crate::JwtAuthLayer::<serde_json::Value>::builder()
            .hs256([7u8; 32])
            .leeway(Duration::from_secs(5))
            .revocation(store.clone())
            .build()
            .unwrap();
        clock.advance(Duration::from_secs(100 + 120));
        store.prune();
        assert!(store.contains(&claims("x", "t-1", "x", Some(1))));
        clock.advance(Duration::from_secs(1));
        store.prune();
        assert!(store.is_empty());
    }

    #[test]
    fn revoking_sweeps_expired_entries_once_a_minute() {
        let clock = ManualClock::at(10_000);
        let store = MemoryRevocations::builder()
            .clock(clock.clone())
            .leeway(Duration::ZERO)
            .build();
        store.revoke(Revocation::token(ISS, "old", 10_010));
        clock.advance(Duration::from_secs(30));
        store.revoke(Revocation::token(ISS, "new", 20_000));
        // The first insert swept; the next sweep is due a minute later.
        assert_eq!(store.len(), 2);
        clock.advance(Duration::from_secs(31));
        store.revoke(Revocation::token(ISS, "newer", 20_000));
        assert_eq!(store.len(), 2);
        assert!(!store.contains(&claims("x", "old", "x", None)));
    }

    #[test]
    fn a_store_used_alone_is_always_current() {
        let store = MemoryRevocations::new();
        assert!(store.is_current());
        assert_eq!(store.last_heard(), None);
        assert_eq!(store.check(&claims("ada", "a", "s", Some(1))), Ok(false));
    }

    #[test]
    fn a_mirror_is_current_only_within_its_bound_of_the_last_confirmation() {
        let clock = ManualClock::at(10_000);
        let mirror = MemoryRevocations::builder()
            .clock(clock.clone())
            .mirror(Duration::from_secs(5), StalePolicy::FailClosed)
            .build();
        let live = claims("ada", "a", "s", Some(1));
        // Never synchronised: nothing can be vouched for.
        let never = mirror.check(&live).unwrap_err();
        assert_eq!(never.last_heard, None);
        assert!(never.to_string().contains("never"));

        mirror.confirm_current(clock.instant());
        assert_eq!(mirror.check(&live), Ok(false));
        clock.advance(Duration::from_millis(4_999));
        assert_eq!(mirror.check(&live), Ok(false));
        clock.advance(Duration::from_millis(1));
        let stale = mirror.check(&live).unwrap_err();
        assert_eq!(stale.last_heard, Some(Duration::from_secs(5)));

        // A revoked token stays revoked (401), stale or not.
        mirror.revoke(Revocation::token(ISS, "gone", i64::MAX / 2));
        assert_eq!(mirror.check(&claims("ada", "gone", "s", Some(1))), Ok(true));

        // Recovery: the next confirmation makes it current again; a late
        // confirmation of an older instant does not move it back.
        let before = clock.instant();
        clock.advance(Duration::from_secs(1));
        mirror.confirm_current(clock.instant());
        mirror.confirm_current(before);
        assert_eq!(mirror.last_heard(), Some(Duration::ZERO));
        assert_eq!(mirror.check(&live), Ok(false));
    }

    #[test]
    fn a_mirror_that_fails_open_answers_from_what_it_holds() {
        let clock = ManualClock::at(10_000);
        let mirror = MemoryRevocations::builder()
            .clock(clock.clone())
            .mirror(Duration::from_secs(5), StalePolicy::FailOpen)
            .build();
        mirror.revoke(Revocation::token(ISS, "gone", i64::MAX / 2));
        assert!(!mirror.is_current());
        assert_eq!(mirror.check(&claims("ada", "a", "s", Some(1))), Ok(false));
        assert_eq!(mirror.check(&claims("ada", "gone", "s", Some(1))), Ok(true));
    }

    #[tokio::test]
    async fn the_future_and_the_synchronous_answer_agree() {
        let store = MemoryRevocations::new();
        store.revoke(Revocation::token(ISS, "t-1", i64::MAX / 2));
        for jti in ["t-1", "t-2"] {
            let claims = claims("ada", jti, "s", Some(1));
            let now = store.is_revoked_now(&claims).unwrap().unwrap();
            assert_eq!(store.is_revoked(&claims).await.unwrap(), now);
        }
    }

    #[test]
    fn revocations_travel_as_tagged_json() {
        let revocation = Revocation::subject(ISS, "ada", 1_000, 2_000);
        let json = serde_json::to_string(&revocation).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"subject","iss":"https://auth.example.com","sub":"ada","issued_before":1000,"until":2000}"#
        );
        assert_eq!(
            serde_json::from_str::<Revocation>(&json).unwrap(),
            revocation
        );
        for bad in [
            r#"{"kind":"token","iss":"a","jti":"b"}"#,
            r#"{"kind":"everything","iss":"a"}"#,
            r#"{"kind":"token","iss":"a","jti":"b","exp":1,"extra":2}"#,
            r#"{"kind":"token","iss":1,"jti":"b","exp":1}"#,
        ] {
            assert!(serde_json::from_str::<Revocation>(bad).is_err(), "{bad}");
        }
    }
}
