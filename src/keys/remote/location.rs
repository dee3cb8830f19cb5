//! Which URLs a key source may fetch: `https`, or `http` on a loopback
//! host only; and which redirects it may follow: same origin only.

use std::net::IpAddr;

use http::Uri;
use http::uri::{Authority, Scheme};

use super::FetchError;

/// Parses and checks a URL a key source is configured with (or finds in a
/// discovery document).
pub(crate) fn parse(url: &str) -> Result<Uri, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| FetchError::Url(format!("{url:?} is not a URL")))?;
    check(&uri)?;
    Ok(uri)
}

/// `https`, or `http` to a loopback host; an authority without
/// credentials.
pub(crate) fn check(uri: &Uri) -> Result<(), FetchError> {
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Url(format!("{uri} has no host")))?;
    if authority.as_str().contains('@') {
        return Err(FetchError::Url(format!(
            "{} carries credentials",
            uri.host().unwrap_or_default()
        )));
    }
    match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => Ok(()),
        Some(scheme) if *scheme == Scheme::HTTP && is_loopback(authority.host()) => Ok(()),
        _ => Err(FetchError::Url(format!(
            "{uri}: https is required (http only on loopback)"
        ))),
    }
}

/// 127.0.0.0/8, ::1 and `localhost`.
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL a redirect's `Location` names, when it is on `base`'s origin
/// (scheme, host and port): absolute or an absolute path. Anything else
/// is refused.
pub(crate) fn same_origin_redirect(base: &Uri, location: &str) -> Result<Uri, FetchError> {
    let target: Uri = if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = Some(
            location
                .parse()
                .map_err(|_| FetchError::Redirect(format!("bad Location {location:?}")))?,
        );
        Uri::from_parts(parts).map_err(|_| FetchError::Redirect("bad Location".into()))?
    } else {
        location
            .parse()
            .map_err(|_| FetchError::Redirect(format!("bad Location {location:?}")))?
    };
    if !same_origin(base, &target) {
        return Err(FetchError::Redirect(format!(
            "to another origin ({}) refused",
            target.authority().map(Authority::as_str).unwrap_or("none")
        )));
    }
    check(&target)?;
    Ok(target)
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| {
        u.port_u16().or_else(|| match u.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    };
    a.scheme() == b.scheme()
        && b.scheme().is_some()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && port(a) == port(b)
}

/// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery
/// §4: a trailing `/` of the issuer is removed first).
pub(crate) fn discovery_url(issuer: &str) -> Result<Uri, FetchError> {
    parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert!(parse("https://auth.example.com/jwks").is_ok());
        for ok in [
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/x",
            "http://[::1]:1/x",
            "http://localhost/x",
            "http://LOCALHOST:3/x",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.com/x",
            "http://127.0.0.1.nip.io/x",
            "ftp://127.0.0.1/x",
            "/jwks",
            "https://user:pw@auth.example.com/jwks",
            "not a url",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redirects_stay_on_the_origin() {
        let base: Uri = "https://a.example.com/jwks".parse().unwrap();
        let ok = same_origin_redirect(&base, "/v2/jwks").unwrap();
        assert_eq!(ok.to_string(), "https://a.example.com/v2/jwks");
        assert!(same_origin_redirect(&base, "https://A.example.com:443/k").is_ok());
        for bad in [
            "https://b.example.com/jwks",
            "http://a.example.com/jwks",
            "https://a.example.com:8443/jwks",
            "//b.example.com/jwks",
            "jwks2",
        ] {
            assert!(same_origin_redirect(&base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn discovery_url_drops_one_trailing_slash() {
        assert_eq!(
            discovery_url("https://id.example.com/realms/x/")
                .unwrap()
                .to_string(),
            "https://id.example.com/realms/x/.well-known/openid-configuration"
        );
    }
}
