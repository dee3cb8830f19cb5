//! axum extractors for verified claims (feature `axum`): [`Claims`], and
//! [`Authorized`], a guard that also requires a [`Policy`](crate::Policy).
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
use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::authorize::{Denial, Requirement, payload_not_kept};

/// The claims the layer verified and inserted. Without the layer in front
/// of the route this is a server misconfiguration: 500, like axum's
/// `Extension`. `Option<Claims<C>>` is `None` on anonymous requests of an
/// optional route.
#[derive(Clone, Debug)]
pub struct Claims<C>(pub C);

/// The layer did not run for this route: no `C` in the extensions. Like
/// axum's `MissingExtension`, it names the type that was missing.
pub struct MissingClaims<C> {
    _claims: PhantomData<fn() -> C>,
}

impl<C> MissingClaims<C> {
    fn new() -> Self {
        MissingClaims {
            _claims: PhantomData,
        }
    }

    /// The name of the claims type that was asked for.
    pub fn type_name(&self) -> &'static str {
        std::any::type_name::<C>()
    }
}

impl<C> fmt::Debug for MissingClaims<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MissingClaims")
            .field("type", &self.type_name())
            .finish()
    }
}

impl<C> fmt::Display for MissingClaims<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no verified claims of type `{}` on this request: is JwtAuthLayer<{0}> applied to this route?",
            self.type_name()
        )
    }
}

impl<C> std::error::Error for MissingClaims<C> {}

impl<C> IntoResponse for MissingClaims<C> {
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
    type Rejection = MissingClaims<C>;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<C>()
            .cloned()
            .map(Claims)
            .ok_or_else(MissingClaims::new)
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

/// The verified claims of a request whose token satisfies the policy of
/// the [`Requirement`] `R`: a guard a handler's signature reads as what it
/// requires, `Authorized<User, Admins>`.
///
/// Refusals are [`Rejection`](crate::Rejection)s answered with
/// `R::REALM`: 403 `insufficient_scope` (with `scope="…"` when a scope rule
/// failed) when the token lacks what `R` requires, 401 when there are no
/// claims (an [`optional`](crate::JwtAuthBuilder::optional) layer let an
/// anonymous request through, or no layer covers the route). Build the
/// policy before serving (see [`Requirement`]): a policy that reads scopes
/// or roles and was built after a request was authenticated answers it 500.
///
/// # Example
///
/// ```
/// use std::sync::LazyLock;
/// use axum::{Router, routing::delete};
/// use serde::Deserialize;
/// use tower_jwt_auth::JwtAuthLayer;
/// use tower_jwt_auth::authorize::{Policy, Requirement, Roles};
/// use tower_jwt_auth::axum::Authorized;
///
/// #[derive(Clone, Deserialize)]
/// struct User { sub: String }
///
/// /// Keycloak realm admins of the movies realm.
/// struct Admins;
///
/// impl Requirement<User> for Admins {
///     const REALM: &'static str = "movies";
///
///     fn policy() -> &'static Policy<User> {
///         static POLICY: LazyLock<Policy<User>> = LazyLock::new(|| {
///             Policy::builder().role(Roles::realm(), "admin").build().expect("a valid policy")
///         });
///         &POLICY
///     }
/// }
///
/// async fn delete_movie(Authorized(admin, ..): Authorized<User, Admins>) -> String {
///     format!("deleted by {}", admin.sub)
/// }
///
/// Admins::policy(); // before serving
/// let auth = JwtAuthLayer::<User>::builder()
///     .hs256(b"0123456789abcdef0123456789abcdef")
///     .realm("movies")
///     .build()?;
/// let app: Router = Router::new().route("/movies/{id}", delete(delete_movie)).layer(auth);
/// # Ok::<(), tower_jwt_auth::Error>(())
/// ```
pub struct Authorized<C, R>(pub C, pub PhantomData<fn() -> R>);

impl<C, R> Authorized<C, R> {
    /// The verified claims.
    pub fn into_inner(self) -> C {
        self.0
    }
}

impl<C, R> Deref for Authorized<C, R> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C: Clone, R> Clone for Authorized<C, R> {
    fn clone(&self) -> Self {
        Authorized(self.0.clone(), PhantomData)
    }
}

impl<C: fmt::Debug, R> fmt::Debug for Authorized<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Authorized")
            .field(&self.0)
            .field(&std::any::type_name::<R>())
            .finish()
    }
}

impl<S, C, R> FromRequestParts<S> for Authorized<C, R>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
    R: Requirement<C>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match R::policy().authorize(&parts.extensions) {
            Ok(claims) => Ok(Authorized(claims.clone(), PhantomData)),
            Err(Denial::Refused(rejection)) => Err(rejection.with_realm(R::REALM).into_response()),
            Err(Denial::PayloadNotKept) => Err(payload_not_kept().map(axum_core::body::Body::from)),
        }
    }
}

impl IntoResponse for crate::Rejection {
    fn into_response(self) -> Response {
        self.to_http_response(self.realm())
            .map(axum_core::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_claims_names_the_type() {
        let missing = MissingClaims::<std::collections::BTreeMap<String, u8>>::new();
        assert!(
            missing
                .to_string()
                .contains("BTreeMap<alloc::string::String, u8>")
        );
        assert_eq!(missing.into_response().status(), 500);
    }

    #[test]
    fn a_rejection_answers_with_the_realm_of_its_layer() {
        let layer = crate::JwtAuthLayer::<serde_json::Value>::builder()
            .hs256(b"0123456789abcdef0123456789abcdef")
            .realm("movies")
            .build()
            .unwrap();
        let rejection = layer.verify("a.b.c").unwrap_err();
        assert_eq!(rejection.realm(), "movies");
        let response = rejection.into_response();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()[http::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"movies\""),
            "{challenge}"
        );
        let by_hand = crate::Rejection::from(crate::RejectionKind::MissingToken);
        assert_eq!(by_hand.realm(), crate::DEFAULT_REALM);
    }
}
