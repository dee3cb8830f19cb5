//! What every section shares: driving the layer, minting tokens, and
//! asserting answers exactly as a client sees them.

pub(crate) use std::collections::{BTreeSet, HashSet};
pub(crate) use std::convert::Infallible;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::time::Duration;

pub(crate) use base64::Engine;
pub(crate) use base64::engine::general_purpose::{
    STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
};
pub(crate) use bytes::Bytes;
pub(crate) use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE};
pub(crate) use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
pub(crate) use http_body_util::BodyExt;
pub(crate) use jsonwebtoken::EncodingKey;
pub(crate) use serde::Serialize;
pub(crate) use serde::de::DeserializeOwned;
pub(crate) use serde_json::{Value, json};
pub(crate) use tower::{ServiceBuilder, ServiceExt, service_fn};
pub(crate) use tower_jwt_auth::issue::SigningKey;
pub(crate) use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
pub(crate) use tower_jwt_auth::{
    Algorithm, BoxError, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, JwtAuthBuilder, JwtAuthLayer,
    KeySet, KeyStore, Reason, RegisteredClaims, Rejection, RejectionKind, VerifyingKey,
};

pub(crate) use crate::common;
pub(crate) use crate::common::{
    AUDIENCE, EC_PUBLIC, EC384_PUBLIC, ED_PUBLIC, ISSUER, RSA_PRIVATE, RSA_PUBLIC, RSA2_PRIVATE,
    SECRET, User, b64, claims, hs256, hs256_raw, key, now,
};

// ---------------------------------------------------------------------------
// The answers, exactly as a client sees them.

pub(crate) const BARE_CHALLENGE: &str = r#"Bearer realm="api""#;
pub(crate) const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid or has expired""#;
pub(crate) const INVALID_TOKEN_DESCRIPTION: &str = "The access token is invalid or has expired";
pub(crate) const INVALID_REQUEST_CHALLENGE: &str = r#"Bearer realm="api", error="invalid_request", error_description="The token must be sent in exactly one place""#;
pub(crate) const INVALID_REQUEST_DESCRIPTION: &str = "The token must be sent in exactly one place";
pub(crate) const MISSING_TOKEN_DESCRIPTION: &str = "A bearer token is required";
pub(crate) const INSUFFICIENT_SCOPE_DESCRIPTION: &str = "The access token lacks the required scope";
pub(crate) const FORBIDDEN_DESCRIPTION: &str =
    "The access token does not grant access to this resource";
pub(crate) const FORBIDDEN_CHALLENGE: &str = r#"Bearer realm="api", error="insufficient_scope", error_description="The access token does not grant access to this resource""#;
pub(crate) const UNAVAILABLE_DESCRIPTION: &str = "Token verification is temporarily unavailable";

/// What the inner service answers when the layer let a request through
/// without claims.
pub(crate) const ANONYMOUS: &str = "anonymous";

/// A second secret, for tokens that must not verify under [`SECRET`].
pub(crate) const OTHER_SECRET: &[u8] = b"another-integration-secret-0123456789abcdef";

pub(crate) const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

// ---------------------------------------------------------------------------
// Driving the layer.

/// A response with its body collected.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }

    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// The inner service: echoes the claims the layer inserted, so a test sees
/// both that the inner service ran and what it was handed.
pub(crate) async fn echo<C: Serialize + Send + Sync + 'static>(
    request: Request<String>,
) -> Result<Response<String>, Infallible> {
    let body = match request.extensions().get::<C>() {
        Some(claims) => serde_json::to_string(claims).expect("claims serialize"),
        None => ANONYMOUS.to_owned(),
    };
    Ok(Response::new(body))
}

pub(crate) async fn send<C>(layer: &JwtAuthLayer<C>, request: Request<String>) -> Reply
where
    C: DeserializeOwned + Serialize + Clone + Send + Sync + 'static,
{
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(echo::<C>));
    let response = service.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("infallible").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) fn request() -> http::request::Builder {
    Request::builder().uri("/movies")
}

pub(crate) fn no_credentials() -> Request<String> {
    request().body(String::new()).unwrap()
}

/// A request whose `Authorization` header is `value`; `None` when `http`
/// itself refuses the bytes (control characters), as a server would.
pub(crate) fn authorization(value: &[u8]) -> Option<Request<String>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    Some(
        request()
            .header(AUTHORIZATION, value)
            .body(String::new())
            .unwrap(),
    )
}

pub(crate) fn bearer(token: impl AsRef<[u8]>) -> Request<String> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token.as_ref());
    authorization(&value).expect("a header-safe token")
}

/// A gRPC request: `application/grpc` over HTTP/2, the only transport gRPC
/// has. (The content type alone over HTTP/1.1 no longer earns a gRPC
/// answer: see `issue7_item_08_…`.)
pub(crate) fn grpc(mut request: Request<String>) -> Request<String> {
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    *request.version_mut() = Version::HTTP_2;
    request
}

/// `request` with another content type and HTTP version.
pub(crate) fn with_content_type(
    mut request: Request<String>,
    version: Version,
    content_type: &'static str,
) -> Request<String> {
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    *request.version_mut() = version;
    request
}

// ---------------------------------------------------------------------------
// Layers.

/// A builder with the issuer and audience the fixtures' claims carry.
pub(crate) fn builder<C>() -> JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    JwtAuthLayer::<C>::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

pub(crate) fn hs_layer() -> JwtAuthLayer<User> {
    builder().hs256(SECRET).build().unwrap()
}

/// The default rendering plus the precise reason in `x-test-reason`, for
/// tests about *which* check refused a token.
pub(crate) fn with_reason_header(rejection: &Rejection) -> Response<Bytes> {
    let mut response = rejection.to_http_response("api");
    if let RejectionKind::InvalidToken(reason) = rejection.kind() {
        response.headers_mut().insert(
            "x-test-reason",
            HeaderValue::from_str(&format!("{reason:?}")).unwrap(),
        );
    }
    response
}

// ---------------------------------------------------------------------------
// Tokens.

pub(crate) fn mac(alg: Algorithm, input: &[u8], secret: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    macro_rules! tag {
        ($digest:ty) => {{
            let mut mac = Hmac::<$digest>::new_from_slice(secret).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        Algorithm::HS256 => tag!(sha2::Sha256),
        Algorithm::HS384 => tag!(sha2::Sha384),
        Algorithm::HS512 => tag!(sha2::Sha512),
        other => panic!("{other:?} is not an HMAC algorithm"),
    }
}

/// A token whose signing input is exactly `input`, whatever its shape,
/// with a correct MAC: only the verifier's strictness can refuse it.
pub(crate) fn mac_token(alg: Algorithm, input: impl AsRef<[u8]>, secret: &[u8]) -> Vec<u8> {
    let input = input.as_ref();
    let mut token = input.to_vec();
    token.push(b'.');
    token.extend_from_slice(b64(&mac(alg, input, secret)).as_bytes());
    token
}

pub(crate) fn segments(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// An HS256 token over a claim set, with the plain test header.
pub(crate) fn hs(claims: &Value) -> String {
    hs256_raw(HEADER, &claims.to_string())
}

pub(crate) fn claims_with(changes: &[(&str, Value)]) -> Value {
    let mut claims = claims();
    for (name, value) in changes {
        claims[*name] = value.clone();
    }
    claims
}

pub(crate) fn claims_without(name: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// `object`'s JSON text with raw `members` appended, so duplicates and odd
/// types survive.
pub(crate) fn with_members(object: &Value, members: &str) -> String {
    let text = object.to_string();
    format!("{},{members}}}", &text[..text.len() - 1])
}

/// Signs a hand-written header and payload with an asymmetric key.
pub(crate) fn sign_with(key: &EncodingKey, alg: Algorithm, header: &str, payload: &str) -> String {
    // Creating a SigningKey installs jsonwebtoken's process-wide provider,
    // which `crypto::sign` reads.
    let _ = crate::common::key(Algorithm::ES256);
    let input = segments(header, payload);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg.name().parse().unwrap()).unwrap();
    format!("{input}.{signature}")
}

// ---------------------------------------------------------------------------
// Assertions.

#[track_caller]
pub(crate) fn assert_accepted(reply: &Reply, case: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {reply:?}");
    assert_ne!(reply.text(), ANONYMOUS, "{case}: no claims were inserted");
    reply.json()
}

#[track_caller]
pub(crate) fn assert_invalid_token(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {reply:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(INVALID_TOKEN_CHALLENGE),
        "{case}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{case}"
    );
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_token", "error_description": INVALID_TOKEN_DESCRIPTION}),
        "{case}"
    );
}

#[track_caller]
pub(crate) fn assert_missing_token(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {reply:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(BARE_CHALLENGE),
        "{case}"
    );
    assert_eq!(
        reply.json(),
        json!({"error": "unauthorized", "error_description": MISSING_TOKEN_DESCRIPTION}),
        "{case}"
    );
}

#[track_caller]
pub(crate) fn assert_invalid_request(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}: {reply:?}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(INVALID_REQUEST_CHALLENGE),
        "{case}"
    );
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_request", "error_description": INVALID_REQUEST_DESCRIPTION}),
        "{case}"
    );
}

/// HTTP 200, trailers-only, as tonic's `Status::into_http` writes it.
#[track_caller]
pub(crate) fn assert_grpc(reply: &Reply, code: &str, case: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/grpc"),
        "{case}"
    );
    assert_eq!(reply.header("grpc-status"), Some(code), "{case}");
    assert!(
        reply.header("grpc-message").is_some_and(|m| !m.is_empty()),
        "{case}: grpc-message"
    );
    assert!(reply.body.is_empty(), "{case}: trailers-only has no body");
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none(), "{case}");
}

#[track_caller]
pub(crate) fn assert_reason(reply: &Reply, reason: Reason, case: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {reply:?}");
    assert_eq!(
        reply.header("x-test-reason"),
        Some(format!("{reason:?}").as_str()),
        "{case}"
    );
}

/// A claim set with one member removed.
pub(crate) trait Without {
    fn without(self, name: &str) -> Value;
}

impl Without for Value {
    fn without(mut self, name: &str) -> Value {
        self.as_object_mut().unwrap().remove(name);
        self
    }
}
