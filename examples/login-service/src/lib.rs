//! The companion login service of `tower-jwt-auth`: email and password in,
//! EdDSA-signed RFC 9068 access tokens and rotating refresh tokens out, its
//! own routes protected by the library's layer.
//!
//! The binary (`main.rs`) parses flags; everything else lives in this
//! crate so tests can run the real service in-process:
//!
//! ```no_run
//! # async fn run() -> Result<(), login_service::BoxError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let issuer = format!("http://{}", listener.local_addr()?);
//! let config = login_service::Config::new("sqlite://login-service.db", issuer);
//! let app = login_service::App::build(config).await?;
//! app.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

// No unsafe code but two scheduler calls (`realtime::sys`), which no
// maintained safe wrapper in the tree covers.
#![deny(unsafe_code)]

mod cli;
mod client_ip;
pub mod config;
mod devices;
mod dpop;
mod error;
pub mod kek;
pub mod keys;
mod maintenance;
pub mod metrics;
mod openapi;
pub mod passwords;
mod preemption;
pub mod realtime;
mod revocation;
mod routes;
mod sessions;
pub mod store;
mod throttle;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;

pub use cli::{add_user, rewrap_keys, rotate_key};
pub use client_ip::parse_trusted_proxy;
pub use config::{Config, ThrottleConfig};
pub use error::ErrorBody;
pub use ipnet::IpNet;
pub use metrics::Metrics;
pub use passwords::{HashLoad, Hasher};
pub use sessions::{AccessClaims, Confirmation, TokenResponse};

/// Errors from building or serving the app.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request bodies above this are refused with 413 before parsing.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Inner>);

/// What handlers and background tasks share: the store, the domain
/// services built on it, and the settings handlers read.
#[derive(Debug)]
pub(crate) struct Inner {
    store: store::Store,
    keys: keys::Keys,
    hasher: Hasher,
    throttle: throttle::Throttle,
    sessions: sessions::Sessions,
    /// The mirror every protected route reads, and where revocations go.
    revocations: Arc<revocation::Revocations>,
    issuer: Arc<str>,
    /// Peers whose `Forwarded`/`X-Forwarded-For` name the client.
    trusted_proxies: Arc<[IpNet]>,
    devices: devices::DeviceCookies,
    /// Verified access tokens, shared by the protected routes' layers: a
    /// token presented again skips its signature check (revocation and
    /// scopes are still checked on every request).
    token_cache: tower_jwt_auth::cache::TokenCache,
    /// DPoP proofs: the token endpoints' verifier and the layers' settings.
    dpop: dpop::DpopSettings,
}

impl Inner {
    /// The client address that per-address counters key on.
    pub(crate) fn client_key(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> String {
        client_ip::throttle_key(client_ip::resolve(peer, headers, &self.trusted_proxies))
    }

    /// Deletes expired keys and re-reads the rest.
    async fn reload_keys(&self) -> Result<(), keys::KeyError> {
        self.keys.reload(&self.store).await
    }

    /// Deletes session, denylist and throttle rows that can no longer
    /// matter.
    async fn prune(&self) -> Result<(), sqlx::Error> {
        self.sessions.prune().await?;
        self.throttle.prune().await?;
        Ok(())
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A built service: its router and the OpenAPI document describing it.
pub struct App {
    router: Router,
    openapi: utoipa::openapi::OpenApi,
    state: AppState,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Connects and migrates the database, loads (or creates) signing keys,
    /// loads the revocation mirror (from Redis when configured, else from
    /// the database), assembles the routes and starts the background tasks
    /// that feed the mirror (`revocation.rs`), reload keys and prune tables
    /// (`maintenance.rs`).
    ///
    /// # Errors
    /// When the database is unreachable, a migration fails or the stored
    /// keys cannot be read.
    pub async fn build(config: Config) -> Result<Self, BoxError> {
        let store = store::Store::connect(&config.database_url, config.max_connections).await?;
        let kek = kek::resolve(
            config.key_encryption_key_file.as_deref(),
            &config.database_url,
            &store,
        )
        .await?;
        // A retired key stays published for the longest life of a token it
        // signed, plus the verifier's leeway; then it is deleted.
        let retention = store::secs(config.retired_key_retention());
        let keys = keys::Keys::bootstrap(&store, &kek, retention).await?;
        let devices = devices::DeviceCookies::bootstrap(
            &store,
            &kek,
            &config.issuer,
            config.throttle.device_cookie_ttl,
        )
        .await?;
        let dpop = dpop::DpopSettings::new(&config, &devices)?;
        let revocations = Arc::new(revocation::Revocations::start(&config, store.clone()).await?);
        revocation::Revocations::spawn_feed(Arc::downgrade(&revocations));
        let state = AppState(Arc::new(Inner {
            hasher: Hasher::with_tick(config.hashing_tick).await,
            throttle: throttle::Throttle::new(store.clone(), config.throttle.clone()),
            sessions: sessions::Sessions::new(
                store.clone(),
                keys.clone(),
                revocations.clone(),
                &config,
            ),
            revocations,
            issuer: config.issuer.as_str().into(),
            trusted_proxies: config.trusted_proxies.as_slice().into(),
            devices,
            dpop,
            keys,
            store,
            token_cache: tower_jwt_auth::cache::TokenCache::new(),
        }));
        let (router, openapi) = routes::router(&config, &state)?;
        maintenance::spawn(Arc::downgrade(&state.0), config.key_reload_interval);
        Ok(Self {
            router,
            openapi,
            state,
        })
    }

    /// The service's routes with every layer, e.g. to drive in-process.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The OpenAPI document of the served routes (as `/openapi.json`).
    pub fn openapi(&self) -> &utoipa::openapi::OpenApi {
        &self.openapi
    }

    /// The password hasher, whose [`Hasher::load`] tells how many hashes run.
    pub fn hasher(&self) -> &Hasher {
        &self.state.hasher
    }

    /// Re-reads signing keys now instead of at the next reload tick.
    ///
    /// # Errors
    /// When the database or a stored key cannot be read.
    pub async fn reload_keys(&self) -> Result<(), BoxError> {
        Ok(self.state.reload_keys().await?)
    }

    /// Deletes what can no longer matter now instead of at the next pruning
    /// round: expired refresh tokens and sessions, denylist entries no
    /// verifier needs, stale throttle counters.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn prune(&self) -> Result<(), BoxError> {
        Ok(self.state.prune().await?)
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    ///
    /// # Errors
    /// When accepting connections fails.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            listener,
            self.router
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
