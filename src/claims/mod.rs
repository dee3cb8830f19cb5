//! What a verified token says: its payload decoded once for both the
//! application's claims type and the registered claims (`exp`, `iss`,
//! `aud`, …), read strictly, and the rules those are checked against.
//!
//! - `decode`: the one-pass decoder, driving the application's
//!   `Deserialize` and the strict reader together;
//! - `registered`: strict reading of the registered claims, and the owned
//!   [`RegisteredClaims`] a revocation check receives;
//! - `value`: NumericDate, one-or-many strings, and replaying a value
//!   already read to the application's field;
//! - `rules`: the configured checks (`exp`, `nbf`, `iat`, `iss`, `aud`,
//!   `typ`, required claims); scopes are read here and required by
//!   [`crate::authorize`].
//!
//! "Claims" alone is the application's own type (and, with the `axum`
//! feature, the `axum::Claims` extractor); the pieces here
//! are named for what they read.

mod decode;
mod registered;
mod rules;
mod value;

pub(crate) use decode::decode;
pub use registered::RegisteredClaims;
pub(crate) use registered::{Registered, parse};
pub use rules::DEFAULT_LEEWAY;
pub(crate) use rules::{Clock, Rules};
#[cfg(feature = "dpop")]
pub(crate) use value::NumericDate;

/// Reads the registered claims alone, as strictly as [`decode`]: for
/// choosing among several issuers by a token's `iss` before its signature
/// is checked.
pub(crate) fn parse_registered(
    payload: &[u8],
) -> Result<registered::Registered<'_>, crate::reject::Reason> {
    registered::parse(payload, &[])
}
