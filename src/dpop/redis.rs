//! The replay store several instances share, in Redis.

use std::fmt;
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

use super::replay::{ReplayFuture, ReplayStore};
use crate::error::Error;

/// The keys' default prefix: `<prefix>:<key>`.
pub const DEFAULT_REPLAY_KEY_PREFIX: &str = "tower-jwt-auth:dpop";

/// A [`ReplayStore`] in Redis, shared by every instance serving the same
/// clients (feature `redis`): a proof accepted by one is refused by all.
///
/// Each DPoP request that passed every other check costs one round trip,
/// `SET <prefix>:<key> 1 NX PX <ms until the proof expires>`: set means
/// new, nil means replayed. That round trip is inherent to the check (the
/// record must be shared before the request is answered), unlike
/// revocations, which are mirrored in memory. Entries expire in Redis by
/// themselves once their proof could no longer be accepted.
///
/// When Redis cannot be reached, or does not answer within the response
/// timeout (one second), the request is refused with 503 and
/// `Retry-After` (gRPC 14): fail closed, as the revocation mirror does by
/// default. The connection is re-established by itself; a command that
/// failed because the connection had dropped is sent once more (a second
/// `SET NX` after a lost reply can only refuse a fresh proof, never accept
/// a replay).
///
/// # Example
///
/// ```no_run
/// use tower_jwt_auth::JwtAuthLayer;
/// use tower_jwt_auth::dpop::{Dpop, RedisReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let replays = RedisReplayStore::new("redis://127.0.0.1:6379")?;
/// let auth = JwtAuthLayer::<serde_json::Value>::builder()
///     .hs256(b"0123456789abcdef0123456789abcdef")
///     .dpop(Dpop::allowed().external_base("https://api.example.com")?.replay_store(replays))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// A store in the Redis at `url` under [`DEFAULT_REPLAY_KEY_PREFIX`];
    /// it connects on first use.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid URL, or outside a Tokio runtime.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::with_key_prefix(url, DEFAULT_REPLAY_KEY_PREFIX)
    }

    /// A store under another key prefix.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid URL, or outside a Tokio runtime.
    pub fn with_key_prefix(url: &str, prefix: &str) -> Result<Self, Error> {
        let config_error = |msg: String| Error::Config(format!("redis replay store: {msg}"));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(config_error(
                "RedisReplayStore must be created within a Tokio runtime".into(),
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let client = Client::open(url).map_err(|e| config_error(e.to_string()))?;
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| config_error(e.to_string()))?;
        Ok(Self::from_connection(conn, prefix))
    }

    /// A store on a connection the application already manages.
    pub fn from_connection(conn: ConnectionManager, prefix: &str) -> Self {
        RedisReplayStore {
            conn,
            prefix: prefix.to_owned(),
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn check_and_record(&self, key: &str, now: SystemTime, expires: SystemTime) -> ReplayFuture {
        let key = format!("{}:{key}", self.prefix);
        let ttl = expires
            .duration_since(now)
            .unwrap_or_default()
            .as_millis()
            .clamp(1, u128::from(u32::MAX));
        let conn = self.conn.clone();
        Box::pin(async move {
            let set = |mut conn: ConnectionManager| {
                let key = key.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(u64::try_from(ttl).unwrap_or(u64::MAX))
                        .query_async::<Option<String>>(&mut conn)
                        .await
                }
            };
            let reply: Result<Option<String>, RedisError> = match set(conn.clone()).await {
                Err(e) if e.is_connection_dropped() => {
                    tracing::debug!(error = %e, "Redis connection dropped; retrying once");
                    set(conn).await
                }
                other => other,
            };
            Ok(reply?.is_some())
        })
    }
}
