//! The OpenAPI document's frame: title, tags, the shared error schema and
//! the `bearer` security scheme. The operations come from the handlers'
//! `#[utoipa::path]` attributes as the router collects them.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "login-service",
        description = "Email + password in, EdDSA-signed access tokens out. \
            Log in with `POST /auth/login`, press **Authorize** and paste the `access_token`.",
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

/// The `bearer` scheme the protected operations refer to.
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
    }
}
