//! The `htu` comparison (RFC 9449 §4.3): the proof's URI and the request's
//! target URI, both without query and fragment, after syntax-based and
//! scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3).
//!
//! Normalised: scheme and host lowercased; the scheme's default port
//! (80, 443) and an empty port dropped; percent-encodings of unreserved
//! characters decoded and every other one written in upper case; `.` and
//! `..` segments removed; an empty path is `/`. Only `http` and `https`
//! URIs with a host and no user information are accepted.

use http::header::HOST;
use http::{HeaderMap, Uri};

use crate::error::Error;

/// The scheme, host and path prefix the service is reached at from
/// outside (behind a proxy), normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExternalBase {
    /// `scheme://host[:port]` plus the prefix, without a trailing `/`.
    base: String,
}

impl ExternalBase {
    /// Parses `https://api.example.com` or `https://example.com/api`.
    pub(crate) fn parse(base: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Config(format!("DPoP external base {base:?}: {why}"));
        if base.contains(['?', '#']) {
            return Err(bad("no query or fragment allowed"));
        }
        let normal = normalize(base).ok_or_else(|| {
            bad("not an absolute http(s) URI with a host and no user information")
        })?;
        Ok(ExternalBase {
            base: normal.trim_end_matches('/').to_owned(),
        })
    }
}

/// The normalised target URI of a request: the external base and the
/// request's path when a base is configured; otherwise the request URI's
/// own scheme and authority (HTTP/2, absolute-form requests), or `http`
/// and the single `Host` header. `None` when there is no usable host.
pub(crate) fn target(
    base: Option<&ExternalBase>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<String> {
    let path = uri.path();
    let whole = match base {
        Some(base) => format!("{}{path}", base.base),
        None => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let authority = match uri.authority() {
                Some(authority) => authority.as_str(),
                None => {
                    let mut hosts = headers.get_all(HOST).iter();
                    match (hosts.next(), hosts.next()) {
                        (Some(host), None) => host.to_str().ok()?,
                        _ => return None,
                    }
                }
            };
            format!("{scheme}://{authority}{path}")
        }
    };
    normalize(&whole)
}

/// Whether `htu` names the same URI as the normalised `target`.
pub(crate) fn matches(htu: &str, target: &str) -> bool {
    normalize(htu).is_some_and(|htu| htu == target)
}

/// The normalised form of an absolute `http`/`https` URI, without query
/// and fragment; `None` for anything else.
pub(crate) fn normalize(uri: &str) -> Option<String> {
    let uri = uri.split(['#', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_port(authority)?;
    if host.is_empty() || !host.bytes().all(is_host_byte) {
        return None;
    }
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    out.push_str(&host.to_ascii_lowercase());
    if let Some(port) = port {
        // Digits only; leading zeros are the same port.
        let port: u16 = port
            .parse()
            .ok()
            .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))?;
        if port.to_string() != default_port {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
    let path = normalize_percent(path)?;
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&remove_dot_segments(&path));
    }
    Some(out)
}

/// `host` and the port text after its last `:` (outside an IPv6
/// literal); an empty port is no port.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let port_colon = if authority.starts_with('[') {
        let close = authority.find(']')?;
        match &authority[close + 1..] {
            "" => None,
            rest if rest.starts_with(':') => Some(close + 1),
            _ => return None,
        }
    } else {
        authority.rfind(':')
    };
    Some(match port_colon {
        Some(colon) => {
            let port = &authority[colon + 1..];
            (&authority[..colon], (!port.is_empty()).then_some(port))
        }
        None => (authority, None),
    })
}

/// reg-name, IPv4 and IPv6-literal bytes (RFC 3986 §3.2.2), without
/// percent-encoding (no host needs it here).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=[]:".contains(&b)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Path bytes: visible ASCII only; `%XX` decoded when it encodes an
/// unreserved character, upper-cased otherwise. A broken escape is `None`.
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            let value = u8::from_str_radix(text, 16)
                .ok()
                .filter(|_| hex.iter().all(u8::is_ascii_hexdigit))?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push_str(&text.to_ascii_uppercase());
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let mut segments = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                output.pop();
                trailing_slash = last;
            }
            other => {
                output.push(other);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &output {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn equivalent_uris_normalise_alike() {
        for (a, b) in [
            (
                "https://Server.Example.COM/path",
                "https://server.example.com/path",
            ),
            ("HTTPS://server.example.com/", "https://server.example.com"),
            (
                "https://server.example.com:443/x",
                "https://server.example.com/x",
            ),
            (
                "http://server.example.com:80/x",
                "http://server.example.com/x",
            ),
            (
                "http://server.example.com:/x",
                "http://server.example.com/x",
            ),
            (
                "http://server.example.com:0080/x",
                "http://server.example.com/x",
            ),
            (
                "https://a.example/%7Euser/%61b",
                "https://a.example/~user/ab",
            ),
            ("https://a.example/a%2fb", "https://a.example/a%2Fb"),
            ("https://a.example/a/./b/../c", "https://a.example/a/c"),
            ("https://a.example/a/b/..", "https://a.example/a/"),
            ("https://a.example/x?q=1#f", "https://a.example/x"),
            ("https://a.example/x#f?q", "https://a.example/x"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            ("http://[::1]:80/x", "http://[::1]/x"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a} vs {b}");
            assert!(normalize(a).is_some(), "{a}");
        }
    }

    #[test]
    fn different_uris_stay_different() {
        for (a, b) in [
            ("https://a.example/x", "http://a.example/x"),
            ("https://a.example/x", "https://a.example:8443/x"),
            ("https://a.example/x", "https://b.example/x"),
            ("https://a.example/x", "https://a.example/X"),
            ("https://a.example/x", "https://a.example/x/"),
            ("https://a.example/a%2Fb", "https://a.example/a/b"),
        ] {
            assert_ne!(normalize(a), normalize(b), "{a} vs {b}");
        }
    }

    #[test]
    fn odd_uris_are_refused() {
        for bad in [
            "",
            "/relative",
            "a.example/x",
            "ftp://a.example/x",
            "https:///x",
            "https://user@a.example/x",
            "https://a.example:99999/x",
            "https://a.example:8o/x",
            "https://a.example:+80/x",
            "https://a example/x",
            "https://a.example/x y",
            "https://a.example/%zz",
            "https://a.example/%4",
            "https://a.example/é",
            "https://[::1/x",
            "https://[::1]x/",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_target_comes_from_the_base_or_the_request() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("API.example.com:80"));
        let origin_form: Uri = "/movies/%7e1?page=2".parse().unwrap();
        assert_eq!(
            target(None, &origin_form, &headers).as_deref(),
            Some("http://api.example.com/movies/~1")
        );
        let absolute: Uri = "https://h2.example:443/x".parse().unwrap();
        assert_eq!(
            target(None, &absolute, &headers).as_deref(),
            Some("https://h2.example/x")
        );
        let base = ExternalBase::parse("https://Public.example/api/").unwrap();
        assert_eq!(
            target(Some(&base), &origin_form, &headers).as_deref(),
            Some("https://public.example/api/movies/~1")
        );
        // No host at all, or two Host headers: no target.
        assert_eq!(target(None, &origin_form, &HeaderMap::new()), None);
        headers.append(HOST, HeaderValue::from_static("other.example"));
        assert_eq!(target(None, &origin_form, &headers), None);
    }

    #[test]
    fn bases_are_checked() {
        for bad in [
            "api.example.com",
            "https://api.example.com/?x=1",
            "https://api.example.com/#x",
            "https://u@api.example.com",
            "wss://api.example.com",
        ] {
            assert!(ExternalBase::parse(bad).is_err(), "{bad}");
        }
        assert!(matches(
            "https://api.example.com:443/api/x?y",
            &target(
                Some(&ExternalBase::parse("https://api.example.com/api").unwrap()),
                &"/x".parse().unwrap(),
                &HeaderMap::new()
            )
            .unwrap()
        ));
    }
}
