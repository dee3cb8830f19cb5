//! DPoP, sender-constrained access tokens (RFC 9449; feature `dpop`).
//!
//! A DPoP-bound access token names the client's key in its claims
//! (`"cnf": {"jkt": "<RFC 7638 thumbprint>"}`), and is sent as
//! `Authorization: DPoP <token>` with a `DPoP` header: a proof JWT the
//! client signs with that key for this very request. A stolen token is
//! useless without the key; a captured proof is useless for another
//! request, later, or a second time.
//!
//! A layer checks DPoP once built with
//! [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop), in one of two modes:
//!
//! - [`Dpop::allowed`]: both schemes. `Bearer` works for unbound tokens; a
//!   bound token (with `cnf.jkt`) sent as `Bearer` is refused (RFC 9449
//!   §7.2), and a token sent as `DPoP` must be bound.
//! - [`Dpop::required`]: only `DPoP`; a `Bearer` token, or one from any
//!   other configured source (cookie, header, query), is answered as no
//!   token at all.
//!
//! # What a DPoP request must hold
//!
//! After the access token passed every check of the layer (signature,
//! claims, rules; a verified-token cache hit included), the proof in the
//! single `DPoP` header (two are refused) is checked:
//!
//! 1. at most [`MAX_PROOF_LEN`] bytes, compact JWS, no duplicate JSON
//!    member in its header or claims, no `crit`;
//! 2. `typ` is `dpop+jwt`;
//! 3. `alg` is one of [`Dpop::algorithms`] (asymmetric only; by default
//!    [`DEFAULT_ALGORITHMS`]);
//! 4. the `jwk` header is a public EC (P-256, P-384), RSA (2048 to 4096
//!    bits) or Ed25519 key fitting `alg`: no private member (`d`, `p`, `q`,
//!    `dp`, `dq`, `qi`, `oth`), no symmetric (`oct`) key;
//! 5. the signature verifies with that key;
//! 6. `htm` is the request's method;
//! 7. `htu` is the request's URI without query and fragment, both
//!    normalised (RFC 3986 §6.2.2, §6.2.3: case of scheme and host, default
//!    ports, percent-encoding, dot segments, empty path `/`);
//! 8. `iat` is at most [`Dpop::proof_window`]'s `past` old and at most its
//!    `future` ahead ([`DEFAULT_MAX_AGE`], [`DEFAULT_MAX_SKEW`]);
//! 9. `ath` is the base64url SHA-256 of the access token;
//! 10. the token's `cnf.jkt` is the proof key's thumbprint;
//! 11. with [`Dpop::nonces`], `nonce` is a current server nonce;
//! 12. last, no proof with the same key and `jti` was accepted while it
//!     could be ([`ReplayStore`]).
//!
//! Then the inner service finds a [`DpopProof`] (the key's thumbprint, the
//! `jti`, the `iat`) in the request extensions next to the claims; a
//! Bearer request has none.
//!
//! # The request's URI, behind proxies
//!
//! `htu` is compared with the URI the client used. With
//! [`Dpop::external_base`] (`https://api.example.com`, or
//! `https://example.com/api` behind a proxy that strips `/api`) that is
//! the base followed by the request's path. Without it, it is the request
//! URI's own scheme and host when it has them (HTTP/2, absolute-form
//! requests), otherwise `http` and the `Host` header. Those come from the
//! client: set the external base in production, so that a proof made for
//! another host is refused whatever `Host` says, and so that a service
//! terminating TLS itself (HTTP/1.1 requests carry no scheme) compares
//! `https`. `Forwarded` and `X-Forwarded-*` headers are never read.
//!
//! # Replays
//!
//! Each accepted proof is recorded under the SHA-256 of its key's
//! thumbprint and its `jti` (so clients never collide, and every key is 43
//! characters) until its `iat` leaves the window. [`MemoryReplayStore`]
//! (the default, one per layer) answers synchronously; several instances
//! behind one load balancer share `RedisReplayStore` (feature `redis`):
//! one `SET key 1 NX PX ttl` round trip per DPoP request, which the check
//! inherently needs. A store that cannot answer fails closed: 503 with
//! `Retry-After` (gRPC 14), as an unreachable revocation store does.
//!
//! # Answers
//!
//! Over HTTP, 401 with `WWW-Authenticate: DPoP realm="…", error="…",
//! error_description="…", algs="ES256 …"` (`invalid_dpop_proof` for a bad
//! proof, `invalid_token` for a bad or wrongly bound token sent as
//! `DPoP`, `use_dpop_nonce` with a `DPoP-Nonce` header), and in `allowed`
//! mode a `Bearer realm="…"` challenge in a second `WWW-Authenticate`
//! field (it carries the error when the request used `Bearer`). gRPC
//! requests get `grpc-status` 16 (14 when the replay store is down), and
//! the `dpop-nonce` header when a nonce is handed out. See
//! [`reject`](crate::reject).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, StatusCode};
//! use serde::Deserialize;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::JwtAuthLayer;
//! use tower_jwt_auth::dpop::{Dpop, DpopProof, Nonces};
//!
//! #[derive(Clone, Deserialize)]
//! struct Claims { sub: String }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dpop = Dpop::required()
//!     .external_base("https://api.example.com")?
//!     .nonces(Nonces::new(b"a-long-random-nonce-secret-0123456789", Duration::from_secs(300))?);
//! let auth = JwtAuthLayer::<Claims>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .dpop(dpop)
//!     .build()?;
//! let service = ServiceBuilder::new().layer(auth).service(service_fn(|req: Request<String>| async move {
//!     // The proof's key thumbprint, next to the claims.
//!     let jkt = req.extensions().get::<DpopProof>().map(|proof| proof.jkt.clone());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(jkt.unwrap_or_default()))
//! }));
//!
//! let response = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     "DPoP realm=\"api\", algs=\"ES256 ES384 RS256 PS256 EdDSA\""
//! );
//! # Ok(()) }
//! ```

mod htu;
mod nonce;
mod proof;
#[cfg(feature = "redis")]
mod redis;
mod replay;
mod verifier;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use nonce::{MIN_NONCE_SECRET_LEN, Nonces};
pub use proof::{MAX_PROOF_LEN, access_token_hash, thumbprint};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{DEFAULT_REPLAY_KEY_PREFIX, RedisReplayStore};
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, MemoryReplayStore, ReplayFuture, ReplayStore, ReplayStoreFull,
};
pub(crate) use verifier::{Accepted, replay_verdict};
pub use verifier::{DPOP, DpopError, ProofVerifier};

use crate::alg::Algorithm;
use crate::claims::Clock;
use crate::error::Error;
use htu::ExternalBase;

/// The proof algorithms accepted unless [`Dpop::algorithms`] says
/// otherwise: what both signature backends verify and DPoP clients use.
pub const DEFAULT_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// How old a proof's `iat` may be by default: one minute.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

/// How far ahead of the server's clock a proof's `iat` may be by default.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(10);

/// A layer's DPoP settings; hand it to
/// [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop) (or to
/// [`ProofVerifier::new`]). See the [module docs](self).
#[derive(Clone)]
pub struct Dpop {
    pub(crate) required: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) max_age: Duration,
    pub(crate) max_skew: Duration,
    pub(crate) base: Option<ExternalBase>,
    pub(crate) store: Option<Arc<dyn ReplayStore>>,
    pub(crate) nonces: Option<Nonces>,
    pub(crate) clock: Option<Clock>,
    /// The first configuration mistake, reported when the layer is built.
    pub(crate) error: Option<String>,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("required", &self.required)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("max_skew", &self.max_skew)
            .field("external_base", &self.base)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

impl Dpop {
    fn new(required: bool) -> Self {
        Dpop {
            required,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            max_age: DEFAULT_MAX_AGE,
            max_skew: DEFAULT_MAX_SKEW,
            base: None,
            store: None,
            nonces: None,
            clock: None,
            error: None,
        }
    }

    /// Both schemes: `Bearer` for unbound tokens, `DPoP` for bound ones.
    pub fn allowed() -> Self {
        Self::new(false)
    }

    /// Only the `DPoP` scheme.
    pub fn required() -> Self {
        Self::new(true)
    }

    /// The proof algorithms accepted, announced in the challenge's `algs`
    /// in this order ([`DEFAULT_ALGORITHMS`] by default). Only asymmetric
    /// algorithms: an HMAC one is a configuration error, reported when the
    /// layer is built.
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms.clear();
        for alg in algs {
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                self.error.get_or_insert_with(|| {
                    format!("DPoP proofs are signed with asymmetric keys, not {alg}")
                });
            } else if !self.algorithms.contains(&alg) {
                self.algorithms.push(alg);
            }
        }
        self
    }

    /// How old (`past`) and how far ahead of this server's clock
    /// (`future`) a proof's `iat` may be, in whole seconds
    /// ([`DEFAULT_MAX_AGE`], [`DEFAULT_MAX_SKEW`]). Proofs are remembered
    /// by the replay store until they are `past` old.
    #[must_use]
    pub fn proof_window(mut self, past: Duration, future: Duration) -> Self {
        self.max_age = past;
        self.max_skew = future;
        self
    }

    /// The scheme, host and optional path prefix clients reach this
    /// service at (`https://api.example.com`, `https://example.com/api`):
    /// `htu` must be this followed by the request's path. See the
    /// [module docs](self#the-requests-uri-behind-proxies).
    ///
    /// # Errors
    /// [`Error::Config`] unless `base` is an absolute `http` or `https`
    /// URI with a host, no user information, query or fragment.
    pub fn external_base(mut self, base: &str) -> Result<Self, Error> {
        self.base = Some(ExternalBase::parse(base)?);
        Ok(self)
    }

    /// Where accepted proofs are remembered (default: a
    /// [`MemoryReplayStore`] of the layer's own). Several instances serving
    /// the same clients must share one.
    #[must_use]
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Requires a server nonce in every proof (RFC 9449 §9).
    #[must_use]
    pub fn nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Reads the time from `now` for `iat`, nonces and replay entries
    /// (default: the layer's clock, see
    /// [`JwtAuthBuilder::clock`](crate::JwtAuthBuilder::clock); the system
    /// clock for a [`ProofVerifier`]).
    #[must_use]
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Clock::new(now));
        self
    }

    /// Whether the Bearer scheme is refused.
    pub fn is_required(&self) -> bool {
        self.required
    }
}

/// A proof the layer accepted, inserted into the request extensions next
/// to the claims (and returned by [`ProofVerifier::verify`]). A request
/// that used the Bearer scheme has none.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpopProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: the
    /// token's `cnf.jkt`.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`, seconds since the epoch.
    pub iat: u64,
    /// A newer server nonce, when the proof carried the previous one.
    next_nonce: Option<String>,
}

impl DpopProof {
    /// A newer server nonce to hand out in `DPoP-Nonce` with the response,
    /// when the proof carried the previous slot's (the layer adds the
    /// header to the response itself).
    pub fn next_nonce(&self) -> Option<&str> {
        self.next_nonce.as_deref()
    }
}

/// What [`ProofVerifier::verify`] returns.
pub type VerifiedProof = DpopProof;
