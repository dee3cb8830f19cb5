//! An axum app whose `GET /protected` needs a valid JWT and answers with its
//! claims as JSON; `GET /public` stays open.
//!
//! Against the companion login service (`cargo run -p login-service`, on
//! 127.0.0.1:3000), its keys found through its discovery document:
//!
//! ```sh
//! OIDC_ISSUER=http://127.0.0.1:3000 JWT_AUDIENCE=login-service \
//!     cargo run --example axum --features axum,remote-jwks
//! TOKEN=$(curl -s -X POST http://127.0.0.1:3000/auth/login -H 'content-type: application/json' \
//!     -d '{"email": "ada@example.com", "password": "correct horse battery staple"}' \
//!     | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3001/protected
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
//! 127.0.0.1:3001); `RUST_LOG=tower_jwt_auth=debug` logs
//! fetches and why a token was refused.
//! `REDIS_URL` (built with `--features redis`) also refuses tokens revoked
//! through Redis, such as the login service's logouts.
//!
//! `DPOP=allowed` or `DPOP=required` (built with `--features dpop`) accepts
//! DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with a
//! `DPoP` proof header. `DPOP_EXTERNAL_BASE` is the URL clients reach the
//! service at (`http://127.0.0.1:3001`; without it, the request's `Host`);
//! with `REDIS_URL` too, proofs are remembered in Redis (under
//! `DPOP_REDIS_PREFIX`, default `tower-jwt-auth:dpop`), so that several
//! instances refuse each other's replays.

use std::env::{self, VarError};
use std::process::ExitCode;
use std::time::Duration;

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
    let auth = auth_layer()?;
    wait_for_keys(&auth).await;
    let app = Router::new()
        .route("/protected", get(protected))
        // `route_layer`: only the routes above need a token, and unknown
        // paths still answer 404 rather than 401.
        .route_layer(auth)
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
                        cargo run --example axum --features axum,remote-jwks"
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
    let builder = builder.audience(audience);
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
    let builder = match var("DPOP")?.as_deref() {
        None => builder,
        #[cfg(feature = "dpop")]
        Some(mode) => builder.dpop(dpop(mode)?),
        #[cfg(not(feature = "dpop"))]
        Some(_) => return Err("DPOP needs the `dpop` feature".into()),
    };
    Ok(builder.build()?)
}

/// DPoP settings from `DPOP`, `DPOP_EXTERNAL_BASE` and `REDIS_URL`.
#[cfg(feature = "dpop")]
fn dpop(mode: &str) -> Result<tower_jwt_auth::dpop::Dpop, Error> {
    use tower_jwt_auth::dpop::Dpop;
    let dpop = match mode {
        "allowed" => Dpop::allowed(),
        "required" => Dpop::required(),
        other => return Err(format!("DPOP is {other:?}: allowed or required").into()),
    };
    let dpop = match var("DPOP_EXTERNAL_BASE")? {
        Some(base) => dpop.external_base(&base)?,
        None => dpop,
    };
    Ok(match var("REDIS_URL")? {
        #[cfg(feature = "redis")]
        Some(url) => dpop.replay_store(tower_jwt_auth::dpop::RedisReplayStore::with_key_prefix(
            &url,
            &var("DPOP_REDIS_PREFIX")?
                .unwrap_or_else(|| tower_jwt_auth::dpop::DEFAULT_REPLAY_KEY_PREFIX.into()),
        )?),
        _ => dpop,
    })
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
