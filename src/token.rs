//! Where a request's token is found.
//!
//! By default only `Authorization: Bearer <token>` is read (the scheme name
//! is case-insensitive, RFC 6750 §2.1 and RFC 9110 §11.1). A cookie, a custom
//! header or a query parameter is read only when configured, and a request
//! carrying a token in more than one place, or more than one `Authorization`
//! header, is refused with `400 invalid_request` (RFC 6750 §2).
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::JwtAuthLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = JwtAuthLayer::<serde_json::Value>::builder()
//!     .hs256(b"0123456789abcdef0123456789abcdef")
//!     .token_from_cookie("access_token")
//!     .build()?;
//! let service = ServiceBuilder::new().layer(auth).service(service_fn(|_req: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! }));
//!
//! let both = Request::builder()
//!     .header("authorization", "Bearer a.b.c")
//!     .header("cookie", "access_token=a.b.c")
//!     .body(())?;
//! assert_eq!(service.oneshot(both).await?.status(), StatusCode::BAD_REQUEST);
//! # Ok(()) }
//! ```

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, Uri};

/// Default maximum token length in bytes, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// One place a token may be carried.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`.
    BearerHeader,
    /// The whole value of a custom header, e.g. `X-Access-Token`.
    Header(HeaderName),
    /// A cookie of this name.
    Cookie(String),
    /// A query parameter of this name (RFC 6750 §2.3 discourages it: URLs
    /// end up in logs).
    Query(String),
}

/// What looking for a token found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// No credentials for us (no header, or another scheme such as Basic).
    Nothing,
    /// Exactly one token.
    Token(&'a [u8]),
    /// Exactly one token, sent as `Authorization: DPoP` (looked for only
    /// by layers that accept DPoP).
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    Dpop(&'a [u8]),
    /// Credentials in several places, or a repeated header.
    Ambiguous,
}

/// Looks in every configured place (and, with `dpop`, for the `DPoP`
/// scheme in `Authorization`) and insists on at most one token.
pub(crate) fn find<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
    uri: &'a Uri,
    dpop: bool,
) -> Found<'a> {
    let mut found = if dpop {
        authorization(headers, b"dpop", Found::Dpop)
    } else {
        Found::Nothing
    };
    if found == Found::Ambiguous {
        return found;
    }
    for source in sources {
        let here = match source {
            TokenSource::BearerHeader => bearer(headers),
            TokenSource::Header(name) => single_header(headers, name),
            TokenSource::Cookie(name) => cookie(headers, name),
            TokenSource::Query(name) => query(uri, name),
        };
        match (here, &found) {
            (Found::Nothing, _) => {}
            (Found::Ambiguous, _) | (_, Found::Token(_)) => return Found::Ambiguous,
            (token, Found::Nothing) => found = token,
            (_, Found::Dpop(_)) => return Found::Ambiguous,
            (_, Found::Ambiguous) => unreachable!("returned above"),
        }
    }
    found
}

fn bearer(headers: &HeaderMap) -> Found<'_> {
    authorization(headers, b"bearer", Found::Token)
}

/// The credentials of `Authorization: <scheme> <token>`, the scheme name
/// compared case-insensitively; a repeated `Authorization` is ambiguous.
fn authorization<'a>(
    headers: &'a HeaderMap,
    scheme: &[u8],
    found: fn(&'a [u8]) -> Found<'a>,
) -> Found<'a> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Found::Nothing;
    };
    if values.next().is_some() {
        return Found::Ambiguous;
    }
    let bytes = value.as_bytes();
    let scheme_end = bytes.iter().position(|&b| b == b' ').unwrap_or(bytes.len());
    if !bytes[..scheme_end].eq_ignore_ascii_case(scheme) {
        return Found::Nothing;
    }
    // RFC 6750 / RFC 9449 §7.1: "Bearer" / "DPoP" 1*SP token68. Anything
    // odd after the spaces is left in the token for the strict shape check
    // to refuse.
    let rest = &bytes[scheme_end..];
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    found(&rest[start..])
}

fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Found<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Found::Nothing,
        (Some(value), None) => Found::Token(value.as_bytes()),
        (Some(_), Some(_)) => Found::Ambiguous,
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Found<'a> {
    let mut found = Found::Nothing;
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if &pair[..eq] != name.as_bytes() {
                continue;
            }
            let mut token = &pair[eq + 1..];
            if token.len() >= 2 && token[0] == b'"' && token[token.len() - 1] == b'"' {
                token = &token[1..token.len() - 1];
            }
            if found != Found::Nothing {
                return Found::Ambiguous;
            }
            found = Found::Token(token);
        }
    }
    found
}

fn query<'a>(uri: &'a Uri, name: &str) -> Found<'a> {
    let mut found = Found::Nothing;
    for pair in uri.query().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            if found != Found::Nothing {
                return Found::Ambiguous;
            }
            found = Found::Token(value.as_bytes());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn bearer_only(h: &HeaderMap) -> Found<'_> {
        static URI: std::sync::OnceLock<Uri> = std::sync::OnceLock::new();
        find(
            &[TokenSource::BearerHeader],
            h,
            URI.get_or_init(|| Uri::from_static("/")),
            false,
        )
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let h = headers(&[("authorization", &format!("{scheme} abc"))]);
            assert_eq!(bearer_only(&h), Found::Token(b"abc"));
        }
    }

    #[test]
    fn other_schemes_and_absence_are_nothing() {
        assert_eq!(bearer_only(&headers(&[])), Found::Nothing);
        assert_eq!(
            bearer_only(&headers(&[("authorization", "Basic dXNlcjpwYXNz")])),
            Found::Nothing
        );
        assert_eq!(
            bearer_only(&headers(&[("authorization", "Bearerabc")])),
            Found::Nothing
        );
    }

    #[test]
    fn repeated_authorization_is_ambiguous() {
        let h = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(bearer_only(&h), Found::Ambiguous);
    }

    #[test]
    fn a_token_in_two_places_is_ambiguous() {
        let sources = [
            TokenSource::BearerHeader,
            TokenSource::Query("access_token".into()),
        ];
        let uri: Uri = "/x?access_token=abc".parse().unwrap();
        let h = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(find(&sources, &h, &uri, false), Found::Ambiguous);
        assert_eq!(
            find(&sources, &headers(&[]), &uri, false),
            Found::Token(b"abc")
        );
    }

    #[test]
    fn query_and_cookie_are_off_unless_configured() {
        let uri: Uri = "/x?access_token=abc".parse().unwrap();
        let h = headers(&[("cookie", "access_token=abc")]);
        assert_eq!(
            find(&[TokenSource::BearerHeader], &h, &uri, false),
            Found::Nothing
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let src = [TokenSource::Cookie("jwt".into())];
        let uri = Uri::from_static("/");
        let h = headers(&[("cookie", "a=1; jwt=tok; b=2")]);
        assert_eq!(find(&src, &h, &uri, false), Found::Token(b"tok"));
        let h = headers(&[("cookie", "xjwt=tok")]);
        assert_eq!(find(&src, &h, &uri, false), Found::Nothing);
        let h = headers(&[("cookie", "jwt=a"), ("cookie", "jwt=b")]);
        assert_eq!(find(&src, &h, &uri, false), Found::Ambiguous);
    }

    #[test]
    fn the_dpop_scheme_is_read_only_from_authorization_and_only_when_asked() {
        let sources = [TokenSource::BearerHeader, TokenSource::Cookie("jwt".into())];
        let uri = Uri::from_static("/");
        for scheme in ["DPoP", "dpop", "DPOP"] {
            let h = headers(&[("authorization", &format!("{scheme} abc"))]);
            assert_eq!(find(&sources, &h, &uri, true), Found::Dpop(b"abc"));
            assert_eq!(find(&sources, &h, &uri, false), Found::Nothing);
        }
        let bearer = headers(&[("authorization", "Bearer abc")]);
        assert_eq!(find(&sources, &bearer, &uri, true), Found::Token(b"abc"));
        // A DPoP token and a cookie, or two Authorization fields: ambiguous.
        let both = headers(&[("authorization", "DPoP abc"), ("cookie", "jwt=abc")]);
        assert_eq!(find(&sources, &both, &uri, true), Found::Ambiguous);
        let twice = headers(&[("authorization", "DPoP a"), ("authorization", "Bearer b")]);
        assert_eq!(find(&sources, &twice, &uri, true), Found::Ambiguous);
        // Only the Authorization header carries the scheme.
        let elsewhere = headers(&[("x-token", "DPoP abc"), ("dpop", "abc")]);
        assert_eq!(find(&sources, &elsewhere, &uri, true), Found::Nothing);
    }
}
