//! axum extractors for verified claims (feature `axum`).
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::Deserialize;
//! use tower_jwt_auth::{JwtAuthLayer, axum::Claims};
//!
//! #[derive(Clone, Deserialize)]
//! struct User { sub: String }
//!
//! async fn me(Claims(user): Claims<User>) -> String { user.sub }
//! async fn hello(user: Option<Claims<User>>) -> String {
//!     user.map_or("hello, stranger".into(), |Claims(u)| format!("hello, {}", u.sub))
//! }
//!
//! let secret = b"0123456789abcdef0123456789abcdef";
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(JwtAuthLayer::<User>::builder().hs256(secret).build().unwrap())
//!     .merge(Router::new().route("/hello", get(hello))
//!         .layer(JwtAuthLayer::<User>::builder().hs256(secret).optional().build().unwrap()));
//! ```

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

/// The claims the layer verified and inserted. Without the layer in front
/// of the route this is a server misconfiguration: 500, like axum's
/// `Extension`. `Option<Claims<C>>` is `None` on anonymous requests of an
/// optional route.
#[derive(Clone, Debug)]
pub struct Claims<C>(pub C);

/// The layer did not run for this route.
#[derive(Debug)]
pub struct MissingClaims;

impl fmt::Display for MissingClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no verified claims on this request: is JwtAuthLayer applied to this route?")
    }
}

impl std::error::Error for MissingClaims {}

impl IntoResponse for MissingClaims {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "missing authentication layer",
        )
            .into_response()
    }
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = MissingClaims;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<C>()
            .cloned()
            .map(Claims)
            .ok_or(MissingClaims)
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<C>().cloned().map(Claims))
    }
}

impl IntoResponse for crate::Rejection {
    fn into_response(self) -> Response {
        self.to_http_response(crate::layer::DEFAULT_REALM)
            .map(axum_core::body::Body::from)
    }
}
