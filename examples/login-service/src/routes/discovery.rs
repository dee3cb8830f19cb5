//! What a verifier needs to check this service's tokens without talking to
//! it again: the public keys and the issuer metadata.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::Json;

/// A JWK set (RFC 7517 §5).
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    /// Public keys; a rotation publishes the next key before it signs and
    /// keeps the previous one until its tokens have expired.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// Issuer metadata in the OpenID Connect discovery format, limited to what
/// this service really does.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerMetadata {
    #[schema(example = "http://127.0.0.1:3000")]
    pub issuer: String,
    #[schema(example = "http://127.0.0.1:3000/.well-known/jwks.json")]
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    /// RFC 9449 §5.1: the algorithms of the DPoP proofs accepted at login,
    /// refresh and the protected routes. A client that sends one gets
    /// `token_type: DPoP` access tokens bound to its key.
    #[schema(example = json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"]))]
    pub dpop_signing_alg_values_supported: Vec<String>,
}

/// Public signing keys.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    responses((status = 200, description = "The JWK set", body = JwkSet))
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.keys.jwks()).into_response();
    // Short enough that a verifier sees a rotated-in key before it signs.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// Issuer metadata pointing at the JWK set.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "discovery",
    responses((status = 200, description = "Issuer metadata", body = IssuerMetadata))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<IssuerMetadata> {
    let issuer = state.issuer.trim_end_matches('/').to_owned();
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    Json(IssuerMetadata {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        issuer: state.issuer.to_string(),
        response_types_supported: strings(&["token"]),
        subject_types_supported: strings(&["public"]),
        id_token_signing_alg_values_supported: strings(&["EdDSA"]),
        token_endpoint_auth_methods_supported: strings(&["none"]),
        scopes_supported: strings(&["movies:read", "movies:write"]),
        claims_supported: strings(&[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "email",
            "scope",
            "sid",
            "cnf",
        ]),
        dpop_signing_alg_values_supported: crate::dpop::ALGORITHMS
            .iter()
            .map(|alg| alg.name().to_owned())
            .collect(),
    })
}
