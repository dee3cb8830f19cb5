//! The companion login service of `tower-jwt-auth`: email and password in,
//! EdDSA-signed RFC 9068 access tokens and rotating refresh tokens out, its
//! own routes protected by the library's layer.
//!
//! The binary (`main.rs`) parses flags; everything else lives here so tests
//! can run the real service in-process:
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

#![forbid(unsafe_code)]

mod client_ip;
pub mod config;
mod devices;
mod error;
pub mod kek;
pub mod keys;
mod passwords;
mod revocation;
mod routes;
mod sessions;
pub mod store;
mod throttle;
pub mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_jwt_auth::JwtAuthLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use client_ip::parse_trusted_proxy;
pub use config::{Config, ThrottleConfig};
pub use error::ErrorBody;
pub use ipnet::IpNet;
pub use passwords::{HashLoad, Hasher};
pub use sessions::{AccessClaims, TokenResponse};

/// Errors from building or serving the app.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Request bodies above this are refused with 413 before parsing.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    store: store::Store,
    keys: keys::Keys,
    hasher: Hasher,
    throttle: throttle::Throttle,
    sessions: sessions::Sessions,
    issuer: Arc<str>,
    /// Peers whose `Forwarded`/`X-Forwarded-For` name the client.
    trusted_proxies: Arc<[IpNet]>,
    devices: devices::DeviceCookies,
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
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "login-service",
        description = "Email + password in, EdDSA-signed access tokens out. \
            Log in with `POST /auth/login`, press **Authorize** and paste the `access_token`.",
    ),
    // Shared response sets refer to it without registering it.
    components(schemas(error::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "movies", description = "Public reads; writes need scope movies:write"),
        (name = "discovery", description = "Keys and metadata for verifiers"),
    )
)]
struct ApiDoc;

/// The `bearer` scheme the protected operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
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
    /// assembles the routes and starts background key reloading.
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
        let retention = config.retired_key_retention().as_secs() as i64;
        let keys = keys::Keys::bootstrap(&store, &kek, retention).await?;
        let devices = devices::DeviceCookies::bootstrap(
            &store,
            &config.issuer,
            config.throttle.device_cookie_ttl,
        )
        .await?;
        let state = AppState(Arc::new(Inner {
            hasher: Hasher::new().await,
            throttle: throttle::Throttle::new(store.clone(), config.throttle.clone()),
            sessions: sessions::Sessions::new(
                store.clone(),
                keys.clone(),
                config.issuer.clone(),
                config.audience.clone(),
                config.access_token_ttl,
                config.refresh_token_ttl,
                config.session_max_lifetime,
            ),
            issuer: config.issuer.as_str().into(),
            trusted_proxies: config.trusted_proxies.as_slice().into(),
            devices,
            keys,
            store,
        }));
        let (router, openapi) = api_router(&config, &state)?.split_for_parts();
        let router = finish(router, &config, openapi.clone()).with_state(state.clone());
        spawn_maintenance(Arc::downgrade(&state.0), config.key_reload_interval);
        Ok(Self {
            router,
            openapi,
            state,
        })
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

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
        Ok(self.state.keys.reload(&self.state.store).await?)
    }

    /// Deletes what can no longer matter now instead of at the next pruning
    /// round: expired refresh tokens and sessions, denylist entries no
    /// verifier needs, stale throttle counters.
    ///
    /// # Errors
    /// On a database failure.
    pub async fn prune(&self) -> Result<(), BoxError> {
        self.state.sessions.prune().await?;
        self.state.throttle.prune().await?;
        Ok(())
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

/// Every documented route. Public ones first, then the ones behind the
/// library's layer: `route_layer` applies only to routes added before it,
/// which is what keeps the reads public.
fn api_router(config: &Config, state: &AppState) -> Result<OpenApiRouter<AppState>, BoxError> {
    let authenticated = auth_layer(config, state, None)?;
    let writers = auth_layer(config, state, Some("movies:write"))?;

    let mut public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::auth::login))
        .routes(routes!(routes::auth::refresh))
        .routes(routes!(routes::movies::list))
        .routes(routes!(routes::movies::get_one))
        .routes(routes!(routes::discovery::jwks))
        .routes(routes!(routes::discovery::openid_configuration));
    if config.registration {
        public = public.routes(routes!(routes::auth::register));
    }
    let signed_in = OpenApiRouter::new()
        .routes(routes!(routes::auth::me))
        .routes(routes!(routes::auth::logout))
        .route_layer(authenticated);
    let editors = OpenApiRouter::new()
        .routes(routes!(routes::movies::create))
        .routes(routes!(routes::movies::update))
        .routes(routes!(routes::movies::delete))
        .route_layer(writers);
    Ok(public.merge(signed_in).merge(editors))
}

fn auth_layer(
    config: &Config,
    state: &AppState,
    scope: Option<&str>,
) -> Result<JwtAuthLayer<AccessClaims>, tower_jwt_auth::Error> {
    let builder = JwtAuthLayer::<AccessClaims>::builder()
        .key_store(state.keys.store())
        .issuer(config.issuer.clone())
        .audience(config.audience.clone())
        .require_typ_at_jwt()
        .realm("login-service")
        .revocation(revocation::DbRevocations::new(state.store.clone()));
    match scope {
        Some(scope) => builder.require_scope(scope),
        None => builder,
    }
    .build()
}

/// What every response may load and who may frame it: nothing and nobody.
/// The API answers JSON, which no browser should render as a document.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// What the Swagger UI at `/docs` needs, all served from here (no CDN):
/// its scripts and styles, `data:` images from its stylesheet, and calls to
/// this service. Swagger UI sets inline styles as it renders, so styles may be
/// inline; scripts may not. Still unframeable, so it cannot be clickjacked.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The undocumented surroundings: the documentation itself, JSON 404/405,
/// body limit, security headers and request tracing.
fn finish(
    router: Router<AppState>,
    config: &Config,
    openapi: utoipa::openapi::OpenApi,
) -> Router<AppState> {
    let router = if config.docs {
        let docs: Router<AppState> = SwaggerUi::new("/docs").url("/openapi.json", openapi).into();
        router.merge(docs.layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        )))
    } else {
        let json = serde_json::to_value(&openapi).unwrap_or_default();
        router.route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(json) }),
        )
    };
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(
            // Method and path only: no headers, so no Authorization.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
}

/// Key reloads and table pruning. Holds the state weakly, so the task ends
/// once the app is dropped.
fn spawn_maintenance(state: Weak<Inner>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut rounds: u64 = 0;
        loop {
            ticks.tick().await;
            let Some(state) = state.upgrade() else { return };
            if let Err(e) = state.keys.reload(&state.store).await {
                tracing::warn!(error = %e, "signing key reload failed; keeping current keys");
            }
            rounds += 1;
            // Pruning is housekeeping: every 20th tick (10 min by default).
            if rounds.is_multiple_of(20) {
                if let Err(e) = state.sessions.prune().await {
                    tracing::warn!(error = %e, "pruning sessions failed");
                }
                if let Err(e) = state.throttle.prune().await {
                    tracing::warn!(error = %e, "pruning throttle counters failed");
                }
            }
        }
    });
}

/// Creates an account from the command line (e.g. the first admin).
///
/// # Errors
/// On invalid input, a taken email or a database failure.
pub async fn add_user(
    database_url: &str,
    email: &str,
    password: String,
    name: Option<String>,
    role: &str,
) -> Result<users::Account, BoxError> {
    let store = store::Store::connect(database_url, 1).await?;
    let hasher = Hasher::new().await;
    users::create(&store, &hasher, email, password, name, role)
        .await
        .map_err(|e| -> BoxError {
            match e {
                users::CreateError::Invalid(why) => why.into(),
                users::CreateError::Taken => "an account with this email exists".into(),
                users::CreateError::Db(e) => e.into(),
            }
        })
}

/// Adds a signing key, encrypted under the KEK in `kek_file` (see
/// [`Config::key_encryption_key_file`]), that starts signing after
/// `activate_after_secs`; returns its kid.
///
/// # Errors
/// On a missing or wrong KEK or a database failure.
pub async fn rotate_key(
    database_url: &str,
    kek_file: Option<&std::path::Path>,
    activate_after_secs: i64,
) -> Result<String, BoxError> {
    let store = store::Store::connect(database_url, 1).await?;
    let kek = kek::resolve(kek_file, database_url, &store).await?;
    keys::prepare(&store, &kek).await?;
    Ok(keys::rotate(&store, &kek, activate_after_secs).await?)
}

/// Re-encrypts every private signing key from the KEK in `kek_file` (see
/// [`Config::key_encryption_key_file`]) to the one in `new_kek_file`, in
/// one transaction; returns how many keys were re-encrypted.
///
/// # Errors
/// When either KEK cannot be read, the current one is not the database's,
/// or on a database failure (then nothing changed).
pub async fn rewrap_keys(
    database_url: &str,
    kek_file: Option<&std::path::Path>,
    new_kek_file: &std::path::Path,
) -> Result<usize, BoxError> {
    let store = store::Store::connect(database_url, 1).await?;
    let new = kek::Kek::read(new_kek_file)?;
    let old = kek::resolve(kek_file, database_url, &store).await?;
    if old.id() == new.id() {
        return Err("the new key-encryption key is the current one".into());
    }
    Ok(keys::rewrap(&store, &old, &new).await?)
}
