//! Keys from the network (feature `remote-jwks`): a JWK set fetched from a
//! URL, or found through an OpenID issuer's discovery document, and kept
//! current by a background task.
//!
//! - [`JwtAuthBuilder::build`](crate::JwtAuthBuilder::build) never waits
//!   for the network: the first fetch starts in the background (on the
//!   current tokio runtime, or on first use when built outside one). Until
//!   keys arrive, requests get 503 with `Retry-After` (gRPC 14);
//!   [`JwtAuthLayer::ready`](crate::JwtAuthLayer::ready) waits for them.
//! - Requests read an immutable key set through one atomic load; fetches
//!   swap in a new one and never hold a lock a request waits on.
//! - Refreshes run ahead of time: every `Cache-Control: max-age`, clamped
//!   to [`RemoteOptions::min_refresh_interval`] ..
//!   [`RemoteOptions::max_refresh_interval`], or every
//!   [`RemoteOptions::refresh_interval`]; with `If-None-Match` when the
//!   document had an `ETag` (a 304 keeps the keys).
//! - A token whose `kid` (or algorithm) no key has triggers one refetch,
//!   shared by every request that wants one meanwhile, at most once per
//!   [`RemoteOptions::refetch_cooldown`]; such a request waits for it up to
//!   [`RemoteOptions::refetch_wait`]. A key removed from the document stops
//!   verifying after the next successful fetch.
//! - A failed fetch keeps the last good keys, up to
//!   [`RemoteOptions::max_staleness`] (then requests get 503), and is
//!   retried with exponential backoff and jitter. Fetches are bounded
//!   (connect and total timeouts, body size), follow same-origin redirects
//!   only, and need a JSON content type; keys that fail the
//!   [`JwkPolicy`](crate::keys::JwkPolicy) are skipped, the others kept.
//! - Only `https` URLs are fetched, except on loopback (127.0.0.0/8, `::1`,
//!   `localhost`).
//! - The task ends when the last layer (and [`RemoteKeys`]) holding the
//!   source is dropped.
//! - Events go to `tracing` target `tower_jwt_auth::keys::remote`: a failed
//!   fetch warns once per outage, recovery and key rotation are `info`,
//!   routine refreshes `debug`.
//!
//! Every fetch goes through an [`HttpClient`]: [`DefaultClient`] unless one
//! is handed in (a private CA, a proxy; see [`client`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_jwt_auth::JwtAuthLayer;
//! use tower_jwt_auth::keys::remote::RemoteOptions;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut options = RemoteOptions::default();
//! options.refetch_cooldown = Duration::from_secs(60);
//! let auth = JwtAuthLayer::<serde_json::Value>::builder()
//!     .oidc_issuer("https://auth.example.com") // also the required `iss`
//!     .audience("movies-api")
//!     .remote_options(options)
//!     .build()?;
//! // Optional: serve only once the keys are there.
//! tokio::time::timeout(Duration::from_secs(10), auth.ready()).await?;
//! # Ok(()) }
//! ```

pub mod client;
mod discovery;
mod error;
mod fetch;
mod location;
mod options;
mod refresh;
mod schedule;
mod setup;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::Uri;
use tokio::sync::{Notify, oneshot, watch};

use super::KeyStore;
use crate::error::Error;

pub use client::{DefaultClient, FetchFuture, HttpClient, ResponseBody};
pub use error::FetchError;
pub use options::RemoteOptions;
pub(crate) use setup::RemoteSetup;

/// Where the keys come from.
#[derive(Debug)]
enum Target {
    Jwks(Uri),
    Oidc { issuer: String, discovery: Uri },
}

/// What a remote key source has done so far: for health checks, metrics
/// and tests. Updated after every fetch.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Status {
    /// Fetches completed, successful or not.
    pub fetches: u64,
    /// Keys held.
    pub keys: usize,
    /// When the keys were last confirmed by a successful fetch (a 304
    /// included).
    pub last_success: Option<Instant>,
    /// When the next scheduled fetch is due.
    pub next_fetch: Option<Instant>,
    /// Failed fetches in a row.
    pub failures: u32,
    /// Why the last fetch failed, if it did.
    pub last_error: Option<FetchError>,
}

/// What the task and the handles share.
struct Shared {
    store: KeyStore,
    options: RemoteOptions,
    client: Arc<dyn HttpClient>,
    target: Target,
    gate: Mutex<schedule::Gate>,
    wake: Notify,
    done: watch::Sender<Status>,
}

/// A remote key source: a [`KeyStore`] that a background task fills from
/// a JWKS URL or an OpenID issuer, and the handle through which requests
/// ask for a refetch. Cheap to clone; the task ends when the last clone
/// (and every layer built with it) is dropped.
///
/// [`JwtAuthBuilder::jwks_url`](crate::JwtAuthBuilder::jwks_url) and
/// [`oidc_issuer`](crate::JwtAuthBuilder::oidc_issuer) make one; make it
/// yourself to share one source between layers
/// ([`JwtAuthBuilder::remote_keys`](crate::JwtAuthBuilder::remote_keys)).
#[derive(Clone)]
pub struct RemoteKeys {
    handle: Arc<Handle>,
}

/// The handle's own part: dropping the last one closes `_close`, which
/// ends the task.
struct Handle {
    shared: Arc<Shared>,
    _close: oneshot::Sender<()>,
    /// Taken by whoever starts the task.
    unstarted: Mutex<Option<oneshot::Receiver<()>>>,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("target", &self.handle.shared.target)
            .field("store", &self.handle.shared.store)
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// A source reading the JWK set at `url`.
    ///
    /// # Errors
    /// The URL is not `https` (or `http` on loopback), the options are
    /// contradictory, or the default client cannot be made.
    pub fn jwks_url(url: &str, options: RemoteOptions) -> Result<Self, Error> {
        let uri = location::parse(url).map_err(config)?;
        Self::new(Target::Jwks(uri), options)
    }

    /// A source reading the keys of the OpenID issuer `issuer`, found
    /// through `<issuer>/.well-known/openid-configuration`, whose `issuer`
    /// must equal `issuer` exactly.
    ///
    /// # Errors
    /// As for [`RemoteKeys::jwks_url`].
    pub fn oidc_issuer(issuer: &str, options: RemoteOptions) -> Result<Self, Error> {
        let discovery = location::discovery_url(issuer).map_err(config)?;
        let issuer = issuer.to_owned();
        Self::new(Target::Oidc { issuer, discovery }, options)
    }

    fn new(target: Target, options: RemoteOptions) -> Result<Self, Error> {
        options.check()?;
        let client = match &options.client {
            Some(client) => Arc::clone(client),
            None => Arc::new(DefaultClient::new(options.connect_timeout)?),
        };
        let (close, closed) = oneshot::channel();
        let shared = Arc::new(Shared {
            store: KeyStore::new(Default::default()),
            options,
            client,
            target,
            gate: Mutex::new(schedule::Gate::default()),
            wake: Notify::new(),
            done: watch::channel(Status::default()).0,
        });
        let keys = RemoteKeys {
            handle: Arc::new(Handle {
                shared,
                _close: close,
                unstarted: Mutex::new(Some(closed)),
            }),
        };
        keys.start();
        Ok(keys)
    }

    /// The store the task fills (empty until the first fetch succeeds).
    pub fn key_store(&self) -> &KeyStore {
        &self.handle.shared.store
    }

    /// The issuer, for a source made with [`RemoteKeys::oidc_issuer`].
    pub fn issuer(&self) -> Option<&str> {
        match &self.handle.shared.target {
            Target::Oidc { issuer, .. } => Some(issuer),
            Target::Jwks(_) => None,
        }
    }

    /// Waits until the store holds keys. Never returns while the provider
    /// cannot be reached: wrap it in a timeout.
    pub async fn ready(&self) {
        self.start();
        let mut done = self.handle.shared.done.subscribe();
        while self.key_store().guard().is_empty() {
            if done.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Fetches now, whatever the schedule and the cooldown, and returns the
    /// outcome. A fetch already under way is waited for first: the one
    /// returned starts after this call.
    ///
    /// # Errors
    /// Why the fetch failed; the keys held are then kept as after any
    /// failed refresh.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        if !self.start() {
            return Err(FetchError::NoRuntime);
        }
        let shared = &self.handle.shared;
        let mut done = loop {
            let mut done = {
                let mut gate = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
                let done = shared.done.subscribe();
                if !gate.in_flight() {
                    gate.force(tokio::time::Instant::now());
                    shared.wake.notify_one();
                    break done;
                }
                done
            };
            done.changed().await.map_err(|_| FetchError::NoRuntime)?;
        };
        done.changed().await.map_err(|_| FetchError::NoRuntime)?;
        match done.borrow().last_error.clone() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// What the source has done so far.
    pub fn status(&self) -> Status {
        self.handle.shared.done.borrow().clone()
    }

    /// Starts the task unless it runs; `false` when there is no runtime
    /// to start it on.
    pub(crate) fn start(&self) -> bool {
        let mut unstarted = self
            .handle
            .unstarted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if unstarted.is_none() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let closed = unstarted.take().expect("checked above");
        runtime.spawn(refresh::run(Arc::clone(&self.handle.shared), closed));
        true
    }
}

fn config(err: FetchError) -> Error {
    Error::Config(err.to_string())
}

/// What a request whose token names no key held waits on: the refetch it
/// triggered or joined, up to [`RemoteOptions::refetch_wait`].
pub(crate) use crate::service::RefetchWait;

impl RemoteKeys {
    /// For a request whose token's key is not held: a wait for a refetch,
    /// or `None` when a refetch ran less than a cooldown ago (or no
    /// runtime can run one).
    pub(crate) fn refetch(&self) -> Option<RefetchWait> {
        if !self.start() {
            return None;
        }
        let shared = &self.handle.shared;
        let mut done = {
            let mut gate = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            match gate.decide(now, shared.options.refetch_cooldown) {
                schedule::Decision::Refuse => return None,
                schedule::Decision::Trigger => shared.wake.notify_one(),
                schedule::Decision::Join => {}
            }
            shared.done.subscribe()
        };
        let wait = shared.options.refetch_wait;
        Some(Box::pin(async move {
            let _ = tokio::time::timeout(wait, done.changed()).await;
        }))
    }
}
