//! Runtime configuration, assembled once (from flags and environment in
//! `main`, directly in tests) and handed down.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::App::build`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The `iss` of issued tokens and the base of the discovery URLs.
    pub issuer: String,
    /// The single `aud` of issued access tokens.
    pub audience: String,
    pub access_token_ttl: Duration,
    /// Sliding: each refresh token lives this long, and each use issues a
    /// new one.
    pub refresh_token_ttl: Duration,
    /// Absolute: a login session (refresh-token family) ends this long after
    /// the password was entered, however often it is refreshed.
    pub session_max_lifetime: Duration,
    /// Whether `POST /auth/register` is served.
    pub registration: bool,
    /// Whether the Swagger UI is served at `/docs`.
    pub docs: bool,
    /// How often signing keys are re-read from the database, so keys added
    /// by `keys rotate` (or another instance) are picked up without restart.
    pub key_reload_interval: Duration,
    pub throttle: ThrottleConfig,
    pub max_connections: u32,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client for per-address limits. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The key-encryption key file that private signing keys are encrypted
    /// under. Required on PostgreSQL; on SQLite it defaults to the database
    /// file's path plus `.kek`, created on first start.
    pub key_encryption_key_file: Option<PathBuf>,
}

impl Config {
    /// Defaults for everything but the two values that have none.
    pub fn new(database_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            issuer: issuer.into(),
            audience: "login-service".to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(14 * 24 * 3600),
            session_max_lifetime: Duration::from_secs(30 * 24 * 3600),
            registration: true,
            docs: true,
            key_reload_interval: Duration::from_secs(30),
            throttle: ThrottleConfig::default(),
            max_connections: 10,
            trusted_proxies: Vec::new(),
            key_encryption_key_file: None,
        }
    }

    /// How long a superseded signing key stays published (then deleted):
    /// the longest life of a token it signed plus the verifiers' leeway.
    pub fn retired_key_retention(&self) -> Duration {
        self.access_token_ttl + tower_jwt_auth::DEFAULT_LEEWAY
    }
}

/// Failed-login throttling. Lockouts grow exponentially from `base_lockout`
/// but never exceed `max_lockout`, so an attacker who knows a victim's email
/// can delay them for minutes at most, not lock them out.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per account before each further failure blocks the account.
    pub account_failures: u32,
    /// Failures per client address before each further failure blocks it.
    pub address_failures: u32,
    pub base_lockout: Duration,
    pub max_lockout: Duration,
    /// Counters restart after this long without a failure.
    pub window: Duration,
    /// Failures per device cookie before that device is locked out too.
    pub device_failures: u32,
    /// How long a device cookie is valid (and its `Max-Age`).
    pub device_cookie_ttl: Duration,
    /// Registrations per client address before further ones are refused
    /// for `registration_window`.
    pub registrations_per_address: u32,
    pub registration_window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_failures: 5,
            address_failures: 50,
            base_lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(5 * 60),
            window: Duration::from_secs(15 * 60),
            device_failures: 5,
            device_cookie_ttl: Duration::from_secs(180 * 24 * 3600),
            registrations_per_address: 10,
            registration_window: Duration::from_secs(3600),
        }
    }
}
