//! A tonic server whose every RPC needs a valid JWT: here the standard
//! `grpc.health.v1.Health` service. Missing or bad tokens get
//! `UNAUTHENTICATED` before any handler runs.
//!
//! ```sh
//! JWT_SECRET=$(openssl rand -hex 32) JWT_ISSUER=https://auth.example.com JWT_AUDIENCE=movies-api \
//!     cargo run --example tonic
//! grpcurl -plaintext -proto health.proto -H "authorization: Bearer $TOKEN" \
//!     127.0.0.1:3002 grpc.health.v1.Health/Check
//! ```
//!
//! `health.proto` ships in the `tonic-health` crate (`proto/health.proto`).
//! `$TOKEN` is an HS256 token signed with `JWT_SECRET` carrying that `iss`,
//! `aud` and an `exp`; `JWT_PUBLIC_KEY_FILE` (an RS256, ES256 or EdDSA
//! public key, PEM or DER) replaces `JWT_SECRET` for tokens signed with a private
//! key. `LISTEN` changes the address; `RUST_LOG=info` shows who called,
//! `RUST_LOG=tower_jwt_auth=debug` why a token was refused.
//! `REDIS_URL` (built with `--features redis`) also refuses tokens revoked
//! through Redis, such as the login service's logouts.

use std::env::{self, VarError};
use std::process::ExitCode;

use serde::Deserialize;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tower::util::MapRequestLayer;
use tower_jwt_auth::JwtAuthLayer;

type Error = Box<dyn std::error::Error>;

/// The claims this service cares about.
#[derive(Clone, Deserialize)]
struct Claims {
    sub: String,
}

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
    let (_reporter, health) = tonic_health::server::health_reporter();

    let addr = var("LISTEN")?.unwrap_or_else(|| "127.0.0.1:3002".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("listening on http://{}", listener.local_addr()?);

    Server::builder()
        .layer(auth)
        // Behind the layer, handlers and inner layers find the claims in the
        // request extensions (`request.extensions().get::<Claims>()` in a
        // tonic handler).
        .layer(MapRequestLayer::new(|request: http::Request<_>| {
            if let Some(claims) = request.extensions().get::<Claims>() {
                tracing::info!(sub = %claims.sub, path = %request.uri().path(), "call");
            }
            request
        }))
        .add_service(health)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}

fn auth_layer() -> Result<JwtAuthLayer<Claims>, Error> {
    let builder = match (var("JWT_SECRET")?, var("JWT_PUBLIC_KEY_FILE")?) {
        (Some(secret), None) => JwtAuthLayer::builder().hs256(secret),
        (None, Some(path)) => JwtAuthLayer::builder().public_key_file(path),
        _ => return Err("set exactly one of JWT_SECRET and JWT_PUBLIC_KEY_FILE".into()),
    };
    let issuer = var("JWT_ISSUER")?.ok_or("JWT_ISSUER is not set")?;
    let audience = var("JWT_AUDIENCE")?.ok_or("JWT_AUDIENCE is not set")?;
    let builder = builder.issuer(issuer).audience(audience);
    // Tokens revoked anywhere (the login service publishes its logouts),
    // answered from a local mirror of Redis.
    let builder = match var("REDIS_URL")? {
        #[cfg(feature = "redis")]
        Some(url) => builder
            .revocation(tower_jwt_auth::revoke::redis::RedisRevocations::builder(url).start()?),
        #[cfg(not(feature = "redis"))]
        Some(_) => return Err("REDIS_URL needs the `redis` feature".into()),
        None => builder,
    };
    Ok(builder.build()?)
}

/// An environment variable; unset and empty are the same.
fn var(name: &str) -> Result<Option<String>, Error> {
    match env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8").into()),
    }
}
