//! Error responses that several operations document alike, as reusable
//! OpenAPI response sets to list in `#[utoipa::path(responses(...))]`.
//!
//! They only describe responses: nothing constructs them. Responses whose
//! description depends on the operation (422, 503, a 401 that is not a
//! bearer challenge) stay next to the handler. utoipa does not collect the
//! schemas these sets refer to, so `ApiDoc` registers [`ErrorBody`] itself.

#![expect(dead_code, reason = "response documentation, never constructed")]

use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// How [`crate::error::Json`] rejects a body before the handler runs,
/// except 422, whose meaning each operation spells out.
#[derive(IntoResponses)]
pub enum JsonBodyRejections {
    #[response(status = 400, description = "Malformed JSON")]
    Malformed(ErrorBody),
    #[response(status = 413, description = "Body larger than 16 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Content type is not application/json")]
    NotJson(ErrorBody),
}

/// [`JsonBodyRejections`] at the token endpoints, whose 400 also answers a
/// refused DPoP proof (RFC 9449 §5).
#[derive(IntoResponses)]
pub enum TokenEndpointRejections {
    #[response(
        status = 400,
        description = "Malformed JSON, or a refused DPoP proof: `invalid_dpop_proof` \
            (bad signature, wrong `htm`/`htu`, stale `iat`, replayed `jti`, unsupported \
            `alg`, several `DPoP` headers, or a refresh token bound to another key), \
            or `use_dpop_nonce` with the nonce to use in `DPoP-Nonce`",
        headers(("DPoP-Nonce" = String, description = "With `use_dpop_nonce`: the nonce the next proof must carry"))
    )]
    Malformed(ErrorBody),
    #[response(status = 413, description = "Body larger than 16 KiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Content type is not application/json")]
    NotJson(ErrorBody),
}

/// The library layer's answer to a request without a usable access token.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "Missing, invalid, expired or revoked access token; a DPoP-bound token \
        sent as Bearer, or without a valid DPoP proof by its key (`invalid_dpop_proof`: \
        bad signature, wrong `htm`/`htu`/`ath`, stale `iat`, replayed `jti`), or, with \
        server nonces on, without a current nonce (`use_dpop_nonce`)",
    headers(
        ("WWW-Authenticate" = String, description = "RFC 6750 challenge, or RFC 9449 `DPoP` challenge with `algs`"),
        ("DPoP-Nonce" = String, description = "With `use_dpop_nonce`: the nonce the next proof must carry")
    )
)]
pub struct BearerRejection(ErrorBody);

/// The library layer's answer to a valid token without scope `movies:write`.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "Token lacks scope movies:write",
    headers(("WWW-Authenticate" = String, description = "RFC 6750 insufficient_scope challenge"))
)]
pub struct MoviesWriteRejection(ErrorBody);
