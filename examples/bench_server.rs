//! The server `scripts/loopback.sh` measures: two axum routes that do the
//! same nothing and answer `200 ok`, `GET /open` bare and `GET /protected`
//! behind the layer, so that the ratio of their throughputs is the layer's
//! cost in a real HTTP stack.
//!
//! ```sh
//! JWT_SECRET=$(openssl rand -hex 32) JWT_ISSUER=https://auth.example.com JWT_AUDIENCE=bench \
//!     cargo run --release --example bench_server
//! wrk -t1 -c32 -d10s http://127.0.0.1:3005/open
//! wrk -t1 -c32 -d10s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3005/protected
//! ```
//!
//! Keys and rules as in the axum example: `JWT_SECRET` (HS256) or
//! `JWT_PUBLIC_KEY_FILE` (RS256, ES256 or EdDSA public key), `JWT_ISSUER`,
//! `JWT_AUDIENCE`; `LISTEN` (default `127.0.0.1:3005`, port 0 for any) and
//! the address actually bound is printed on stdout. `JWT_CACHE=1` turns the
//! verified-token cache on (built with `--features cache`).

use std::env::{self, VarError};
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use serde::Deserialize;
use tower_jwt_auth::{JwtAuthBuilder, JwtAuthLayer};

type Error = Box<dyn std::error::Error>;

/// What a typical application reads from its tokens; other claims are
/// checked by the layer (`exp`, `iss`, `aud`…) or skipped.
#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)] // Decoded for the cost of it; the route does not read it.
struct BenchClaims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
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
        .route("/protected", get(ok))
        .route_layer(auth_layer()?)
        .route("/open", get(ok));

    let addr = var("LISTEN")?.unwrap_or_else(|| "127.0.0.1:3005".into());
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

async fn ok() -> &'static str {
    "ok"
}

fn auth_layer() -> Result<JwtAuthLayer<BenchClaims>, Error> {
    let builder = match (var("JWT_SECRET")?, var("JWT_PUBLIC_KEY_FILE")?) {
        (Some(secret), None) => JwtAuthLayer::builder().hs256(secret),
        (None, Some(path)) => JwtAuthLayer::builder().public_key_file(path),
        _ => return Err("set exactly one of JWT_SECRET and JWT_PUBLIC_KEY_FILE".into()),
    };
    let builder = if var("JWT_CACHE")?.is_some() {
        with_cache(builder)?
    } else {
        builder
    };
    let issuer = var("JWT_ISSUER")?.ok_or("JWT_ISSUER is not set")?;
    let audience = var("JWT_AUDIENCE")?.ok_or("JWT_AUDIENCE is not set")?;
    Ok(builder.issuer(issuer).audience(audience).build()?)
}

/// The verified-token cache with its defaults.
#[cfg(feature = "cache")]
fn with_cache(builder: JwtAuthBuilder<BenchClaims>) -> Result<JwtAuthBuilder<BenchClaims>, Error> {
    Ok(builder.cache(tower_jwt_auth::cache::TokenCache::new()))
}

/// Without the `cache` feature there is nothing to turn on: refuse rather
/// than measure something else under that name.
#[cfg(not(feature = "cache"))]
fn with_cache(_: JwtAuthBuilder<BenchClaims>) -> Result<JwtAuthBuilder<BenchClaims>, Error> {
    Err("JWT_CACHE needs the `cache` feature (--features cache)".into())
}

/// An environment variable; unset and empty are the same.
fn var(name: &str) -> Result<Option<String>, Error> {
    match env::var(name) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        Ok(_) | Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8").into()),
    }
}
