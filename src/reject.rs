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

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

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

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// No rejection may be stored and replayed by a cache.
pub(crate) const NO_STORE: &str = "no-store";

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

    /// The default RFC 6750 HTTP answer, with `realm`.
    pub fn to_http_response(&self, realm: &str) -> Response<Bytes> {
        let status = self.status();
        let mut response = Response::new(self.json_body());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        } else if let Ok(challenge) = HeaderValue::from_str(&self.challenge(realm)) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }

    /// The gRPC answer: HTTP 200, trailers-only, as tonic writes a `Status`.
    /// Meant for gRPC requests only (HTTP/2, or gRPC-web): anything that
    /// judges by the HTTP status reads it as a success.
    pub fn to_grpc_response(&self) -> Response<Bytes> {
        self.grpc_response_as("application/grpc")
    }

    /// The gRPC-web answer: as [`Rejection::to_grpc_response`], trailers-only
    /// (the status in the headers, as gRPC-web allows), with the gRPC-web
    /// content type tonic-web answers with; `text` for
    /// `application/grpc-web-text`.
    pub fn to_grpc_web_response(&self, text: bool) -> Response<Bytes> {
        self.grpc_response_as(if text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        })
    }

    fn grpc_response_as(&self, content_type: &'static str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_code().as_i32()));
        // The descriptions are plain ASCII without '%', so no percent-encoding is needed.
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static(self.description()));
        if matches!(self, Rejection::Unavailable) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        response
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3).
    pub fn challenge(&self, realm: &str) -> String {
        let realm = quote(realm);
        match (self.error_code(), self) {
            (None, _) => format!("Bearer realm=\"{realm}\""),
            (Some(code), Rejection::InsufficientScope { required }) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\", scope=\"{}\"",
                self.description(),
                quote(required)
            ),
            (Some(code), _) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ),
        }
    }

    fn json_body(&self) -> Bytes {
        let code = self.error_code().unwrap_or("unauthorized");
        let body = match self {
            Rejection::InsufficientScope { required } => serde_json::json!({
                "error": code, "error_description": self.description(), "scope": required,
            }),
            _ => serde_json::json!({ "error": code, "error_description": self.description() }),
        };
        Bytes::from(body.to_string())
    }
}

/// RFC 6750 quoted strings exclude `"` and `\`; drop them rather than
/// emit a header a client cannot parse.
fn quote(value: &str) -> String {
    value
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let r = Rejection::MissingToken.to_http_response("api");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
    }

    #[test]
    fn invalid_token_descriptions_do_not_depend_on_the_reason() {
        let a = Rejection::InvalidToken(Reason::Signature).to_http_response("api");
        let b = Rejection::InvalidToken(Reason::Expired).to_http_response("api");
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.body(), b.body());
        assert!(
            a.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"api\", error=\"invalid_token\"")
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::InsufficientScope {
            required: "movies:write".into(),
        };
        let http = r.to_http_response("api");
        assert_eq!(http.status(), 403);
        assert!(
            http.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with("scope=\"movies:write\"")
        );
        let body: serde_json::Value = serde_json::from_slice(http.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn grpc_answers_are_trailers_only() {
        let r = Rejection::Unavailable.to_grpc_response();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(
            Rejection::Forbidden.to_grpc_response().headers()["grpc-status"],
            "7"
        );
        assert_eq!(
            Rejection::MissingToken.to_grpc_response().headers()["grpc-status"],
            "16"
        );
        assert!(r.body().is_empty());
        let web = Rejection::MissingToken.to_grpc_web_response(false);
        assert_eq!(web.headers()[CONTENT_TYPE], "application/grpc-web+proto");
        assert_eq!(web.headers()["grpc-status"], "16");
        let text = Rejection::MissingToken.to_grpc_web_response(true);
        assert_eq!(
            text.headers()[CONTENT_TYPE],
            "application/grpc-web-text+proto"
        );
    }

    #[test]
    fn every_answer_is_no_store() {
        for rejection in [
            Rejection::MissingToken,
            Rejection::AmbiguousToken,
            Rejection::InvalidToken(Reason::Expired),
            Rejection::Forbidden,
            Rejection::Unavailable,
        ] {
            for response in [
                rejection.to_http_response("api"),
                rejection.to_grpc_response(),
                rejection.to_grpc_web_response(false),
            ] {
                assert_eq!(response.headers()[CACHE_CONTROL], "no-store", "{rejection}");
            }
        }
    }

    #[test]
    fn grpc_codes_are_typed_and_numbered_as_on_the_wire() {
        for (rejection, code, number) in [
            (Rejection::MissingToken, GrpcCode::Unauthenticated, "16"),
            (Rejection::AmbiguousToken, GrpcCode::InvalidArgument, "3"),
            (Rejection::Forbidden, GrpcCode::PermissionDenied, "7"),
            (Rejection::Unavailable, GrpcCode::Unavailable, "14"),
        ] {
            assert_eq!(rejection.grpc_code(), code);
            assert_eq!(rejection.to_grpc_response().headers()[GRPC_STATUS], number);
        }
    }

    #[test]
    fn unavailable_asks_to_retry() {
        let r = Rejection::Unavailable.to_http_response("api");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn realm_cannot_break_the_header() {
        assert_eq!(
            Rejection::MissingToken.challenge("a\"b\\c"),
            "Bearer realm=\"abc\""
        );
    }
}
