//! Revocation: refuse verified tokens that were withdrawn before expiry.
//!
//! A [`RevocationCheck`] is consulted once the signature and every claim
//! check that answers 401 passed, so forged or expired tokens never cost a
//! store round-trip; and before scopes and authorization rules are
//! answered, so a revoked token is 401 `invalid_token` (gRPC 16), never 403,
//! whatever route it is presented to. Its errors answer 503 (gRPC
//! UNAVAILABLE): a store that cannot be reached must not let revoked tokens
//! through, nor be mistaken for a bad token.
//!
//! Key a denylist on `(iss, jti)`, never on the token's bytes: ECDSA
//! signatures are malleable, so one token has several valid encodings.
//!
//! # Example
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::{Arc, RwLock};
//! use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
//! use tower_jwt_auth::RegisteredClaims;
//!
//! #[derive(Clone, Default)]
//! struct Denylist(Arc<RwLock<HashSet<String>>>);
//!
//! impl RevocationCheck for Denylist {
//!     fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
//!         let revoked = claims.jti.as_ref().is_some_and(|jti| self.0.read().unwrap().contains(jti));
//!         Box::pin(async move { Ok(revoked) })
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;

use crate::claims::RegisteredClaims;
use crate::error::BoxError;

/// What a [`RevocationCheck`] returns: `Ok(true)` when revoked.
pub type RevocationFuture = Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'static>>;

/// Decides whether a verified token has been revoked.
pub trait RevocationCheck: Send + Sync + 'static {
    /// Looks the token up; the future owns what it needs.
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture;
}
