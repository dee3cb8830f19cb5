//! Revocation: refuse verified tokens that were withdrawn before expiry.
//!
//! A [`RevocationCheck`] is consulted once the signature and every claim
//! check that answers 401 passed, so forged or expired tokens never cost a
//! store round-trip; and before scopes and authorization rules are
//! answered, so a revoked token is 401 `invalid_token` (gRPC 16), never 403,
//! whatever route it is presented to. Its errors answer 503 with
//! `Retry-After` (gRPC 14 UNAVAILABLE): a store that cannot be trusted must
//! not let revoked tokens through, nor be mistaken for a bad token.
//!
//! # What is revoked
//!
//! A [`Revocation`] names tokens by what the issuer put in them, never by
//! the token's bytes (ECDSA signatures are malleable, so one token has
//! several valid encodings):
//!
//! - [`Revocation::Token`]: one token, by `(iss, jti)` (logout);
//! - [`Revocation::Session`]: every token of one session, by `(iss, sid)`
//!   (a refresh-token family revoked for reuse);
//! - [`Revocation::Subject`]: every token of subject `sub` of issuer `iss`
//!   issued (`iat`) before an instant (log out everywhere).
//!
//! Each carries `until`, the latest `exp` of the tokens it revokes: stores
//! keep an entry until then plus the verifiers' leeway, and drop it after,
//! so they hold no more than the revocations of live tokens.
//!
//! # Stores
//!
//! - [`MemoryRevocations`]: an in-memory store, usable alone (one process)
//!   and the mirror every shared store feeds. Its check is a synchronous
//!   lookup ([`RevocationCheck::is_revoked_now`]): the layer boxes no
//!   future for it.
//! - `redis::RedisRevocations` (feature `redis`): a [`MemoryRevocations`]
//!   mirror kept current from Redis by a background task, so a revocation
//!   published by any process is honoured by every process, with no Redis
//!   round trip per request. See the `redis` module for the staleness bound
//!   and the policy when Redis cannot be reached ([`StalePolicy`]).
//!
//! # Example
//!
//! ```
//! use tower_jwt_auth::revoke::{MemoryRevocations, Revocation, RevocationCheck};
//! use tower_jwt_auth::RegisteredClaims;
//!
//! let revocations = MemoryRevocations::new();
//! revocations.revoke(Revocation::token("https://auth.example.com", "t-1", 4_000_000_000));
//!
//! let mut claims = RegisteredClaims::default();
//! claims.iss = Some("https://auth.example.com".into());
//! claims.jti = Some("t-1".into());
//! assert_eq!(revocations.is_revoked_now(&claims).unwrap().unwrap(), true);
//! # let _ = tower_jwt_auth::JwtAuthLayer::<serde_json::Value>::builder().revocation(revocations);
//! ```
//!
//! A store of your own implements [`RevocationCheck`]; its future owns what
//! it needs:
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::claims::RegisteredClaims;
use crate::error::BoxError;

mod memory;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use memory::{Clock, MemoryRevocations, MemoryRevocationsBuilder, SystemClock};

/// What a [`RevocationCheck`] returns: `Ok(true)` when revoked.
pub type RevocationFuture = Pin<Box<dyn Future<Output = Result<bool, BoxError>> + Send + 'static>>;

/// Decides whether a verified token has been revoked.
pub trait RevocationCheck: Send + Sync + 'static {
    /// Looks the token up; the future owns what it needs.
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture;

    /// The answer without waiting, for stores that hold it in memory:
    /// `Some` answers the request at once (no future is boxed), `None` (the
    /// default) makes the layer await [`is_revoked`](Self::is_revoked).
    /// Both must agree whenever this returns `Some`.
    fn is_revoked_now(&self, claims: &RegisteredClaims) -> Option<Result<bool, BoxError>> {
        let _ = claims;
        None
    }

    /// Called by every layer built with this store, with the longest
    /// leeway its verifiers allow past a token's `exp`. A store that
    /// forgets an entry once its token expired must keep it at least that
    /// long, or the revoked token would verify again inside the leeway
    /// ([`MemoryRevocations`] and the Redis mirror widen their own leeway
    /// to it). The default does nothing: a store that never forgets needs
    /// nothing.
    fn keep_past_exp(&self, leeway: Duration) {
        let _ = leeway;
    }
}

/// A withdrawn token, session or subject; see the [module docs](self).
///
/// Serialized (the Redis store's wire format) as a JSON object tagged by
/// `kind`: `{"kind":"token","iss":…,"jti":…,"exp":…}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Revocation {
    /// The token `jti` of issuer `iss`, which expires at `exp`.
    Token {
        /// `iss`; empty matches tokens without one.
        iss: String,
        /// `jti`.
        jti: String,
        /// The token's `exp`, seconds since the epoch.
        exp: i64,
    },
    /// Every token of session `sid` (OpenID Connect `sid`; the login
    /// service's refresh-token family) of issuer `iss`.
    Session {
        /// `iss`; empty matches tokens without one.
        iss: String,
        /// `sid`.
        sid: String,
        /// The latest `exp` of the session's tokens.
        until: i64,
    },
    /// Every token of subject `sub` of issuer `iss` whose `iat` is before
    /// `issued_before`; a token without `iat` counts as issued before.
    Subject {
        /// `iss`; empty matches tokens without one.
        iss: String,
        /// `sub`.
        sub: String,
        /// Seconds since the epoch; `iat` must be at least this to pass.
        issued_before: i64,
        /// The latest `exp` of the tokens it revokes.
        until: i64,
    },
}

impl Revocation {
    /// [`Revocation::Token`].
    pub fn token(iss: impl Into<String>, jti: impl Into<String>, exp: i64) -> Self {
        Revocation::Token {
            iss: iss.into(),
            jti: jti.into(),
            exp,
        }
    }

    /// [`Revocation::Session`].
    pub fn session(iss: impl Into<String>, sid: impl Into<String>, until: i64) -> Self {
        Revocation::Session {
            iss: iss.into(),
            sid: sid.into(),
            until,
        }
    }

    /// [`Revocation::Subject`]: log `sub` out everywhere.
    pub fn subject(
        iss: impl Into<String>,
        sub: impl Into<String>,
        issued_before: i64,
        until: i64,
    ) -> Self {
        Revocation::Subject {
            iss: iss.into(),
            sub: sub.into(),
            issued_before,
            until,
        }
    }

    /// The latest `exp` of the tokens this revokes: after it (plus the
    /// leeway) the entry can go.
    pub fn until(&self) -> i64 {
        match self {
            Revocation::Token { exp, .. } => *exp,
            Revocation::Session { until, .. } | Revocation::Subject { until, .. } => *until,
        }
    }
}

/// What a mirror's check answers once it can no longer be trusted (it has
/// not heard from its source within its staleness bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StalePolicy {
    /// Refuse every token the mirror cannot vouch for: the check errors and
    /// the layer answers 503 with `Retry-After` (gRPC 14). The default.
    #[default]
    FailClosed,
    /// Keep answering from the mirror as it is: what it holds is still
    /// refused, but revocations made during the outage are not honoured
    /// until it hears from its source again. Availability over safety.
    FailOpen,
}

/// The error a mirror answers under [`StalePolicy::FailClosed`] once it has
/// not heard from its source within its staleness bound.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleError {
    /// How long ago the mirror last heard from its source, `None` if never.
    pub last_heard: Option<Duration>,
    /// The bound it was configured with.
    pub max_staleness: Duration,
}

impl fmt::Display for StaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last_heard {
            Some(ago) => write!(
                f,
                "revocation mirror not current: last heard from its source {} ms ago (bound {} ms)",
                ago.as_millis(),
                self.max_staleness.as_millis()
            ),
            None => {
                f.write_str("revocation mirror not current: never synchronised with its source")
            }
        }
    }
}

impl std::error::Error for StaleError {}
