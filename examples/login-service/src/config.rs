//! Runtime configuration, assembled once (from flags and environment in
//! `main`, directly in tests) and handed down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// The one place every default lives: `Config::new`, `ThrottleConfig::default`
// and the flags in `main.rs` (whose `--help` shows them) all read these.

/// `--database-url`: a SQLite file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://login-service.db";
/// `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// `--audience`: the `aud` of issued access tokens.
pub const DEFAULT_AUDIENCE: &str = "login-service";
/// `--access-token-ttl-secs`: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// `--refresh-token-ttl-secs`: 14 days, sliding.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 14 * 24 * 3600;
/// `--session-max-lifetime-secs`: 30 days, absolute.
pub const DEFAULT_SESSION_MAX_LIFETIME_SECS: u64 = 30 * 24 * 3600;
/// `--key-reload-secs`.
pub const DEFAULT_KEY_RELOAD_SECS: u64 = 30;
/// `--login-failures-per-account`.
pub const DEFAULT_LOGIN_FAILURES_PER_ACCOUNT: u32 = 5;
/// `--login-failures-per-address`.
pub const DEFAULT_LOGIN_FAILURES_PER_ADDRESS: u32 = 50;
/// `--login-failures-per-device`.
pub const DEFAULT_LOGIN_FAILURES_PER_DEVICE: u32 = 5;
/// `--registrations-per-address`, per [`DEFAULT_REGISTRATION_WINDOW_SECS`].
pub const DEFAULT_REGISTRATIONS_PER_ADDRESS: u32 = 10;
/// The window registrations per address are counted in: one hour.
pub const DEFAULT_REGISTRATION_WINDOW_SECS: u64 = 3600;
/// The first lockout past a failure limit.
pub const DEFAULT_BASE_LOCKOUT_SECS: u64 = 30;
/// The longest lockout, however many failures follow.
pub const DEFAULT_MAX_LOCKOUT_SECS: u64 = 5 * 60;
/// Failure counters restart after this long without a failure.
pub const DEFAULT_THROTTLE_WINDOW_SECS: u64 = 15 * 60;
/// How long a device cookie is valid: 180 days.
pub const DEFAULT_DEVICE_COOKIE_TTL_SECS: u64 = 180 * 24 * 3600;
/// Database connections per instance (SQLite uses at most 4).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// How often each instance polls the database for revocations when there
/// is no Redis.
pub const DEFAULT_REVOCATION_POLL_MILLIS: u64 = 1000;
/// How long an instance's revocation mirror stays current without hearing
/// from its feed (Redis or the database); then its protected routes answer
/// 503 until it hears again.
pub const DEFAULT_REVOCATION_MAX_STALENESS_SECS: u64 = 5;

/// `keys rotate --activate-after-secs`: more than the key reload interval
/// and the JWKS `max-age` (60 s) this service advertises.
pub const DEFAULT_ACTIVATE_AFTER_SECS: i64 = 120;

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
    /// While password hashes fill every CPU, a thread pinned to each CPU
    /// wakes this often so request threads wait less behind a hash (Linux;
    /// see the README's "Passwords"). `None`, the default: no such threads.
    pub hashing_tick: Option<Duration>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name
    /// the client for per-address limits. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The key-encryption key file that private signing keys are encrypted
    /// under. Required on PostgreSQL; on SQLite it defaults to the database
    /// file's path plus `.kek`, created on first start.
    pub key_encryption_key_file: Option<PathBuf>,
    /// `redis://…`: publish revocations there and mirror them from there;
    /// without it, each instance polls the database.
    pub redis_url: Option<String>,
    /// The Redis keys' prefix; every resource server's must match.
    pub redis_key_prefix: String,
    /// How often the database is polled for revocations (no Redis).
    pub revocation_poll_interval: Duration,
    /// How long the revocation mirror stays current without hearing from
    /// its feed; then protected routes answer 503.
    pub revocation_max_staleness: Duration,
    /// Require a server nonce (RFC 9449 §8, §9) in every DPoP proof, at the
    /// token endpoints and on the protected routes: a new nonce this often,
    /// the previous one still accepted for as long again. Every instance
    /// needs the same value and clocks that agree within a small part of
    /// it. `None`, the default: proofs need no nonce.
    pub dpop_nonce_rotation: Option<Duration>,
    /// Where the DPoP checks (proofs' `iat`, nonces, replay entries) read
    /// the time; `None`, the default: the system clock. For tests: access
    /// tokens' own times are still checked against the system clock.
    pub dpop_clock: Option<Clock>,
}

/// A source of the current time, shared.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    pub fn new(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock(..)")
    }
}

impl Config {
    /// Defaults for everything but the two values that have none.
    pub fn new(database_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            issuer: issuer.into(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            access_token_ttl: Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS),
            refresh_token_ttl: Duration::from_secs(DEFAULT_REFRESH_TOKEN_TTL_SECS),
            session_max_lifetime: Duration::from_secs(DEFAULT_SESSION_MAX_LIFETIME_SECS),
            registration: true,
            docs: true,
            key_reload_interval: Duration::from_secs(DEFAULT_KEY_RELOAD_SECS),
            throttle: ThrottleConfig::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            hashing_tick: None,
            trusted_proxies: Vec::new(),
            key_encryption_key_file: None,
            redis_url: None,
            redis_key_prefix: tower_jwt_auth::revoke::redis::DEFAULT_KEY_PREFIX.to_owned(),
            revocation_poll_interval: Duration::from_millis(DEFAULT_REVOCATION_POLL_MILLIS),
            revocation_max_staleness: Duration::from_secs(DEFAULT_REVOCATION_MAX_STALENESS_SECS),
            dpop_nonce_rotation: None,
            dpop_clock: None,
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
            account_failures: DEFAULT_LOGIN_FAILURES_PER_ACCOUNT,
            address_failures: DEFAULT_LOGIN_FAILURES_PER_ADDRESS,
            base_lockout: Duration::from_secs(DEFAULT_BASE_LOCKOUT_SECS),
            max_lockout: Duration::from_secs(DEFAULT_MAX_LOCKOUT_SECS),
            window: Duration::from_secs(DEFAULT_THROTTLE_WINDOW_SECS),
            device_failures: DEFAULT_LOGIN_FAILURES_PER_DEVICE,
            device_cookie_ttl: Duration::from_secs(DEFAULT_DEVICE_COOKIE_TTL_SECS),
            registrations_per_address: DEFAULT_REGISTRATIONS_PER_ADDRESS,
            registration_window: Duration::from_secs(DEFAULT_REGISTRATION_WINDOW_SECS),
        }
    }
}
