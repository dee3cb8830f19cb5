//! A plain hyper 1 server: `GET /protected` needs a valid JWT and answers
//! with its claims as JSON; `GET /public` stays open.
//!
//! Against the companion login service (`cargo run -p login-service`, on
//! 127.0.0.1:3000), its keys found through its discovery document:
//!
//! ```sh
//! OIDC_ISSUER=http://127.0.0.1:3000 JWT_AUDIENCE=login-service \
//!     cargo run --example hyper --features remote-jwks
//! TOKEN=$(curl -s -X POST http://127.0.0.1:3000/auth/login -H 'content-type: application/json' \
//!     -d '{"email": "ada@example.com", "password": "correct horse battery staple"}' \
//!     | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3003/protected
//! ```
//!
//! Keys, exactly one of:
//! - `OIDC_ISSUER`: an OpenID issuer; its `/.well-known/openid-configuration`
//!   names the JWK set, and the issuer is the required `iss`;
//! - `JWKS_URL`: the JWK set itself (for the login service,
//!   `http://127.0.0.1:3000/.well-known/jwks.json`), with `JWT_ISSUER`;
//! - `JWT_SECRET`: an HS256 secret, with `JWT_ISSUER`;
//! - `JWT_PUBLIC_KEY_FILE`: an RS256, ES256 or EdDSA public key (PEM or
//!   DER), with `JWT_ISSUER`.
//!
//! The first two need the `remote-jwks` feature; their keys are fetched in
//! the background and follow the issuer's key rotations. `JWT_AUDIENCE` is
//! the required `aud`; `LISTEN` changes the address (default
//! 127.0.0.1:3003); `RUST_LOG=tower_jwt_auth=debug` logs
//! fetches and why a token was refused.

use std::convert::Infallible;
use std::env::{self, VarError};
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_jwt_auth::{JwtAuthBody, JwtAuthLayer};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let auth = auth_layer()?;
    wait_for_keys(&auth).await;
    let protected = ServiceBuilder::new()
        .layer(auth)
        .service(service_fn(protected));
    // hyper has no router: dispatch by hand, so only `/protected` goes
    // through the layer. `JwtAuthBody::new` gives the open routes the same
    // body type as the protected one.
    let app = service_fn(move |request: Request<Incoming>| {
        let protected = protected.clone();
        async move {
            Ok::<_, Infallible>(match (request.method(), request.uri().path()) {
                (&Method::GET, "/protected") => protected.oneshot(request).await?,
                (&Method::GET, "/public") => text(StatusCode::OK, "anyone may read this\n"),
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            })
        }
    });

    let addr = var("LISTEN")?.unwrap_or_else(|| "127.0.0.1:3003".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("listening on http://{}", listener.local_addr()?);

    let server = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut ctrl_c = pin!(tokio::signal::ctrl_c());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut ctrl_c => break,
        };
        let connection = server
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .into_owned();
        tokio::spawn(graceful.watch(connection));
    }
    graceful.shutdown().await;
    Ok(())
}

async fn protected(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let claims: &Value = request
        .extensions()
        .get()
        .expect("the layer inserts the claims");
    let mut response = Response::new(Full::from(claims.to_string()));
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(CONTENT_TYPE, json);
    Ok(response)
}

fn text(status: StatusCode, body: &'static str) -> Response<JwtAuthBody<Full<Bytes>>> {
    let mut response = Response::new(JwtAuthBody::new(Full::from(body)));
    *response.status_mut() = status;
    response
}

/// The layer, its keys from exactly one of: `JWKS_URL` or `OIDC_ISSUER`
/// (fetched and kept current; feature `remote-jwks`), or the fixed
/// `JWT_SECRET` / `JWT_PUBLIC_KEY_FILE`. `JWT_ISSUER` is the required `iss`
/// (with `OIDC_ISSUER`, that issuer unless given).
fn auth_layer() -> Result<JwtAuthLayer<Value>, Error> {
    let builder = JwtAuthLayer::builder();
    let keys = (
        var("JWKS_URL")?,
        var("OIDC_ISSUER")?,
        var("JWT_SECRET")?,
        var("JWT_PUBLIC_KEY_FILE")?,
    );
    let (builder, discovered): (_, Option<String>) = match keys {
        #[cfg(feature = "remote-jwks")]
        (Some(url), None, None, None) => (builder.jwks_url(url), None),
        #[cfg(feature = "remote-jwks")]
        (None, Some(issuer), None, None) => (builder.oidc_issuer(&issuer), Some(issuer)),
        #[cfg(not(feature = "remote-jwks"))]
        (Some(_), None, None, None) | (None, Some(_), None, None) => {
            return Err("JWKS_URL and OIDC_ISSUER need the remote-jwks feature: \
                        cargo run --example hyper --features remote-jwks"
                .into());
        }
        (None, None, Some(secret), None) => (builder.hs256(secret), None),
        (None, None, None, Some(path)) => (builder.public_key_file(path), None),
        _ => {
            return Err(
                "set exactly one of JWKS_URL, OIDC_ISSUER, JWT_SECRET and JWT_PUBLIC_KEY_FILE"
                    .into(),
            );
        }
    };
    let builder = match (var("JWT_ISSUER")?, discovered) {
        (Some(issuer), Some(discovered)) if issuer != discovered => {
            return Err("JWT_ISSUER and OIDC_ISSUER name different issuers".into());
        }
        // `oidc_issuer` already requires its issuer as `iss`.
        (_, Some(_)) => builder,
        (Some(issuer), None) => builder.issuer(issuer),
        (None, None) => return Err("JWT_ISSUER is not set".into()),
    };
    let audience = var("JWT_AUDIENCE")?.ok_or("JWT_AUDIENCE is not set")?;
    Ok(builder.audience(audience).build()?)
}

/// Waits a little for keys fetched from the network, so that the first
/// requests are not answered 503; fixed keys are there at once.
async fn wait_for_keys<C>(auth: &JwtAuthLayer<C>)
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    if tokio::time::timeout(Duration::from_secs(10), auth.ready())
        .await
        .is_err()
    {
        eprintln!("no keys yet: requests get 503 until the key source answers");
    }
}

/// An environment variable; unset and empty are the same.
fn var(name: &str) -> Result<Option<String>, Error> {
    match env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8").into()),
    }
}
