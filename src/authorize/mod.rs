//! Authorization on claims: what a verified token must grant for a route.
//!
//! A [`Policy`] is a set of requirements, all of which must hold:
//!
//! - scopes, read from the space-delimited `scope` claim (RFC 8693, RFC 9068)
//!   and from `scp` (a string, also space-delimited, or an array of
//!   strings): [`all_scopes`](PolicyBuilder::all_scopes) or
//!   [`any_scope`](PolicyBuilder::any_scope);
//! - roles at a claim path ([`Roles`]): `roles`, `groups`, Keycloak's
//!   realm roles or one client's roles, each path kept apart:
//!   [`all_roles`](PolicyBuilder::all_roles) or
//!   [`any_role`](PolicyBuilder::any_role);
//! - predicates on the application's claims type `C`:
//!   [`claims`](PolicyBuilder::claims).
//!
//! It is checked in three places, one mechanism:
//!
//! - per route, as a layer: [`AuthorizeLayer`] (axum's `route_layer` on one
//!   route or a group, or around a tonic server), placed inside (after) the
//!   [`JwtAuthLayer`](crate::JwtAuthLayer);
//! - per handler, as an axum extractor guard: `axum::Authorized<C, R>` with
//!   a [`Requirement`] (feature `axum`);
//! - for every route of an authentication layer:
//!   [`JwtAuthBuilder::require_scope`](crate::JwtAuthBuilder::require_scope)
//!   and [`JwtAuthBuilder::authorize`](crate::JwtAuthBuilder::authorize) add
//!   to that layer's own policy.
//!
//! A token that fails a policy is answered 403 with
//! `WWW-Authenticate: Bearer error="insufficient_scope"` (and `scope="…"`,
//! the scopes of the failed scope rule, when a scope rule failed) over HTTP,
//! `grpc-status: 7` (PERMISSION_DENIED) over gRPC. A request without a valid
//! token never gets that far: the authentication layer answers it 401, and
//! a route layer that sees no claims at all (an
//! [`optional`](crate::JwtAuthBuilder::optional) authentication layer let an
//! anonymous request through) answers 401 with the plain `Bearer`
//! challenge. Rules are checked in this order: scopes, roles, predicates.
//!
//! Scope names are checked when the policy is built: RFC 6749 §3.3 scope
//! tokens (`%x21 / %x23-5B / %x5D-7E`, so no space, `"` or `\`), so every
//! one is safe inside the challenge's quoted `scope` attribute.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use http::{Request, StatusCode};
//! use serde::Deserialize;
//! use tower::ServiceExt;
//! use tower_jwt_auth::JwtAuthLayer;
//! use tower_jwt_auth::authorize::{Policy, Roles};
//!
//! #[derive(Clone, Deserialize)]
//! struct User { sub: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = JwtAuthLayer::<User>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .build()?;
//! let writers = Policy::<User>::builder()
//!     .scope("movies:write")
//!     .any_role(Roles::client("movies-api"), ["editor", "admin"])
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/movies", post(|| async { "created" }))
//!     .route_layer(auth.require(writers)) // only the routes above
//!     .route("/catalogue", get(|| async { "list" }))
//!     .layer(auth);
//!
//! let response = app
//!     .oneshot(Request::post("/movies").body(axum::body::Body::empty())?)
//!     .await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! # What the route layer reads, and what it costs
//!
//! Scopes and roles are in the token, not necessarily in `C`. Once any
//! policy that reads them (a scope or role rule) has been built, every
//! [`JwtAuthLayer`](crate::JwtAuthLayer) of the process keeps each verified
//! token's payload (its JSON, one reference-counted copy) in the request
//! extensions, and the policy reads only the members it needs from it.
//! Until then nothing is kept: a service that uses no such policy pays one
//! relaxed atomic load per request, no allocation, and a service whose
//! policies only hold predicates on `C` reads `C` alone. The payload is
//! only ever inserted by the authentication layer, after the signature and
//! every claim check held, so a route layer never reads unverified JSON.
//! The alternatives were worse for one group of users: keeping the payload
//! always costs everyone an allocation per request; a switch on the
//! authentication layer could be forgotten, and the route would then fail.
//!
//! So build policies before serving, as configuration: a policy first
//! built while requests are under way (say, lazily in a handler) finds no
//! payload on the requests authenticated before it existed, and such a
//! request is answered 500 with an error logged, never let through. The
//! layer-wide rules of a [`JwtAuthBuilder`](crate::JwtAuthBuilder) are
//! checked while the payload is at hand and keep nothing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Extensions;

use crate::authenticate::Predicate;
use crate::claims::{self, Registered};
use crate::error::Error;
use crate::reject::{Rejection, RejectionKind};

mod layer;
mod roles;

#[cfg(feature = "axum")]
pub(crate) use layer::payload_not_kept;
pub use layer::{Authorize, AuthorizeLayer, ResponseFuture};
pub use roles::Roles;

/// Set once some policy reading scopes or roles exists in the process;
/// from then on authentication layers keep each verified payload.
static PAYLOAD_WANTED: AtomicBool = AtomicBool::new(false);

/// Whether authentication layers must keep the verified payload.
pub(crate) fn payload_wanted() -> bool {
    // Relaxed: the flag guards no other data; a request that raced with the
    // first policy's construction is answered 500, never let through.
    PAYLOAD_WANTED.load(Ordering::Relaxed)
}

/// The verified token's payload JSON, inserted into the request extensions
/// by the authentication layer beside `C` while [`payload_wanted`].
#[derive(Clone, Debug)]
pub(crate) struct TokenPayload(Arc<[u8]>);

impl TokenPayload {
    pub(crate) fn new(payload: &[u8]) -> Self {
        TokenPayload(Arc::from(payload))
    }

    /// The payload JSON.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Whether `scope` is an RFC 6749 §3.3 scope token:
/// `1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// A requirement on role names at one path.
#[derive(Debug)]
struct RoleRule {
    at: Roles,
    roles: Vec<String>,
    all: bool,
}

struct Rules<C> {
    /// Every one of these (one all-of rule, so a 403 names them all).
    all_scopes: Vec<String>,
    /// At least one of each.
    any_scopes: Vec<Vec<String>>,
    roles: Vec<RoleRule>,
    claims: Vec<Predicate<C>>,
}

impl<C> Rules<C> {
    fn reads_scopes(&self) -> bool {
        !self.all_scopes.is_empty() || !self.any_scopes.is_empty()
    }

    fn reads_payload(&self) -> bool {
        self.reads_scopes() || !self.roles.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.reads_payload() && self.claims.is_empty()
    }
}

impl<C> fmt::Debug for Rules<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("all_scopes", &self.all_scopes)
            .field("any_scopes", &self.any_scopes)
            .field("roles", &self.roles)
            .field("claims", &self.claims.len())
            .finish()
    }
}

/// What a verified token must grant; see the [module docs](self).
///
/// Cheap to clone (one reference count); built with [`Policy::builder`].
pub struct Policy<C> {
    rules: Arc<Rules<C>>,
}

impl<C> Clone for Policy<C> {
    fn clone(&self) -> Self {
        Policy {
            rules: Arc::clone(&self.rules),
        }
    }
}

impl<C> fmt::Debug for Policy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rules.fmt(f)
    }
}

/// Why a policy did not let a request through.
#[derive(Debug)]
pub(crate) enum Denial {
    /// The answer: 401 without claims, 403 when a rule failed.
    Refused(Rejection),
    /// The policy reads the token's payload, which the authentication
    /// layer did not keep: the policy was built after this request was
    /// authenticated. A server error, never a pass.
    PayloadNotKept,
}

impl<C> Policy<C> {
    /// Starts a policy.
    pub fn builder() -> PolicyBuilder<C> {
        PolicyBuilder::new()
    }

    /// Whether the policy requires nothing at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks a verified token: its claims, its payload and, when the
    /// authentication pass already read them, its registered claims.
    pub(crate) fn check(
        &self,
        claims: &C,
        payload: &[u8],
        registered: Option<&Registered<'_>>,
    ) -> Result<(), Rejection> {
        let rules = &*self.rules;
        if rules.reads_scopes() {
            let parsed;
            let registered = match registered {
                Some(registered) => registered,
                None => {
                    // Cannot fail on a payload the authentication layer
                    // accepted; if it did, the token grants nothing.
                    parsed = claims::parse(payload, &[]).unwrap_or_default();
                    &parsed
                }
            };
            let missing = |scopes: &[String]| RejectionKind::InsufficientScope {
                required: scopes.join(" "),
            };
            if !rules.all_scopes.iter().all(|s| registered.has_scope(s)) {
                return Err(missing(&rules.all_scopes).into());
            }
            if let Some(any) = rules
                .any_scopes
                .iter()
                .find(|any| !any.iter().any(|s| registered.has_scope(s)))
            {
                return Err(missing(any).into());
            }
        }
        for rule in &rules.roles {
            let granted = rule.at.read(payload).unwrap_or_default();
            let has = |role: &String| granted.iter().any(|g| g == role);
            let holds = if rule.all {
                rule.roles.iter().all(has)
            } else {
                rule.roles.iter().any(has)
            };
            if !holds {
                return Err(RejectionKind::Forbidden.into());
            }
        }
        if !rules.claims.iter().all(|rule| rule(claims)) {
            return Err(RejectionKind::Forbidden.into());
        }
        Ok(())
    }

    /// Checks a request behind the authentication layer, from what that
    /// layer put into its extensions; the claims when they pass.
    pub(crate) fn authorize<'e>(&self, extensions: &'e Extensions) -> Result<&'e C, Denial>
    where
        C: Send + Sync + 'static,
    {
        let Some(claims) = extensions.get::<C>() else {
            tracing::debug!(
                claims = std::any::type_name::<C>(),
                "no verified claims on a route with a policy"
            );
            return Err(Denial::Refused(RejectionKind::MissingToken.into()));
        };
        let payload = match extensions.get::<TokenPayload>() {
            Some(TokenPayload(payload)) => payload,
            None if self.rules.reads_payload() => return Err(Denial::PayloadNotKept),
            None => &[][..],
        };
        self.check(claims, payload, None)
            .map(|()| claims)
            .map_err(Denial::Refused)
    }
}

/// Builds a [`Policy`]. Every requirement added must hold; names are
/// checked by [`build`](Self::build).
pub struct PolicyBuilder<C> {
    rules: Rules<C>,
    error: Option<Error>,
}

impl<C> fmt::Debug for PolicyBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBuilder")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl<C> Default for PolicyBuilder<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> PolicyBuilder<C> {
    /// A policy that requires nothing yet.
    pub fn new() -> Self {
        PolicyBuilder {
            rules: Rules {
                all_scopes: Vec::new(),
                any_scopes: Vec::new(),
                roles: Vec::new(),
                claims: Vec::new(),
            },
            error: None,
        }
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(Error::Config(message));
    }

    fn scopes<I>(&mut self, scopes: I) -> Vec<String>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            self.fail(format!(
                "{bad:?} is not a scope token (RFC 6749 §3.3: printable ASCII without space, '\"' or '\\')"
            ));
        }
        scopes
    }

    /// Requires one scope.
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.all_scopes([scope])
    }

    /// Requires every one of these scopes.
    pub fn all_scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes = self.scopes(scopes);
        for scope in scopes {
            if !self.rules.all_scopes.contains(&scope) {
                self.rules.all_scopes.push(scope);
            }
        }
        self
    }

    /// Requires at least one of these scopes (call again for another
    /// alternative that must hold as well).
    pub fn any_scope<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes = self.scopes(scopes);
        if scopes.is_empty() {
            self.fail("any_scope needs at least one scope".into());
        }
        self.rules.any_scopes.push(scopes);
        self
    }

    fn roles<I>(mut self, at: Roles, roles: I, all: bool) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let roles: Vec<String> = roles.into_iter().map(Into::into).collect();
        if let Some(problem) = at.problem() {
            self.fail(problem.into());
        } else if !all && roles.is_empty() {
            self.fail(format!("any_role at {at} needs at least one role"));
        } else if roles.iter().any(String::is_empty) {
            self.fail(format!("an empty role name at {at}"));
        }
        self.rules.roles.push(RoleRule { at, roles, all });
        self
    }

    /// Requires one role at `at`.
    pub fn role(self, at: Roles, role: impl Into<String>) -> Self {
        self.roles(at, [role], true)
    }

    /// Requires every one of these roles at `at`.
    pub fn all_roles<I>(self, at: Roles, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.roles(at, roles, true)
    }

    /// Requires at least one of these roles at `at`.
    pub fn any_role<I>(self, at: Roles, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.roles(at, roles, false)
    }

    /// Requires `rule` to hold for the application's claims.
    pub fn claims(mut self, rule: impl Fn(&C) -> bool + Send + Sync + 'static) -> Self {
        self.rules.claims.push(Box::new(rule));
        self
    }

    /// Checks the names and builds the policy. From then on,
    /// authentication layers keep what a scope or role rule reads (see
    /// the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid name: a scope that is not an
    /// RFC 6749 scope token, an empty role name or path, or an any-of
    /// requirement without alternatives.
    pub fn build(self) -> Result<Policy<C>, Error> {
        let policy = self.build_here()?;
        if policy.rules.reads_payload() {
            PAYLOAD_WANTED.store(true, Ordering::Relaxed);
        }
        Ok(policy)
    }

    /// Builds a policy checked inside the authentication layer itself,
    /// where the payload is at hand: nothing needs to be kept for it.
    pub(crate) fn build_here(self) -> Result<Policy<C>, Error> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(Policy {
                rules: Arc::new(self.rules),
            }),
        }
    }
}

/// A named policy for axum's `Authorized<C, R>` extractor guard (feature
/// `axum`): implemented by a unit struct, so that a handler's signature says
/// what it requires.
///
/// # Example
///
/// ```
/// use std::sync::LazyLock;
/// use serde::Deserialize;
/// use tower_jwt_auth::authorize::{Policy, Requirement, Roles};
///
/// #[derive(Clone, Deserialize)]
/// struct User { sub: String }
///
/// struct Admins;
///
/// impl Requirement<User> for Admins {
///     fn policy() -> &'static Policy<User> {
///         static POLICY: LazyLock<Policy<User>> = LazyLock::new(|| {
///             Policy::builder()
///                 .role(Roles::realm(), "admin")
///                 .build()
///                 .expect("a valid policy")
///         });
///         &POLICY
///     }
/// }
///
/// // Before serving: a bad name fails here rather than on a request, and
/// // the authentication layer knows to keep the roles from now on.
/// Admins::policy();
/// ```
pub trait Requirement<C>: 'static {
    /// The `realm` of the challenge a refused request gets.
    const REALM: &'static str = crate::DEFAULT_REALM;

    /// The policy; return the same one every time (a `static`).
    fn policy() -> &'static Policy<C>;
}

#[cfg(test)]
mod tests;
