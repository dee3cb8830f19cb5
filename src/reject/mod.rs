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
//! use tower_jwt_auth::{JwtAuthLayer, Reason, Rejection};
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
//! let answer = Rejection::InvalidToken(Reason::Expired).to_http_response("movies");
//! assert_eq!(answer.status(), 401);
//! assert_eq!(
//!     answer.headers()["www-authenticate"],
//!     "Bearer realm=\"movies\", error=\"invalid_token\", error_description=\"The access token is invalid or has expired\""
//! );
//! # Ok::<(), tower_jwt_auth::Error>(())
//! ```

use std::fmt;

use http::{HeaderName, StatusCode};

mod respond;
mod response;

pub(crate) use respond::{Protocol, Render, Responder};
pub(crate) use response::NO_STORE;

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
        })
    }
}

/// Why a request was not passed to the inner service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
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
    /// Keys or the revocation store could not be consulted.
    Unavailable,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MissingToken => f.write_str("no bearer token"),
            Rejection::AmbiguousToken => f.write_str("token presented in more than one place"),
            Rejection::InvalidToken(reason) => write!(f, "invalid token: {reason}"),
            Rejection::InsufficientScope { required } => write!(f, "missing scope {required}"),
            Rejection::Forbidden => f.write_str("token not authorized for this resource"),
            Rejection::Unavailable => f.write_str("verification keys unavailable"),
        }
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::AmbiguousToken => StatusCode::BAD_REQUEST,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden => StatusCode::FORBIDDEN,
            Rejection::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 error code, if the answer carries one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::MissingToken => None,
            Rejection::AmbiguousToken => Some("invalid_request"),
            Rejection::InvalidToken(_) => Some("invalid_token"),
            Rejection::InsufficientScope { .. } | Rejection::Forbidden => {
                Some("insufficient_scope")
            }
            Rejection::Unavailable => Some("temporarily_unavailable"),
        }
    }

    /// The generic, client-facing description.
    pub fn description(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "A bearer token is required",
            Rejection::AmbiguousToken => "The token must be sent in exactly one place",
            Rejection::InvalidToken(_) => "The access token is invalid or has expired",
            Rejection::InsufficientScope { .. } => "The access token lacks the required scope",
            Rejection::Forbidden => "The access token does not grant access to this resource",
            Rejection::Unavailable => "Token verification is temporarily unavailable",
        }
    }

    /// The gRPC status code this rejection is answered with.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            Rejection::MissingToken | Rejection::InvalidToken(_) => GrpcCode::Unauthenticated,
            Rejection::AmbiguousToken => GrpcCode::InvalidArgument,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden => {
                GrpcCode::PermissionDenied
            }
            Rejection::Unavailable => GrpcCode::Unavailable,
        }
    }
}
