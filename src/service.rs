//! [`JwtAuth`], the middleware service, and its future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Response, Version};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::body::JwtAuthBody;
use crate::layer::{Config, Outcome, Responder};
use crate::reject::{Reason, Rejection};
use crate::revoke::RevocationFuture;

/// Authenticates each request before calling the inner service `S`; built
/// by [`JwtAuthLayer`](crate::JwtAuthLayer).
pub struct JwtAuth<S, C> {
    inner: S,
    config: Arc<Config<C>>,
    _claims: PhantomData<fn() -> C>,
}

impl<S: Clone, C> Clone for JwtAuth<S, C> {
    fn clone(&self) -> Self {
        JwtAuth {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for JwtAuth<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, C> JwtAuth<S, C> {
    pub(crate) fn from_config(inner: S, config: Arc<Config<C>>) -> Self {
        JwtAuth {
            inner,
            config,
            _claims: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
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

/// The content type alone is the client's word, so it never turns an
/// answer into HTTP 200 by itself: gRPC answers need HTTP/2 (gRPC runs on
/// nothing else), and only gRPC-web, which is meant to run over HTTP/1.1,
/// gets them on any version. Everything else is answered over HTTP, so
/// whatever judges by the status (an `auth_request` proxy, a cache) sees
/// the refusal.
pub(crate) fn protocol<B>(request: &Request<B>) -> Protocol {
    let Some(content_type) = request.headers().get(CONTENT_TYPE) else {
        return Protocol::Http;
    };
    let content_type = content_type.as_bytes();
    if is_media(content_type, b"application/grpc-web-text") {
        Protocol::GrpcWebText
    } else if is_media(content_type, b"application/grpc-web") {
        Protocol::GrpcWeb
    } else if request.version() == Version::HTTP_2 && is_media(content_type, b"application/grpc") {
        Protocol::Grpc
    } else {
        Protocol::Http
    }
}

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Response = Response<JwtAuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The answer's form is only worked out for a request that may be
        // refused: nothing more on the path of a valid token.
        let kind = match self.config.authenticate(request.headers(), request.uri()) {
            Outcome::Anonymous => Kind::Inner {
                future: self.inner.call(request),
            },
            Outcome::Verified(claims) => {
                request.extensions_mut().insert(claims);
                Kind::Inner {
                    future: self.inner.call(request),
                }
            }
            Outcome::Revocable {
                claims,
                registered,
                denial,
            } => {
                let check = self
                    .config
                    .revocation
                    .as_ref()
                    .expect("registered claims are only kept for a revocation check")
                    .is_revoked(&registered);
                request.extensions_mut().insert(claims);
                // The ready service goes with the request; a clone stays for
                // the next poll_ready (the axum `from_fn` pattern).
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                Kind::Checking {
                    check,
                    denial,
                    protocol: protocol(&request),
                    pending: Some((service, request)),
                    responder: Arc::clone(&self.config.responder),
                }
            }
            Outcome::Rejected(rejection) => Kind::Rejected {
                response: Some(
                    self.config
                        .responder
                        .respond(&rejection, protocol(&request)),
                ),
            },
        };
        ResponseFuture { kind }
    }
}

pin_project! {
    /// Response future of [`JwtAuth`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        kind: Kind<S, ReqBody>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] future: S::Future },
        Rejected { response: Option<Response<Bytes>> },
        Checking {
            check: RevocationFuture,
            // Answered only once the token is known not to be revoked.
            denial: Option<Rejection>,
            pending: Option<(S, Request<ReqBody>)>,
            responder: Arc<Responder>,
            protocol: Protocol,
        },
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.kind {
            Kind::Inner { .. } => "ResponseFuture::Inner",
            Kind::Rejected { .. } => "ResponseFuture::Rejected",
            Kind::Checking { .. } => "ResponseFuture::Checking",
        })
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<JwtAuthBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut kind = self.as_mut().project().kind;
            let next = match kind.as_mut().project() {
                KindProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(JwtAuthBody::inner)));
                }
                KindProj::Rejected { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(response.map(JwtAuthBody::rejection)));
                }
                KindProj::Checking {
                    check,
                    denial,
                    pending,
                    responder,
                    protocol,
                } => {
                    let rejection = match ready!(check.as_mut().poll(cx)) {
                        Ok(false) => denial.take(),
                        Ok(true) => Some(Rejection::InvalidToken(Reason::Revoked)),
                        Err(err) => {
                            tracing::warn!(error = %err, "revocation check failed");
                            Some(Rejection::Unavailable)
                        }
                    };
                    match rejection {
                        Some(rejection) => Kind::Rejected {
                            response: Some(responder.respond(&rejection, *protocol)),
                        },
                        None => {
                            let (mut service, request) =
                                pending.take().expect("future polled after completion");
                            Kind::Inner {
                                future: service.call(request),
                            }
                        }
                    }
                }
            };
            kind.set(next);
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
        protocol(&request)
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
        assert_eq!(protocol(&Request::new(())), Http);
    }
}
