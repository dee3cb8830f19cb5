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

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::ThrottleConfig;
use crate::store::{Credentials, Limit, LoginRelease, Reservation, Store, now, secs};

/// The throttling policy: which counters an attempt touches and their
/// limits. The counting itself is [`Store::reserve_throttle_counters`].
#[derive(Debug, Clone)]
pub struct Throttle {
    store: Store,
    config: ThrottleConfig,
}

/// The digest that stands for an account in counter keys and device
/// cookies: attempts on unknown emails leave no plaintext address behind,
/// and whatever the client sent (NUL, 16 KiB) fits a TEXT key everywhere.
pub fn account_digest(email_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(email_key.as_bytes()))
}

/// Whether a login attempt may go on to the hash.
#[derive(Debug)]
pub enum Admission {
    /// A counter is locked: retry after this many seconds. Nothing was
    /// counted.
    Refused(u64),
    /// Counted; the account, if it exists.
    Admitted(Option<Credentials>),
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

impl Throttle {
    pub fn new(store: Store, config: ThrottleConfig) -> Self {
        Self { store, config }
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
    /// [`Self::succeeded`] gives it back, and looks up the account by its
    /// email lookup key (`None`: no account can match) in the same
    /// transaction.
    pub async fn reserve_login(
        &self,
        keys: &LoginKeys,
        email_key: Option<&str>,
    ) -> Result<Admission, sqlx::Error> {
        let limits;
        let counters: &[(&String, Limit)] = match keys {
            LoginKeys::Untrusted { account, address } => {
                limits = [
                    (account, self.failures(self.config.account_failures)),
                    (address, self.failures(self.config.address_failures)),
                ];
                &limits
            }
            LoginKeys::Device { device } => &[(device, self.failures(self.config.device_failures))],
        };
        self.admit(counters, now(), email_key).await
    }

    /// Reserves one registration for the client address (never given back:
    /// every registration costs a hash).
    pub async fn reserve_registration(&self, client: &str) -> Result<Option<u64>, sqlx::Error> {
        let key = format!("register:{client}");
        self.reserve(&[(&key, self.registrations())]).await
    }

    /// What a successful login gives back, for the store to write in the
    /// transaction that starts its session. An untrusted client clears
    /// the account's counter (the owner is back) but only gives its own
    /// reservation back to the address: clearing the address would let an
    /// attacker with one valid account reset it between guesses at others.
    /// A device gives its reservation back; its earlier failures stay
    /// counted for the window.
    pub fn succeeded(&self, keys: &LoginKeys) -> LoginRelease {
        match keys {
            LoginKeys::Untrusted { account, address } => LoginRelease {
                clear: Some(account.clone()),
                release: (
                    address.clone(),
                    self.failures(self.config.address_failures).allowed,
                ),
            },
            LoginKeys::Device { device } => LoginRelease {
                clear: None,
                release: (
                    device.clone(),
                    self.failures(self.config.device_failures).allowed,
                ),
            },
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
            self.store.restart_throttle_lock(key, now).await?;
        }
        Ok(())
    }

    /// All counters or none, in the same order (account, then address)
    /// for everyone.
    async fn reserve(&self, counters: &[(&String, Limit)]) -> Result<Option<u64>, sqlx::Error> {
        self.reserve_at(counters, now()).await
    }

    async fn reserve_at(
        &self,
        counters: &[(&String, Limit)],
        now: i64,
    ) -> Result<Option<u64>, sqlx::Error> {
        Ok(match self.admit(counters, now, None).await? {
            Admission::Refused(wait) => Some(wait),
            Admission::Admitted(_) => None,
        })
    }

    /// Counts the attempt on every counter at `now` (reading the account
    /// by `email_key` in the same transaction), or says how long to wait.
    async fn admit(
        &self,
        counters: &[(&String, Limit)],
        now: i64,
        email_key: Option<&str>,
    ) -> Result<Admission, sqlx::Error> {
        match self
            .store
            .reserve_throttle_counters(counters, now, email_key)
            .await?
        {
            Reservation::Counted(account) => Ok(Admission::Admitted(account)),
            Reservation::Locked => Ok(Admission::Refused(self.wait(counters, now).await?)),
        }
    }

    /// Seconds until the latest lock among `counters` ends (at least 1).
    async fn wait(&self, counters: &[(&String, Limit)], now: i64) -> Result<u64, sqlx::Error> {
        let mut until = now;
        for (key, _) in counters {
            if let Some(blocked_until) = self.store.throttle_blocked_until(key).await? {
                until = until.max(blocked_until);
            }
        }
        Ok(u64::try_from(until - now).unwrap_or(0).max(1))
    }

    /// Drops counters nobody has touched for a window, so the table stays
    /// as small as the set of recently attacked accounts and addresses.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let now = now();
        let window = secs(self.config.window).max(secs(self.config.registration_window));
        self.store.prune_throttle_counters(now - window, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives one counter through time by hand: the clock is a parameter.
    #[tokio::test]
    async fn lockout_starts_at_the_limit_doubles_and_is_capped() {
        let path = std::env::temp_dir().join(format!("throttle_{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), 1)
            .await
            .unwrap();
        let throttle = Throttle::new(store.clone(), ThrottleConfig::default());
        let key = "account:test".to_owned();
        let counters = [(&key, throttle.failures(5))];
        let until = || async { store.throttle_blocked_until(&key).await.unwrap().unwrap() };
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
        store.close().await;
        let _ = std::fs::remove_file(path);
    }
}
