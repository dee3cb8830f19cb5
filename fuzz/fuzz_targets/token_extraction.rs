//! Arbitrary `Authorization`, cookie, custom-header and query values through
//! the layer's token finding (every source configured). Property: no panic,
//! and every answer is the inner service's 200 (optional, no token) or a
//! 400 / 401.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderName, HeaderValue, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::token::TokenSource;
use tower_jwt_auth_fuzz::{HS256_SECRET, call, parts};

static X_TOKEN: HeaderName = HeaderName::from_static("x-access-token");

fn layer(optional: bool) -> JwtAuthLayer<serde_json::Value> {
    let builder = JwtAuthLayer::builder()
        .hs256(HS256_SECRET)
        .token_sources([
            TokenSource::BearerHeader,
            TokenSource::Cookie("access_token".into()),
            TokenSource::Header(X_TOKEN.clone()),
            TokenSource::Query("access_token".into()),
        ])
        .max_token_len(512);
    if optional { builder.optional() } else { builder }.build().unwrap()
}

static STRICT: LazyLock<JwtAuthLayer<serde_json::Value>> = LazyLock::new(|| layer(false));
static OPTIONAL: LazyLock<JwtAuthLayer<serde_json::Value>> = LazyLock::new(|| layer(true));

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    // Parts: query, then header values; the flag bits say which header each
    // value goes to.
    let parts = parts(data, 6);
    let mut builder = Request::builder();
    if let Some(query) = parts.first() {
        let mut uri = b"/resource?".to_vec();
        uri.extend_from_slice(query);
        if let Ok(uri) = http::Uri::try_from(uri) {
            builder = builder.uri(uri);
        }
    }
    for (i, value) in parts.iter().skip(1).enumerate() {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let name = match (flags >> (i % 4 * 2)) & 3 {
            0 => http::header::AUTHORIZATION,
            1 => http::header::COOKIE,
            2 => X_TOKEN.clone(),
            _ => http::header::HOST,
        };
        builder = builder.header(name, value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let layer = if flags & 0x80 != 0 { &*OPTIONAL } else { &*STRICT };
    let status = call(layer, request);
    assert!(
        [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED].contains(&status),
        "unexpected status {status}"
    );
    // Without a valid signature nothing can get through a strict layer.
    if flags & 0x80 == 0 {
        assert_ne!(status, StatusCode::OK, "a strict layer let a request through");
    }
});
