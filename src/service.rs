//! The middleware, tower-http style: [`JwtAuthLayer`], the [`JwtAuth`]
//! service it wraps around the inner service, and their [`ResponseFuture`],
//! in that order. The checks themselves are one call into
//! [`crate::authenticate`]; answers come from [`crate::reject`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::authenticate::{Authenticator, Check, Head, Outcome, Proof};
use crate::authorize::TokenPayload;
use crate::body::JwtAuthBody;
use crate::metrics;
use crate::reject::{Protocol, Rejection, Responder};
#[cfg(feature = "remote-jwks")]
use crate::reject::{Reason, RejectionKind};

/// What a request waits on while remote keys are refetched (feature
/// `remote-jwks`; never made without it).
pub(crate) type RefetchWait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What every clone of the layer and service shares: one allocation, one
/// reference count per clone.
pub(crate) struct Config<C> {
    pub(crate) authenticator: Authenticator<C>,
    pub(crate) responder: Arc<Responder>,
}

/// A tower [`Layer`] that authenticates requests with JSON Web Tokens.
///
/// On success the claims, deserialized into the application's own `C`, are
/// inserted into the request extensions. See the [crate docs](crate) for
/// examples and the [`JwtAuthBuilder`](crate::JwtAuthBuilder) for every
/// option and default.
pub struct JwtAuthLayer<C> {
    config: Arc<Config<C>>,
}

impl<C> Clone for JwtAuthLayer<C> {
    fn clone(&self) -> Self {
        JwtAuthLayer {
            config: Arc::clone(&self.config),
        }
    }
}

impl<C> fmt::Debug for JwtAuthLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = &self.config.authenticator;
        f.debug_struct("JwtAuthLayer")
            .field("verifiers", &auth.verifiers)
            .field("sources", &auth.sources)
            .field("optional", &auth.optional)
            .field("policy", &auth.policy)
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuthLayer<C> {
    pub(crate) fn from_config(config: Config<C>) -> Self {
        JwtAuthLayer {
            config: Arc::new(config),
        }
    }

    /// How this layer answers; shared with the route layers it makes.
    pub(crate) fn responder(&self) -> &Arc<Responder> {
        &self.config.responder
    }
}

impl<C> JwtAuthLayer<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Verifies one token outside of a request (a WebSocket message, a
    /// job): every check of the layer except the token's location and the
    /// revocation check.
    ///
    /// # Errors
    /// The [`Rejection`] a request carrying this token would get.
    pub fn verify(&self, token: &str) -> Result<C, Rejection> {
        let realm = || Arc::clone(&self.config.responder.realm);
        let checked = self
            .config
            .authenticator
            .verify(token.as_bytes())
            .map_err(|rejection| {
                // Remote keys: an unknown key is refetched in the
                // background for the next call; this one cannot wait.
                #[cfg(feature = "remote-jwks")]
                drop(
                    self.config
                        .authenticator
                        .refetch_for(token.as_bytes(), &rejection),
                );
                rejection.with_realm(realm())
            })?;
        match checked.denial {
            Some(denial) => Err(denial.with_realm(realm())),
            None => Ok(checked.claims),
        }
    }
}

impl<C> JwtAuthLayer<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Resolves once the layer has keys to verify with: at once for keys
    /// given locally; after the first successful fetch for a remote source
    /// (which is started if it was built outside a runtime). Never resolves
    /// while the source is unreachable, so bound it:
    /// `tokio::time::timeout(Duration::from_secs(10), layer.ready())`.
    pub async fn ready(&self) {
        self.config.authenticator.ready().await;
    }
}

impl<S, C> Layer<S> for JwtAuthLayer<C> {
    type Service = JwtAuth<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth {
            inner,
            config: Arc::clone(&self.config),
            _claims: PhantomData,
        }
    }
}

/// Authenticates each request before calling the inner service `S`; built
/// by [`JwtAuthLayer`].
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
        let outcome = self.config.authenticator.authenticate(Head::of(&request));
        metrics::outcome(&outcome);
        // The answer's form is only worked out for a request that may be
        // refused: nothing more on the path of a valid token.
        let kind = match outcome {
            Outcome::Anonymous => Kind::Inner {
                future: self.inner.call(request),
            },
            Outcome::Verified {
                claims,
                payload,
                proof,
            } => {
                let nonce = insert(&mut request, claims, payload, proof);
                Kind::call(&mut self.inner, request, nonce)
            }
            Outcome::Pending {
                claims,
                payload,
                proof,
                check,
                denial,
            } => {
                let nonce = insert(&mut request, claims, payload, proof);
                // The ready service goes with the request; a clone stays for
                // the next poll_ready (the axum `from_fn` pattern).
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                Kind::Checking {
                    check,
                    denial,
                    nonce,
                    protocol: Protocol::of(&request),
                    pending: Some((service, request)),
                    responder: Arc::clone(&self.config.responder),
                }
            }
            Outcome::Rejected(rejection) => Kind::Rejected {
                response: Some(
                    self.config
                        .responder
                        .respond(rejection, Protocol::of(&request)),
                ),
            },
            #[cfg(feature = "remote-jwks")]
            Outcome::Refetch(wait) => {
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                let config = Arc::clone(&self.config);
                Kind::Refetching {
                    wait,
                    retry: Some(Box::new(move |request: &mut Request<ReqBody>| {
                        Retried::of(&config.authenticator, request)
                    })),
                    protocol: Protocol::of(&request),
                    pending: Some((service, request)),
                    responder: Arc::clone(&self.config.responder),
                }
            }
        };
        ResponseFuture { kind }
    }
}

/// Hands the verified claims (and, while a route policy reads it, the
/// payload; for a DPoP request, the proof) to the services behind. Returns
/// the server nonce to renew in the response, if any.
fn insert<B, C: Clone + Send + Sync + 'static>(
    request: &mut Request<B>,
    claims: C,
    payload: Option<TokenPayload>,
    proof: Option<Proof>,
) -> Option<HeaderValue> {
    let extensions = request.extensions_mut();
    extensions.insert(claims);
    if let Some(payload) = payload {
        extensions.insert(payload);
    }
    #[cfg(feature = "dpop")]
    if let Some(proof) = proof {
        let nonce = proof
            .next_nonce()
            .and_then(|nonce| HeaderValue::from_str(nonce).ok());
        extensions.insert(proof);
        return nonce;
    }
    #[cfg(not(feature = "dpop"))]
    if let Some(proof) = proof {
        match proof {}
    }
    None
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
        // The inner service's answer, with a newer DPoP server nonce.
        #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
        Renewing { #[pin] future: S::Future, nonce: Option<HeaderValue> },
        Rejected { response: Option<Response<Bytes>> },
        Checking {
            check: Check,
            // Answered only once the token is known not to be revoked (and
            // its proof not replayed).
            denial: Option<Rejection>,
            nonce: Option<HeaderValue>,
            pending: Option<(S, Request<ReqBody>)>,
            responder: Arc<Responder>,
            protocol: Protocol,
        },
        // Waiting for a refetch of remote keys, then authenticating again.
        #[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
        Refetching {
            wait: RefetchWait,
            retry: Option<Retry<ReqBody>>,
            pending: Option<(S, Request<ReqBody>)>,
            responder: Arc<Responder>,
            protocol: Protocol,
        },
    }
}

impl<S, ReqBody> Kind<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// Calls the inner service, to add `nonce` to its answer if any.
    fn call(service: &mut S, request: Request<ReqBody>, nonce: Option<HeaderValue>) -> Self {
        let future = service.call(request);
        match nonce {
            None => Kind::Inner { future },
            Some(nonce) => Kind::Renewing {
                future,
                nonce: Some(nonce),
            },
        }
    }
}

/// Authenticates a request again after a refetch, putting the claims in
/// its extensions: boxed, so the future need not name the claims type.
type Retry<ReqBody> = Box<dyn FnOnce(&mut Request<ReqBody>) -> Retried + Send>;

/// What authenticating again after a refetch concluded.
#[cfg_attr(not(feature = "remote-jwks"), allow(dead_code))]
enum Retried {
    Call {
        nonce: Option<HeaderValue>,
    },
    Check {
        check: Check,
        denial: Option<Rejection>,
        nonce: Option<HeaderValue>,
    },
    Reject(Rejection),
}

#[cfg(feature = "remote-jwks")]
impl Retried {
    fn of<C, B>(auth: &Authenticator<C>, request: &mut Request<B>) -> Self
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let outcome = auth.authenticate_after_refetch(Head::of(request));
        metrics::outcome(&outcome);
        match outcome {
            Outcome::Anonymous => Retried::Call { nonce: None },
            Outcome::Verified {
                claims,
                payload,
                proof,
            } => Retried::Call {
                nonce: insert(request, claims, payload, proof),
            },
            Outcome::Pending {
                claims,
                payload,
                proof,
                check,
                denial,
            } => {
                let nonce = insert(request, claims, payload, proof);
                Retried::Check {
                    check,
                    denial,
                    nonce,
                }
            }
            Outcome::Rejected(rejection) => Retried::Reject(rejection),
            Outcome::Refetch(_) => {
                let rejection: Rejection = RejectionKind::InvalidToken(Reason::UnknownKey).into();
                metrics::checked(Some(&rejection));
                Retried::Reject(rejection)
            }
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.kind {
            Kind::Inner { .. } => "ResponseFuture::Inner",
            Kind::Renewing { .. } => "ResponseFuture::Renewing",
            Kind::Rejected { .. } => "ResponseFuture::Rejected",
            Kind::Checking { .. } => "ResponseFuture::Checking",
            Kind::Refetching { .. } => "ResponseFuture::Refetching",
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
                KindProj::Renewing { future, nonce } => {
                    let response = ready!(future.poll(cx))?;
                    #[cfg(feature = "dpop")]
                    let response = {
                        let mut response = response;
                        if let Some(nonce) = nonce.take() {
                            response
                                .headers_mut()
                                .insert(crate::reject::DPOP_NONCE, nonce);
                        }
                        response
                    };
                    #[cfg(not(feature = "dpop"))]
                    drop(nonce.take());
                    return Poll::Ready(Ok(response.map(JwtAuthBody::inner)));
                }
                KindProj::Rejected { response } => {
                    let response = response.take().expect("future polled after completion");
                    return Poll::Ready(Ok(response.map(JwtAuthBody::rejection)));
                }
                KindProj::Checking {
                    check,
                    denial,
                    nonce,
                    pending,
                    responder,
                    protocol,
                } => {
                    let rejection = ready!(check.as_mut().poll(cx)).or_else(|| denial.take());
                    metrics::checked(rejection.as_ref());
                    match rejection {
                        Some(rejection) => Kind::Rejected {
                            response: Some(responder.respond(rejection, *protocol)),
                        },
                        None => {
                            let (mut service, request) =
                                pending.take().expect("future polled after completion");
                            Kind::call(&mut service, request, nonce.take())
                        }
                    }
                }
                KindProj::Refetching {
                    wait,
                    retry,
                    pending,
                    responder,
                    protocol,
                } => {
                    ready!(wait.as_mut().poll(cx));
                    let retry = retry.take().expect("future polled after completion");
                    let (mut service, mut request) =
                        pending.take().expect("future polled after completion");
                    match retry(&mut request) {
                        Retried::Call { nonce } => Kind::call(&mut service, request, nonce),
                        Retried::Check {
                            check,
                            denial,
                            nonce,
                        } => Kind::Checking {
                            check,
                            denial,
                            nonce,
                            pending: Some((service, request)),
                            responder: Arc::clone(responder),
                            protocol: *protocol,
                        },
                        Retried::Reject(rejection) => Kind::Rejected {
                            response: Some(responder.respond(rejection, *protocol)),
                        },
                    }
                }
            };
            kind.set(next);
        }
    }
}
