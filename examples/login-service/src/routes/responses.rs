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

/// The library layer's answer to a request without a usable access token.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "Missing, invalid, expired or revoked access token",
    headers(("WWW-Authenticate" = String, description = "RFC 6750 challenge"))
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
