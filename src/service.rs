//! [`JwtAuth`], the middleware service, and its future.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response};
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

/// gRPC clients send `application/grpc`, `application/grpc+proto`, ….
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
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
        let grpc = is_grpc(request.headers());
        let kind = match self.config.authenticate(request.headers(), request.uri()) {
            Outcome::Anonymous => Kind::Inner {
                future: self.inner.call(request),
            },
            Outcome::Verified(claims, None) => {
                request.extensions_mut().insert(claims);
                Kind::Inner {
                    future: self.inner.call(request),
                }
            }
            Outcome::Verified(claims, Some(registered)) => {
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
                    pending: Some((service, request)),
                    responder: Arc::clone(&self.config.responder),
                    grpc,
                }
            }
            Outcome::Rejected(rejection) => Kind::Rejected {
                response: Some(self.config.responder.respond(&rejection, grpc)),
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
            pending: Option<(S, Request<ReqBody>)>,
            responder: Arc<Responder>,
            grpc: bool,
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
                    pending,
                    responder,
                    grpc,
                } => {
                    let rejection = match ready!(check.as_mut().poll(cx)) {
                        Ok(false) => None,
                        Ok(true) => Some(Rejection::InvalidToken(Reason::Revoked)),
                        Err(err) => {
                            tracing::warn!(error = %err, "revocation check failed");
                            Some(Rejection::Unavailable)
                        }
                    };
                    match rejection {
                        Some(rejection) => Kind::Rejected {
                            response: Some(responder.respond(&rejection, *grpc)),
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
