//! Login and registration throttling per account, device cookie and client
//! address, kept in the database so every instance on it enforces the same
//! limits.
//!
//! An attempt is *reserved* before the password is hashed: one conditional
//! upsert per counter both checks the lockout and counts the attempt as a
//! failure, so a burst of parallel guesses cannot all pass a check that
//! none of them has recorded yet. A success gives its reservation back
//! ([`Throttle::succeeded`]); an attempt whose client disconnects stays
//! counted, as it should.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::config::ThrottleConfig;
use crate::db::{Pool, now};

#[derive(Debug, Clone)]
pub struct Throttle {
    pool: Pool,
    config: ThrottleConfig,
}

/// How many attempts one counter allows and how it locks.
#[derive(Debug, Clone, Copy)]
struct Limit {
    /// Attempts in a row before the counter locks (at least 1).
    allowed: i64,
    /// First lockout; each further attempt after one doubles it, capped.
    base: i64,
    cap: i64,
    /// The count restarts after this long without an attempt.
    window: i64,
}

/// The digest that stands for an account in counter keys and device
/// cookies: attempts on unknown emails leave no plaintext address behind,
/// and whatever the client sent (NUL, 16 KiB) fits a TEXT key everywhere.
pub fn account_digest(email_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(email_key.as_bytes()))
}

/// The counters one login attempt touches, which depends on whether the
/// client proved with a device cookie that it logged in to this account
/// before.
#[derive(Debug)]
pub enum LoginKeys {
    /// No valid device cookie: the account's counter for untrusted clients
    /// and the client address's.
    Untrusted { account: String, address: String },
    /// A valid device cookie: only that device's own budget. The account
    /// lockout an attacker causes does not apply to it.
    Device { device: String },
}

impl LoginKeys {
    /// `account` is [`account_digest`]; `client` is
    /// [`crate::client_ip::throttle_key`].
    pub fn untrusted(account: &str, client: &str) -> Self {
        Self::Untrusted {
            account: format!("account:{account}"),
            address: format!("address:{client}"),
        }
    }

    /// `device` is the cookie's verified nonce.
    pub fn device(device: &str) -> Self {
        Self::Device {
            device: format!("device:{device}"),
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Throttle {
    pub fn new(pool: Pool, config: ThrottleConfig) -> Self {
        Self { pool, config }
    }

    fn failures(&self, allowed: u32) -> Limit {
        let base = secs(self.config.base_lockout).max(1);
        Limit {
            allowed: i64::from(allowed.max(1)),
            base,
            cap: secs(self.config.max_lockout).max(base),
            window: secs(self.config.window),
        }
    }

    fn registrations(&self) -> Limit {
        let window = secs(self.config.registration_window).max(1);
        Limit {
            allowed: i64::from(self.config.registrations_per_address.max(1)),
            base: window,
            cap: window,
            window,
        }
    }

    /// Reserves a login attempt, counted as a failure until
    /// [`Self::succeeded`] gives it back. `Ok(Some(secs))`: refused, retry
    /// after that long; nothing was counted.
    pub async fn reserve_login(&self, keys: &LoginKeys) -> Result<Option<u64>, sqlx::Error> {
        match keys {
            LoginKeys::Untrusted { account, address } => {
                self.reserve(&[
                    (account, self.failures(self.config.account_failures)),
                    (address, self.failures(self.config.address_failures)),
                ])
                .await
            }
            LoginKeys::Device { device } => {
                self.reserve(&[(device, self.failures(self.config.device_failures))])
                    .await
            }
        }
    }

    /// Reserves one registration for the client address (never given back:
    /// every registration costs a hash).
    pub async fn reserve_registration(&self, client: &str) -> Result<Option<u64>, sqlx::Error> {
        let key = format!("register:{client}");
        self.reserve(&[(&key, self.registrations())]).await
    }

    /// A successful login. An untrusted client clears the account's counter
    /// (the owner is back) but only gives its own reservation back to the
    /// address: clearing the address would let an attacker with one valid
    /// account reset it between guesses at others. A device gives its
    /// reservation back; its earlier failures stay counted for the window.
    pub async fn succeeded(&self, keys: &LoginKeys) -> Result<(), sqlx::Error> {
        match keys {
            LoginKeys::Untrusted { account, address } => {
                sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
                    .bind(account)
                    .execute(&self.pool)
                    .await?;
                self.release(address, self.failures(self.config.address_failures))
                    .await
            }
            LoginKeys::Device { device } => {
                self.release(device, self.failures(self.config.device_failures))
                    .await
            }
        }
    }

    /// A failed login: it is already counted, but a lock its reservation
    /// started is pushed to run for its full length from now, when the
    /// client learns the answer, not from before the hash.
    pub async fn failed(&self, keys: &LoginKeys) -> Result<(), sqlx::Error> {
        let keys: &[&String] = match keys {
            LoginKeys::Untrusted { account, address } => &[account, address],
            LoginKeys::Device { device } => &[device],
        };
        let now = now();
        for key in keys {
            sqlx::query(
                "UPDATE login_throttle SET blocked_until = $2 + lockout_secs \
                 WHERE throttle_key = $1 AND lockout_secs > 0 AND blocked_until < $2 + lockout_secs",
            )
            .bind(*key)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// All counters or none: the first one that is locked rolls back the
    /// ones already counted. On PostgreSQL the upsert locks each row until
    /// commit, in the same order (account, then address) for everyone; on
    /// SQLite the first write takes the database's write lock.
    async fn reserve(&self, counters: &[(&String, Limit)]) -> Result<Option<u64>, sqlx::Error> {
        self.reserve_at(counters, now()).await
    }

    async fn reserve_at(
        &self,
        counters: &[(&String, Limit)],
        now: i64,
    ) -> Result<Option<u64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
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
                return Ok(Some(self.wait(counters, now).await?));
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    /// Seconds until the latest lock among `counters` ends (at least 1).
    async fn wait(&self, counters: &[(&String, Limit)], now: i64) -> Result<u64, sqlx::Error> {
        let mut until = now;
        for (key, _) in counters {
            let row =
                sqlx::query("SELECT blocked_until FROM login_throttle WHERE throttle_key = $1")
                    .bind(*key)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = row {
                until = until.max(row.try_get::<i64, _>("blocked_until")?);
            }
        }
        Ok(u64::try_from(until - now).unwrap_or(0).max(1))
    }

    /// Gives one reservation back; if that brings the count under the limit
    /// the lock this reservation started is lifted with it.
    async fn release(&self, key: &str, limit: Limit) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE login_throttle SET \
                 failures = failures - 1, \
                 blocked_until = CASE WHEN failures - 1 < $2 THEN 0 ELSE blocked_until END, \
                 lockout_secs = CASE WHEN failures - 1 < $2 THEN 0 ELSE lockout_secs END \
             WHERE throttle_key = $1 AND failures > 0",
        )
        .bind(key)
        .bind(limit.allowed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops counters nobody has touched for a window, so the table stays
    /// as small as the set of recently attacked accounts and addresses.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let now = now();
        let window = secs(self.config.window).max(secs(self.config.registration_window));
        Ok(sqlx::query(
            "DELETE FROM login_throttle WHERE last_failure_at < $1 AND blocked_until < $2",
        )
        .bind(now - window)
        .bind(now)
        .execute(&self.pool)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives one counter through time by hand: the clock is a parameter.
    #[tokio::test]
    async fn lockout_starts_at_the_limit_doubles_and_is_capped() {
        let path = std::env::temp_dir().join(format!("throttle_{}.db", uuid::Uuid::new_v4()));
        let pool = crate::db::connect(&format!("sqlite://{}", path.display()), 1)
            .await
            .unwrap();
        let throttle = Throttle::new(pool.clone(), ThrottleConfig::default());
        let key = "account:test".to_owned();
        let counters = [(&key, throttle.failures(5))];
        let until = || async {
            sqlx::query("SELECT blocked_until FROM login_throttle")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get::<i64, _>("blocked_until")
        };
        let t0 = 1_000_000;
        for i in 0..4 {
            assert_eq!(throttle.reserve_at(&counters, t0 + i).await.unwrap(), None);
            assert_eq!(until().await, 0);
        }
        // The fifth attempt is allowed and itself starts the base lockout.
        assert_eq!(throttle.reserve_at(&counters, t0 + 4).await.unwrap(), None);
        assert_eq!(until().await, t0 + 4 + 30);
        assert_eq!(
            throttle.reserve_at(&counters, t0 + 5).await.unwrap(),
            Some(29)
        );
        // After each lockout one more attempt, which doubles it up to the cap.
        let mut at = t0 + 4 + 30;
        for lockout in [60, 120, 240, 300, 300] {
            assert_eq!(throttle.reserve_at(&counters, at).await.unwrap(), None);
            assert_eq!(until().await, at + lockout);
            assert_eq!(
                throttle.reserve_at(&counters, at).await.unwrap(),
                Some(lockout as u64)
            );
            at += lockout;
        }
        // A window without attempts starts the count over.
        at += 15 * 60;
        assert_eq!(throttle.reserve_at(&counters, at).await.unwrap(), None);
        assert_eq!(until().await, 0);
        pool.close().await;
        let _ = std::fs::remove_file(path);
    }
}
