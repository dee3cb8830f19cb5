//! [`AuthorizeLayer`], the [`Authorize`] service it wraps around the inner
//! service, and their [`ResponseFuture`], in that order.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{Denial, Policy};
use crate::JwtAuthLayer;
use crate::body::JwtAuthBody;
use crate::reject::{DEFAULT_REALM, NO_STORE, Protocol, Responder};

/// A tower [`Layer`] that lets through only requests whose verified token
/// satisfies a [`Policy`]; see the [module docs](super).
///
/// Place it inside a [`JwtAuthLayer`] of the same claims type (axum:
/// `route_layer` under a `layer`; tonic: after it in `Server::builder()`).
/// [`JwtAuthLayer::require`] makes one that answers as that layer does
/// (realm, renderer, gRPC answers); [`AuthorizeLayer::new`] answers with
/// the defaults.
pub struct AuthorizeLayer<C> {
    policy: Policy<C>,
    responder: Arc<Responder>,
}

impl<C> Clone for AuthorizeLayer<C> {
    fn clone(&self) -> Self {
        AuthorizeLayer {
            policy: self.policy.clone(),
            responder: Arc::clone(&self.responder),
        }
    }
}

impl<C> fmt::Debug for AuthorizeLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeLayer")
            .field("policy", &self.policy)
            .field("realm", &self.responder.realm)
            .finish_non_exhaustive()
    }
}

impl<C> AuthorizeLayer<C> {
    /// Requires `policy`, answering refusals with the default realm
    /// (`"api"`) and renderer, and gRPC answers for gRPC requests.
    pub fn new(policy: Policy<C>) -> Self {
        AuthorizeLayer {
            policy,
            responder: Arc::new(Responder {
                realm: DEFAULT_REALM.into(),
                custom: None,
                grpc_answers: true,
                dpop: None,
            }),
        }
    }
}

impl<C> JwtAuthLayer<C> {
    /// A layer for the routes behind this one that also requires `policy`,
    /// answering refusals as this layer does (its realm, renderer and gRPC
    /// answers).
    ///
    /// ```
    /// use tower_jwt_auth::JwtAuthLayer;
    /// use tower_jwt_auth::authorize::Policy;
    ///
    /// let auth = JwtAuthLayer::<serde_json::Value>::builder()
    ///     .hs256(b"0123456789abcdef0123456789abcdef")
    ///     .realm("movies")
    ///     .build()?;
    /// let writers = auth.require(Policy::builder().scope("movies:write").build()?);
    /// # Ok::<(), tower_jwt_auth::Error>(())
    /// ```
    pub fn require(&self, policy: Policy<C>) -> AuthorizeLayer<C> {
        AuthorizeLayer {
            policy,
            responder: Arc::clone(self.responder()),
        }
    }
}

impl<S, C> Layer<S> for AuthorizeLayer<C> {
    type Service = Authorize<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            layer: self.clone(),
        }
    }
}

/// Checks each request's verified claims against a [`Policy`] before
/// calling the inner service `S`; built by [`AuthorizeLayer`].
pub struct Authorize<S, C> {
    inner: S,
    layer: AuthorizeLayer<C>,
}

impl<S: Clone, C> Clone for Authorize<S, C> {
    fn clone(&self) -> Self {
        Authorize {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for Authorize<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .field("policy", &self.layer.policy)
            .finish()
    }
}

impl<S, C> Authorize<S, C> {
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

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for Authorize<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Send + Sync + 'static,
{
    type Response = Response<JwtAuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let kind = match self.layer.policy.authorize(request.extensions()) {
            Ok(_) => Kind::Inner {
                future: self.inner.call(request),
            },
            Err(denial) => Kind::Refused {
                response: Some(refusal(&self.layer.responder, denial, &request)),
            },
        };
        ResponseFuture { kind }
    }
}

fn refusal<B>(responder: &Responder, denial: Denial, request: &Request<B>) -> Response<Bytes> {
    match denial {
        Denial::Refused(rejection) => {
            // A request authenticated with DPoP is answered in its scheme.
            #[cfg(feature = "dpop")]
            let rejection = match (
                &responder.dpop,
                request.extensions().get::<crate::dpop::DpopProof>(),
            ) {
                (None, _) => rejection,
                (Some(_), Some(_)) => rejection.with_scheme(crate::reject::Scheme::Dpop),
                (Some(_), None) => rejection.with_scheme(crate::reject::Scheme::Bearer),
            };
            responder.respond(rejection, Protocol::of(request))
        }
        Denial::PayloadNotKept => payload_not_kept(),
    }
}

/// The answer to a request the policy cannot judge: a server error.
pub(crate) fn payload_not_kept() -> Response<Bytes> {
    tracing::error!(
        "a policy reads the token's scopes or roles, but the authentication layer did not keep \
         them for this request: build every Policy before the server starts serving"
    );
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

pin_project! {
    /// Response future of [`Authorize`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Bytes>> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.kind {
            Kind::Inner { .. } => "ResponseFuture::Inner",
            Kind::Refused { .. } => "ResponseFuture::Refused",
        })
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<JwtAuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(JwtAuthBody::inner)))
            }
            KindProj::Refused { response } => {
                let response = response.take().expect("future polled after completion");
                Poll::Ready(Ok(response.map(JwtAuthBody::rejection)))
            }
        }
    }
}
