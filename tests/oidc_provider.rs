//! Against a real OpenID provider nobody here wrote: panva's
//! `oidc-provider` (npm, pinned in `tests/oidc-provider/package-lock.json`),
//! started on 127.0.0.1 by the test with keys the test hands it. Its own
//! discovery document, JWK set and RFC 9068 access tokens (client
//! credentials grant, resource indicators) go through the layer built with
//! `.oidc_issuer(<provider>)` in front of a real axum server, called with
//! reqwest; then the provider rotates its signing key.
//!
//! Ignored by default: it needs node (18 or later) and
//! `npm ci --prefix tests/oidc-provider`, which `.ci/run` does before it
//! runs the ignored tests. By hand:
//!
//! ```sh
//! npm ci --prefix tests/oidc-provider
//! cargo test -p tower-jwt-auth --features remote-jwks --test oidc_provider -- --ignored
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::keys::remote::{
    DefaultClient, FetchFuture, HttpClient, RemoteKeys, RemoteOptions,
};

use common::{RSA_PRIVATE, RSA2_PRIVATE};

/// What `tests/oidc-provider/provider.mjs` registers.
const CLIENT_ID: &str = "movies-client";
const CLIENT_SECRET: &str = "movies-client-secret-0123456789abcdef";
const RESOURCE: &str = "urn:movies-api";
const AUDIENCE: &str = "movies-api";

/// The claims of the provider's access tokens the service reads.
#[derive(Clone, Debug, Deserialize)]
struct AccessToken {
    sub: String,
    client_id: String,
    scope: String,
}

/// A running provider: the node process, its issuer URL and port.
struct Provider {
    child: Child,
    issuer: String,
    port: u16,
    keys_file: PathBuf,
}

impl Provider {
    /// Starts the provider with `keys` (kid, PEM; RS256), the first one
    /// signing, on `port` (0: any). Returns once it accepts connections.
    async fn start(port: u16, keys: &[(&str, &str)]) -> Provider {
        // The checkout the test runs from (cargo sets this for the test
        // process), not the one it was compiled in: CI builds once in a
        // fresh clone and runs the ignored tests from its own checkout,
        // where `npm ci` installed the provider.
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let dir = root.join("tests/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "run `npm ci --prefix tests/oidc-provider` first"
        );
        let keys_file = std::env::temp_dir().join(format!(
            "tower-jwt-auth-oidc-provider-{}-{port}-{}.json",
            std::process::id(),
            keys[0].0
        ));
        let keys: Vec<Value> = keys
            .iter()
            .map(|(kid, pem)| json!({"kid": kid, "alg": "RS256", "pem": pem}))
            .collect();
        std::fs::write(&keys_file, serde_json::to_vec(&keys).unwrap()).unwrap();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("PORT", port.to_string())
            .env("KEYS_FILE", &keys_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run this test");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // A bound on a provider that never comes up, not a timing claim.
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the provider did not start within 60 s")
            .unwrap()
            .expect("the provider exited before it was ready (see its stderr above)");
        let issuer = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Provider {
            child,
            issuer,
            port,
            keys_file,
        }
    }

    /// Stops this provider and starts it again on the same port (so with
    /// the same issuer) with other keys: how a provider rotates.
    async fn restart(mut self, keys: &[(&str, &str)]) -> Provider {
        self.child.kill().await.unwrap();
        let port = self.port;
        let issuer = self.issuer.clone();
        drop(self);
        let restarted = Provider::start(port, keys).await;
        assert_eq!(restarted.issuer, issuer);
        restarted
    }

    /// An access token for the movies API, from the token endpoint.
    async fn access_token(&self) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("resource", RESOURCE),
                ("scope", "movies:read"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.keys_file);
    }
}

/// The `kid` in a token's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The default client, counting the JWK set fetches it sends.
#[derive(Clone)]
struct Counting {
    inner: DefaultClient,
    discovery: Arc<AtomicUsize>,
    jwks: Arc<AtomicUsize>,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            inner: DefaultClient::new(Duration::from_secs(2)).unwrap(),
            discovery: Arc::default(),
            jwks: Arc::default(),
        }
    }

    fn jwks_fetches(&self) -> usize {
        self.jwks.load(Ordering::SeqCst)
    }

    fn discovery_fetches(&self) -> usize {
        self.discovery.load(Ordering::SeqCst)
    }
}

impl HttpClient for Counting {
    fn fetch(&self, request: http::Request<()>) -> FetchFuture {
        let counter = if request.uri().path().ends_with("/openid-configuration") {
            &self.discovery
        } else {
            &self.jwks
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(request)
    }
}

/// Serves `/movies` behind `layer`, answering with the token's claims.
async fn serve(layer: JwtAuthLayer<AccessToken>) -> String {
    async fn movies(Extension(token): Extension<AccessToken>) -> Json<Value> {
        Json(json!({"sub": token.sub, "client_id": token.client_id, "scope": token.scope}))
    }
    let app = Router::new().route("/movies", get(movies)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/movies")
}

async fn status(url: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn ready(layer: &JwtAuthLayer<AccessToken>) {
    tokio::time::timeout(Duration::from_secs(30), layer.ready())
        .await
        .expect("the provider's keys within 30 s");
}

#[tokio::test]
#[ignore = "needs node and `npm ci --prefix tests/oidc-provider` (.ci/run does both)"]
async fn oidc_provider_tokens_verify_through_discovery_and_across_a_key_rotation() {
    let provider = Provider::start(0, &[("k1", RSA_PRIVATE)]).await;

    // The layer as a user writes it: discovery from the issuer URL.
    let client = Counting::new();
    let layer = JwtAuthLayer::<AccessToken>::builder()
        .oidc_issuer(&provider.issuer)
        .audience(AUDIENCE)
        .require_typ_at_jwt()
        .require_scope("movies:read")
        .http_client(client.clone())
        .build()
        .unwrap();
    ready(&layer).await;
    let url = serve(layer).await;
    // A second layer on a source of its own, whose refreshes the test
    // can ask for (`RemoteKeys::refresh`): the scheduled refresh of the
    // first one is minutes away.
    let source_client = Counting::new();
    let source = RemoteKeys::oidc_issuer(
        &provider.issuer,
        RemoteOptions::default().http_client(source_client.clone()),
    )
    .unwrap();
    let layer = JwtAuthLayer::<AccessToken>::builder()
        .remote_keys(source.clone())
        .audience(AUDIENCE)
        .require_typ_at_jwt()
        .build()
        .unwrap();
    ready(&layer).await;
    let refreshable = serve(layer).await;
    assert_eq!((client.discovery_fetches(), client.jwks_fetches()), (1, 1));

    // 1. The provider's access token passes, its claims reach the handler.
    let old = provider.access_token().await;
    assert_eq!(kid(&old), "k1");
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID, "RFC 9068: sub is the client");
    assert_eq!(claims["scope"], "movies:read");
    assert_eq!(status(&refreshable, &old).await, StatusCode::OK);
    // A byte of the payload changed: the provider's signature no longer holds.
    let mut parts: Vec<String> = old.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["scope"] = json!("movies:read movies:write");
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(
        status(&url, &parts.join(".")).await,
        StatusCode::UNAUTHORIZED
    );

    // 2. Rotation: the new key signs, the old one is still published.
    let provider = provider
        .restart(&[("k2", RSA2_PRIVATE), ("k1", RSA_PRIVATE)])
        .await;
    let new = provider.access_token().await;
    assert_eq!(kid(&new), "k2");
    assert_eq!(status(&url, &new).await, StatusCode::OK);
    assert_eq!(
        client.jwks_fetches(),
        2,
        "exactly one refetch for the new kid"
    );
    assert_eq!(client.discovery_fetches(), 1, "discovery is not repeated");
    // The old token still verifies (the old key is still published), and
    // needs no fetch.
    assert_eq!(status(&url, &old).await, StatusCode::OK);
    assert_eq!(client.jwks_fetches(), 2);
    assert_eq!(status(&refreshable, &new).await, StatusCode::OK);
    assert_eq!(status(&refreshable, &old).await, StatusCode::OK);
    assert_eq!(source_client.jwks_fetches(), 2);

    // 3. The old key is withdrawn. Until the next refresh the cached copy
    // still verifies; once the set is fetched again, the old token is
    // refused and the new one still passes.
    let provider = provider.restart(&[("k2", RSA2_PRIVATE)]).await;
    assert_eq!(status(&refreshable, &old).await, StatusCode::OK);
    source.refresh().await.unwrap();
    assert_eq!(source_client.jwks_fetches(), 3);
    assert_eq!(status(&refreshable, &old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&refreshable, &new).await, StatusCode::OK);
    let newer = provider.access_token().await;
    assert_eq!(status(&refreshable, &newer).await, StatusCode::OK);
    assert_eq!(status(&url, &newer).await, StatusCode::OK);
    // The old token's kid, gone, asked for a refetch, which the cooldown
    // after the refresh refused: no fetch beyond it.
    assert_eq!(source_client.jwks_fetches(), 3);
}
