//! The one-pass claims decoder against arbitrary payloads: the input is the
//! payload of an HS256 token signed with the layer's secret, so every input
//! gets past the signature and reaches the decoder and the claim rules.
//! Several claims types cover the decoder's paths (a struct read as one
//! object, a map, `Option` and a newtype, which leave the observation
//! incomplete and run the strict pass alone). Property: no panic.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth_fuzz::*;

#[derive(Clone, Debug, Deserialize)]
#[allow(dead_code)]
struct Typed {
    sub: String,
    exp: u64,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[allow(dead_code)]
struct Newtype(serde_json::Map<String, serde_json::Value>);

#[derive(Clone, Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
struct Strict {
    exp: f64,
    iss: String,
}

fn plain<C: DeserializeOwned + Clone + Send + Sync + 'static>() -> JwtAuthLayer<C> {
    JwtAuthLayer::builder()
        .hs256(HS256_SECRET)
        .any_audience()
        .build()
        .unwrap()
}

fn configured<C: DeserializeOwned + Clone + Send + Sync + 'static>() -> JwtAuthLayer<C> {
    JwtAuthLayer::builder()
        .hs256(HS256_SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .max_age(Duration::from_secs(3600))
        .require_claim("sub")
        .require_claim("jti")
        .require_scope("read")
        .require_typ_at_jwt()
        .build()
        .unwrap()
}

static VALUE: LazyLock<JwtAuthLayer<serde_json::Value>> = LazyLock::new(plain);
static TYPED: LazyLock<JwtAuthLayer<Typed>> = LazyLock::new(configured);
static OPTION: LazyLock<JwtAuthLayer<Option<Typed>>> = LazyLock::new(plain);
static NEWTYPE: LazyLock<JwtAuthLayer<Newtype>> = LazyLock::new(configured);
static STRICT: LazyLock<JwtAuthLayer<Strict>> = LazyLock::new(plain);
static UNIT: LazyLock<JwtAuthLayer<()>> = LazyLock::new(plain);
static KEY: LazyLock<EncodingKey> = LazyLock::new(|| EncodingKey::from_secret(HS256_SECRET));

fn token(header: &str, payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &KEY, jsonwebtoken::Algorithm::HS256).unwrap();
    format!("{input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let jwt = token(r#"{"alg":"HS256","typ":"JWT"}"#, data);
    let at = token(r#"{"alg":"HS256","typ":"at+jwt"}"#, data);
    let _ = VALUE.verify(&jwt);
    let _ = OPTION.verify(&jwt);
    let _ = STRICT.verify(&jwt);
    let _ = UNIT.verify(&jwt);
    let _ = TYPED.verify(&at);
    let _ = NEWTYPE.verify(&at);
});
