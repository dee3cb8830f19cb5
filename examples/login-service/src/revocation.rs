//! Revocations: recorded in SQL (the record), applied at once to this
//! instance's in-memory mirror, and published to Redis when `REDIS_URL` is
//! set so that every instance and every resource server refuses them.
//!
//! The protected routes never query SQL per request: the library's layer
//! answers from the mirror ([`tower_jwt_auth::revoke::MemoryRevocations`]),
//! fed either
//!
//! - from Redis (`tower_jwt_auth::revoke::redis`): a revocation made by any
//!   instance is refused everywhere within the mirror's staleness bound
//!   (5 s; milliseconds while connected), or the mirror answers 503; or
//! - without Redis, from the database: each instance polls for what was
//!   revoked since its last poll (every second, re-reading the last minute
//!   so that slow commits are not missed). A revocation made on another
//!   instance is refused within a second, and a mirror whose polls fail
//!   for 5 s answers 503 until the database answers again.
//!
//! The instance that revokes applies it to its own mirror before it
//! answers, whatever the feed. If Redis cannot be reached when publishing,
//! the revocation stays recorded in SQL and applied here, and is published
//! again (with everything else still live) once Redis answers; the same
//! happens when Redis lost its data in a restart.

use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tower_jwt_auth::revoke::redis::{RedisPublisher, RedisRevocations};
use tower_jwt_auth::revoke::{MemoryRevocations, Revocation, StalePolicy};

use crate::BoxError;
use crate::config::Config;
use crate::store::{RevokedRows, Store, now, secs};

/// How far back each database poll re-reads: longer than any transaction
/// between taking its timestamp and committing.
const POLL_OVERLAP_SECS: i64 = 60;
/// How often, with Redis, to check whether it lost what was published (or
/// a publication failed) and republish.
const REPUBLISH_CHECK: Duration = Duration::from_secs(5);

/// The revocation side of the service: the mirror its layer reads, and
/// where revocations go.
#[derive(Debug)]
pub struct Revocations {
    store: Store,
    issuer: String,
    access_ttl: i64,
    feed: Feed,
}

#[derive(Debug)]
enum Feed {
    Redis {
        mirror: RedisRevocations,
        publisher: RedisPublisher,
        /// A publication failed: republish what is live.
        dirty: AtomicBool,
    },
    Database {
        mirror: MemoryRevocations,
        every: Duration,
    },
}

impl Revocations {
    /// The mirror, fed from Redis when configured, else from the database
    /// (loaded once here, so the service starts current).
    ///
    /// # Errors
    /// An invalid Redis URL, or the database cannot be read.
    pub async fn start(config: &Config, store: Store) -> Result<Self, BoxError> {
        let feed = match &config.redis_url {
            Some(url) => Feed::Redis {
                mirror: RedisRevocations::builder(url.as_str())
                    .key_prefix(config.redis_key_prefix.as_str())
                    .max_staleness(config.revocation_max_staleness)
                    .start()?,
                publisher: RedisPublisher::with_key_prefix(url, &config.redis_key_prefix)?,
                // Republish on the first check, in case Redis lost data.
                dirty: AtomicBool::new(true),
            },
            None => Feed::Database {
                mirror: MemoryRevocations::builder()
                    .mirror(config.revocation_max_staleness, StalePolicy::FailClosed)
                    .build(),
                every: config.revocation_poll_interval,
            },
        };
        let revocations = Self {
            store,
            issuer: config.issuer.clone(),
            access_ttl: secs(config.access_token_ttl),
            feed,
        };
        match &revocations.feed {
            Feed::Database { mirror, .. } => {
                let as_of = Instant::now();
                mirror.extend(revocations.live().await?);
                mirror.confirm_current(as_of);
            }
            Feed::Redis { mirror, .. } => {
                if !mirror.wait_current(Duration::from_secs(2)).await {
                    tracing::warn!(
                        "revocation mirror not synchronised with Redis yet; \
                         protected routes answer 503 until it is"
                    );
                }
            }
        }
        Ok(revocations)
    }

    /// What the layer consults: the mirror, read synchronously.
    pub fn mirror(&self) -> MemoryRevocations {
        match &self.feed {
            Feed::Redis { mirror, .. } => mirror.mirror().clone(),
            Feed::Database { mirror, .. } => mirror.clone(),
        }
    }

    /// Applies revocations already recorded in SQL here at once, and
    /// publishes them to Redis when configured. Never fails: a failed
    /// publication is logged and retried by [`Self::spawn_feed`]'s task.
    pub async fn publish(&self, revocations: Vec<Revocation>) {
        self.mirror().extend(revocations.iter().cloned());
        if let Feed::Redis {
            publisher, dirty, ..
        } = &self.feed
            && let Err(e) = publisher.publish_all(&revocations).await
        {
            dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "publishing revocations to Redis failed; will republish");
        }
    }

    /// Logout: this token and its session (refresh-token family).
    pub fn logout(&self, jti: &str, exp: i64, sid: &str, now: i64) -> Vec<Revocation> {
        vec![
            Revocation::token(&self.issuer, jti, exp),
            self.family(sid, now),
        ]
    }

    /// A refresh-token family revoked at `now`: its access tokens were all
    /// issued before, so they expire within one access-token lifetime.
    pub fn family(&self, sid: &str, now: i64) -> Revocation {
        Revocation::session(&self.issuer, sid, now.saturating_add(self.access_ttl))
    }

    /// "Log out everywhere" at `now`: records it in SQL (with every
    /// refresh-token family of the user), then applies and publishes it.
    /// `iat` has one-second resolution, so every token issued up to the end
    /// of this second goes; those expire within one access-token lifetime.
    pub async fn log_out_everywhere(&self, user_id: &str, now: i64) -> Result<(), sqlx::Error> {
        let issued_before = now.saturating_add(1);
        let until = issued_before.saturating_add(self.access_ttl);
        self.store
            .log_out_everywhere(user_id, issued_before, until, now)
            .await?;
        let revoked = Revocation::subject(&self.issuer, user_id, issued_before, until);
        self.publish(vec![revoked]).await;
        Ok(())
    }

    /// Every revocation in SQL that can still refuse a token: verifiers
    /// accept a token until its `exp` plus their leeway.
    async fn live(&self) -> Result<Vec<Revocation>, sqlx::Error> {
        let accepted_since = now().saturating_sub(secs(tower_jwt_auth::DEFAULT_LEEWAY));
        let rows = self
            .store
            .live_revocations(
                accepted_since,
                accepted_since.saturating_sub(self.access_ttl),
            )
            .await?;
        Ok(self.revocations_of(rows))
    }

    fn revocations_of(&self, rows: RevokedRows) -> Vec<Revocation> {
        let tokens = rows
            .tokens
            .into_iter()
            .map(|(jti, exp)| Revocation::token(&self.issuer, jti, exp));
        let families = rows
            .families
            .into_iter()
            .map(|(sid, revoked_at)| self.family(&sid, revoked_at));
        let subjects = rows
            .subjects
            .into_iter()
            .map(|(sub, before, until)| Revocation::subject(&self.issuer, sub, before, until));
        tokens.chain(families).chain(subjects).collect()
    }

    /// Keeps the mirror fed: polls the database, or (with Redis, whose
    /// own task feeds the mirror) republishes when needed. Holds the
    /// revocations weakly, so it ends with the app.
    pub fn spawn_feed(this: Weak<Self>) {
        tokio::spawn(async move {
            let every = match this.upgrade().map(|r| r.tick()) {
                Some(every) => every,
                None => return,
            };
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut polled_from = now();
            loop {
                ticks.tick().await;
                let Some(revocations) = this.upgrade() else {
                    return;
                };
                match &revocations.feed {
                    Feed::Database { mirror, .. } => {
                        let as_of = Instant::now();
                        let started = now();
                        let since = polled_from.saturating_sub(POLL_OVERLAP_SECS);
                        match revocations.store.revocations_changed_since(since).await {
                            Ok(rows) => {
                                mirror.extend(revocations.revocations_of(rows));
                                mirror.confirm_current(as_of);
                                polled_from = started;
                            }
                            Err(e) => tracing::warn!(error = %e, "polling revocations failed"),
                        }
                    }
                    Feed::Redis {
                        publisher, dirty, ..
                    } => revocations.republish_if_needed(publisher, dirty).await,
                }
            }
        });
    }

    fn tick(&self) -> Duration {
        match &self.feed {
            Feed::Database { every, .. } => *every,
            Feed::Redis { .. } => REPUBLISH_CHECK,
        }
    }

    /// After a failed publication, or when Redis holds nothing (a restart
    /// that lost its data), republishes every live revocation from SQL.
    async fn republish_if_needed(&self, publisher: &RedisPublisher, dirty: &AtomicBool) {
        let needed =
            dirty.swap(false, Ordering::AcqRel) || matches!(publisher.has_state().await, Ok(false));
        if !needed {
            return;
        }
        let result = match self.live().await {
            Ok(live) => publisher
                .publish_all(&live)
                .await
                .map(|()| live.len())
                .map_err(BoxError::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "republished live revocations to Redis"),
            Err(e) => {
                dirty.store(true, Ordering::Release);
                tracing::warn!(error = %e, "republishing revocations to Redis failed");
            }
        }
    }
}
