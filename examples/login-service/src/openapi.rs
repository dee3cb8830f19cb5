//! The OpenAPI document's frame: title, tags, the shared error schema and
//! the `bearer` and `dpop` security schemes. The operations come from the handlers'
//! `#[utoipa::path]` attributes as the router collects them.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "login-service",
        description = "Email + password in, EdDSA-signed access tokens out. \
            Log in with `POST /auth/login`, press **Authorize** and paste the `access_token`. \
            Clients that send a DPoP proof (RFC 9449) at login get `token_type: DPoP` tokens \
            bound to their key instead; those are sent as `Authorization: DPoP <token>` with a \
            new proof on every request.",
    ),
    // Shared response sets refer to it without registering it.
    components(schemas(error::ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "movies", description = "Public reads; writes need scope movies:write"),
        (name = "discovery", description = "Keys and metadata for verifiers"),
    )
)]
pub(crate) struct ApiDoc;

/// The `bearer` and `dpop` schemes the protected operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // OpenAPI has no DPoP scheme: describe its proof header, beside
        // which the token goes in `Authorization: DPoP <token>`.
        components.add_security_scheme(
            "dpop",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "DPoP",
                "RFC 9449: a DPoP-bound access token (`token_type: DPoP`, claim `cnf.jkt`) \
                 is sent as `Authorization: DPoP <token>` together with this header, a new \
                 proof for each request signed by the token's key: `typ` `dpop+jwt`, `htm` \
                 the method, `htu` the URL under the issuer, fresh `iat`, unique `jti`, and \
                 `ath` the base64url SHA-256 of the token.",
            ))),
        );
    }
}
