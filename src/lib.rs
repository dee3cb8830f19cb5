//! JSON Web Token authentication for any tower service: axum routers,
//! tonic servers, plain hyper.
//!
//! [`JwtAuthLayer`] finds the token (`Authorization: Bearer` by default),
//! verifies its signature and claims, and inserts the application's own
//! claims type into the request extensions before calling the inner
//! service. Bad or missing tokens get RFC 6750 answers over HTTP and the
//! matching `grpc-status` over gRPC.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use serde::Deserialize;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::JwtAuthLayer;
//!
//! #[derive(Clone, Deserialize)]
//! struct Claims { sub: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = JwtAuthLayer::<Claims>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .issuer("https://auth.example.com")
//!     .audience("movies-api")
//!     .build()?;
//!
//! let service = ServiceBuilder::new().layer(auth).service(service_fn(|req: Request<String>| async move {
//!     let sub = req.extensions().get::<Claims>().map(|c| c.sub.clone());
//!     Ok::<_, std::convert::Infallible>(Response::new(sub.unwrap_or_default()))
//! }));
//!
//! let response = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"api\"");
//! # Ok(()) }
//! ```
//!
//! # Security defaults
//!
//! - Every key is pinned to one algorithm; `alg: none` and unlisted
//!   algorithms are refused; `jwk`, `jku`, `x5u`, `x5c` headers are ignored.
//! - HMAC secrets shorter than the hash output (32, 48, 64 bytes for
//!   HS256, HS384, HS512) are refused at configuration time; RSA keys are
//!   parsed then too and must be 2048 to 4096 bits.
//! - A token is checked against at most [`keys::MAX_KEYS_TRIED`] keys.
//! - gRPC answers (HTTP 200 + `grpc-status`) only for HTTP/2 gRPC and
//!   gRPC-web; every rejection is `Cache-Control: no-store`.
//! - Tokens over 8 KiB, non-canonical base64url, duplicate JSON members,
//!   `crit`, and nested (`cty: JWT`) tokens are refused.
//! - `exp` is required and exclusive; `nbf` and `iat` are checked; 30 s
//!   leeway. `iss`/`aud` must be strings of the configured values.
//! - The signature is checked before any claim, and every invalid token
//!   gets the same description.
//!
//! # Features
//!
//! - `rust_crypto` (default): jsonwebtoken's pure-Rust backend.
//! - `aws_lc_rs`: jsonwebtoken's AWS-LC backend; wins when both are on.
//! - `axum`: `axum::Claims` extractors, the `axum::Authorized` guard;
//!   [`Rejection`] as a response.
//! - `issue`: `issue::SigningKey` and JWKS export, for token issuers.
//! - `remote-jwks`: keys from a JWKS URL or an OpenID issuer, refreshed in
//!   the background (`keys::remote`, `JwtAuthBuilder::jwks_url` /
//!   `oidc_issuer`); `remote-jwks-native-roots`: its default client trusts
//!   the system's root certificates instead of the webpki ones.
//! - `cache`: [`cache::TokenCache`], a bounded verified-token cache.
//! - `metrics`: counters and gauges on the `metrics` facade; see the `metrics` module.
//! - `redis`: `revoke::redis`, revocations shared by every process through
//!   Redis, answered from a local mirror (and, with `dpop`, the shared
//!   `dpop::RedisReplayStore`).
//! - `dpop`: `dpop`, DPoP (RFC 9449) sender-constrained tokens, allowed
//!   or required per layer (`JwtAuthBuilder::dpop`).
//!
//! # Modules, along one request
//!
//! [`JwtAuthLayer`] wraps the inner service in [`JwtAuth`], which runs one
//! authentication step per request: the token is found ([`token`]), its
//! signature checked against the [`keys`], its claims read and checked, a
//! [`revoke`] check run when configured; any failure is a [`Rejection`]
//! answered as [`reject`] describes. [`JwtAuthBuilder`] assembles all of it
//! once. Behind it, [`authorize`] checks per-route requirements on the
//! verified claims (scopes, roles, predicates: 403).
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// In the order a request meets them. rustfmt sorts adjacent `mod` lines,
// hence one line per group.

// `JwtAuthLayer`, `JwtAuth` and `ResponseFuture`.
mod service;

// `JwtAuthBuilder`: configuration assembled and checked once.
mod builder;

// The per-request pipeline: token to claims or a `Rejection`.
mod authenticate;

// Where a token is found; size limits.
pub mod token;

// The crate's own `Algorithm` and the JOSE name table.
mod alg;

// Strict compact serialization and the JOSE header.
mod jws;

// Several issuers: each one's keys and rules, chosen by `iss`.
mod issuer;

// Keys, key sets (signature checks included), the key store.
pub mod keys;

// The one-pass decoder, registered claims, the claim rules.
mod claims;

// Per-route requirements on claims (scopes, roles, predicates) → 403.
pub mod authorize;

// The revocation trait, the in-memory store, the Redis mirror.
pub mod revoke;

// DPoP proofs: checks, replay stores, nonces.
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub mod dpop;

// The verified-token cache.
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache;

// Rejections and their HTTP / gRPC answers.
pub mod reject;

// The response body: the inner service's or a rejection's.
mod body;

// Support: the signature backend, errors, JSON helpers.
mod crypto;
pub mod error;
mod json;

#[cfg(feature = "issue")]
#[cfg_attr(docsrs, doc(cfg(feature = "issue")))]
pub mod issue;

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

// Metric names and recording; without the feature the recording functions
// are empty and the module private.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;

pub use alg::Algorithm;
pub use authorize::{AuthorizeLayer, Policy, Roles};
pub use body::JwtAuthBody;
pub use builder::JwtAuthBuilder;
pub use claims::{DEFAULT_LEEWAY, RegisteredClaims};
pub use error::{BoxError, Error};
pub use issuer::Issuer;
pub use keys::{KeySet, KeyStore, VerifyingKey};
pub use reject::{DEFAULT_REALM, GrpcCode, Reason, Rejection, RejectionKind};
pub use service::{JwtAuth, JwtAuthLayer, ResponseFuture};
pub use token::DEFAULT_MAX_TOKEN_LEN;
