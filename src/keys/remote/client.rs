//! The HTTP client every fetch goes through: the [`HttpClient`] trait, and
//! the default one (hyper-util's pooled client over rustls).
//!
//! The trait sends one request and hands back the response with its body
//! still streaming: timeouts, the body size cap, redirects and content
//! checks stay the library's job, whatever client is plugged in.
//!
//! # Example
//!
//! A client of one's own, here hyper-util's with a custom root certificate
//! store (a private CA) and a proxy connector would plug in the same way:
//!
//! ```no_run
//! use http_body_util::BodyExt;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::client::legacy::connect::HttpConnector;
//! use hyper_util::rt::TokioExecutor;
//! use tower_jwt_auth::keys::remote::{FetchFuture, HttpClient};
//!
//! struct MyClient(Client<HttpConnector, http_body_util::Empty<bytes::Bytes>>);
//!
//! impl HttpClient for MyClient {
//!     fn fetch(&self, request: http::Request<()>) -> FetchFuture {
//!         let future = self.0.request(request.map(|()| http_body_util::Empty::new()));
//!         Box::pin(async move {
//!             let response = future.await?;
//!             Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
//!         })
//!     }
//! }
//!
//! let client = MyClient(Client::builder(TokioExecutor::new()).build_http());
//! let layer = tower_jwt_auth::JwtAuthLayer::<serde_json::Value>::builder()
//!     .jwks_url("https://auth.example.com/.well-known/jwks.json")
//!     .http_client(client)
//!     .build()?;
//! # Ok::<(), tower_jwt_auth::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::BoxError;

/// A response body as an [`HttpClient`] returns it: still streaming.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// What [`HttpClient::fetch`] returns.
pub type FetchFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send + 'static>>;

/// Sends the `GET` requests of a remote key source: discovery documents
/// and JWK sets alike.
///
/// An implementation sends the request as given (method, URI, headers
/// such as `Accept` and `If-None-Match`) and returns as soon as the
/// response head arrives. It must not follow redirects: the library
/// decides which ones to follow. The library applies its own total
/// timeout and body size cap around every call.
pub trait HttpClient: Send + Sync + 'static {
    /// Sends one request.
    fn fetch(&self, request: Request<()>) -> FetchFuture;
}

/// The default client: hyper-util's pooled HTTP/1.1 client over rustls,
/// trusting the webpki (Mozilla) roots, or the operating system's with the
/// `remote-jwks-native-roots` feature. `http://` URLs are only ever given to
/// it for loopback hosts (the key source refuses them otherwise).
#[derive(Clone)]
pub struct DefaultClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl fmt::Debug for DefaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultClient").finish_non_exhaustive()
    }
}

impl DefaultClient {
    /// A client whose TCP connects give up after `connect_timeout`.
    ///
    /// # Errors
    /// The TLS configuration cannot be made (with native roots: the
    /// system's store holds no usable certificate).
    pub fn new(connect_timeout: Duration) -> Result<Self, crate::Error> {
        let tls = tls_config()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(DefaultClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

impl HttpClient for DefaultClient {
    fn fetch(&self, request: Request<()>) -> FetchFuture {
        let future = self.client.request(request.map(|()| Empty::new()));
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
        })
    }
}

fn tls_config() -> Result<rustls::ClientConfig, crate::Error> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Config(format!("TLS: {e}")))?;
    Ok(config
        .with_root_certificates(roots()?)
        .with_no_client_auth())
}

/// The rustls provider on the signature backend's crypto (see Cargo.toml).
fn provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    {
        rustls::crypto::aws_lc_rs::default_provider()
    }
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    {
        rustls::crypto::ring::default_provider()
    }
}

#[cfg(not(feature = "remote-jwks-native-roots"))]
fn roots() -> Result<rustls::RootCertStore, crate::Error> {
    Ok(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

#[cfg(feature = "remote-jwks-native-roots")]
fn roots() -> Result<rustls::RootCertStore, crate::Error> {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::warn!(error = %err, "reading the system's root certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(crate::Error::Config(
            "no usable root certificate in the system's store".into(),
        ));
    }
    Ok(roots)
}
