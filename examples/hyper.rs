//! A plain hyper 1 server: `GET /protected` needs a valid JWT and answers
//! with its claims as JSON; `GET /public` stays open.
//!
//! ```sh
//! JWT_SECRET=$(openssl rand -hex 32) JWT_ISSUER=https://auth.example.com JWT_AUDIENCE=movies-api \
//!     cargo run --example hyper
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3003/protected
//! ```
//!
//! `$TOKEN` is an HS256 token signed with `JWT_SECRET` carrying that `iss`,
//! `aud` and an `exp`; `JWT_PUBLIC_KEY_FILE` (an RS256, ES256 or EdDSA
//! public key, PEM or DER) replaces `JWT_SECRET` for tokens signed with a private
//! key. `LISTEN` changes the address; `RUST_LOG=tower_jwt_auth=debug` logs
//! why a token was refused.

use std::convert::Infallible;
use std::env::{self, VarError};
use std::pin::pin;
use std::process::ExitCode;

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
    let protected = ServiceBuilder::new()
        .layer(auth_layer()?)
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

fn auth_layer() -> Result<JwtAuthLayer<Value>, Error> {
    let builder = match (var("JWT_SECRET")?, var("JWT_PUBLIC_KEY_FILE")?) {
        (Some(secret), None) => JwtAuthLayer::builder().hs256(secret),
        (None, Some(path)) => JwtAuthLayer::builder().public_key_file(path),
        _ => return Err("set exactly one of JWT_SECRET and JWT_PUBLIC_KEY_FILE".into()),
    };
    let issuer = var("JWT_ISSUER")?.ok_or("JWT_ISSUER is not set")?;
    let audience = var("JWT_AUDIENCE")?.ok_or("JWT_AUDIENCE is not set")?;
    Ok(builder.issuer(issuer).audience(audience).build()?)
}

/// An environment variable; unset and empty are the same.
fn var(name: &str) -> Result<Option<String>, Error> {
    match env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8").into()),
    }
}
