//! [`RemoteOptions`]: every knob of a remote key source, with defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::HttpClient;
use crate::error::Error;
use crate::keys::JwkPolicy;

/// Settings of a remote key source. Start from the default and change
/// fields: `let mut o = RemoteOptions::default(); o.timeout = …;`.
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Refresh interval when the document has no `Cache-Control: max-age`
    /// (default 5 min).
    pub refresh_interval: Duration,
    /// Lower bound on a `max-age` (default 1 min); `no-cache` counts as 0.
    pub min_refresh_interval: Duration,
    /// Upper bound on a `max-age` (default 24 h).
    pub max_refresh_interval: Duration,
    /// Least time between two refetches triggered by unknown `kid`s
    /// (default 30 s).
    pub refetch_cooldown: Duration,
    /// How long a request with an unknown `kid` waits for the refetch
    /// (default 5 s); then it is answered with the keys held.
    pub refetch_wait: Duration,
    /// How long keys are kept when refreshes fail (default 12 h); past it
    /// requests get 503 until a fetch succeeds.
    pub max_staleness: Duration,
    /// TCP connect timeout of the [`DefaultClient`](super::DefaultClient) (default 2 s).
    pub connect_timeout: Duration,
    /// Total time for one fetch: connect, redirects, body (default 5 s).
    pub timeout: Duration,
    /// Largest document accepted, in bytes (default 256 KiB).
    pub max_body_len: usize,
    /// Same-origin redirects followed per fetch (default 3).
    pub max_redirects: usize,
    /// First retry delay after a failed fetch (default 1 s), doubled per
    /// failure up to [`max_backoff`](Self::max_backoff), with jitter.
    pub initial_backoff: Duration,
    /// Longest retry delay (default 2 min).
    pub max_backoff: Duration,
    /// How JWKs are read; default: [`JwkPolicy::default`] without
    /// symmetric keys (a published set never carries secrets).
    pub jwk_policy: JwkPolicy,
    pub(super) client: Option<Arc<dyn HttpClient>>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            refresh_interval: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(60),
            max_refresh_interval: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(30),
            refetch_wait: Duration::from_secs(5),
            max_staleness: Duration::from_secs(12 * 3600),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body_len: 256 * 1024,
            max_redirects: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            jwk_policy: JwkPolicy::default().without_symmetric_keys(),
            client: None,
        }
    }
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("refresh_interval", &self.refresh_interval)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("max_refresh_interval", &self.max_refresh_interval)
            .field("refetch_cooldown", &self.refetch_cooldown)
            .field("refetch_wait", &self.refetch_wait)
            .field("max_staleness", &self.max_staleness)
            .field("timeout", &self.timeout)
            .field("max_body_len", &self.max_body_len)
            .field("custom_client", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl RemoteOptions {
    /// Sends every fetch (discovery and JWKS) through `client` instead of
    /// a [`DefaultClient`](super::DefaultClient).
    #[must_use]
    pub fn http_client(mut self, client: impl HttpClient) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    pub(super) fn check(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(format!("remote keys: {what}")));
        if self.min_refresh_interval > self.max_refresh_interval {
            return bad("min_refresh_interval exceeds max_refresh_interval");
        }
        if self.min_refresh_interval.is_zero() || self.initial_backoff.is_zero() {
            return bad("refresh intervals and backoff must be positive");
        }
        if self.timeout.is_zero() || self.max_body_len == 0 {
            return bad("timeout and max_body_len must be positive");
        }
        Ok(())
    }
}
