//! One fetch: a `GET` through the [`HttpClient`] under a total timeout,
//! same-origin redirects only, a content-type check, the body read while
//! streaming up to a cap, and the response's caching headers.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::BodyExt;

use super::client::{HttpClient, ResponseBody};
use super::{FetchError, location};

/// The bounds every fetch runs within.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) max_redirects: usize,
}

/// What a document is, for the `Accept` header and the content-type check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Document {
    Jwks,
    Discovery,
}

/// A fetch's result.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// A new document.
    Modified {
        body: Bytes,
        etag: Option<HeaderValue>,
        max_age: Option<Duration>,
    },
    /// `304 Not Modified` to our `If-None-Match`: the keys held are current.
    NotModified { max_age: Option<Duration> },
}

/// Fetches `url`, sending `etag` as `If-None-Match` when given.
pub(crate) async fn get(
    client: &dyn HttpClient,
    url: &Uri,
    etag: Option<&HeaderValue>,
    document: Document,
    limits: Limits,
) -> Result<Fetched, FetchError> {
    tokio::time::timeout(limits.timeout, follow(client, url, etag, document, limits))
        .await
        .map_err(|_| FetchError::Timeout)?
}

async fn follow(
    client: &dyn HttpClient,
    url: &Uri,
    etag: Option<&HeaderValue>,
    document: Document,
    limits: Limits,
) -> Result<Fetched, FetchError> {
    let mut url = url.clone();
    let mut hops = 0;
    loop {
        let response = client
            .fetch(request(&url, etag, document)?)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let status = response.status();
        let headers = response.headers();
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified {
                max_age: max_age(headers),
            });
        }
        if status.is_redirection() {
            if hops == limits.max_redirects {
                return Err(FetchError::Redirect(format!(
                    "more than {} redirects",
                    limits.max_redirects
                )));
            }
            hops += 1;
            let target = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Redirect("without a Location".into()))?;
            url = location::same_origin_redirect(&url, target)?;
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        check_content_type(headers, document)?;
        let max_age = max_age(headers);
        let etag = headers.get(ETAG).cloned();
        let declared = content_length(headers);
        let body = read_capped(response.into_body(), limits.max_body, declared).await?;
        return Ok(Fetched::Modified {
            body,
            etag,
            max_age,
        });
    }
}

fn request(
    url: &Uri,
    etag: Option<&HeaderValue>,
    document: Document,
) -> Result<Request<()>, FetchError> {
    let accept = match document {
        Document::Jwks => "application/jwk-set+json, application/json",
        Document::Discovery => "application/json",
    };
    let mut builder = Request::get(url.clone()).header(ACCEPT, accept);
    if let Some(etag) = etag {
        builder = builder.header(IF_NONE_MATCH, etag);
    }
    builder.body(()).map_err(|e| FetchError::Url(e.to_string()))
}

/// `application/json`, `application/jwk-set+json` or another
/// `application/*+json`, parameters ignored.
fn check_content_type(headers: &HeaderMap, document: Document) -> Result<(), FetchError> {
    let value = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        let what = match document {
            Document::Jwks => "JWK set",
            Document::Discovery => "discovery document",
        };
        Err(FetchError::ContentType(format!(
            "{what} served as {:?}",
            value.chars().take(64).collect::<String>()
        )))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the body frame by frame, refusing it as soon as it outgrows `cap`
/// (or announces it will).
async fn read_capped(
    mut body: ResponseBody,
    cap: usize,
    declared: Option<u64>,
) -> Result<Bytes, FetchError> {
    if declared.is_some_and(|len| len > cap as u64) {
        return Err(FetchError::TooLarge(cap));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Transport(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(FetchError::TooLarge(cap));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// `max-age` of `Cache-Control`; `no-cache` and `no-store` count as 0
/// (the refresh interval's lower bound then applies).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim().to_ascii_lowercase();
            if name == "no-cache" || name == "no-store" {
                return Some(Duration::ZERO);
            }
            if name == "max-age"
                && let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>()
            {
                found = Some(Duration::from_secs(secs));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cache_control_max_age() {
        let secs = |pairs| max_age(&headers(pairs)).map(|d| d.as_secs());
        assert_eq!(
            secs(&[("cache-control", "public, max-age=3600")]),
            Some(3600)
        );
        assert_eq!(
            secs(&[("cache-control", "Max-Age=\"60\", must-revalidate")]),
            Some(60)
        );
        assert_eq!(
            secs(&[("cache-control", "public"), ("cache-control", "max-age=5")]),
            Some(5)
        );
        assert_eq!(secs(&[("cache-control", "max-age=60, no-cache")]), Some(0));
        assert_eq!(secs(&[("cache-control", "no-store")]), Some(0));
        assert_eq!(secs(&[("cache-control", "max-age=-1")]), None);
        assert_eq!(
            secs(&[("cache-control", "max-age=99999999999999999999999")]),
            None
        );
        assert_eq!(secs(&[]), None);
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JWK-Set+JSON",
            "application/jwk-set+json",
        ] {
            let h = headers(&[("content-type", ok)]);
            assert!(check_content_type(&h, Document::Jwks).is_ok(), "{ok}");
        }
        for bad in ["text/html", "text/plain", "application/jsonp", "json", ""] {
            let h = headers(&[("content-type", bad)]);
            assert!(check_content_type(&h, Document::Jwks).is_err(), "{bad}");
        }
        assert!(check_content_type(&HeaderMap::new(), Document::Discovery).is_err());
    }

    /// A body that never ends: 100 bytes per frame, forever.
    struct Endless;

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = crate::BoxError;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, crate::BoxError>>> {
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                &[b'x'; 100],
            )))))
        }
    }

    #[tokio::test]
    async fn body_cap_is_enforced_while_streaming() {
        let endless = Endless.boxed_unsync();
        assert!(matches!(
            read_capped(endless, 999, None).await,
            Err(FetchError::TooLarge(999))
        ));
        let full = || {
            http_body_util::Full::new(Bytes::from(vec![b'x'; 1000]))
                .map_err(|e| match e {})
                .boxed_unsync()
        };
        assert_eq!(read_capped(full(), 1000, None).await.unwrap().len(), 1000);
        assert!(matches!(
            read_capped(full(), 999, None).await,
            Err(FetchError::TooLarge(999))
        ));
        let empty = http_body_util::Empty::<Bytes>::new()
            .map_err(|e| match e {})
            .boxed_unsync();
        assert!(matches!(
            read_capped(empty, 10, Some(11)).await,
            Err(FetchError::TooLarge(10))
        ));
    }
}
