//! Two issuers whose keys come from the network (feature `remote-jwks`):
//! A publishes a JWKS URL, B an OpenID discovery document, both served on
//! 127.0.0.1 by a server that counts its hits. Each issuer's source is its
//! own, and a token naming an unknown issuer never causes a fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tower_jwt_auth::issue::{SigningKey, jwk_set};
use tower_jwt_auth::{Algorithm, Issuer, JwtAuthLayer};

use super::common::{EC_PRIVATE, EC384_PRIVATE, ED_PRIVATE, User, now};
use super::{get_with, grpc_code, serve_grpc};

const AUDIENCE: &str = "movies-api";

/// What the provider publishes, and how often each document was fetched.
#[derive(Default)]
struct Provider {
    jwks: HashMap<String, Value>,
    hits: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Provider>>;

struct Idp {
    base: String,
    state: Shared,
}

impl Idp {
    /// Issuer `a` publishes only a JWK set; issuer `b` a discovery
    /// document too.
    async fn start(a: &[&SigningKey], b: &[&SigningKey]) -> Idp {
        async fn jwks(State(state): State<Shared>, Path(tenant): Path<String>) -> Json<Value> {
            let mut state = state.lock().unwrap();
            *state.hits.entry(format!("{tenant}/jwks")).or_default() += 1;
            Json(
                state
                    .jwks
                    .get(&tenant)
                    .cloned()
                    .unwrap_or(json!({"keys": []})),
            )
        }
        async fn discovery(
            State(state): State<Shared>,
            Path(tenant): Path<String>,
            headers: http::HeaderMap,
        ) -> Json<Value> {
            *state
                .lock()
                .unwrap()
                .hits
                .entry(format!("{tenant}/discovery"))
                .or_default() += 1;
            let host = headers["host"].to_str().unwrap();
            Json(json!({
                "issuer": format!("http://{host}/{tenant}"),
                "jwks_uri": format!("http://{host}/{tenant}/jwks.json"),
            }))
        }
        let state = Shared::default();
        {
            let mut provider = state.lock().unwrap();
            provider.jwks.insert("a".into(), jwk_set(a.iter().copied()));
            provider.jwks.insert("b".into(), jwk_set(b.iter().copied()));
        }
        let app = Router::new()
            .route("/{tenant}/jwks.json", get(jwks))
            .route("/{tenant}/.well-known/openid-configuration", get(discovery))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp {
            base: format!("http://{addr}"),
            state,
        }
    }

    fn iss(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.base)
    }

    fn publish(&self, tenant: &str, keys: &[&SigningKey]) {
        let set = jwk_set(keys.iter().copied());
        self.state.lock().unwrap().jwks.insert(tenant.into(), set);
    }

    /// Fetches so far, per document (`a/jwks`, `b/discovery`, `b/jwks`).
    fn hits(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().hits.clone()
    }

    fn total_hits(&self) -> usize {
        self.hits().values().sum()
    }

    /// A layer trusting `a` through its JWKS URL and `b` through discovery.
    async fn layer(&self) -> JwtAuthLayer<User> {
        let layer = JwtAuthLayer::builder()
            .issuer_config(
                Issuer::new(self.iss("a"))
                    .jwks_url(format!("{}/a/jwks.json", self.base))
                    .audience(AUDIENCE),
            )
            .issuer_config(
                Issuer::new(self.iss("b"))
                    .oidc_discovery()
                    .audience(AUDIENCE),
            )
            .build()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), layer.ready())
            .await
            .expect("both issuers' keys within 10 s");
        layer
    }

    fn token(&self, key: &SigningKey, tenant: &str) -> String {
        key.sign(&json!({
            "iss": self.iss(tenant), "aud": AUDIENCE, "sub": format!("user-of-{tenant}"),
            "iat": now(), "exp": now() + 300,
        }))
        .unwrap()
    }
}

fn key(alg: Algorithm, kid: &str, pem: &str) -> SigningKey {
    SigningKey::from_pem(alg, kid, pem.as_bytes()).unwrap()
}

async fn serve_http(layer: JwtAuthLayer<User>) -> String {
    async fn me(Extension(user): Extension<User>) -> Json<User> {
        Json(user)
    }
    let app = Router::new().route("/me", get(me)).layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/me")
}

#[tokio::test]
async fn each_issuer_reads_its_own_remote_keys() {
    let (a1, b1) = (
        key(Algorithm::EdDSA, "a-1", ED_PRIVATE),
        key(Algorithm::ES256, "b-1", EC_PRIVATE),
    );
    let idp = Idp::start(&[&a1], &[&b1]).await;
    let url = serve_http(idp.layer().await).await;
    let fetched = HashMap::from([
        ("a/jwks".to_owned(), 1),
        ("b/discovery".to_owned(), 1),
        ("b/jwks".to_owned(), 1),
    ]);
    assert_eq!(idp.hits(), fetched);

    for tenant in ["a", "b"] {
        let key = if tenant == "a" { &a1 } else { &b1 };
        let response = get_with(&url, &idp.token(key, tenant)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let user: User = response.json().await.unwrap();
        assert_eq!(user.sub, format!("user-of-{tenant}"));
    }
    // B's key signing A's claims: B's kid is unknown to A, so A refetches
    // (once) and still has no such key. B's source is not asked.
    let response = get_with(&url, &idp.token(&b1, "a")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(idp.hits()["a/jwks"], 2);
    assert_eq!(idp.hits()["b/jwks"], 1);
    // A's key signing B's claims: the mirror image.
    let response = get_with(&url, &idp.token(&a1, "b")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(idp.hits()["b/jwks"], 2);
    assert_eq!(idp.hits()["a/jwks"], 2);
    // Discovery is not repeated for a refetch.
    assert_eq!(idp.hits()["b/discovery"], 1);
}

#[tokio::test]
async fn an_unknown_issuer_causes_no_fetch_at_all() {
    let (a1, b1) = (
        key(Algorithm::EdDSA, "a-1", ED_PRIVATE),
        key(Algorithm::ES256, "b-1", EC_PRIVATE),
    );
    let idp = Idp::start(&[&a1], &[&b1]).await;
    let layer = idp.layer().await;
    let url = serve_http(layer.clone()).await;
    let (channel, _) = serve_grpc(layer).await;
    let before = idp.total_hits();
    assert_eq!(before, 3);

    // Unknown kids (each would make its issuer refetch) under issuers the
    // layer does not know, look-alikes of the real ones, or none at all.
    for n in 0..50 {
        let stranger = key(Algorithm::EdDSA, &format!("kid-{n}"), ED_PRIVATE);
        let iss = match n % 5 {
            0 => "https://evil.test".to_owned(),
            1 => format!("{}/", idp.iss("a")),
            2 => idp.iss("c"),
            3 => idp.iss("B"),
            _ => String::new(),
        };
        let mut claims = json!({"aud": AUDIENCE, "sub": "x", "exp": now() + 300});
        if !iss.is_empty() {
            claims["iss"] = json!(iss);
        }
        let token = stranger.sign(&claims).unwrap();
        let response = get_with(&url, &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{iss:?}");
        assert_eq!(grpc_code(&channel, &token).await, Code::Unauthenticated);
    }
    assert_eq!(idp.total_hits(), before, "no fetch for an unknown issuer");
}

#[tokio::test]
async fn one_issuers_rotation_refetches_only_that_issuers_keys() {
    let (a1, b1, b2) = (
        key(Algorithm::EdDSA, "a-1", ED_PRIVATE),
        key(Algorithm::ES256, "b-1", EC_PRIVATE),
        key(Algorithm::ES384, "b-2", EC384_PRIVATE),
    );
    let idp = Idp::start(&[&a1], &[&b1]).await;
    let url = serve_http(idp.layer().await).await;

    // B rotates: the new key first, the old one still published.
    idp.publish("b", &[&b2, &b1]);
    let response = get_with(&url, &idp.token(&b2, "b")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(idp.hits()["b/jwks"], 2, "exactly one refetch");
    assert_eq!(idp.hits()["a/jwks"], 1, "A's keys not fetched again");
    // The old key verifies while it is still published, without a fetch.
    let response = get_with(&url, &idp.token(&b1, "b")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(idp.hits()["b/jwks"], 2);
    // B's new key means nothing for A's tokens.
    let response = get_with(&url, &idp.token(&b2, "a")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = get_with(&url, &idp.token(&a1, "a")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn issuer_keys_from_a_source_discovered_for_another_issuer_are_refused() {
    let b1 = key(Algorithm::ES256, "b-1", EC_PRIVATE);
    let idp = Idp::start(&[], &[&b1]).await;
    let discovered =
        tower_jwt_auth::keys::remote::RemoteKeys::oidc_issuer(&idp.iss("b"), Default::default())
            .unwrap();
    let err = JwtAuthLayer::<User>::builder()
        .issuer_config(Issuer::new(idp.iss("a")).remote_keys(discovered.clone()))
        .issuer_config(Issuer::new(idp.iss("c")).oidc_discovery())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("remote keys discovered for"),
        "{err}"
    );
    // The right issuer takes it.
    JwtAuthLayer::<User>::builder()
        .issuer_config(Issuer::new(idp.iss("b")).remote_keys(discovered))
        .issuer_config(Issuer::new(idp.iss("c")).oidc_discovery())
        .build()
        .unwrap();
    // One source per issuer.
    let err = JwtAuthLayer::<User>::builder()
        .issuer_config(
            Issuer::new(idp.iss("b"))
                .oidc_discovery()
                .jwks_url(format!("{}/b/jwks.json", idp.base)),
        )
        .issuer_config(Issuer::new(idp.iss("c")).oidc_discovery())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("one remote key source per issuer"),
        "{err}"
    );
    // A remote source on the builder itself beside issuers is refused.
    let err = JwtAuthLayer::<User>::builder()
        .jwks_url(format!("{}/a/jwks.json", idp.base))
        .issuer_config(Issuer::new(idp.iss("b")).oidc_discovery())
        .issuer_config(Issuer::new(idp.iss("c")).oidc_discovery())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("go on each Issuer"), "{err}");
}
