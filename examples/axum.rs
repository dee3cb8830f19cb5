//! An axum app whose `GET /protected` needs a valid JWT and answers with its
//! claims as JSON; `GET /public` stays open.
//!
//! ```sh
//! JWT_SECRET=$(openssl rand -hex 32) JWT_ISSUER=https://auth.example.com JWT_AUDIENCE=movies-api \
//!     cargo run --example axum --features axum
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3001/protected
//! ```
//!
//! `$TOKEN` is an HS256 token signed with `JWT_SECRET` carrying that `iss`,
//! `aud` and an `exp`. To verify tokens signed with a private key instead
//! (the companion login service's, say), set `JWT_PUBLIC_KEY_FILE` to the
//! RS256, ES256 or EdDSA public key (PEM or DER) in place of `JWT_SECRET`. `LISTEN`
//! changes the address; `RUST_LOG=tower_jwt_auth=debug` logs why a token was
//! refused.
//! `REDIS_URL` (built with `--features redis`) also refuses tokens revoked
//! through Redis, such as the login service's logouts.

use std::env::{self, VarError};
use std::process::ExitCode;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::axum::Claims;

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
    let app = Router::new()
        .route("/protected", get(protected))
        // `route_layer`: only the routes above need a token, and unknown
        // paths still answer 404 rather than 401.
        .route_layer(auth_layer()?)
        .route("/public", get(|| async { "anyone may read this\n" }));

    let addr = var("LISTEN")?.unwrap_or_else(|| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}

async fn protected(Claims(claims): Claims<Value>) -> Json<Value> {
    Json(claims)
}

fn auth_layer() -> Result<JwtAuthLayer<Value>, Error> {
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
