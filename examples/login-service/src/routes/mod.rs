//! HTTP handlers, grouped by resource. Each carries its OpenAPI description
//! next to its code, so the document cannot drift from the router.

pub mod auth;
pub mod discovery;
pub mod movies;
mod responses;

use crate::error::ApiError;

/// PostgreSQL cannot store NUL in TEXT; refuse it up front instead of
/// letting the insert fail as a server error.
pub(crate) fn reject_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::unprocessable(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}
