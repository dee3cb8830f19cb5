//! HTTP handlers, grouped by resource, and the router that assembles them
//! with the library's layer and the surrounding layers. Each handler
//! carries its OpenAPI description next to its code, so the document cannot
//! drift from the router.

pub mod auth;
pub mod discovery;
pub mod movies;
mod responses;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_jwt_auth::JwtAuthLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{self, ApiError};
use crate::openapi::ApiDoc;
use crate::{AccessClaims, AppState, BODY_LIMIT, BoxError, Config};

/// The service's router, with `state`, and the OpenAPI document of its
/// routes.
pub(crate) fn router(
    config: &Config,
    state: &AppState,
) -> Result<(Router, utoipa::openapi::OpenApi), BoxError> {
    let (router, openapi) = api_router(config, state)?.split_for_parts();
    let router = finish(router, config, openapi.clone()).with_state(state.clone());
    Ok((router, openapi))
}

/// PostgreSQL cannot store NUL in TEXT; refuse it up front instead of
/// letting the insert fail as a server error.
pub(crate) fn reject_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::unprocessable(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

/// Every documented route. Public ones first, then the ones behind the
/// library's layer: `route_layer` applies only to routes added before it,
/// which is what keeps the reads public.
fn api_router(config: &Config, state: &AppState) -> Result<OpenApiRouter<AppState>, BoxError> {
    let authenticated = auth_layer(config, state, None)?;
    let writers = auth_layer(config, state, Some("movies:write"))?;

    let mut public = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(movies::list))
        .routes(routes!(movies::get_one))
        .routes(routes!(discovery::jwks))
        .routes(routes!(discovery::openid_configuration));
    if config.registration {
        public = public.routes(routes!(auth::register));
    }
    let signed_in = OpenApiRouter::new()
        .routes(routes!(auth::me))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .route_layer(authenticated);
    let editors = OpenApiRouter::new()
        .routes(routes!(movies::create))
        .routes(routes!(movies::update))
        .routes(routes!(movies::delete))
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
        // Bearer tokens as before; DPoP-bound ones only with a proof by
        // their key, checked against the issuer URL and the replay store
        // the token endpoints share.
        .dpop(state.dpop.layer())
        // Answered from the in-memory mirror: no query per request.
        .revocation(state.revocations.mirror())
        .cache(state.token_cache.clone());
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
