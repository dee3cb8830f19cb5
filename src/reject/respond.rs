//! Choosing the answer's form for a request, and rendering it: the
//! default answers or the application's own renderer.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, Version};

use super::{DpopChallenge, NO_STORE, Rejection};

/// An application's renderer for HTTP rejections.
pub(crate) type Render = dyn Fn(&Rejection) -> Response<Bytes> + Send + Sync;

/// Turns rejections into responses; shared by every request's future.
pub(crate) struct Responder {
    pub(crate) realm: Arc<str>,
    pub(crate) custom: Option<Box<Render>>,
    /// Whether gRPC and gRPC-web requests get gRPC answers at all.
    pub(crate) grpc_answers: bool,
    /// The DPoP challenge of a layer that accepts DPoP.
    pub(crate) dpop: Option<Arc<DpopChallenge>>,
}

impl Responder {
    pub(crate) fn respond(&self, rejection: Rejection, protocol: Protocol) -> Response<Bytes> {
        let protocol = if self.grpc_answers {
            protocol
        } else {
            Protocol::Http
        };
        tracing::debug!(%rejection, ?protocol, "request rejected");
        let rejection = match &self.dpop {
            Some(challenge) => rejection.with_dpop_challenge(challenge),
            None => rejection,
        };
        match (&self.custom, protocol) {
            (_, Protocol::Grpc) => rejection.to_grpc_response(),
            (_, Protocol::GrpcWeb) => rejection.to_grpc_web_response(false),
            (_, Protocol::GrpcWebText) => rejection.to_grpc_web_response(true),
            (Some(render), Protocol::Http) => {
                let mut response = render(&rejection.with_realm(Arc::clone(&self.realm)));
                // A refusal is never cacheable, unless the renderer says
                // otherwise on purpose.
                response
                    .headers_mut()
                    .entry(CACHE_CONTROL)
                    .or_insert(HeaderValue::from_static(NO_STORE));
                response
            }
            (None, Protocol::Http) => rejection.to_http_response(&self.realm),
        }
    }
}

/// Which form a rejection takes: what the request is, as far as its
/// transport and content type say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// RFC 6750 status codes and challenges.
    Http,
    /// gRPC over HTTP/2: HTTP 200, trailers-only, `grpc-status`.
    Grpc,
    /// gRPC-web, binary (`application/grpc-web`, `…+proto`), any HTTP version.
    GrpcWeb,
    /// gRPC-web, base64 (`application/grpc-web-text`, `…+proto`).
    GrpcWebText,
}

/// Whether `content_type` is `media` or one of its `+suffix` / `;param`
/// variants, ASCII case-insensitively (media types are case-insensitive).
fn is_media(content_type: &[u8], media: &[u8]) -> bool {
    content_type.len() >= media.len()
        && content_type[..media.len()].eq_ignore_ascii_case(media)
        && matches!(
            content_type.get(media.len()),
            None | Some(b'+' | b';' | b' ')
        )
}

impl Protocol {
    /// What `request` is, as far as its version and content type say.
    ///
    /// The content type alone is the client's word, so it never turns an
    /// answer into HTTP 200 by itself: gRPC answers need HTTP/2 (gRPC runs
    /// on nothing else), and only gRPC-web, which is meant to run over
    /// HTTP/1.1, gets them on any version. Everything else is answered over
    /// HTTP, so whatever judges by the status (an `auth_request` proxy, a
    /// cache) sees the refusal.
    pub(crate) fn of<B>(request: &Request<B>) -> Protocol {
        let Some(content_type) = request.headers().get(CONTENT_TYPE) else {
            return Protocol::Http;
        };
        let content_type = content_type.as_bytes();
        if is_media(content_type, b"application/grpc-web-text") {
            Protocol::GrpcWebText
        } else if is_media(content_type, b"application/grpc-web") {
            Protocol::GrpcWeb
        } else if request.version() == Version::HTTP_2
            && is_media(content_type, b"application/grpc")
        {
            Protocol::Grpc
        } else {
            Protocol::Http
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(version: Version, content_type: &str) -> Protocol {
        let request = Request::builder()
            .version(version)
            .header(CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        Protocol::of(&request)
    }

    #[test]
    fn grpc_answers_need_http2_or_grpc_web() {
        use Protocol::*;
        for (version, content_type, expected) in [
            (Version::HTTP_2, "application/grpc", Grpc),
            (Version::HTTP_2, "application/grpc+proto", Grpc),
            (Version::HTTP_2, "Application/GRPC+json", Grpc),
            (Version::HTTP_11, "application/grpc", Http),
            (Version::HTTP_11, "application/grpc+proto", Http),
            (Version::HTTP_10, "application/grpc", Http),
            (Version::HTTP_2, "application/grpcx", Http),
            (Version::HTTP_2, "application/json", Http),
            (Version::HTTP_11, "application/grpc-web", GrpcWeb),
            (Version::HTTP_11, "application/grpc-web+proto", GrpcWeb),
            (Version::HTTP_2, "application/grpc-web+proto", GrpcWeb),
            (Version::HTTP_11, "application/grpc-web-text", GrpcWebText),
            (
                Version::HTTP_11,
                "application/grpc-web-text+proto",
                GrpcWebText,
            ),
            (Version::HTTP_11, "application/grpc-webx", Http),
        ] {
            assert_eq!(
                kind(version, content_type),
                expected,
                "{version:?} {content_type}"
            );
        }
        assert_eq!(Protocol::of(&Request::new(())), Http);
    }
}
