//! The verifier checklist of `shared/SECURITY.md`, items 1–22 as they apply
//! to static keys, one named test per item (`item_NN_…`), plus the layer's
//! other promises (optional mode, scopes, custom rendering, claim rules,
//! revocation) and a robustness run over random and mutated tokens.
//!
//! Every request goes through tower (`ServiceBuilder` + `service_fn` +
//! `oneshot`), and every answer is checked byte for byte: status,
//! `WWW-Authenticate`, JSON body, or the gRPC trailers-only form. Wherever a
//! token is refused, a control shows that the same construction without the
//! flaw is accepted, so a refusal cannot pass for the wrong reason.
//!
//! Item 23 (keys unavailable → 503) is exercised with a key store that has
//! no keys yet, as a store filled later (by a rotation task today, a remote
//! JWKS source tomorrow) starts out. Item 24 (refetch flood) applies to
//! remote JWKS only.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use jsonwebtoken::EncodingKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_jwt_auth::issue::SigningKey;
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{
    Algorithm, BoxError, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, JwtAuthBuilder, JwtAuthLayer,
    KeySet, KeyStore, Reason, RegisteredClaims, Rejection, VerifyingKey,
};

use common::{
    AUDIENCE, EC_PUBLIC, EC384_PUBLIC, ED_PUBLIC, ISSUER, RSA_PRIVATE, RSA_PUBLIC, RSA2_PRIVATE,
    SECRET, User, b64, claims, hs256, hs256_raw, key, now,
};

// ---------------------------------------------------------------------------
// The answers, exactly as a client sees them.

const BARE_CHALLENGE: &str = r#"Bearer realm="api""#;
const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid or has expired""#;
const INVALID_TOKEN_DESCRIPTION: &str = "The access token is invalid or has expired";
const INVALID_REQUEST_CHALLENGE: &str = r#"Bearer realm="api", error="invalid_request", error_description="The token must be sent in exactly one place""#;
const INVALID_REQUEST_DESCRIPTION: &str = "The token must be sent in exactly one place";
const MISSING_TOKEN_DESCRIPTION: &str = "A bearer token is required";
const INSUFFICIENT_SCOPE_DESCRIPTION: &str = "The access token lacks the required scope";
const FORBIDDEN_DESCRIPTION: &str = "The access token does not grant access to this resource";
const FORBIDDEN_CHALLENGE: &str = r#"Bearer realm="api", error="insufficient_scope", error_description="The access token does not grant access to this resource""#;
const UNAVAILABLE_DESCRIPTION: &str = "Token verification is temporarily unavailable";

/// What the inner service answers when the layer let a request through
/// without claims.
const ANONYMOUS: &str = "anonymous";

/// A second secret, for tokens that must not verify under [`SECRET`].
const OTHER_SECRET: &[u8] = b"another-integration-secret-0123456789abcdef";

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

// ---------------------------------------------------------------------------
// Driving the layer.

/// A response with its body collected.
#[derive(Debug, PartialEq)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// The inner service: echoes the claims the layer inserted, so a test sees
/// both that the inner service ran and what it was handed.
async fn echo<C: Serialize + Send + Sync + 'static>(
    request: Request<String>,
) -> Result<Response<String>, Infallible> {
    let body = match request.extensions().get::<C>() {
        Some(claims) => serde_json::to_string(claims).expect("claims serialize"),
        None => ANONYMOUS.to_owned(),
    };
    Ok(Response::new(body))
}

async fn send<C>(layer: &JwtAuthLayer<C>, request: Request<String>) -> Reply
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

fn request() -> http::request::Builder {
    Request::builder().uri("/movies")
}

fn no_credentials() -> Request<String> {
    request().body(String::new()).unwrap()
}

/// A request whose `Authorization` header is `value`; `None` when `http`
/// itself refuses the bytes (control characters), as a server would.
fn authorization(value: &[u8]) -> Option<Request<String>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    Some(
        request()
            .header(AUTHORIZATION, value)
            .body(String::new())
            .unwrap(),
    )
}

fn bearer(token: impl AsRef<[u8]>) -> Request<String> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token.as_ref());
    authorization(&value).expect("a header-safe token")
}

/// A gRPC request: `application/grpc` over HTTP/2, the only transport gRPC
/// has. (The content type alone over HTTP/1.1 no longer earns a gRPC
/// answer: see `issue7_item_08_…`.)
fn grpc(mut request: Request<String>) -> Request<String> {
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    *request.version_mut() = Version::HTTP_2;
    request
}

/// `request` with another content type and HTTP version.
fn with_content_type(
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
fn builder<C>() -> JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    JwtAuthLayer::<C>::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

fn hs_layer() -> JwtAuthLayer<User> {
    builder().hs256(SECRET).build().unwrap()
}

/// The default rendering plus the precise reason in `x-test-reason`, for
/// tests about *which* check refused a token.
fn with_reason_header(rejection: &Rejection) -> Response<Bytes> {
    let mut response = rejection.to_http_response("api");
    if let Rejection::InvalidToken(reason) = rejection {
        response.headers_mut().insert(
            "x-test-reason",
            HeaderValue::from_str(&format!("{reason:?}")).unwrap(),
        );
    }
    response
}

// ---------------------------------------------------------------------------
// Tokens.

fn mac(alg: Algorithm, input: &[u8], secret: &[u8]) -> Vec<u8> {
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
fn mac_token(alg: Algorithm, input: impl AsRef<[u8]>, secret: &[u8]) -> Vec<u8> {
    let input = input.as_ref();
    let mut token = input.to_vec();
    token.push(b'.');
    token.extend_from_slice(b64(&mac(alg, input, secret)).as_bytes());
    token
}

fn segments(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// An HS256 token over a claim set, with the plain test header.
fn hs(claims: &Value) -> String {
    hs256_raw(HEADER, &claims.to_string())
}

fn claims_with(changes: &[(&str, Value)]) -> Value {
    let mut claims = claims();
    for (name, value) in changes {
        claims[*name] = value.clone();
    }
    claims
}

fn claims_without(name: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// `object`'s JSON text with raw `members` appended, so duplicates and odd
/// types survive.
fn with_members(object: &Value, members: &str) -> String {
    let text = object.to_string();
    format!("{},{members}}}", &text[..text.len() - 1])
}

/// Signs a hand-written header and payload with an asymmetric key.
fn sign_with(key: &EncodingKey, alg: Algorithm, header: &str, payload: &str) -> String {
    // Creating a SigningKey installs jsonwebtoken's process-wide provider,
    // which `crypto::sign` reads.
    let _ = common::key(Algorithm::ES256);
    let input = segments(header, payload);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg.name().parse().unwrap()).unwrap();
    format!("{input}.{signature}")
}

// ---------------------------------------------------------------------------
// Assertions.

#[track_caller]
fn assert_accepted(reply: &Reply, case: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {reply:?}");
    assert_ne!(reply.text(), ANONYMOUS, "{case}: no claims were inserted");
    reply.json()
}

#[track_caller]
fn assert_invalid_token(reply: &Reply, case: &str) {
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
fn assert_missing_token(reply: &Reply, case: &str) {
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
fn assert_invalid_request(reply: &Reply, case: &str) {
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
fn assert_grpc(reply: &Reply, code: &str, case: &str) {
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
fn assert_reason(reply: &Reply, reason: Reason, case: &str) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {reply:?}");
    assert_eq!(
        reply.header("x-test-reason"),
        Some(format!("{reason:?}").as_str()),
        "{case}"
    );
}

// ===========================================================================
// SECURITY.md, the verifier.

#[tokio::test]
async fn item_01_valid_token_reaches_the_inner_service_with_typed_claims() {
    let reply = send(&hs_layer(), bearer(hs256(&claims()))).await;
    let body = assert_accepted(&reply, "valid HS256 token");
    assert_eq!(body, json!({"sub": "user-1", "scope": "movies:read"}));

    // An untyped claims type receives the whole verified claim set.
    let layer = builder::<Value>().hs256(SECRET).build().unwrap();
    let expected = claims_with(&[("role", json!(["admin"]))]);
    let body = assert_accepted(&send(&layer, bearer(hs(&expected))).await, "Value");
    assert_eq!(body, expected);
}

#[tokio::test]
async fn item_02_no_credentials_or_another_scheme_gets_a_bare_challenge() {
    let layer = hs_layer();
    let token = hs256(&claims());
    assert_missing_token(&send(&layer, no_credentials()).await, "no header");
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Digest username=\"u\"".to_owned(),
        format!("Token {token}"),
        format!("Bearerx {token}"),
        format!("MAC {token}"),
    ] {
        let reply = send(&layer, authorization(value.as_bytes()).unwrap()).await;
        assert_missing_token(&reply, &value);
    }
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {token}");
        let reply = send(&layer, authorization(value.as_bytes()).unwrap()).await;
        assert_accepted(&reply, scheme);
    }
    let layer = builder::<User>()
        .hs256(SECRET)
        .realm("movies")
        .build()
        .unwrap();
    let reply = send(&layer, no_credentials()).await;
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="movies""#)
    );
}

#[tokio::test]
async fn item_03_a_token_in_two_places_is_invalid_request() {
    let token = hs256(&claims());
    let layer = builder::<User>()
        .hs256(SECRET)
        .token_from_query("access_token")
        .token_from_cookie("jwt")
        .build()
        .unwrap();
    let in_query = format!("/movies?access_token={token}");
    let in_cookie = format!("theme=dark; jwt={token}");
    let in_header = format!("Bearer {token}");
    let cases = [
        (
            "header and query",
            request()
                .uri(&in_query)
                .header(AUTHORIZATION, &in_header)
                .body(String::new()),
        ),
        (
            "header and cookie",
            request()
                .header(AUTHORIZATION, &in_header)
                .header(COOKIE, &in_cookie)
                .body(String::new()),
        ),
        (
            "query and cookie",
            request()
                .uri(&in_query)
                .header(COOKIE, &in_cookie)
                .body(String::new()),
        ),
        (
            "two Authorization headers",
            request()
                .header(AUTHORIZATION, &in_header)
                .header(AUTHORIZATION, &in_header)
                .body(String::new()),
        ),
        (
            "query parameter twice",
            request()
                .uri(format!("{in_query}&access_token={token}"))
                .body(String::new()),
        ),
        (
            "cookie twice",
            request()
                .header(COOKIE, format!("jwt={token}; jwt={token}"))
                .body(String::new()),
        ),
    ];
    for (case, request) in cases {
        let request = request.unwrap();
        assert_invalid_request(&send(&layer, request).await, case);
    }
    // Each place alone is fine.
    let query_only = request().uri(&in_query).body(String::new()).unwrap();
    assert_accepted(&send(&layer, query_only).await, "query alone");
    let cookie_only = request()
        .header(COOKIE, &in_cookie)
        .body(String::new())
        .unwrap();
    assert_accepted(&send(&layer, cookie_only).await, "cookie alone");
    assert_accepted(&send(&layer, bearer(&token)).await, "header alone");

    let two = request()
        .uri(&in_query)
        .header(AUTHORIZATION, &in_header)
        .body(String::new())
        .unwrap();
    assert_grpc(&send(&layer, grpc(two)).await, "3", "gRPC, two places");
}

#[tokio::test]
async fn item_03_query_and_cookie_are_off_unless_configured() {
    let layer = hs_layer();
    let token = hs256(&claims());
    let in_query = request()
        .uri(format!("/movies?access_token={token}"))
        .body(String::new())
        .unwrap();
    assert_missing_token(&send(&layer, in_query).await, "query not configured");
    for cookie in ["access_token", "jwt", "token"] {
        let in_cookie = request()
            .header(COOKIE, format!("{cookie}={token}"))
            .body(String::new())
            .unwrap();
        assert_missing_token(&send(&layer, in_cookie).await, cookie);
    }
}

#[tokio::test]
async fn item_04_malformed_compact_form_is_invalid_token() {
    let layer = hs_layer();
    let header = b64(HEADER.as_bytes());
    let claims_json = claims().to_string();
    let payload = b64(claims_json.as_bytes());
    let valid = hs256_raw(HEADER, &claims_json);
    let signature = valid.rsplit('.').next().unwrap().to_owned();

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("two segments".into(), format!("{header}.{payload}").into()),
        (
            "four segments".into(),
            format!("{valid}.{signature}").into(),
        ),
        (
            "five segments".into(),
            format!("{valid}.{signature}.{signature}").into(),
        ),
        ("leading dot".into(), format!(".{valid}").into()),
        ("trailing dot".into(), format!("{valid}.").into()),
        (
            "empty signature".into(),
            format!("{header}.{payload}.").into(),
        ),
        (
            "empty header".into(),
            mac_token(Algorithm::HS256, format!(".{payload}"), SECRET),
        ),
        (
            "impossible base64 length".into(),
            mac_token(Algorithm::HS256, format!("{header}.{payload}A"), SECRET),
        ),
        // A 32-byte MAC leaves two unused bits: the same MAC, spelled otherwise.
        (
            "non-canonical signature".into(),
            format!("{header}.{payload}.{}", set_trailing_bit(&signature)).into(),
        ),
    ];
    // The canonical twins of the flawed tokens below: each must pass, so
    // only the flaw can explain a refusal.
    let mut controls = vec![("plain".to_owned(), valid.clone())];

    // Each flaw is MACed over its own text, so a lenient decoder would
    // accept it.
    let padded_json = pad_to_remainder(&claims_json, 1);
    let padded = URL_SAFE.encode(padded_json.as_bytes());
    assert!(padded.ends_with("=="));
    controls.push(("padding".into(), hs256_raw(HEADER, &padded_json)));
    cases.push((
        "'=' padding".into(),
        mac_token(Algorithm::HS256, format!("{header}.{padded}"), SECRET),
    ));
    controls.push((
        "non-canonical payload".into(),
        hs256_raw(HEADER, &padded_json),
    ));
    cases.push((
        "non-canonical payload".into(),
        mac_token(
            Algorithm::HS256,
            format!(
                "{header}.{}",
                set_trailing_bit(&b64(padded_json.as_bytes()))
            ),
            SECRET,
        ),
    ));
    let padded_header = pad_to_remainder(HEADER, 1);
    controls.push((
        "non-canonical header".into(),
        hs256_raw(&padded_header, &claims_json),
    ));
    cases.push((
        "non-canonical header".into(),
        mac_token(
            Algorithm::HS256,
            format!(
                "{}.{payload}",
                set_trailing_bit(&b64(padded_header.as_bytes()))
            ),
            SECRET,
        ),
    ));
    // '+' and '/': the standard alphabet instead of base64url.
    for ch in ['+', '/'] {
        let (json, standard) = (0..3)
            .map(|shift| {
                let json = format!(
                    "{}{}",
                    " ".repeat(shift),
                    claims_with(&[("x", json!("???>>>???>>>"))])
                );
                let standard = STANDARD_NO_PAD.encode(json.as_bytes());
                (json, standard)
            })
            .find(|(_, standard)| standard.contains(ch))
            .expect("some alignment produces the character");
        controls.push((format!("alphabet {ch}"), hs256_raw(HEADER, &json)));
        cases.push((
            format!("standard alphabet {ch:?}"),
            mac_token(Algorithm::HS256, format!("{header}.{standard}"), SECRET),
        ));
    }

    // Whitespace and every other byte outside [A-Za-z0-9_.-], in each
    // segment.
    let mut outside: Vec<u8> = (0x20..0x7f)
        .filter(|b: &u8| !b.is_ascii_alphanumeric() && !b"-_.".contains(b))
        .collect();
    outside.extend([b'\t', 0x80, 0xc3, 0xa9, 0xff]);
    let inserted = |segment: &str, byte: u8| {
        let (front, back) = segment.split_at(segment.len() / 2);
        [front.as_bytes(), &[byte], back.as_bytes()].concat()
    };
    for byte in outside {
        let in_header = [&inserted(&header, byte)[..], b".", payload.as_bytes()].concat();
        let in_payload = [header.as_bytes(), b".", &inserted(&payload, byte)[..]].concat();
        let in_signature = [
            header.as_bytes(),
            b".",
            payload.as_bytes(),
            b".",
            &inserted(&signature, byte)[..],
        ]
        .concat();
        cases.extend([
            (
                format!("byte {byte:#04x} in the header"),
                mac_token(Algorithm::HS256, in_header, SECRET),
            ),
            (
                format!("byte {byte:#04x} in the payload"),
                mac_token(Algorithm::HS256, in_payload, SECRET),
            ),
            (format!("byte {byte:#04x} in the signature"), in_signature),
        ]);
    }

    for (case, token) in controls {
        assert_accepted(&send(&layer, bearer(&token)).await, &case);
    }
    for (case, token) in cases {
        assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
    }
}

/// `json` with trailing spaces until its length is `remainder` modulo 3.
fn pad_to_remainder(json: &str, remainder: usize) -> String {
    let mut json = json.to_owned();
    while json.len() % 3 != remainder {
        json.push(' ');
    }
    json
}

/// Sets the lowest bit of the last base64url character, which only a
/// lenient decoder ignores when the segment's length leaves unused bits.
fn set_trailing_bit(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (rest, last) = segment.split_at(segment.len() - 1);
    let index = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    assert!(
        index % 2 == 0,
        "the last character already has its low bit set"
    );
    format!("{rest}{}", ALPHABET[index | 1] as char)
}

#[tokio::test]
async fn item_05_alg_none_in_any_case_is_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for alg in ["none", "None", "nOnE", "NONE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = format!("{}.", segments(&header, &payload));
        assert_invalid_token(&send(&layer, bearer(&unsigned)).await, &unsigned);
        // A verifier that skipped the signature for `none` would take this.
        let with_mac = hs256_raw(&header, &payload);
        assert_invalid_token(&send(&layer, bearer(&with_mac)).await, alg);
    }
    for header in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":""}"#,
        r#"{"alg":null}"#,
        r#"{"alg":["HS256"]}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }
}

#[tokio::test]
async fn item_05_only_the_algorithm_a_key_is_pinned_to_is_accepted() {
    let payload = claims().to_string();
    // 64 bytes: long enough for HS512 (RFC 7518 §3.2), so one secret can
    // be pinned to each HMAC algorithm in turn.
    const SECRET_64: &[u8] = b"integration-test-secret-long-enough-for-hs512-0123456789abcdefgh";
    let hs256_only = builder::<User>().hs256(SECRET_64).build().unwrap();
    for (alg, name) in [(Algorithm::HS384, "HS384"), (Algorithm::HS512, "HS512")] {
        let header = format!(r#"{{"alg":"{name}","typ":"JWT"}}"#);
        let token = mac_token(alg, segments(&header, &payload), SECRET_64);
        assert_invalid_token(&send(&hs256_only, bearer(&token)).await, name);
        // The same secret pinned to that algorithm takes the same token.
        let pinned = match alg {
            Algorithm::HS384 => builder::<User>().hs384(SECRET_64),
            _ => builder::<User>().hs512(SECRET_64),
        };
        let pinned = pinned.build().unwrap();
        assert_accepted(&send(&pinned, bearer(&token)).await, name);
    }

    // One RSA key pinned to RS256 refuses PS256 made with the same key pair.
    let ps256 = key(Algorithm::PS256).sign(&claims()).unwrap();
    let rs256_only = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    assert_invalid_token(&send(&rs256_only, bearer(&ps256)).await, "PS256 to RS256");
    let ps256_key = builder::<User>()
        .rsa_pem(Algorithm::PS256, RSA_PUBLIC)
        .build()
        .unwrap();
    assert_accepted(&send(&ps256_key, bearer(&ps256)).await, "PS256 control");
    let rs256 = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_invalid_token(&send(&ps256_key, bearer(&rs256)).await, "RS256 to PS256");
}

#[tokio::test]
async fn item_06_hs256_macd_with_the_rsa_public_key_is_rejected() {
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    let genuine = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&genuine)).await, "RS256 control");

    let payload = claims().to_string();
    for header in [
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"RS256"}"#,
    ] {
        // The classic confusion: the verifier's public PEM as HMAC secret,
        // with and without its final newline.
        for secret in [RSA_PUBLIC, RSA_PUBLIC.trim_end()] {
            let forged = mac_token(
                Algorithm::HS256,
                segments(header, &payload),
                secret.as_bytes(),
            );
            assert_invalid_token(&send(&layer, bearer(&forged)).await, header);
        }
    }
}

#[tokio::test]
async fn item_07_es256_all_zero_signature_is_rejected() {
    let layer = builder::<User>().ec_pem(EC_PUBLIC).build().unwrap();
    let genuine = key(Algorithm::ES256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&genuine)).await, "ES256 control");
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(signature.len(), 64);

    let mut r_zero = signature.clone();
    r_zero[..32].fill(0);
    let mut s_zero = signature;
    s_zero[32..].fill(0);
    for (case, forged) in [
        ("r = s = 0", vec![0u8; 64]),
        // The DER form Java's verifier took (CVE-2022-21449's "MAYCAQACAQA").
        (
            "DER r = s = 0",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("r = 0", r_zero),
        ("s = 0", s_zero),
    ] {
        let token = format!("{input}.{}", b64(&forged));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    let es384 = builder::<User>().ec_pem(EC384_PUBLIC).build().unwrap();
    let genuine = key(Algorithm::ES384).sign(&claims()).unwrap();
    assert_accepted(&send(&es384, bearer(&genuine)).await, "ES384 control");
    let (input, _) = genuine.rsplit_once('.').unwrap();
    let token = format!("{input}.{}", b64(&[0u8; 96]));
    assert_invalid_token(&send(&es384, bearer(&token)).await, "ES384 r = s = 0");
}

#[tokio::test]
async fn item_08_jwk_jku_x5u_x5c_headers_never_choose_a_key_nor_cause_a_request() {
    // Anything the layer fetched because of a token would connect here.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    let attacker =
        SigningKey::from_pem(Algorithm::RS256, "attacker", RSA2_PRIVATE.as_bytes()).unwrap();
    let attacker_jwk = attacker.public_jwk().unwrap().clone();
    let attacker_key = EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap();
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    // Proves the forged tokens are genuinely signed by the embedded key.
    let attackers_own_layer = builder::<User>()
        .key(VerifyingKey::from_jwk(&attacker_jwk).unwrap())
        .build()
        .unwrap();

    let x5c = STANDARD.encode(b"not really a certificate, never parsed");
    let headers = [
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "jku": url}),
        json!({"alg": "RS256", "kid": "attacker", "jku": url}),
        json!({"alg": "RS256", "x5u": url}),
        json!({"alg": "RS256", "x5c": [x5c]}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk, "jku": url, "x5u": url, "x5c": [x5c]}),
    ];
    for header in headers {
        let token = sign_with(
            &attacker_key,
            Algorithm::RS256,
            &header.to_string(),
            &claims().to_string(),
        );
        let case = header.to_string();
        assert_accepted(&send(&attackers_own_layer, bearer(&token)).await, &case);
        assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
    }
    let connection = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        connection.is_err(),
        "a token's header made the layer connect to {url}"
    );
}

#[tokio::test]
async fn item_09_kid_is_only_a_lookup_key_into_the_configured_set() {
    let layer = builder::<User>()
        .key(
            VerifyingKey::hmac(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs"),
        )
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token = hs256_raw(r#"{"alg":"HS256","kid":"hs"}"#, &payload);
    assert_accepted(&send(&layer, bearer(&token)).await, "kid control");

    // A file holding a secret the attacker knows: were a kid ever read as a
    // path, the token MACed with the file's content would verify.
    let dir = std::env::temp_dir().join(format!("tower-jwt-auth-kid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("attacker.key");
    std::fs::write(&file, OTHER_SECRET).unwrap();
    let path = file.to_str().unwrap().to_owned();

    let kids = [
        path.clone(),
        format!("../../../../../../..{path}"),
        format!("file://{path}"),
        "../../../../etc/passwd".into(),
        "/dev/null".into(),
        "hs' OR '1'='1".into(),
        "hs\"; DROP TABLE keys; --".into(),
        "hs\u{0}".into(),
        "hs ".into(),
        "HS".into(),
        "*".into(),
        String::new(),
        "unknown".into(),
        "x".repeat(600),
        "x".repeat(5000),
    ];
    for kid in &kids {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        for secret in [OTHER_SECRET, SECRET, b""] {
            let token = mac_token(Algorithm::HS256, segments(&header, &payload), secret);
            let case = format!("kid {}", kid.chars().take(40).collect::<String>());
            assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn item_10_crit_is_always_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    assert_accepted(
        &send(
            &layer,
            bearer(hs256_raw(r#"{"alg":"HS256","exp":1}"#, &payload)),
        )
        .await,
        "control",
    );
    for header in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","crit":["alg"]}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":"exp","exp":1}"#,
        r#"{"alg":"HS256","crit":null}"#,
        r#"{"crit":["x"],"alg":"HS256","x":1}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }
}

#[tokio::test]
async fn item_11_typ_at_jwt_profile_is_enforced_when_enabled() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .require_typ_at_jwt()
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token_with =
        |typ: &str| hs256_raw(&json!({"alg": "HS256", "typ": typ}).to_string(), &payload);
    for typ in [
        "at+jwt",
        "AT+JWT",
        "At+Jwt",
        "application/at+jwt",
        "APPLICATION/AT+JWT",
        "Application/At+JWT",
    ] {
        assert_accepted(&send(&layer, bearer(token_with(typ))).await, typ);
    }
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt ",
        " at+jwt",
        "at+jwt2",
        "at+jwtx",
        "application/at+jwt+x",
        "xapplication/at+jwt",
        "application/",
        "",
    ] {
        assert_invalid_token(&send(&layer, bearer(token_with(typ))).await, typ);
    }
    let untyped = hs256_raw(r#"{"alg":"HS256"}"#, &payload);
    assert_invalid_token(&send(&layer, bearer(&untyped)).await, "no typ");
    let numeric = hs256_raw(r#"{"alg":"HS256","typ":7}"#, &payload);
    assert_invalid_token(&send(&layer, bearer(&numeric)).await, "typ 7");

    // What the issuer module signs as an access token matches the profile.
    let access = common::hs256_key().sign_access_token(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&access)).await, "sign_access_token");

    // The profile is opt-in.
    assert_accepted(
        &send(&hs_layer(), bearer(token_with("JWT"))).await,
        "no profile",
    );
}

#[tokio::test]
async fn item_12_nested_tokens_are_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for cty in ["JWT", "jwt", "application/jwt", "APPLICATION/JWT"] {
        let header = json!({"alg": "HS256", "cty": cty}).to_string();
        let token = hs256_raw(&header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, cty);
    }
}

#[tokio::test]
async fn item_13_duplicate_members_are_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for header in [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","x":1,"x":1}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }

    let base = claims();
    let exp = now() + 300;
    let many: String = (0..40).map(|i| format!(r#""m{i}":{i},"#)).collect();
    for (case, members) in [
        ("exp twice", format!(r#""exp":{exp}"#)),
        ("sub twice", r#""sub":"user-2""#.to_owned()),
        ("iss twice", format!(r#""iss":"{ISSUER}""#)),
        ("aud twice", format!(r#""aud":"{AUDIENCE}""#)),
        ("unregistered twice", r#""role":"a","role":"a""#.to_owned()),
        ("escaped twice", r#""\u0073ub":"user-1""#.to_owned()),
        // Past the point where the detector switches to hashing.
        ("many members", format!(r#"{many}"m3":0"#)),
    ] {
        let payload = with_members(&base, &members);
        let token = hs256_raw(HEADER, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
    let distinct = with_members(&base, &many[..many.len() - 1]);
    assert_accepted(
        &send(&layer, bearer(hs256_raw(HEADER, &distinct))).await,
        "many distinct members",
    );
}

#[tokio::test]
async fn item_14_exp_is_required_numeric_non_negative_and_exclusive() {
    let strict = builder::<User>()
        .hs256(SECRET)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    // RFC 7519: invalid "on or after" exp; the clock only moves forward
    // between minting and checking.
    let at_now = hs(&claims_with(&[("exp", json!(now()))]));
    assert_invalid_token(&send(&strict, bearer(&at_now)).await, "exp == now");
    let later = hs(&claims_with(&[("exp", json!(now() + 60))]));
    assert_accepted(&send(&strict, bearer(&later)).await, "exp in a minute");

    let layer = hs_layer();
    for (case, token) in [
        ("missing", hs(&claims_without("exp"))),
        (
            "string",
            hs(&claims_with(&[("exp", json!((now() + 300).to_string()))])),
        ),
        ("negative", hs(&claims_with(&[("exp", json!(-1))]))),
        ("null", hs(&claims_with(&[("exp", Value::Null)]))),
        ("boolean", hs(&claims_with(&[("exp", json!(true))]))),
        ("array", hs(&claims_with(&[("exp", json!([now() + 300]))]))),
        ("far past", hs(&claims_with(&[("exp", json!(0))]))),
        ("too large", hs(&claims_with(&[("exp", json!(1e300))]))),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // The default leeway is small but not zero.
    assert!(DEFAULT_LEEWAY <= Duration::from_secs(60));
    let just_expired = hs(&claims_with(&[("exp", json!(now() - 5))]));
    assert_accepted(&send(&layer, bearer(&just_expired)).await, "within leeway");
    let expired = hs(&claims_with(&[("exp", json!(now() - 90))]));
    assert_invalid_token(&send(&layer, bearer(&expired)).await, "beyond leeway");
    let lenient = builder::<User>()
        .hs256(SECRET)
        .leeway(Duration::from_secs(300))
        .build()
        .unwrap();
    assert_accepted(&send(&lenient, bearer(&expired)).await, "configured leeway");
}

#[tokio::test]
async fn item_15_nbf_in_the_future_is_rejected() {
    let layer = hs_layer();
    for (case, nbf) in [("now", json!(now())), ("within leeway", json!(now() + 5))] {
        let token = hs(&claims_with(&[("nbf", nbf)]));
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, nbf) in [
        ("in two minutes", json!(now() + 120)),
        ("string", json!(now().to_string())),
        ("negative", json!(-5)),
    ] {
        let token = hs(&claims_with(&[("nbf", nbf)]));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

#[tokio::test]
async fn item_16_iat_in_the_future_and_max_age() {
    let layer = hs_layer();
    let future = hs(&claims_with(&[("iat", json!(now() + 120))]));
    assert_invalid_token(&send(&layer, bearer(&future)).await, "iat in the future");
    let string = hs(&claims_with(&[("iat", json!(now().to_string()))]));
    assert_invalid_token(&send(&layer, bearer(&string)).await, "iat string");
    let old = hs(&claims_with(&[("iat", json!(now() - 86_400))]));
    assert_accepted(&send(&layer, bearer(&old)).await, "old iat without max_age");
    let no_iat = hs(&claims_without("iat"));
    assert_accepted(
        &send(&layer, bearer(&no_iat)).await,
        "no iat without max_age",
    );

    let aged = builder::<User>()
        .hs256(SECRET)
        .max_age(Duration::from_secs(60))
        .build()
        .unwrap();
    let fresh = hs(&claims_with(&[("iat", json!(now() - 10))]));
    assert_accepted(&send(&aged, bearer(&fresh)).await, "fresh");
    let stale = hs(&claims_with(&[("iat", json!(now() - 600))]));
    assert_invalid_token(&send(&aged, bearer(&stale)).await, "older than max_age");
    assert_invalid_token(&send(&aged, bearer(&no_iat)).await, "max_age needs iat");
}

#[tokio::test]
async fn item_17_wrongly_typed_registered_claims_are_rejected() {
    // An untyped claims type: only the layer's own strict pass can refuse.
    let layer = builder::<Value>().hs256(SECRET).build().unwrap();
    for (case, claims) in [
        ("aud string", claims()),
        (
            "aud array",
            claims_with(&[("aud", json!(["other", AUDIENCE]))]),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(hs(&claims))).await, case);
    }
    for (case, name, value) in [
        ("aud number", "aud", json!(7)),
        ("aud empty array", "aud", json!([])),
        ("aud array of numbers", "aud", json!([7])),
        ("aud array with a number", "aud", json!([AUDIENCE, 7])),
        ("aud object", "aud", json!({"aud": AUDIENCE})),
        ("aud null", "aud", Value::Null),
        ("iss array", "iss", json!([ISSUER])),
        ("iss number", "iss", json!(7)),
        ("iss null", "iss", Value::Null),
        ("sub number", "sub", json!(7)),
        ("sub array", "sub", json!(["user-1"])),
        ("sub object", "sub", json!({})),
        ("jti number", "jti", json!(7)),
    ] {
        let token = hs(&claims_with(&[(name, value)]));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

#[tokio::test]
async fn item_18_missing_scope_is_insufficient_scope() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    for (case, claims) in [
        ("other scope", claims()),
        ("no scope", claims_without("scope")),
        (
            "prefix only",
            claims_with(&[("scope", json!("movies:writer"))]),
        ),
        (
            "scp without it",
            claims_with(&[("scp", json!(["movies:read"]))]),
        ),
    ] {
        let reply = send(&layer, bearer(hs(&claims))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{case}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(
                r#"Bearer realm="api", error="insufficient_scope", error_description="The access token lacks the required scope", scope="movies:write""#
            ),
            "{case}"
        );
        assert_eq!(
            reply.json(),
            json!({
                "error": "insufficient_scope",
                "error_description": INSUFFICIENT_SCOPE_DESCRIPTION,
                "scope": "movies:write",
            }),
            "{case}"
        );
    }
    for (case, claims) in [
        (
            "scope list",
            claims_with(&[("scope", json!("movies:read movies:write"))]),
        ),
        (
            "scp array",
            claims_with(&[("scp", json!(["movies:write"]))]).without("scope"),
        ),
        (
            "scp string",
            claims_with(&[("scp", json!("movies:write"))]).without("scope"),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(hs(&claims))).await, case);
    }

    let grpc_reply = send(&layer, grpc(bearer(hs(&claims())))).await;
    assert_grpc(&grpc_reply, "7", "gRPC missing scope");

    // A forged token on a scoped route is invalid, not merely unauthorized.
    let forged = mac_token(
        Algorithm::HS256,
        segments(
            HEADER,
            &claims_with(&[("scope", json!("movies:write"))]).to_string(),
        ),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");

    let both = builder::<User>()
        .hs256(SECRET)
        .require_scope("a")
        .require_scope("b")
        .build()
        .unwrap();
    let reply = send(&both, bearer(hs(&claims_with(&[("scope", json!("a"))])))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .ends_with(r#"scope="a b""#),
        "{reply:?}"
    );
}

#[tokio::test]
async fn item_19_oversized_tokens_are_rejected_before_decoding() {
    let pad = "x".repeat(DEFAULT_MAX_TOKEN_LEN);
    let big = hs(&claims_with(&[("pad", json!(pad))]));
    assert!(big.len() > DEFAULT_MAX_TOKEN_LEN);
    assert_invalid_token(&send(&hs_layer(), bearer(&big)).await, "oversized valid");
    // Size is the only thing wrong with it.
    let roomy = builder::<User>()
        .hs256(SECRET)
        .max_token_len(64 * 1024)
        .build()
        .unwrap();
    assert_accepted(&send(&roomy, bearer(&big)).await, "under a raised limit");

    // Garbage that any decoding would refuse as malformed is refused as too
    // large instead: the size check comes first.
    let reasons = builder::<User>()
        .hs256(SECRET)
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    let default = hs_layer();
    for (case, byte) in [("bad base64", b'A'), ("outside the alphabet", b'%')] {
        // Three segments whose lengths no base64 decoder accepts.
        let mut at_limit = vec![byte; DEFAULT_MAX_TOKEN_LEN];
        at_limit[1] = b'.';
        at_limit[6] = b'.';
        let mut over = at_limit.clone();
        over.push(byte);
        assert_reason(
            &send(&reasons, bearer(&at_limit)).await,
            Reason::Malformed,
            &format!("{case} at the limit"),
        );
        assert_reason(
            &send(&reasons, bearer(&over)).await,
            Reason::TooLarge,
            &format!("{case} over the limit"),
        );
        assert_invalid_token(&send(&default, bearer(&over)).await, case);
    }
}

#[tokio::test]
async fn item_20_bad_signature_and_expired_answers_like_bad_signature_alone() {
    let layer = hs_layer();
    let forge = |claims: &Value| {
        String::from_utf8(mac_token(
            Algorithm::HS256,
            segments(HEADER, &claims.to_string()),
            OTHER_SECRET,
        ))
        .unwrap()
    };
    let expired_claims = claims_with(&[("exp", json!(now() - 3600))]);
    let bad_signature = send(&layer, bearer(forge(&claims()))).await;
    let bad_and_expired = send(&layer, bearer(forge(&expired_claims))).await;
    assert_invalid_token(&bad_signature, "bad signature");
    assert_eq!(bad_and_expired, bad_signature, "byte-identical answers");

    // Every claim failure answers the same too: bodies are generic.
    let everything_wrong = claims_with(&[
        ("exp", json!(now() - 3600)),
        ("nbf", json!(now() + 3600)),
        ("iss", json!("https://evil.test")),
        ("aud", json!("elsewhere")),
    ]);
    for claims in [&expired_claims, &everything_wrong] {
        assert_eq!(send(&layer, bearer(hs(claims))).await, bad_signature);
        assert_eq!(send(&layer, bearer(forge(claims))).await, bad_signature);
    }

    // And the signature is what was checked first.
    let reasons = builder::<User>()
        .hs256(SECRET)
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    for claims in [&expired_claims, &everything_wrong] {
        let reply = send(&reasons, bearer(forge(claims))).await;
        assert_reason(&reply, Reason::Signature, "forged");
    }
    let reply = send(&reasons, bearer(hs(&expired_claims))).await;
    assert_reason(&reply, Reason::Expired, "genuine but expired");
}

#[tokio::test]
async fn item_21_grpc_requests_get_grpc_statuses() {
    let layer = hs_layer();
    let payload = claims().to_string();
    let unauthenticated = [
        ("no token", grpc(no_credentials())),
        ("malformed", grpc(bearer("a.b"))),
        (
            "expired",
            grpc(bearer(hs(&claims_with(&[("exp", json!(now() - 3600))])))),
        ),
        (
            "bad signature",
            grpc(bearer(mac_token(
                Algorithm::HS256,
                segments(HEADER, &payload),
                OTHER_SECRET,
            ))),
        ),
        (
            "alg none",
            grpc(bearer(format!(
                "{}.",
                segments(r#"{"alg":"none"}"#, &payload)
            ))),
        ),
        ("oversized", grpc(bearer("A".repeat(10_000)))),
    ];
    for (case, request) in unauthenticated {
        assert_grpc(&send(&layer, request).await, "16", case);
    }
    let proto = with_content_type(bearer("a.b"), Version::HTTP_2, "application/grpc+proto");
    assert_grpc(&send(&layer, proto).await, "16", "application/grpc+proto");

    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    assert_grpc(
        &send(&scoped, grpc(bearer(hs256(&claims())))).await,
        "7",
        "missing scope",
    );
    let denied = builder::<User>()
        .hs256(SECRET)
        .authorize(|_| false)
        .build()
        .unwrap();
    assert_grpc(
        &send(&denied, grpc(bearer(hs256(&claims())))).await,
        "7",
        "authorize",
    );

    // A valid token passes through to the inner service untouched.
    let reply = send(&layer, grpc(bearer(hs256(&claims())))).await;
    assert_accepted(&reply, "gRPC valid");
    assert!(reply.headers.get("grpc-status").is_none());
    // Status 14 is covered by the revocation tests below.
}

#[tokio::test]
async fn item_23_keys_unavailable_is_503_with_retry_after_then_recovers() {
    let store = KeyStore::new(KeySet::default());
    let layer = builder::<User>()
        .key_store(store.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let token = hs256(&claims());

    let reply = send(&layer, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.header(RETRY_AFTER.as_str()).is_some());
    assert_eq!(reply.header(WWW_AUTHENTICATE.as_str()), None);
    assert_eq!(reply.json()["error_description"], UNAVAILABLE_DESCRIPTION);
    let grpc = send(&layer, grpc(bearer(&token))).await;
    assert_eq!(grpc.status, StatusCode::OK);
    assert_eq!(grpc.header("grpc-status"), Some("14"));

    // Once keys arrive, the same token passes: nothing was cached as bad.
    store.replace(KeySet::new([
        VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()
    ]));
    assert_eq!(send(&layer, bearer(&token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn item_22_a_jwks_own_alg_use_and_key_ops_are_enforced() {
    const SECRET_ENC: &[u8] = b"encryption-key-never-for-signatures-000";
    const SECRET_WRAP: &[u8] = b"wrapping-key-never-for-signatures-00000";
    // HS512 keys are at least 64 bytes (RFC 7518 §3.2).
    const SECRET_512: &[u8] = b"hs512-pinned-key-for-this-test-0000000000000000000000000000000000";
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "sig", "alg": "HS256", "use": "sig", "k": b64(SECRET)},
        {"kty": "oct", "kid": "enc", "use": "enc", "k": b64(SECRET_ENC)},
        {"kty": "oct", "kid": "wrap", "key_ops": ["wrapKey"], "k": b64(SECRET_WRAP)},
        {"kty": "oct", "kid": "h512", "alg": "HS512", "key_ops": ["verify"], "k": b64(SECRET_512)},
    ]});
    let layer = builder::<User>()
        .jwks_str(&jwks.to_string())
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token = |alg: Algorithm, kid: &str, secret: &[u8]| {
        let header = json!({"alg": format!("{alg:?}"), "kid": kid}).to_string();
        mac_token(alg, segments(&header, &payload), secret)
    };
    for (case, token) in [
        ("use sig", token(Algorithm::HS256, "sig", SECRET)),
        ("alg HS512", token(Algorithm::HS512, "h512", SECRET_512)),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        ("use enc", token(Algorithm::HS256, "enc", SECRET_ENC)),
        (
            "key_ops wrapKey",
            token(Algorithm::HS256, "wrap", SECRET_WRAP),
        ),
        (
            "alg HS512 key used for HS256",
            token(Algorithm::HS256, "h512", SECRET_512),
        ),
        (
            "alg HS256 key used for HS512",
            token(Algorithm::HS512, "sig", SECRET),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // An RSA JWK pinned to PS256 refuses RS256 made with the same key.
    let mut jwk = key(Algorithm::RS256).public_jwk().unwrap().clone();
    let rs256 = key(Algorithm::RS256).sign(&claims()).unwrap();
    let as_declared = builder::<User>()
        .jwks_str(&json!({"keys": [jwk]}).to_string())
        .build()
        .unwrap();
    assert_accepted(&send(&as_declared, bearer(&rs256)).await, "RSA JWK as is");
    jwk["alg"] = json!("PS256");
    let repinned = builder::<User>()
        .jwks_str(&json!({"keys": [jwk]}).to_string())
        .build()
        .unwrap();
    assert_invalid_token(&send(&repinned, bearer(&rs256)).await, "RSA JWK alg PS256");

    // A set without a single verification key configures nothing.
    for unusable in [
        json!({"keys": [{"kty": "oct", "use": "enc", "k": b64(SECRET)}]}),
        json!({"keys": [{"kty": "oct", "key_ops": ["sign"], "k": b64(SECRET)}]}),
        json!({"keys": [{"kty": "oct", "alg": "none", "k": b64(SECRET)}]}),
    ] {
        let built = builder::<User>().jwks_str(&unusable.to_string()).build();
        assert!(built.is_err(), "{unusable} configured a key");
    }
}

// ===========================================================================
// The layer's other promises.

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let layer = builder::<User>().hs256(SECRET).optional().build().unwrap();
    let reply = send(&layer, no_credentials()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), ANONYMOUS, "inner called without claims");
    let basic = authorization(b"Basic dXNlcjpwYXNz").unwrap();
    assert_eq!(send(&layer, basic).await.text(), ANONYMOUS);

    let body = assert_accepted(&send(&layer, bearer(hs256(&claims()))).await, "valid");
    assert_eq!(body["sub"], "user-1");
    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));
    assert_invalid_token(&send(&layer, bearer(&expired)).await, "expired");
    assert_invalid_token(&send(&layer, bearer("garbage")).await, "garbage");
}

#[tokio::test]
async fn custom_renderer_replaces_http_answers_but_not_grpc() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let layer = builder::<User>()
        .hs256(SECRET)
        .on_rejection(move |rejection| {
            log.lock().unwrap().push(rejection.clone());
            Response::builder()
                .status(rejection.status())
                .header("x-custom", "yes")
                .body(Bytes::from(format!(
                    "custom {}",
                    rejection.error_code().unwrap_or("none")
                )))
                .unwrap()
        })
        .build()
        .unwrap();

    let reply = send(&layer, no_credentials()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.text(), "custom none");
    assert_eq!(reply.header("x-custom"), Some("yes"));
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());

    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));
    let reply = send(&layer, bearer(&expired)).await;
    assert_eq!(reply.text(), "custom invalid_token");
    // The renderer is handed the precise reason the client never sees.
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&Rejection::InvalidToken(Reason::Expired))
    );

    let reply = send(&layer, grpc(bearer(&expired))).await;
    assert_grpc(&reply, "16", "gRPC keeps its fixed form");
    assert!(reply.headers.get("x-custom").is_none());

    assert_accepted(&send(&layer, bearer(hs256(&claims()))).await, "valid");
}

#[tokio::test]
async fn claims_rule_failure_is_invalid_token_and_authorize_failure_is_forbidden() {
    let rule_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&rule_calls);
    let layer = builder::<User>()
        .hs256(SECRET)
        .claims_rule(move |user: &User| {
            calls.fetch_add(1, Ordering::SeqCst);
            user.sub != "banned"
        })
        .authorize(|user: &User| {
            user.scope
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|s| s == "admin"))
        })
        .build()
        .unwrap();
    let admin = claims_with(&[("scope", json!("movies:read admin"))]);
    assert_accepted(&send(&layer, bearer(hs(&admin))).await, "admin");

    let banned = claims_with(&[("sub", json!("banned")), ("scope", json!("admin"))]);
    assert_invalid_token(&send(&layer, bearer(hs(&banned))).await, "claims_rule");

    let reply = send(&layer, bearer(hs(&claims()))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.header("www-authenticate"), Some(FORBIDDEN_CHALLENGE));
    assert_eq!(
        reply.json(),
        json!({"error": "insufficient_scope", "error_description": FORBIDDEN_DESCRIPTION})
    );

    // Application rules only ever see verified claims.
    let before = rule_calls.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(HEADER, &admin.to_string()),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");
    assert_eq!(rule_calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn several_issuers_and_audiences() {
    let layer = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer("https://a.test")
        .issuer("https://b.test")
        .audience("x")
        .audience("y")
        .build()
        .unwrap();
    let with = |iss: Value, aud: Value| hs(&claims_with(&[("iss", iss), ("aud", aud)]));
    for (case, token) in [
        ("first issuer", with(json!("https://a.test"), json!("x"))),
        ("second issuer", with(json!("https://b.test"), json!("y"))),
        (
            "one audience of several",
            with(json!("https://a.test"), json!(["z", "y"])),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        ("other issuer", with(json!("https://c.test"), json!("x"))),
        ("issuer prefix", with(json!("https://a.test/"), json!("x"))),
        ("other audience", with(json!("https://a.test"), json!("z"))),
        (
            "no accepted audience",
            with(json!("https://a.test"), json!(["z", "w"])),
        ),
        (
            "no issuer",
            hs(&claims_with(&[("aud", json!("x"))]).without("iss")),
        ),
        (
            "no audience",
            hs(&claims_with(&[("iss", json!("https://a.test"))]).without("aud")),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // RFC 7519 §4.1.3: a token for some audience is refused by a verifier
    // that names none, unless told any audience will do.
    let no_audience = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .build()
        .unwrap();
    let token = hs256(&claims());
    assert_invalid_token(&send(&no_audience, bearer(&token)).await, "unexpected aud");
    let any_audience = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .any_audience()
        .build()
        .unwrap();
    assert_accepted(&send(&any_audience, bearer(&token)).await, "any audience");
}

trait Without {
    fn without(self, name: &str) -> Value;
}

impl Without for Value {
    fn without(mut self, name: &str) -> Value {
        self.as_object_mut().unwrap().remove(name);
        self
    }
}

#[tokio::test]
async fn several_keys_are_chosen_by_kid() {
    let layer = builder::<User>()
        .key(
            VerifyingKey::hmac(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs-a"),
        )
        .key(
            VerifyingKey::hmac(Algorithm::HS256, OTHER_SECRET)
                .unwrap()
                .with_kid("hs-b"),
        )
        .key(
            VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC)
                .unwrap()
                .with_kid("RS256"),
        )
        .key(VerifyingKey::ec_pem(EC_PUBLIC).unwrap().with_kid("ES256"))
        .build()
        .unwrap();
    let payload = claims().to_string();
    let hmac = |kid: &str, secret: &[u8]| {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        mac_token(Algorithm::HS256, segments(&header, &payload), secret)
    };
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    for (case, token) in [
        ("hs-a", hmac("hs-a", SECRET)),
        ("hs-b", hmac("hs-b", OTHER_SECRET)),
        (
            "RS256",
            key(Algorithm::RS256).sign(&claims()).unwrap().into_bytes(),
        ),
        (
            "ES256",
            key(Algorithm::ES256).sign(&claims()).unwrap().into_bytes(),
        ),
        // Documented: a token without a kid is tried on the first keys of
        // its alg (at most `keys::MAX_KEYS_TRIED`; two HS256 keys here).
        ("no kid", hs256_raw(HEADER, &payload).into_bytes()),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        // The kid selects the key: no falling back to the others.
        ("hs-a named, hs-b's MAC", hmac("hs-a", OTHER_SECRET)),
        ("hs-b named, hs-a's MAC", hmac("hs-b", SECRET)),
        ("unknown kid", hmac("hs-c", SECRET)),
        (
            "kid of a key pinned to another alg",
            sign_with(
                &rsa_key,
                Algorithm::RS256,
                r#"{"alg":"RS256","kid":"ES256"}"#,
                &payload,
            )
            .into_bytes(),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

#[tokio::test]
async fn asymmetric_algorithms_verify_with_the_fixture_keys() {
    let cases = [
        (
            Algorithm::RS256,
            VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC),
        ),
        (
            Algorithm::PS256,
            VerifyingKey::rsa_pem(Algorithm::PS256, RSA_PUBLIC),
        ),
        (Algorithm::ES256, VerifyingKey::ec_pem(EC_PUBLIC)),
        (Algorithm::ES384, VerifyingKey::ec_pem(EC384_PUBLIC)),
        (Algorithm::EdDSA, VerifyingKey::ed_pem(ED_PUBLIC)),
    ];
    for (alg, verifying) in cases {
        let case = format!("{alg:?}");
        let layer = builder::<User>().key(verifying.unwrap()).build().unwrap();
        let token = key(alg).sign(&claims()).unwrap();
        let body = assert_accepted(&send(&layer, bearer(&token)).await, &case);
        assert_eq!(body["sub"], "user-1", "{case}");

        // One signature character changed mid-way (never the last, whose
        // unused bits would make it a base64 test instead).
        let mut forged = token.into_bytes();
        let at = forged.len() - 10;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert_invalid_token(&send(&layer, bearer(&forged)).await, &case);
    }
}

// ---------------------------------------------------------------------------
// Revocation.

/// A real in-memory denylist, keyed on `(iss, jti)` as `revoke` advises.
#[derive(Clone, Default)]
struct Denylist {
    revoked: Arc<Mutex<HashSet<(String, String)>>>,
    unreachable: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
}

impl Denylist {
    fn revoke(&self, iss: &str, jti: &str) {
        self.revoked
            .lock()
            .unwrap()
            .insert((iss.to_owned(), jti.to_owned()));
    }
}

impl RevocationCheck for Denylist {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let unreachable = self.unreachable.load(Ordering::SeqCst);
        let key = claims.iss.clone().zip(claims.jti.clone());
        let revoked = key.is_some_and(|key| self.revoked.lock().unwrap().contains(&key));
        Box::pin(async move {
            // A real store answers later: make the layer wait for it.
            tokio::task::yield_now().await;
            let answer: Result<bool, BoxError> = if unreachable {
                Err("denylist store unreachable".into())
            } else {
                Ok(revoked)
            };
            answer
        })
    }
}

#[tokio::test]
async fn revoked_tokens_are_invalid_and_an_unreachable_store_is_unavailable() {
    let denylist = Denylist::default();
    let layer = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .issuer("https://other-issuer.test")
        .audience(AUDIENCE)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let token =
        |iss: &str, jti: &str| hs(&claims_with(&[("iss", json!(iss)), ("jti", json!(jti))]));
    denylist.revoke(ISSUER, "stolen");

    assert_invalid_token(
        &send(&layer, bearer(token(ISSUER, "stolen"))).await,
        "revoked",
    );
    assert_grpc(
        &send(&layer, grpc(bearer(token(ISSUER, "stolen")))).await,
        "16",
        "revoked over gRPC",
    );
    let body = assert_accepted(
        &send(&layer, bearer(token(ISSUER, "fine"))).await,
        "other jti",
    );
    assert_eq!(body["sub"], "user-1");
    assert_accepted(
        &send(&layer, bearer(token("https://other-issuer.test", "stolen"))).await,
        "same jti, another issuer",
    );

    // Forged tokens never cost a store round-trip.
    let lookups = denylist.lookups.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(HEADER, &claims_with(&[("jti", json!("x"))]).to_string()),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");
    assert_eq!(denylist.lookups.load(Ordering::SeqCst), lookups);

    denylist.unreachable.store(true, Ordering::SeqCst);
    let reply = send(&layer, bearer(token(ISSUER, "fine"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    let retry_after = reply.header(RETRY_AFTER.as_str()).expect("Retry-After");
    assert!(
        retry_after.parse::<u32>().is_ok_and(|s| s > 0),
        "{retry_after}"
    );
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(
        reply.json(),
        json!({"error": "temporarily_unavailable", "error_description": UNAVAILABLE_DESCRIPTION})
    );
    assert_grpc(
        &send(&layer, grpc(bearer(token(ISSUER, "fine")))).await,
        "14",
        "store unreachable over gRPC",
    );
}

// ---------------------------------------------------------------------------
// Issue 7 (outside security review), items 8–11.

#[track_caller]
fn assert_no_store(reply: &Reply, case: &str) {
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{case}: {reply:?}"
    );
}

/// gRPC-web trailers-only: HTTP 200, the status in the headers.
#[track_caller]
fn assert_grpc_web(reply: &Reply, content_type: &str, code: &str, case: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {reply:?}");
    assert_eq!(reply.header("content-type"), Some(content_type), "{case}");
    assert_eq!(reply.header("grpc-status"), Some(code), "{case}");
    assert!(reply.body.is_empty(), "{case}: trailers-only has no body");
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none(), "{case}");
}

#[tokio::test]
async fn issue7_item_08_grpc_answers_only_for_http2_grpc_or_grpc_web() {
    let layer = hs_layer();
    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));

    // The content type is the client's word: over HTTP/1.1 it earns no 200.
    for (version, content_type) in [
        (Version::HTTP_11, "application/grpc"),
        (Version::HTTP_11, "application/grpc+proto"),
        (Version::HTTP_10, "application/grpc"),
    ] {
        let case = format!("{version:?} {content_type}");
        let reply = send(
            &layer,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_missing_token(&reply, &case);
        assert_no_store(&reply, &case);
        let reply = send(
            &layer,
            with_content_type(bearer(&expired), version, content_type),
        )
        .await;
        assert_invalid_token(&reply, &case);
        assert_no_store(&reply, &case);
    }

    // gRPC proper (HTTP/2) keeps its trailers-only answer.
    let reply = send(&layer, grpc(no_credentials())).await;
    assert_grpc(&reply, "16", "HTTP/2 gRPC");
    assert_no_store(&reply, "HTTP/2 gRPC");

    // gRPC-web runs over HTTP/1.1 (or 2): gRPC answers, in its content type.
    for (version, content_type, answered_as) in [
        (
            Version::HTTP_11,
            "application/grpc-web",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_11,
            "application/grpc-web+proto",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_2,
            "application/grpc-web+proto",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_11,
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ),
    ] {
        let case = format!("{version:?} {content_type}");
        let reply = send(
            &layer,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_grpc_web(&reply, answered_as, "16", &case);
        assert_no_store(&reply, &case);
        let valid = with_content_type(bearer(hs256(&claims())), version, content_type);
        assert_accepted(&send(&layer, valid).await, &case);
    }

    // The switch for HTTP-only services: nothing ever answers 200.
    let http_only = builder::<User>()
        .hs256(SECRET)
        .grpc_answers(false)
        .build()
        .unwrap();
    for (version, content_type) in [
        (Version::HTTP_2, "application/grpc"),
        (Version::HTTP_11, "application/grpc-web+proto"),
        (Version::HTTP_2, "application/grpc-web-text"),
    ] {
        let case = format!("grpc_answers(false), {version:?} {content_type}");
        let reply = send(
            &http_only,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_missing_token(&reply, &case);
        assert_no_store(&reply, &case);
    }
    assert_accepted(
        &send(&http_only, grpc(bearer(hs256(&claims())))).await,
        "grpc_answers(false), valid",
    );

    // Every other rejection is no-store too, HTTP and gRPC, default and
    // custom rendering.
    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    let token = hs256(&claims());
    let two_places = {
        let mut request = bearer(&token);
        request.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        request
    };
    let store = KeyStore::new(KeySet::default());
    let empty = builder::<User>().key_store(store).build().unwrap();
    for (case, reply) in [
        ("403", send(&scoped, bearer(&token)).await),
        ("403 gRPC", send(&scoped, grpc(bearer(&token))).await),
        ("400", send(&layer, two_places).await),
        ("503", send(&empty, bearer(&token)).await),
        ("503 gRPC", send(&empty, grpc(bearer(&token))).await),
    ] {
        assert_no_store(&reply, case);
    }
    let custom = builder::<User>()
        .hs256(SECRET)
        .on_rejection(|rejection| {
            Response::builder()
                .status(rejection.status())
                .body(Bytes::new())
                .unwrap()
        })
        .build()
        .unwrap();
    assert_no_store(&send(&custom, no_credentials()).await, "custom renderer");
    let cacheable = builder::<User>()
        .hs256(SECRET)
        .on_rejection(|rejection| {
            Response::builder()
                .status(rejection.status())
                .header("cache-control", "private, max-age=5")
                .body(Bytes::new())
                .unwrap()
        })
        .build()
        .unwrap();
    assert_eq!(
        send(&cacheable, no_credentials())
            .await
            .header("cache-control"),
        Some("private, max-age=5"),
        "a renderer's own Cache-Control is kept"
    );
    // Accepted requests are left alone.
    let reply = send(&layer, bearer(&token)).await;
    assert!(reply.headers.get("cache-control").is_none());
}

#[tokio::test]
async fn issue7_item_09_revoked_beats_forbidden() {
    let denylist = Denylist::default();
    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let denied = builder::<User>()
        .hs256(SECRET)
        .authorize(|_| false)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let token = |jti: &str, scope: &str| {
        hs(&claims_with(&[
            ("jti", json!(jti)),
            ("scope", json!(scope)),
        ]))
    };
    denylist.revoke(ISSUER, "revoked");

    // Revoked, lacking the scope: invalid (401), not forbidden (403).
    let revoked_unscoped = token("revoked", "movies:read");
    assert_invalid_token(
        &send(&scoped, bearer(&revoked_unscoped)).await,
        "revoked, no scope",
    );
    assert_grpc(
        &send(&scoped, grpc(bearer(&revoked_unscoped))).await,
        "16",
        "revoked, no scope, gRPC",
    );
    // Revoked, with the scope: 401.
    assert_invalid_token(
        &send(&scoped, bearer(token("revoked", "movies:write"))).await,
        "revoked, with scope",
    );
    // Revoked, refused by an authorization rule: 401 too.
    assert_invalid_token(
        &send(&denied, bearer(&revoked_unscoped)).await,
        "revoked, authorize false",
    );
    assert_grpc(
        &send(&denied, grpc(bearer(&revoked_unscoped))).await,
        "16",
        "revoked, authorize false, gRPC",
    );

    // Live tokens: the scope and the rule still decide.
    let reply = send(&scoped, bearer(token("live", "movies:read"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert_grpc(
        &send(&scoped, grpc(bearer(token("live", "movies:read")))).await,
        "7",
        "live, no scope, gRPC",
    );
    let reply = send(&denied, bearer(token("live", "movies:read"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert_eq!(reply.header("www-authenticate"), Some(FORBIDDEN_CHALLENGE));
    assert_accepted(
        &send(&scoped, bearer(token("live", "movies:write"))).await,
        "live, with scope",
    );

    // Revocation still comes only after the signature and the 401 claim
    // checks: a forged or expired token costs no lookup.
    let lookups = denylist.lookups.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(
            HEADER,
            &claims_with(&[("jti", json!("revoked"))]).to_string(),
        ),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&scoped, bearer(&forged)).await, "forged");
    let expired = hs(&claims_with(&[
        ("jti", json!("revoked")),
        ("exp", json!(now() - 3600)),
    ]));
    assert_invalid_token(&send(&scoped, bearer(&expired)).await, "expired");
    assert_eq!(denylist.lookups.load(Ordering::SeqCst), lookups);

    // `verify` (no revocation check) keeps answering 403 for the scope.
    assert_eq!(
        scoped
            .verify(&token("live", "movies:read"))
            .unwrap_err()
            .status(),
        StatusCode::FORBIDDEN
    );
}

/// DER for the RSA key tests: a crafted key need not be a real one to be
/// refused for its size.
mod der {
    fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        match len {
            0..0x80 => out.push(len as u8),
            0x80..0x100 => out.extend([0x81, len as u8]),
            _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn integer(magnitude: &[u8]) -> Vec<u8> {
        let mut content = magnitude.to_vec();
        if content[0] & 0x80 != 0 {
            content.insert(0, 0);
        }
        wrap(0x02, &content)
    }

    /// PKCS#1 `RSAPublicKey`.
    pub(super) fn pkcs1(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut body = integer(n);
        body.extend(integer(e));
        wrap(0x30, &body)
    }

    /// SubjectPublicKeyInfo around a PKCS#1 key (rsaEncryption, NULL).
    pub(super) fn spki(pkcs1: &[u8]) -> Vec<u8> {
        let algorithm = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0];
        bits.extend_from_slice(pkcs1);
        let mut body = algorithm.to_vec();
        body.extend(wrap(0x03, &bits));
        wrap(0x30, &body)
    }

    pub(super) fn pem(spki: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(spki);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

/// An odd modulus of exactly `bits` bits (not a product of two primes, which
/// no configuration-time check can tell).
fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xff; bits.div_ceil(8)];
    n[0] >>= n.len() * 8 - bits;
    n
}

#[tokio::test]
async fn issue7_item_10_keys_are_checked_when_configured() {
    const E: &[u8] = &[1, 0, 1];
    // Garbage DER used to build and refuse every token; now the builder
    // reports it.
    assert!(VerifyingKey::rsa_der(Algorithm::RS256, b"garbage").is_err());
    let built = builder::<User>()
        .key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .public_key_pem(der::pem(b"garbage"))
        .build();
    assert!(built.is_err(), "garbage PEM built");

    // Every RSA input path counts bits: 2041 bits in 256 bytes is refused,
    // 2048 and 4096 accepted, 4097 and 8192 (which the rust_crypto backend
    // can never verify with) refused.
    let dir = std::env::temp_dir().join(format!("tower-jwt-auth-item10-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (bits, accepted) in [
        (2041, false),
        (2047, false),
        (2048, true),
        (3072, true),
        (4096, true),
        (4097, false),
        (8192, false),
    ] {
        let n = modulus(bits);
        let pkcs1 = der::pkcs1(&n, E);
        let spki = der::spki(&pkcs1);
        let pem = der::pem(&spki);
        let jwk = json!({"kty": "RSA", "alg": "RS256", "n": b64(&n), "e": b64(E)});
        let der_file = dir.join(format!("{bits}.der"));
        let pem_file = dir.join(format!("{bits}.pem"));
        std::fs::write(&der_file, &spki).unwrap();
        std::fs::write(&pem_file, &pem).unwrap();
        for (path, result) in [
            (
                "PKCS#1 DER",
                VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1),
            ),
            ("SPKI DER", VerifyingKey::public_key_der(&spki)),
            ("PEM", VerifyingKey::rsa_pem(Algorithm::PS256, &pem)),
            ("any PEM", VerifyingKey::public_key_pem(&pem)),
            ("DER file", VerifyingKey::public_key_file(&der_file)),
            ("PEM file", VerifyingKey::public_key_file(&pem_file)),
            ("JWK", VerifyingKey::from_jwk(&jwk)),
        ] {
            assert_eq!(result.is_ok(), accepted, "{bits} bits, {path}: {result:?}");
        }
        let set = KeySet::from_jwks(&json!({"keys": [jwk]}));
        assert_eq!(set.is_ok(), accepted, "{bits} bits, JWK set");
        let layer = builder::<User>().rsa_pem(Algorithm::RS256, &pem).build();
        assert_eq!(layer.is_ok(), accepted, "{bits} bits, builder");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Exponents both backends refuse anyway are refused up front.
    for e in [&[1][..], &[2], &[1, 0, 0], &[3, 0, 0, 0, 0, 1]] {
        let pkcs1 = der::pkcs1(&modulus(2048), e);
        assert!(
            VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1).is_err(),
            "e = {e:?}"
        );
    }
    // A private key handed in as a public one is not a PKCS#1 public key.
    assert!(VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PRIVATE).is_err());
    // The fixture keys (2048-bit, real) still verify.
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    let token = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&token)).await, "2048-bit fixture");

    // HMAC secrets are at least the hash output size (RFC 7518 §3.2).
    let secret = [0x5a; 64];
    for (alg, refused, accepted) in [
        (Algorithm::HS256, 31, 32),
        (Algorithm::HS384, 40, 48),
        (Algorithm::HS384, 47, 48),
        (Algorithm::HS512, 63, 64),
    ] {
        assert!(
            VerifyingKey::hmac(alg, &secret[..refused]).is_err(),
            "{alg:?} {refused}"
        );
        assert!(
            VerifyingKey::hmac(alg, &secret[..accepted]).is_ok(),
            "{alg:?} {accepted}"
        );
    }
    assert!(builder::<User>().hs384(&secret[..40]).build().is_err());
    assert!(builder::<User>().hs384(&secret[..48]).build().is_ok());
    assert!(builder::<User>().hs512(&secret[..63]).build().is_err());
    assert!(builder::<User>().hs512(&secret[..64]).build().is_ok());
    let short_512 = json!({"kty": "oct", "alg": "HS512", "k": b64(&secret[..48])});
    assert!(VerifyingKey::from_jwk(&short_512).is_err());
    assert!(SigningKey::hmac(Algorithm::HS512, "k", &secret[..63]).is_err());
}

#[tokio::test]
async fn issue7_item_11_kidless_tokens_are_tried_on_a_bounded_number_of_keys() {
    use tower_jwt_auth::keys::MAX_KEYS_TRIED;
    // Many keys of one algorithm: kid-less ones, then some with kids.
    let secrets: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("bounded-kidless-test-secret-number-{i:02}").into_bytes())
        .collect();
    let mut layer = builder::<User>().on_rejection(with_reason_header);
    for (i, secret) in secrets.iter().enumerate() {
        let key = VerifyingKey::hmac(Algorithm::HS256, secret).unwrap();
        layer = layer.key(if i < 6 {
            key
        } else {
            key.with_kid(format!("k{i}"))
        });
    }
    let layer = layer.build().unwrap();
    let payload = claims().to_string();
    let kidless = |i: usize| mac_token(Algorithm::HS256, segments(HEADER, &payload), &secrets[i]);

    for i in 0..MAX_KEYS_TRIED {
        assert_accepted(&send(&layer, bearer(kidless(i))).await, &format!("key {i}"));
    }
    for i in MAX_KEYS_TRIED..secrets.len() {
        assert_reason(
            &send(&layer, bearer(kidless(i))).await,
            Reason::Signature,
            &format!("kid-less, key {i} beyond the bound"),
        );
    }
    // Keys with kids are still reached by naming them.
    for (i, secret) in secrets.iter().enumerate().skip(6) {
        let header = json!({"alg": "HS256", "kid": format!("k{i}")}).to_string();
        let token = mac_token(Algorithm::HS256, segments(&header, &payload), secret);
        assert_accepted(&send(&layer, bearer(&token)).await, &format!("kid k{i}"));
    }
}

// ---------------------------------------------------------------------------
// Robustness: bad input never panics, and work stays linear in its size.

/// xorshift64*: deterministic, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NOISE: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_....=+/ %\"{}\\\t\x80\xff";

fn mutate(rng: &mut Rng, token: &[u8]) -> Vec<u8> {
    let mut t = token.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(t.len().max(1));
        match rng.below(8) {
            0 if !t.is_empty() => t[at] = *rng.pick(NOISE),
            1 => t.insert(at.min(t.len()), *rng.pick(NOISE)),
            2 if !t.is_empty() => {
                t.remove(at);
            }
            3 => t.truncate(at),
            4 => {
                let at = at.min(t.len());
                let end = (at + rng.below(64)).min(t.len());
                let copy = t[at..end].to_vec();
                let tail = t.split_off(at);
                t.extend(copy);
                t.extend(tail);
            }
            5 => {
                let parts: Vec<&[u8]> = t.split(|&b| b == b'.').collect();
                let mut parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
                let (i, j) = (rng.below(parts.len()), rng.below(parts.len()));
                parts.swap(i, j);
                t = parts.join(&b'.');
            }
            6 => t.extend_from_slice(b".eyJhbGciOiJub25lIn0"),
            _ if !t.is_empty() => t[at] ^= 1 << rng.below(7),
            _ => {}
        }
    }
    t
}

fn random_json(rng: &mut Rng, depth: usize) -> String {
    const KEYS: &[&str] = &[
        "alg",
        "kid",
        "typ",
        "cty",
        "crit",
        "jwk",
        "exp",
        "nbf",
        "iat",
        "iss",
        "aud",
        "sub",
        "jti",
        "scope",
        "scp",
        "x",
        "\\u0061lg",
        "",
    ];
    match rng.below(if depth > 4 { 6 } else { 9 }) {
        0 => json!(rng.next() as i64).to_string(),
        1 => format!("{}.{}e{}", rng.below(1000), rng.below(100), rng.below(400)),
        2 => {
            json!(*rng.pick(&["HS256", "none", "at+jwt", "JWT", "user-1", "", "\u{0}"])).to_string()
        }
        3 => rng
            .pick(&["null", "true", "false", "-0", "1e999", "\"\\ud800\""])
            .to_string(),
        4 => "[".repeat(rng.below(300)),
        5 => rng.pick(&["{", "}", ",", ":", "\"", "]"]).to_string(),
        6 => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let members: Vec<String> = (0..rng.below(6))
                .map(|_| format!("\"{}\":{}", rng.pick(KEYS), random_json(rng, depth + 1)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

#[tokio::test]
async fn robustness_random_and_mutated_tokens_never_panic() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .key(VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap())
        .key(VerifyingKey::ec_pem(EC_PUBLIC).unwrap())
        .key(VerifyingKey::ed_pem(ED_PUBLIC).unwrap())
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    let seeds: Vec<Vec<u8>> = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .map(|alg| key(alg).sign(&claims()).unwrap().into_bytes())
    .collect();

    let mut rng = Rng(0x5EED_F00D_7E57);
    let mut tokens = Vec::new();
    for _ in 0..2500 {
        let seed = rng.pick(&seeds).clone();
        let mutant = mutate(&mut rng, &seed);
        if mutant != seed {
            tokens.push(mutant);
        }
    }
    for _ in 0..500 {
        let len = rng.below(12_000);
        tokens.push((0..len).map(|_| *rng.pick(NOISE)).collect());
    }
    // Correctly MACed nonsense reaches the header and claims parsers; the
    // issuer is never among the generated strings, so none is valid.
    for _ in 0..1500 {
        let header = if rng.below(3) == 0 {
            random_json(&mut rng, 0)
        } else {
            format!(r#"{{"alg":"HS256","x":{}}}"#, random_json(&mut rng, 0))
        };
        let payload = random_json(&mut rng, 0);
        tokens.push(mac_token(
            Algorithm::HS256,
            segments(&header, &payload),
            SECRET,
        ));
    }

    let mut sent = 0;
    let mut reasons = BTreeSet::new();
    for token in tokens {
        let Some(request) = authorization(&[&b"Bearer "[..], &token[..]].concat()) else {
            continue;
        };
        let layer = layer.clone();
        let reply = tokio::spawn(async move { send(&layer, request).await }).await;
        let reply = reply.unwrap_or_else(|err| {
            panic!(
                "the layer panicked ({err}) on {:?}",
                String::from_utf8_lossy(&token)
            )
        });
        assert!(
            matches!(reply.status.as_u16(), 400 | 401),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(&token)
        );
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|c| c.starts_with(BARE_CHALLENGE)),
            "{reply:?}"
        );
        if let Some(reason) = reply.header("x-test-reason") {
            reasons.insert(reason.to_owned());
        }
        sent += 1;
    }
    assert!(sent > 4000, "only {sent} tokens were header-safe");
    // The run must reach deep into the verifier, not stop at the shape.
    for reason in [
        "Malformed",
        "BadHeader",
        "Signature",
        "BadClaims",
        "TooLarge",
    ] {
        assert!(reasons.contains(reason), "never hit {reason}: {reasons:?}");
    }
}

/// Ignoring a deep value or refusing it are both fine; what must never
/// happen is recursion proportional to the input (a stack overflow aborts
/// the whole process, which fails this test binary).
#[tokio::test]
async fn robustness_deeply_nested_json_never_overflows_the_stack() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let roomy = builder::<User>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    let deep_header = format!(r#"{{"alg":"HS256","x":{}}}"#, nested(400));
    let token = hs256_raw(&deep_header, &claims().to_string());
    assert_ignored_or_refused(&send(&roomy, bearer(&token)).await, "deep header");
    let deep_payload = with_members(&claims(), &format!(r#""x":{}"#, nested(200_000)));
    let token = hs256_raw(HEADER, &deep_payload);
    assert_ignored_or_refused(&send(&roomy, bearer(&token)).await, "deep payload");

    // A claims type that keeps every value must build the nesting: serde's
    // recursion limit refuses it instead of overflowing.
    let untyped = builder::<Value>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    assert_invalid_token(&send(&untyped, bearer(&token)).await, "deep, untyped");
    let shallow = with_members(&claims(), &format!(r#""x":{}"#, nested(4)));
    assert_accepted(
        &send(&untyped, bearer(hs256_raw(HEADER, &shallow))).await,
        "shallow, untyped",
    );
}

#[track_caller]
fn assert_ignored_or_refused(reply: &Reply, case: &str) {
    if reply.status != StatusCode::OK {
        assert_invalid_token(reply, case);
    }
}

#[tokio::test]
async fn robustness_huge_payload_with_a_late_duplicate_is_refused() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .max_token_len(1 << 20)
        .build()
        .unwrap();
    // Many distinct members and a duplicate at the very end: the
    // duplicate detector sees every name before it can refuse.
    let token_of = |bytes: usize| {
        let members: String = (0..bytes / 12)
            .map(|i| format!(r#""m{i:07}":0,"#))
            .collect();
        let payload = with_members(&claims(), &format!(r#"{members}"m0000000":1"#));
        hs256_raw(HEADER, &payload)
    };
    // Linear scaling itself is measured by `cargo bench --bench verify`
    // (scaling/*), not timed here.
    let large = token_of(64 * 1024);
    assert_invalid_token(&send(&layer, bearer(&large)).await, "duplicate at the end");
}
