//! Rejections and how they are answered.
//!
//! Over HTTP the answers follow RFC 6750 §3:
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials, or another scheme | 401 | `Bearer realm="…"` (no error code) |
//! | token in several places | 400 | `Bearer realm="…", error="invalid_request", …` |
//! | bad, expired or unknown token | 401 | `Bearer realm="…", error="invalid_token", …` |
//! | valid token, missing scope | 403 | `Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | keys or revocation store unreachable | 503 | none; `Retry-After` |
//!
//! A layer that accepts DPoP (feature `dpop`, RFC 9449 §7.1) answers with a
//! `DPoP` challenge naming the accepted proof algorithms (`algs="…"`),
//! beside the `Bearer` one (a second `WWW-Authenticate` field) unless it
//! requires DPoP. The error code goes in the challenge of the scheme the
//! request used: `DPoP realm="…", error="invalid_token", …` for a bad token
//! sent with the DPoP scheme, `error="invalid_dpop_proof"` for a bad proof,
//! `error="use_dpop_nonce"` with a fresh `DPoP-Nonce` header when a server
//! nonce is wanted.
//!
//! with a small JSON body `{"error": …, "error_description": …}`. The
//! description of an invalid token is the same whatever check failed, so a
//! forger learns nothing about which check stopped the token; the precise
//! [`Reason`] is logged at `debug` and handed to custom renderers.
//!
//! gRPC requests get what tonic's `Status::into_http` writes: HTTP 200,
//! trailers-only, with `grpc-status` 16 (UNAUTHENTICATED), 7
//! (PERMISSION_DENIED), 3 (INVALID_ARGUMENT) or 14 (UNAVAILABLE) and a
//! `grpc-message`. A request counts as gRPC when it came over HTTP/2 with
//! an `application/grpc*` content type, or carries a gRPC-web content type
//! (`application/grpc-web*`, any HTTP version); the content type alone
//! never earns an HTTP 200, because a client chooses it. Everything else,
//! `application/grpc` over HTTP/1.1 included, gets the HTTP answer.
//! [`JwtAuthBuilder::grpc_answers`](crate::JwtAuthBuilder::grpc_answers)
//! turns gRPC answers off altogether.
//!
//! Every rejection carries `Cache-Control: no-store`.
//!
//! # Example
//!
//! A custom renderer that keeps the RFC 6750 headers and adds a trace id:
//!
//! ```
//! use tower_jwt_auth::{JwtAuthLayer, Reason, Rejection, RejectionKind};
//!
//! let layer = JwtAuthLayer::<serde_json::Value>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .on_rejection(|rejection: &Rejection| {
//!         let mut response = rejection.to_http_response("movies");
//!         response.headers_mut().insert("x-trace-id", "abc123".parse().unwrap());
//!         response
//!     })
//!     .build()?;
//!
//! let answer = Rejection::from(RejectionKind::InvalidToken(Reason::Expired)).to_http_response("movies");
//! assert_eq!(answer.status(), 401);
//! assert_eq!(
//!     answer.headers()["www-authenticate"],
//!     "Bearer realm=\"movies\", error=\"invalid_token\", error_description=\"The access token is invalid or has expired\""
//! );
//! # Ok::<(), tower_jwt_auth::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, StatusCode};

mod respond;
mod response;

pub(crate) use respond::{Protocol, Render, Responder};
pub use response::DPOP_NONCE;
pub(crate) use response::NO_STORE;

/// Default `realm` of the `WWW-Authenticate` challenge.
pub const DEFAULT_REALM: &str = "api";

/// The gRPC trailer (trailers-only: header) carrying the status code.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC trailer (trailers-only: header) carrying the status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// The gRPC status codes a rejection is answered with (a subset of
/// gRPC's `Code`, numbered as on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 3: the request is malformed (a token in several places).
    InvalidArgument = 3,
    /// 7: a valid token that may not do this.
    PermissionDenied = 7,
    /// 14: keys or the revocation store cannot be consulted; retry later.
    Unavailable = 14,
    /// 16: no valid token.
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code's number, as written in `grpc-status`.
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        })
    }
}

/// Why a token was refused. Never shown to the client by the default
/// renderers; useful in logs and custom renderers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Longer than the configured maximum.
    TooLarge,
    /// Not three non-empty base64url segments of `[A-Za-z0-9_-]`.
    Malformed,
    /// Header is not a JSON object, or a header member has the wrong type.
    BadHeader,
    /// `alg` is `none`, unknown, or not one any configured key is pinned to.
    Algorithm,
    /// No configured key matches the token's `kid` and `alg`.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// A `crit` header names extensions this verifier does not implement.
    Critical,
    /// `cty: JWT`: nested tokens are not accepted.
    Nested,
    /// `typ` is not `at+jwt` while RFC 9068 tokens are required.
    Type,
    /// A JSON object repeats a member name.
    DuplicateMember,
    /// The payload is not a JSON object, or a registered claim has the wrong
    /// JSON type.
    BadClaims,
    /// A required claim is absent.
    MissingClaim,
    /// `exp` is at or before now (beyond the leeway).
    Expired,
    /// `nbf` is after now (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future, or older than the maximum age.
    IssuedAt,
    /// `iss` is not an accepted issuer.
    Issuer,
    /// `aud` names none of the accepted audiences.
    Audience,
    /// The claims do not deserialize into the application's type.
    ClaimsType,
    /// An application claim rule returned false.
    ClaimsRule,
    /// The token was revoked.
    Revoked,
    /// DPoP: a token bound to a key (`cnf.jkt`) sent with the Bearer scheme
    /// (RFC 9449 §7.2).
    TokenBound,
    /// DPoP: a token sent with the DPoP scheme that is bound to no key (no
    /// `cnf.jkt`).
    TokenNotBound,
    /// DPoP: the token's `cnf.jkt` is not the thumbprint of the proof's key.
    BindingMismatch,
    /// DPoP: no `DPoP` proof header.
    ProofMissing,
    /// DPoP: more than one `DPoP` header.
    ProofRepeated,
    /// DPoP: the proof's `typ` is not `dpop+jwt`.
    ProofType,
    /// DPoP: the proof's `jwk` header is missing, holds a private or
    /// symmetric key, does not fit its `alg`, or is unusable.
    ProofKey,
    /// DPoP: a proof claim (`jti`, `htm`, `htu`, `iat`, `ath`) is missing
    /// or has the wrong type, or `ath` is there without an access token.
    ProofClaims,
    /// DPoP: the proof's `htm` is not the request's method.
    ProofMethod,
    /// DPoP: the proof's `htu` is not the request's URI.
    ProofUri,
    /// DPoP: the proof's `iat` is outside the accepted window.
    ProofIssuedAt,
    /// DPoP: the proof's `ath` is not the hash of the access token.
    ProofTokenHash,
    /// DPoP: a proof with this key and `jti` was already presented.
    ProofReplayed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::TooLarge => "token too large",
            Reason::Malformed => "malformed compact serialization",
            Reason::BadHeader => "invalid JOSE header",
            Reason::Algorithm => "algorithm not accepted",
            Reason::UnknownKey => "no matching key",
            Reason::Signature => "signature mismatch",
            Reason::Critical => "unsupported critical header",
            Reason::Nested => "nested token",
            Reason::Type => "wrong token type",
            Reason::DuplicateMember => "duplicate JSON member",
            Reason::BadClaims => "invalid claims",
            Reason::MissingClaim => "required claim missing",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not yet valid",
            Reason::IssuedAt => "issued-at out of range",
            Reason::Issuer => "issuer not accepted",
            Reason::Audience => "audience not accepted",
            Reason::ClaimsType => "claims do not match the application type",
            Reason::ClaimsRule => "claims rejected by rule",
            Reason::Revoked => "revoked",
            Reason::TokenBound => "DPoP-bound token sent as a bearer token",
            Reason::TokenNotBound => "token not bound to a DPoP key",
            Reason::BindingMismatch => "token bound to another DPoP key",
            Reason::ProofMissing => "no DPoP proof",
            Reason::ProofRepeated => "more than one DPoP proof",
            Reason::ProofType => "DPoP proof type is not dpop+jwt",
            Reason::ProofKey => "unacceptable DPoP proof key",
            Reason::ProofClaims => "invalid DPoP proof claims",
            Reason::ProofMethod => "DPoP proof for another method",
            Reason::ProofUri => "DPoP proof for another URI",
            Reason::ProofIssuedAt => "DPoP proof issued outside the accepted window",
            Reason::ProofTokenHash => "DPoP proof for another access token",
            Reason::ProofReplayed => "DPoP proof replayed",
        })
    }
}

/// What kind of refusal a [`Rejection`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No token (or another authentication scheme) on a protected route.
    MissingToken,
    /// The request carried credentials in more than one place.
    AmbiguousToken,
    /// The token is not acceptable.
    InvalidToken(Reason),
    /// The token is valid but lacks a required scope (space-separated list).
    InsufficientScope {
        /// The scopes the route requires.
        required: String,
    },
    /// The token is valid but an authorization rule refused it.
    Forbidden,
    /// Keys, the revocation store or the DPoP replay store could not be
    /// consulted.
    Unavailable,
    /// The DPoP proof is not acceptable (feature `dpop`); 401
    /// `invalid_dpop_proof`.
    InvalidDpopProof(Reason),
    /// The DPoP proof lacks a current server nonce (feature `dpop`); 401
    /// `use_dpop_nonce`, with a fresh nonce in the `DPoP-Nonce` header
    /// ([`Rejection::dpop_nonce`]).
    UseDpopNonce,
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectionKind::MissingToken => f.write_str("no bearer token"),
            RejectionKind::AmbiguousToken => f.write_str("token presented in more than one place"),
            RejectionKind::InvalidToken(reason) => write!(f, "invalid token: {reason}"),
            RejectionKind::InsufficientScope { required } => write!(f, "missing scope {required}"),
            RejectionKind::Forbidden => f.write_str("token not authorized for this resource"),
            RejectionKind::Unavailable => f.write_str("verification keys unavailable"),
            RejectionKind::InvalidDpopProof(reason) => write!(f, "invalid DPoP proof: {reason}"),
            RejectionKind::UseDpopNonce => f.write_str("DPoP proof without a current server nonce"),
        }
    }
}

/// Why a request was not passed to the inner service: its
/// [`RejectionKind`], and the realm of the layer that refused it, so that
/// answering it later (axum's `IntoResponse`, with the `axum` feature)
/// announces the configured realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    realm: Option<Arc<str>>,
    /// What a DPoP layer adds to the answer; `None` elsewhere.
    dpop: Option<Box<DpopAnswer>>,
}

impl From<RejectionKind> for Rejection {
    fn from(kind: RejectionKind) -> Self {
        Rejection {
            kind,
            realm: None,
            dpop: None,
        }
    }
}

/// How a refused request presented its token, for the challenge of a
/// layer that accepts DPoP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
pub(crate) enum Scheme {
    /// No token.
    #[default]
    None,
    /// `Authorization: Bearer`, or any other configured source.
    Bearer,
    /// `Authorization: DPoP`.
    Dpop,
}

/// The layer's DPoP challenge: the same for every answer of one layer.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
pub(crate) struct DpopChallenge {
    /// The accepted proof algorithms, space-separated (`algs`).
    pub(crate) algs: String,
    /// Whether the Bearer scheme is refused (no Bearer challenge then).
    pub(crate) required: bool,
}

/// The DPoP side of one answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
struct DpopAnswer {
    scheme: Scheme,
    /// A fresh server nonce for the `DPoP-Nonce` header.
    nonce: Option<String>,
    challenge: Option<Arc<DpopChallenge>>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// What kind of refusal this is.
    pub fn kind(&self) -> &RejectionKind {
        &self.kind
    }

    /// The `realm` of the layer that refused the request, or
    /// [`DEFAULT_REALM`] for a rejection made by hand.
    pub fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or(DEFAULT_REALM)
    }

    /// The same rejection, announcing `realm`.
    #[must_use]
    pub fn with_realm(mut self, realm: impl Into<Arc<str>>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The fresh server nonce answered in the `DPoP-Nonce` header, if any
    /// (feature `dpop`; always with [`RejectionKind::UseDpopNonce`]).
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop.as_ref()?.nonce.as_deref()
    }

    fn dpop_mut(&mut self) -> &mut DpopAnswer {
        self.dpop.get_or_insert_with(Box::default)
    }

    /// The same rejection, for a request that used `scheme`.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    pub(crate) fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.dpop_mut().scheme = scheme;
        self
    }

    /// The same rejection, handing out a fresh server nonce.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    pub(crate) fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_mut().nonce = Some(nonce);
        self
    }

    /// The same rejection, answered with the layer's DPoP challenge.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    pub(crate) fn with_dpop_challenge(mut self, challenge: &Arc<DpopChallenge>) -> Self {
        self.dpop_mut().challenge = Some(Arc::clone(challenge));
        self
    }

    /// The DPoP challenge to answer with and the scheme the request used.
    fn dpop_challenge(&self) -> Option<(&DpopChallenge, Scheme)> {
        let answer = self.dpop.as_deref()?;
        Some((answer.challenge.as_deref()?, answer.scheme))
    }

    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::MissingToken
            | RejectionKind::InvalidToken(_)
            | RejectionKind::InvalidDpopProof(_)
            | RejectionKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
            RejectionKind::AmbiguousToken => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope { .. } | RejectionKind::Forbidden => {
                StatusCode::FORBIDDEN
            }
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 error code, if the answer carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match &self.kind {
            RejectionKind::MissingToken => None,
            RejectionKind::AmbiguousToken => Some("invalid_request"),
            RejectionKind::InvalidToken(_) => Some("invalid_token"),
            RejectionKind::InsufficientScope { .. } | RejectionKind::Forbidden => {
                Some("insufficient_scope")
            }
            RejectionKind::Unavailable => Some("temporarily_unavailable"),
            RejectionKind::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            RejectionKind::UseDpopNonce => Some("use_dpop_nonce"),
        }
    }

    /// The generic, client-facing description.
    pub fn description(&self) -> &'static str {
        match &self.kind {
            RejectionKind::MissingToken
                if self.dpop_challenge().is_some_and(|(c, _)| c.required) =>
            {
                "A DPoP-bound access token is required"
            }
            RejectionKind::MissingToken => "A bearer token is required",
            RejectionKind::AmbiguousToken => "The token must be sent in exactly one place",
            RejectionKind::InvalidToken(_) => "The access token is invalid or has expired",
            RejectionKind::InsufficientScope { .. } => "The access token lacks the required scope",
            RejectionKind::Forbidden => "The access token does not grant access to this resource",
            RejectionKind::Unavailable => "Token verification is temporarily unavailable",
            RejectionKind::InvalidDpopProof(_) => "The DPoP proof is invalid",
            RejectionKind::UseDpopNonce => "Resource server requires nonce in DPoP proof",
        }
    }

    /// The gRPC status code this rejection is answered with.
    pub fn grpc_code(&self) -> GrpcCode {
        match &self.kind {
            RejectionKind::MissingToken
            | RejectionKind::InvalidToken(_)
            | RejectionKind::InvalidDpopProof(_)
            | RejectionKind::UseDpopNonce => GrpcCode::Unauthenticated,
            RejectionKind::AmbiguousToken => GrpcCode::InvalidArgument,
            RejectionKind::InsufficientScope { .. } | RejectionKind::Forbidden => {
                GrpcCode::PermissionDenied
            }
            RejectionKind::Unavailable => GrpcCode::Unavailable,
        }
    }
}
