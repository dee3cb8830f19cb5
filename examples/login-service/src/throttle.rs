//! Failed-login throttling per account and per client address, kept in the
//! database so every instance on it enforces the same limits.

use std::net::IpAddr;

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

/// The counters one login attempt touches.
#[derive(Debug)]
pub struct Keys {
    account: String,
    address: String,
}

impl Keys {
    /// The account counter is keyed by a digest of the email: attempts on
    /// unknown emails leave no plaintext address behind, and whatever the
    /// client sent (NUL, 16 KiB) fits a TEXT key on every backend.
    pub fn new(email_key: &str, address: IpAddr) -> Self {
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(email_key.as_bytes()));
        Self {
            account: format!("account:{digest}"),
            address: format!("address:{address}"),
        }
    }
}

impl Throttle {
    pub fn new(pool: Pool, config: ThrottleConfig) -> Self {
        Self { pool, config }
    }

    /// Seconds until either counter unblocks, if one is blocked.
    pub async fn blocked_for(&self, keys: &Keys) -> Result<Option<u64>, sqlx::Error> {
        let now = now();
        let until: Option<i64> = sqlx::query(
            "SELECT MAX(blocked_until) AS until FROM login_throttle \
             WHERE throttle_key IN ($1, $2)",
        )
        .bind(&keys.account)
        .bind(&keys.address)
        .fetch_one(&self.pool)
        .await?
        .try_get("until")?;
        Ok(until.filter(|&u| u > now).map(|u| (u - now) as u64))
    }

    pub async fn record_failure(&self, keys: &Keys) -> Result<(), sqlx::Error> {
        self.bump(&keys.account, self.config.account_failures)
            .await?;
        self.bump(&keys.address, self.config.address_failures).await
    }

    /// A successful login clears the account's counter only: clearing the
    /// address's would let an attacker with one valid account reset it
    /// between guesses at others.
    pub async fn record_success(&self, keys: &Keys) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
            .bind(&keys.account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn bump(&self, key: &str, allowed: u32) -> Result<(), sqlx::Error> {
        let now = now();
        let stale_before = now - self.config.window.as_secs() as i64;
        let failures: i64 = sqlx::query(
            "INSERT INTO login_throttle (throttle_key, failures, last_failure_at, blocked_until) \
             VALUES ($1, 1, $2, 0) \
             ON CONFLICT (throttle_key) DO UPDATE SET \
                 failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1 \
                                 ELSE login_throttle.failures + 1 END, \
                 last_failure_at = $2 \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(stale_before)
        .fetch_one(&self.pool)
        .await?
        .try_get("failures")?;
        if let Some(lockout) = lockout_secs(&self.config, failures, allowed) {
            sqlx::query("UPDATE login_throttle SET blocked_until = $2 WHERE throttle_key = $1")
                .bind(key)
                .bind(now + lockout)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Drops counters nobody has touched for a window, so the table stays
    /// as small as the set of recently attacked accounts and addresses.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let now = now();
        let stale_before = now - self.config.window.as_secs() as i64;
        Ok(sqlx::query(
            "DELETE FROM login_throttle WHERE last_failure_at < $1 AND blocked_until < $2",
        )
        .bind(stale_before)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

/// Lockout after the `failures`-th failure: none up to `allowed`, then
/// doubling from the base, capped.
fn lockout_secs(config: &ThrottleConfig, failures: i64, allowed: u32) -> Option<i64> {
    let over = failures - i64::from(allowed);
    if over < 0 {
        return None;
    }
    let base = config.base_lockout.as_secs() as i64;
    let cap = config.max_lockout.as_secs() as i64;
    let doubled = base.saturating_mul(1_i64 << over.min(30));
    Some(doubled.min(cap).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_at_the_limit_doubles_and_is_capped() {
        let config = ThrottleConfig::default();
        assert_eq!(lockout_secs(&config, 4, 5), None);
        assert_eq!(lockout_secs(&config, 5, 5), Some(30));
        assert_eq!(lockout_secs(&config, 6, 5), Some(60));
        assert_eq!(lockout_secs(&config, 8, 5), Some(240));
        assert_eq!(lockout_secs(&config, 9, 5), Some(300));
        assert_eq!(lockout_secs(&config, 10_000, 5), Some(300));
    }
}
