//! The identity provider the tests control: `/jwks` answers as its
//! [`Mode`] says, `/.well-known/openid-configuration` names `/jwks`, and
//! every hit is counted.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower_jwt_auth::issue::{SigningKey, jwk_set};

/// How the provider answers `/jwks`.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// The current key set (304 to a matching `If-None-Match`).
    Keys,
    /// This status, empty body.
    Status(u16),
    /// `application/json` that is not JSON.
    Garbage,
    /// A JSON body that never ends, chunked (no `Content-Length`).
    Endless,
    /// Never answers.
    Hang,
    /// The connection is dropped before any answer.
    Reset,
    /// A redirect to the same provider under another host name.
    CrossOrigin,
    /// A redirect to `/jwks-moved` on the same origin.
    SameOrigin,
    /// A redirect to `/jwks` itself, forever.
    Loop,
    /// The key set, served as `text/html`.
    WrongType,
}

pub(crate) struct State {
    pub(crate) mode: Mode,
    pub(crate) jwks: Value,
    pub(crate) etag: Option<String>,
    pub(crate) cache_control: Option<String>,
    /// The `issuer` the discovery document names.
    pub(crate) issuer: String,
}

#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) base: String,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) jwks_hits: Arc<AtomicUsize>,
    pub(crate) discovery_hits: Arc<AtomicUsize>,
    pub(crate) not_modified: Arc<AtomicUsize>,
}

pub(crate) type Body = BoxBody<Bytes, Infallible>;

impl Provider {
    pub(crate) async fn start(keys: &[&SigningKey]) -> Provider {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), keys)
    }

    pub(crate) fn start_on(listener: TcpListener, keys: &[&SigningKey]) -> Provider {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let provider = Provider {
            state: Arc::new(Mutex::new(State {
                mode: Mode::Keys,
                jwks: jwk_set(keys.iter().copied()),
                etag: None,
                cache_control: None,
                issuer: base.clone(),
            })),
            base,
            jwks_hits: Arc::default(),
            discovery_hits: Arc::default(),
            not_modified: Arc::default(),
        };
        let server = provider.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let service = hyper::service::service_fn(move |r| server.clone().answer(r));
                tokio::spawn(
                    Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        provider
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub(crate) fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    pub(crate) fn serve(&self, keys: &[&SigningKey]) {
        self.set(|s| {
            s.mode = Mode::Keys;
            s.jwks = jwk_set(keys.iter().copied());
        });
    }

    pub(crate) fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    pub(crate) async fn answer(
        self,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, std::io::Error> {
        let path = request.uri().path().to_owned();
        if path == "/.well-known/openid-configuration" {
            self.discovery_hits.fetch_add(1, Ordering::SeqCst);
            let issuer = self.state.lock().unwrap().issuer.clone();
            let doc = json!({ "issuer": issuer, "jwks_uri": self.jwks_url() });
            return Ok(json_response(doc.to_string()));
        }
        if path == "/jwks-moved" {
            return Ok(self.keys(&request));
        }
        if path != "/jwks" {
            return Ok(status(404));
        }
        self.jwks_hits.fetch_add(1, Ordering::SeqCst);
        let mode = self.state.lock().unwrap().mode.clone();
        Ok(match mode {
            Mode::Keys => self.keys(&request),
            Mode::Status(code) => status(code),
            Mode::Garbage => json_response("{\"keys\": [".into()),
            Mode::Endless => {
                let chunks = std::iter::once(Bytes::from_static(b"{\"keys\":[],\"pad\":\""))
                    .chain(std::iter::repeat(Bytes::from_static(&[b'x'; 8192])))
                    .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
                let mut response =
                    Response::new(StreamBody::new(tokio_stream::iter(chunks)).boxed());
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, "application/json".parse().unwrap());
                response
            }
            Mode::Hang => std::future::pending().await,
            Mode::Reset => return Err(std::io::Error::other("provider drops the connection")),
            Mode::CrossOrigin => redirect(&self.jwks_url().replace("127.0.0.1", "localhost")),
            Mode::SameOrigin => redirect("/jwks-moved"),
            Mode::Loop => redirect("/jwks"),
            Mode::WrongType => {
                let mut response = self.keys(&request);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, "text/html".parse().unwrap());
                response
            }
        })
    }

    pub(crate) fn keys(&self, request: &Request<Incoming>) -> Response<Body> {
        let state = self.state.lock().unwrap();
        if let Some(etag) = &state.etag
            && request
                .headers()
                .get(IF_NONE_MATCH)
                .is_some_and(|v| v == etag.as_str())
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            return status(304);
        }
        let mut response = json_response(state.jwks.to_string());
        if let Some(etag) = &state.etag {
            response.headers_mut().insert(ETAG, etag.parse().unwrap());
        }
        if let Some(cc) = &state.cache_control {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, cc.parse().unwrap());
        }
        response
    }
}

pub(crate) fn json_response(body: String) -> Response<Body> {
    let mut response = Response::new(Full::from(body).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

pub(crate) fn status(code: u16) -> Response<Body> {
    let mut response = Response::new(Full::default().boxed());
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut response = status(302);
    response
        .headers_mut()
        .insert(LOCATION, location.parse().unwrap());
    response
}
