//! `login_throttle`: failure and registration counters.
//!
//! A reservation is one conditional upsert per counter ([`RESERVE`]), all
//! in one transaction: the first counter that is locked rolls back the
//! ones already counted. On PostgreSQL the upsert locks each row until
//! commit, in the order given (the same for everyone); on SQLite the first
//! write takes the database's write lock.

use sqlx::Row;

use super::Store;
use super::users::{Credentials, find_account};
use sqlx::AnyConnection;

/// What a successful login gives back to the throttle, written in the
/// same transaction as the session it starts (`Store::start_session`):
/// one commit, not three, per login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRelease {
    /// A counter deleted outright (the account's, when its owner is back).
    pub clear: Option<String>,
    /// A counter given one reservation back, and the limit under which
    /// the lock that reservation started is lifted with it.
    pub release: (String, i64),
}

impl LoginRelease {
    /// Applies the release on `conn` (inside the caller's transaction).
    pub(crate) async fn apply(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if let Some(key) = &self.clear {
            sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
        let (key, allowed) = &self.release;
        // One counted attempt back; if that brings the count under
        // `allowed`, the lock it started is lifted with it.
        sqlx::query(
            "UPDATE login_throttle SET \
                 failures = failures - 1, \
                 blocked_until = CASE WHEN failures - 1 < $2 THEN 0 ELSE blocked_until END, \
                 lockout_secs = CASE WHEN failures - 1 < $2 THEN 0 ELSE lockout_secs END \
             WHERE throttle_key = $1 AND failures > 0",
        )
        .bind(key)
        .bind(*allowed)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// How many attempts one counter allows and how it locks, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts in a row before the counter locks (at least 1).
    pub allowed: i64,
    /// First lockout; each further attempt after one doubles it, capped.
    pub base: i64,
    pub cap: i64,
    /// The count restarts after this long without an attempt.
    pub window: i64,
}

/// What a reservation did.
#[derive(Debug)]
pub enum Reservation {
    /// A counter is locked: nothing was counted.
    Locked,
    /// Every counter counted one attempt; and the account, when one was
    /// asked for and exists.
    Counted(Option<Credentials>),
}

impl Store {
    /// Counts one attempt on every counter, or on none if any is locked at
    /// `now`. With `account`, a login's email lookup key, the account is
    /// read in the same transaction: one connection and one commit before
    /// the hash instead of two round trips to the pool.
    ///
    /// A quick commit ([`Store::begin_quick`]): a machine crash may forget
    /// the last attempts counted, a process crash never does.
    pub async fn reserve_throttle_counters(
        &self,
        counters: &[(&String, Limit)],
        now: i64,
        account: Option<&str>,
    ) -> Result<Reservation, sqlx::Error> {
        let mut tx = self.begin_quick().await?;
        for (key, limit) in counters {
            let counted = sqlx::query(RESERVE)
                .bind(*key)
                .bind(now)
                .bind(now - limit.window)
                .bind(limit.allowed)
                .bind(limit.base)
                .bind(limit.cap)
                .fetch_optional(&mut *tx)
                .await?;
            if counted.is_none() {
                tx.rollback().await?;
                return Ok(Reservation::Locked);
            }
        }
        let found = match account {
            Some(email_key) => find_account(&mut tx, email_key).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(Reservation::Counted(found))
    }

    /// Until when the counter is locked (0 or a past time: it is not).
    pub async fn throttle_blocked_until(&self, key: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query("SELECT blocked_until FROM login_throttle WHERE throttle_key = $1")
            .bind(key)
            .fetch_optional(self.quick_pool())
            .await?
            .map(|row| row.try_get::<i64, _>("blocked_until"))
            .transpose()
    }

    /// Forgets the counter.
    /// Makes a lock the counter is under run for its full length from `now`.
    pub async fn restart_throttle_lock(&self, key: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE login_throttle SET blocked_until = $2 + lockout_secs \
             WHERE throttle_key = $1 AND lockout_secs > 0 AND blocked_until < $2 + lockout_secs",
        )
        .bind(key)
        .bind(now)
        .execute(self.quick_pool())
        .await?;
        Ok(())
    }

    /// Deletes counters without an attempt since `stale_before` and not
    /// locked at `now`; how many.
    pub async fn prune_throttle_counters(
        &self,
        stale_before: i64,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(
            "DELETE FROM login_throttle WHERE last_failure_at < $1 AND blocked_until < $2",
        )
        .bind(stale_before)
        .bind(now)
        .execute(self.quick_pool())
        .await?
        .rows_affected())
    }
}

/// One statement decides and counts: the row is inserted or, unless it is
/// locked now, updated; a locked row makes the conditional `DO UPDATE` do
/// nothing and `RETURNING` return no row. The attempt that reaches the
/// limit sets the lock itself, so the next one is refused even while this
/// one is still being hashed. Lockouts start at `base` ($5) and double per
/// further attempt up to `cap` ($6); a count older than the window ($3)
/// starts over. `lockout_secs` keeps the last lockout so the doubling is
/// plain arithmetic (no `POWER`, whose types differ between backends).
///
/// $1 key, $2 now, $3 stale before, $4 allowed, $5 base, $6 cap.
const RESERVE: &str = "\
INSERT INTO login_throttle (throttle_key, failures, last_failure_at, blocked_until, lockout_secs) \
VALUES ($1, 1, $2, CASE WHEN $4 <= 1 THEN $2 + $5 ELSE 0 END, CASE WHEN $4 <= 1 THEN $5 ELSE 0 END) \
ON CONFLICT (throttle_key) DO UPDATE SET \
    failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 \
                    ELSE login_throttle.failures + 1 END, \
    last_failure_at = $2, \
    lockout_secs = CASE \
        WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 1 \
                   ELSE login_throttle.failures + 1 END) < $4 THEN 0 \
        WHEN login_throttle.lockout_secs = 0 OR login_throttle.last_failure_at < $3 THEN $5 \
        WHEN login_throttle.lockout_secs * 2 > $6 THEN $6 \
        ELSE login_throttle.lockout_secs * 2 END, \
    blocked_until = CASE \
        WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 1 \
                   ELSE login_throttle.failures + 1 END) < $4 THEN 0 \
        WHEN login_throttle.lockout_secs = 0 OR login_throttle.last_failure_at < $3 THEN $2 + $5 \
        WHEN login_throttle.lockout_secs * 2 > $6 THEN $2 + $6 \
        ELSE $2 + login_throttle.lockout_secs * 2 END \
WHERE login_throttle.blocked_until <= $2 \
RETURNING failures";
