//! Revocations shared by every process through Redis (feature `redis`).
//!
//! [`RedisRevocations`] is what a resource server configures: a
//! [`MemoryRevocations`] mirror in its own memory, kept current by one
//! background task. Requests are answered from the mirror alone (a read
//! lock and a few hash lookups, no future boxed): no Redis round trip per
//! request. Redis sees one `XREAD` per heartbeat per process, whatever the
//! traffic. [`RedisPublisher`] is what an issuer (the login service) uses to
//! publish logouts, revoked sessions and "log out everywhere".
//!
//! # Why a stream and a sorted set
//!
//! - Pub/sub alone loses whatever is published while a subscriber is
//!   disconnected, and says nothing when it is silently cut off: a mirror
//!   could not tell it missed a logout.
//! - Keyspace notifications are pub/sub too (same loss), must be enabled
//!   server-wide, and carry key names, not values.
//! - A **stream** (`<prefix>:events`) is ordered and replayable: the reader
//!   resumes from the last id it applied, so nothing published between two
//!   reads is skipped, and a blocking `XREAD` with a timeout doubles as the
//!   heartbeat that proves the connection alive.
//! - A **sorted set** (`<prefix>:state`, member = the revocation as JSON,
//!   score = `until`) is the snapshot a (re)connecting mirror loads in full,
//!   so a stream trimmed to its last 100 000 events never loses a live
//!   revocation, and expired entries are dropped by score.
//!
//! A publication is one `MULTI`: `ZADD` to the set, `XADD` to the stream,
//! and `ZREMRANGEBYSCORE` of entries that expired more than five minutes
//! ago. A (re)synchronisation reads the stream's last id *first*, then the
//! whole set (`ZSCAN`), then tails the stream from that id: whatever was
//! published before the id is in the set, whatever after is read from the
//! stream (applying twice is harmless).
//!
//! # Staleness bound
//!
//! The task confirms the mirror current each time Redis answers an `XREAD`
//! (events or the heartbeat timeout, [`DEFAULT_HEARTBEAT`]) as of the
//! instant the read was *sent*: everything published before then has been
//! applied. The mirror is current while its last confirmation is younger
//! than `max_staleness` ([`DEFAULT_MAX_STALENESS`], 5 s). So a revocation
//! published at time *t* is refused by every process from *t* +
//! `max_staleness` at the latest: applied by then, or the mirror is stale
//! and answers by its policy. Connected, it is applied within
//! milliseconds.
//!
//! # When Redis cannot be reached
//!
//! The connection is cut (a restart, `CLIENT KILL`, a network failure) or
//! Redis stops answering (a read outlives the heartbeat by a second): the
//! task reconnects with a backoff capped at the heartbeat, and on every
//! new connection resynchronises from the snapshot. Until then the mirror
//! keeps answering from what it holds; once its last confirmation is older
//! than `max_staleness` the [`StalePolicy`] decides:
//! [`FailClosed`](StalePolicy::FailClosed) (the default) answers 503 with
//! `Retry-After` (gRPC 14) for every token it does not hold as revoked
//! (those stay 401); [`FailOpen`](StalePolicy::FailOpen) accepts them.
//! Recovery needs no restart: the first successful resynchronisation makes
//! it current again. A mirror that has not synchronised yet (just started)
//! is stale: wait for [`RedisRevocations::wait_current`] before serving.
//!
//! Redis restarted empty (no persistence) loses the published set; the
//! mirrors keep what they held (revocations are only ever added), and the
//! issuer, whose own store is the record, republishes what is still live
//! ([`RedisPublisher::has_state`], [`RedisPublisher::publish_all`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_jwt_auth::JwtAuthLayer;
//! use tower_jwt_auth::revoke::redis::RedisRevocations;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let revocations = RedisRevocations::builder("redis://127.0.0.1:6379").start()?;
//! revocations.wait_current(Duration::from_secs(5)).await;
//! let auth = JwtAuthLayer::<serde_json::Value>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .issuer("https://auth.example.com")
//!     .audience("movies-api")
//!     .revocation(revocations.clone())
//!     .build()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::{
    Clock, MemoryRevocations, Revocation, RevocationCheck, RevocationFuture, StalePolicy,
    SystemClock,
};
use crate::claims::{DEFAULT_LEEWAY, RegisteredClaims};
use crate::error::{BoxError, Error};

/// The keys' common prefix: `<prefix>:events` and `<prefix>:state`.
pub const DEFAULT_KEY_PREFIX: &str = "tower-jwt-auth:revocations";
/// How long a mirror stays current without hearing from Redis.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(5);
/// How long one `XREAD` blocks waiting for events: the heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// Events read per `XREAD`; a full batch is followed by another at once.
const READ_COUNT: usize = 1000;
/// Members per `ZSCAN` page while loading the snapshot.
const SNAPSHOT_PAGE: usize = 1000;
/// Events the stream keeps (approximately): readers tail it continuously
/// and resynchronise from the set on every reconnection.
const STREAM_LENGTH: usize = 100_000;
/// How long past `until` the set keeps an entry: more than any verifier's
/// leeway, and any clock skew between issuer and Redis host.
const STATE_GRACE_SECS: i64 = 300;
/// How much longer than the heartbeat a read may take before the
/// connection is deemed dead.
const RESPONSE_MARGIN: Duration = Duration::from_secs(1);
/// The first reconnection delay; doubled up to the heartbeat.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The two keys under one prefix.
#[derive(Clone, Debug)]
struct Keys {
    events: String,
    state: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            events: format!("{prefix}:events"),
            state: format!("{prefix}:state"),
        }
    }
}

/// Configures a [`RedisRevocations`]; from [`RedisRevocations::builder`].
#[derive(Debug)]
pub struct RedisRevocationsBuilder {
    url: String,
    prefix: String,
    max_staleness: Duration,
    heartbeat: Duration,
    policy: StalePolicy,
    leeway: Duration,
    clock: Arc<dyn Clock>,
}

impl RedisRevocationsBuilder {
    /// The keys' prefix ([`DEFAULT_KEY_PREFIX`]); the publisher's must match.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long the mirror stays current without hearing from Redis
    /// ([`DEFAULT_MAX_STALENESS`]): the bound on how late a revocation is
    /// honoured. Must exceed the heartbeat plus a second.
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// How long each `XREAD` blocks ([`DEFAULT_HEARTBEAT`]); Redis sees one
    /// command per heartbeat per process when nothing is published.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// What the check answers once the mirror is stale
    /// ([`StalePolicy::FailClosed`] by default).
    pub fn stale_policy(mut self, policy: StalePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long mirrored entries outlive the tokens they revoke: the
    /// layer's leeway ([`DEFAULT_LEEWAY`] unless changed; a layer built
    /// with a longer one widens it).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads the time from `clock` instead of the system's.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Starts the background task that connects and keeps the mirror
    /// current; returns at once, with a mirror that is stale until the
    /// first synchronisation ([`RedisRevocations::wait_current`]). The task
    /// ends when the last clone of the returned store is dropped.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid URL, a heartbeat of zero or not
    /// below `max_staleness` minus a second, or when called outside a Tokio
    /// runtime.
    pub fn start(self) -> Result<RedisRevocations, Error> {
        let config = |msg: String| Error::Config(format!("redis revocations: {msg}"));
        let client = Client::open(self.url.as_str()).map_err(|e| config(e.to_string()))?;
        if self.heartbeat.as_millis() == 0 {
            return Err(config("the heartbeat must be at least 1 ms".into()));
        }
        if self.heartbeat + RESPONSE_MARGIN >= self.max_staleness {
            return Err(config(format!(
                "max_staleness ({:?}) must exceed the heartbeat ({:?}) plus {:?}",
                self.max_staleness, self.heartbeat, RESPONSE_MARGIN
            )));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| config("start() must be called within a Tokio runtime".into()))?;
        let mirror = MemoryRevocations::builder()
            .leeway(self.leeway)
            .mirror(self.max_staleness, self.policy)
            .shared_clock(Arc::clone(&self.clock))
            .build();
        let status = Arc::new(Status::default());
        let reader = Reader {
            client,
            keys: Keys::new(&self.prefix),
            heartbeat: self.heartbeat,
            mirror: mirror.clone(),
            clock: self.clock,
            status: Arc::clone(&status),
        };
        let task = runtime.spawn(reader.run()).abort_handle();
        Ok(RedisRevocations {
            mirror,
            status,
            _task: Arc::new(TaskGuard(task)),
        })
    }
}

/// Revocations mirrored from Redis; see the [module docs](self). Cheap to
/// clone: clones share the mirror and the task.
#[derive(Clone)]
pub struct RedisRevocations {
    mirror: MemoryRevocations,
    status: Arc<Status>,
    _task: Arc<TaskGuard>,
}

/// What the task reports.
#[derive(Default)]
struct Status {
    connected: AtomicBool,
    resyncs: AtomicU64,
    /// Woken at each confirmation.
    confirmed: Notify,
}

/// Ends the task with the last handle.
struct TaskGuard(AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisRevocations {
    /// Configuration for a mirror of the Redis at `url`
    /// (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS when
    /// the `redis` crate is built with it).
    pub fn builder(url: impl Into<String>) -> RedisRevocationsBuilder {
        RedisRevocationsBuilder {
            url: url.into(),
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            max_staleness: DEFAULT_MAX_STALENESS,
            heartbeat: DEFAULT_HEARTBEAT,
            policy: StalePolicy::FailClosed,
            leeway: DEFAULT_LEEWAY,
            clock: Arc::new(SystemClock),
        }
    }

    /// The local mirror: its size, whether it is current, when it last
    /// heard from Redis. A clone of it stays current only while a clone of
    /// this store lives: the task ends with the last one.
    pub fn mirror(&self) -> &MemoryRevocations {
        &self.mirror
    }

    /// Whether the task holds a working connection (it may still be
    /// resynchronising).
    pub fn is_connected(&self) -> bool {
        self.status.connected.load(Ordering::Acquire)
    }

    /// How many times the mirror was (re)loaded from the snapshot: once per
    /// connection.
    pub fn resyncs(&self) -> u64 {
        self.status.resyncs.load(Ordering::Acquire)
    }

    /// Waits until the mirror is current, at most `timeout`; whether it is.
    pub async fn wait_current(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let confirmed = self.status.confirmed.notified();
            tokio::pin!(confirmed);
            confirmed.as_mut().enable();
            if self.mirror.is_current() {
                return true;
            }
            if tokio::time::timeout_at(deadline, confirmed).await.is_err() {
                return self.mirror.is_current();
            }
        }
    }
}

impl RevocationCheck for RedisRevocations {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        self.mirror.is_revoked(claims)
    }

    fn is_revoked_now(&self, claims: &RegisteredClaims) -> Option<Result<bool, BoxError>> {
        self.mirror.is_revoked_now(claims)
    }

    fn keep_past_exp(&self, leeway: Duration) {
        self.mirror.keep_past_exp(leeway);
    }
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("mirror", &self.mirror)
            .field("connected", &self.is_connected())
            .field("resyncs", &self.resyncs())
            .finish()
    }
}

/// The background task's state.
struct Reader {
    client: Client,
    keys: Keys,
    heartbeat: Duration,
    mirror: MemoryRevocations,
    clock: Arc<dyn Clock>,
    status: Arc<Status>,
}

impl Reader {
    /// Connects, resynchronises and tails the stream, again and again.
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut was_connected = false;
        loop {
            let error = self.session(&mut backoff, &mut was_connected).await;
            self.status.connected.store(false, Ordering::Release);
            if was_connected {
                tracing::warn!(error = %error, "revocation mirror lost Redis; reconnecting");
                was_connected = false;
            } else {
                tracing::debug!(error = %error, "revocation mirror cannot reach Redis");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.heartbeat);
        }
    }

    /// One connection's life: ends with the error that ended it.
    async fn session(&self, backoff: &mut Duration, was_connected: &mut bool) -> RedisError {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.heartbeat + RESPONSE_MARGIN))
            .set_response_timeout(Some(self.heartbeat + RESPONSE_MARGIN));
        let mut conn = match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => return e,
        };
        self.status.connected.store(true, Ordering::Release);
        let mut last_id = match self.resync(&mut conn).await {
            Ok(id) => id,
            Err(e) => return e,
        };
        *backoff = FIRST_BACKOFF;
        *was_connected = true;
        loop {
            match self.read(&mut conn, &last_id).await {
                Ok(Some(id)) => last_id = id,
                Ok(None) => {}
                Err(e) => return e,
            }
        }
    }

    /// Loads the snapshot; returns the stream id to tail from.
    async fn resync(&self, conn: &mut MultiplexedConnection) -> Result<String, RedisError> {
        let as_of = self.clock.instant();
        // The id first: whatever is published after it is read from the
        // stream, whatever before is in the set.
        let latest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.events)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        let last_id = latest
            .ids
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_owned(), |event| event.id);
        let mut cursor = 0u64;
        let mut loaded = 0usize;
        loop {
            // Bytes, not strings: one member that is not UTF-8 must not
            // fail every resynchronisation.
            let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("ZSCAN")
                .arg(&self.keys.state)
                .arg(cursor)
                .arg("COUNT")
                .arg(SNAPSHOT_PAGE)
                .query_async(conn)
                .await?;
            // Members and scores alternate.
            let revocations: Vec<Revocation> = page
                .iter()
                .step_by(2)
                .filter_map(|member| parse(&String::from_utf8_lossy(member)))
                .collect();
            loaded += revocations.len();
            self.mirror.extend(revocations);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.mirror.confirm_current(as_of);
        self.status.resyncs.fetch_add(1, Ordering::AcqRel);
        self.status.confirmed.notify_waiters();
        tracing::info!(
            loaded,
            held = self.mirror.len(),
            "revocation mirror synchronised with Redis"
        );
        Ok(last_id)
    }

    /// One blocking read; the id of the last event applied, if any.
    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        last_id: &str,
    ) -> Result<Option<String>, RedisError> {
        let sent = self.clock.instant();
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(u64::try_from(self.heartbeat.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.keys.events)
            .arg(last_id)
            .query_async(conn)
            .await?;
        let events = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect::<Vec<_>>();
        let full = events.len() >= READ_COUNT;
        let last = events.last().map(|event| event.id.clone());
        let revocations = events.iter().filter_map(|event| {
            let json = event.get::<String>("r");
            if json.is_none() {
                tracing::warn!(id = %event.id, "revocation event without a UTF-8 `r` field skipped");
            }
            parse(&json?)
        });
        // Also sweeps expired entries, at most once a minute.
        self.mirror.extend(revocations);
        // A full batch may have left events behind: not current as of
        // `sent` until the next read drains them.
        if !full {
            self.mirror.confirm_current(sent);
            self.status.confirmed.notify_waiters();
        }
        Ok(last)
    }
}

fn parse(json: &str) -> Option<Revocation> {
    match serde_json::from_str(json) {
        Ok(revocation) => Some(revocation),
        Err(e) => {
            tracing::warn!(error = %e, "malformed revocation in Redis skipped");
            None
        }
    }
}

/// Publishes revocations for every [`RedisRevocations`] mirror; what an
/// issuer uses. Cheap to clone; reconnects by itself.
#[derive(Clone)]
pub struct RedisPublisher {
    conn: ConnectionManager,
    keys: Keys,
}

impl fmt::Debug for RedisPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPublisher")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl RedisPublisher {
    /// A publisher to the Redis at `url` under [`DEFAULT_KEY_PREFIX`]; it
    /// connects on first use.
    ///
    /// # Errors
    /// For an invalid URL, or outside a Tokio runtime.
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Self::with_key_prefix(url, DEFAULT_KEY_PREFIX)
    }

    /// A publisher under another key prefix (the mirrors' must match).
    ///
    /// # Errors
    /// For an invalid URL, or outside a Tokio runtime.
    pub fn with_key_prefix(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "RedisPublisher must be created within a Tokio runtime",
            )));
        }
        Ok(RedisPublisher {
            conn: ConnectionManager::new_lazy_with_config(Client::open(url)?, config)?,
            keys: Keys::new(prefix),
        })
    }

    /// Publishes one revocation: every mirror applies it within its
    /// staleness bound.
    ///
    /// # Errors
    /// When Redis cannot be reached; nothing was published then.
    pub async fn publish(&self, revocation: &Revocation) -> Result<(), RedisError> {
        self.publish_all(std::slice::from_ref(revocation)).await
    }

    /// Publishes several revocations in one transaction (e.g. republishing
    /// what is live after Redis lost its data), and drops entries that
    /// expired more than five minutes ago.
    ///
    /// # Errors
    /// When Redis cannot be reached; nothing was published then.
    pub async fn publish_all(&self, revocations: &[Revocation]) -> Result<(), RedisError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for revocation in revocations {
            let json = serde_json::to_string(revocation).expect("a revocation serializes");
            pipe.cmd("ZADD")
                .arg(&self.keys.state)
                .arg(revocation.until())
                .arg(&json)
                .ignore();
            pipe.cmd("XADD")
                .arg(&self.keys.events)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_LENGTH)
                .arg("*")
                .arg("r")
                .arg(&json)
                .ignore();
        }
        let expired = SystemClock.unix_now().saturating_sub(STATE_GRACE_SECS);
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&self.keys.state)
            .arg("-inf")
            .arg(format!("({expired}"))
            .ignore();
        self.retried(|mut conn| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
    }

    /// Runs `op` once more if the connection had dropped: the manager only
    /// reconnects after a failure, e.g. the first command after a Redis
    /// restart. Publishing twice is harmless: applying is idempotent.
    async fn retried<T, F, Fut>(&self, op: F) -> Result<T, RedisError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        match op(self.conn.clone()).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                tracing::debug!(error = %e, "Redis connection dropped; retrying once");
                op(self.conn.clone()).await
            }
            result => result,
        }
    }

    /// Whether Redis holds any published revocation: `false` after a
    /// restart that lost its data (or before anything was ever published),
    /// when an issuer republishes what its own store still holds.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn has_state(&self) -> Result<bool, RedisError> {
        self.retried(|mut conn| async move {
            redis::cmd("EXISTS")
                .arg(&self.keys.state)
                .query_async::<bool>(&mut conn)
                .await
        })
        .await
    }
}
