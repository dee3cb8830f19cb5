//! DPoP (RFC 9449) against an authorization server and a client nobody
//! here wrote: panva's `oidc-provider` issues a DPoP-bound RFC 9068 access
//! token (`cnf.jkt`, client credentials grant, resource indicators) to
//! panva's `oauth4webapi`, whose protected resource requests, with its own
//! proofs, go to an axum server behind the layer built with
//! `Dpop::required()` and the provider's JWK set. Both run in node from
//! `tests/oidc-provider` (pinned in its package-lock.json), on 127.0.0.1.
//!
//! Ignored by default: it needs node (18 or later) and
//! `npm ci --prefix tests/oidc-provider`, which `.ci/run` does before it
//! runs the ignored tests. By hand:
//!
//! ```sh
//! npm ci --prefix tests/oidc-provider
//! cargo test -p tower-jwt-auth --features dpop --test dpop_interop -- --ignored
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower_jwt_auth::JwtAuthLayer;
use tower_jwt_auth::dpop::{Dpop, DpopProof};

use common::RSA_PRIVATE;

/// What `tests/oidc-provider/provider.mjs` registers.
const CLIENT_ID: &str = "movies-client";
const CLIENT_SECRET: &str = "movies-client-secret-0123456789abcdef";
const RESOURCE: &str = "urn:movies-api";
const AUDIENCE: &str = "movies-api";

/// `tests/oidc-provider` of the checkout the test runs from, not the one
/// it was compiled in (CI builds in one clone, runs in another).
fn node_project() -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = root.join("tests/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir()
            && dir.join("node_modules/oauth4webapi").is_dir(),
        "run `npm ci --prefix tests/oidc-provider` first"
    );
    dir
}

/// The running provider: the node process and its issuer URL.
struct Provider {
    _child: Child,
    issuer: String,
    keys_file: PathBuf,
}

impl Provider {
    /// Starts the provider with an RS256 key; returns once it listens.
    async fn start() -> Provider {
        let dir = node_project();
        let keys_file = std::env::temp_dir().join(format!(
            "tower-jwt-auth-dpop-interop-{}.json",
            std::process::id()
        ));
        let keys = json!([{"kid": "k1", "alg": "RS256", "pem": RSA_PRIVATE}]);
        std::fs::write(&keys_file, keys.to_string()).unwrap();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .env("PORT", "0")
            .env("KEYS_FILE", &keys_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed to run this test");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
        Provider {
            _child: child,
            issuer,
            keys_file,
        }
    }

    /// Its JWK set, found through its discovery document.
    async fn jwks(&self) -> String {
        let http = reqwest::Client::new();
        let discovery: Value = http
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let algs = &discovery["dpop_signing_alg_values_supported"];
        assert!(
            algs.as_array().is_some_and(|a| !a.is_empty()),
            "{discovery}"
        );
        http.get(discovery["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A plain Bearer token (no proof at the token endpoint).
    async fn bearer_token(&self) -> String {
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
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.keys_file);
    }
}

/// Serves `/movies` behind `layer`, answering with the token's `cnf.jkt`
/// and the verified proof's key.
async fn serve(layer: JwtAuthLayer<Value>) -> String {
    async fn movies(
        Extension(claims): Extension<Value>,
        Extension(proof): Extension<DpopProof>,
    ) -> Json<Value> {
        Json(json!({
            "client_id": claims["client_id"],
            "cnf_jkt": claims["cnf"]["jkt"],
            "proof_jkt": proof.jkt,
        }))
    }
    let app = Router::new().route("/movies", get(movies)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/movies")
}

/// RFC 7638 thumbprint of an EC public JWK, computed here independently.
fn ec_thumbprint(jwk: &Value) -> String {
    use sha2::Digest;
    let canonical = json!({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]});
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.to_string().as_bytes()))
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `GET url` with these two headers as given.
async fn replay(url: &str, authorization: &str, proof: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new()
        .get(url)
        .header("Authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
#[ignore = "needs node and `npm ci --prefix tests/oidc-provider` (.ci/run does both)"]
async fn oidc_provider_dpop_tokens_and_oauth4webapi_proofs_pass_the_layer() {
    let provider = Provider::start().await;
    let layer = JwtAuthLayer::<Value>::builder()
        .jwks_str(&provider.jwks().await)
        .issuer(provider.issuer.as_str())
        .audience(AUDIENCE)
        .require_typ_at_jwt()
        .dpop(Dpop::required())
        .build()
        .unwrap();
    let url = serve(layer).await;

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("node")
            .arg(node_project().join("dpop-client.mjs"))
            .args(["provider", provider.issuer.as_str(), url.as_str()])
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client did not finish within 60 s")
    .unwrap();
    assert!(
        output.status.success(),
        "the client failed (see its stderr)"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    // The provider bound the token to the client's key.
    assert_eq!(report["token_type"], "dpop", "{report}");
    let token = report["access_token"].as_str().unwrap();
    let jkt = ec_thumbprint(&report["jwk"]);
    assert_eq!(claims_of(token)["cnf"]["jkt"], jkt.as_str(), "{report}");
    assert_eq!(
        tower_jwt_auth::dpop::thumbprint(&report["jwk"]).unwrap(),
        jkt
    );

    // The client's requests, with its proofs, pass the layer; the proof's
    // key reaches the handler beside the claims.
    for call in report["calls"].as_array().unwrap() {
        assert_eq!(call["status"], 200, "{call}");
        assert_eq!(call["body"]["client_id"], CLIENT_ID, "{call}");
        assert_eq!(call["body"]["cnf_jkt"], jkt.as_str(), "{call}");
        assert_eq!(call["body"]["proof_jkt"], jkt.as_str(), "{call}");
    }
    // A proof by another key of the client: refused, with a challenge the
    // client understood.
    let other = &report["other_key"];
    assert_eq!(other["status"], 401, "{other}");
    let scheme = other["challenges"][0]["scheme"]
        .as_str()
        .unwrap_or_default();
    assert!(scheme.eq_ignore_ascii_case("dpop"), "{other}");

    // Replays of what the client sent: refused.
    for call in report["calls"].as_array().unwrap() {
        let authorization = call["proof"]["authorization"].as_str().unwrap();
        let proof = call["proof"]["dpop"].as_str().unwrap();
        assert_eq!(
            replay(&url, authorization, Some(proof)).await,
            StatusCode::UNAUTHORIZED,
            "replay of {call}"
        );
    }
    // The bound token without its proof, or as Bearer: refused.
    let authorization = format!("DPoP {token}");
    assert_eq!(
        replay(&url, &authorization, None).await,
        StatusCode::UNAUTHORIZED
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(replay(&url, &bearer, None).await, StatusCode::UNAUTHORIZED);
    // `Dpop::required()`: the provider's unbound Bearer tokens are refused.
    let unbound = format!("Bearer {}", provider.bearer_token().await);
    assert_eq!(replay(&url, &unbound, None).await, StatusCode::UNAUTHORIZED);
}
