//! The layer's metrics (feature `metrics`) as an application sees them: an
//! axum server on 127.0.0.1 driven by reqwest, every request counted under
//! the documented name and labels.
//!
//! Each test runs its server and client on a single-threaded runtime of its
//! own, inside `metrics::with_local_recorder`: every task runs on the test's
//! thread, so the recorder sees all of them and no other test's.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use reqwest::StatusCode;
use serde_json::json;
use tower_jwt_auth::metrics::{
    LABEL_KIND, LABEL_REASON, LABEL_TOKEN, REQUESTS_ALLOWED, REQUESTS_REFUSED, REVOCATION_ERRORS,
};
use tower_jwt_auth::revoke::{RevocationCheck, RevocationFuture};
use tower_jwt_auth::{BoxError, JwtAuthBuilder, JwtAuthLayer, KeySet, KeyStore, RegisteredClaims};

use common::{AUDIENCE, ISSUER, SECRET, User, claims, hs256, mac_raw, now};

type Labels = Vec<(String, String)>;

/// What a test recorded: `(name, labels, value)` per series.
struct Recorded(Vec<(String, Labels, DebugValue)>);

impl Recorded {
    /// The series of `name`, as `(labels, count)`, labels sorted by key.
    fn counters(&self, name: &str) -> Vec<(Labels, u64)> {
        let mut series: Vec<_> = self
            .0
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, labels, value)| match value {
                DebugValue::Counter(count) => (labels.clone(), *count),
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .collect();
        series.sort();
        series
    }

    fn label_values(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|(_, labels, _)| labels.iter().map(|(_, v)| v.as_str()))
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

/// Runs `scenario` with a recorder of its own and returns what it recorded.
fn measure(scenario: impl Future<Output = ()>) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(scenario));
    drop(runtime);
    Recorded(
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (key.name().to_owned(), labels, value)
            })
            .collect(),
    )
}

fn auth() -> JwtAuthBuilder<User> {
    JwtAuthLayer::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
}

/// Serves `routes`, each `(path, layer)` answering 200 "ok" behind its
/// layer, on 127.0.0.1; returns the base URL.
async fn serve(routes: Vec<(&'static str, JwtAuthLayer<User>)>) -> String {
    let mut app = Router::new();
    for (path, layer) in routes {
        app = app.route(path, get(|| async { "ok" }).layer(layer));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GETs `url`, with `token` as a bearer token if given; returns the status.
async fn get_status(url: &str, token: Option<&str>) -> StatusCode {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status()
}

fn token_with(changes: serde_json::Value) -> String {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        claims[name] = value.clone();
    }
    hs256(&claims)
}

#[test]
fn allowed_requests_are_counted_by_whether_they_carried_a_token() {
    let recorded = measure(async {
        let base = serve(vec![("/", auth().optional().build().unwrap())]).await;
        let token = hs256(&claims());
        assert_eq!(get_status(&base, Some(&token)).await, StatusCode::OK);
        assert_eq!(get_status(&base, Some(&token)).await, StatusCode::OK);
        assert_eq!(get_status(&base, None).await, StatusCode::OK);
    });
    assert_eq!(
        recorded.counters(REQUESTS_ALLOWED),
        [
            (labels(&[(LABEL_TOKEN, "absent")]), 1),
            (labels(&[(LABEL_TOKEN, "verified")]), 2),
        ]
    );
    assert_eq!(recorded.counters(REQUESTS_REFUSED), []);
}

#[test]
fn each_refusal_is_counted_under_its_kind_and_reason() {
    let mut sent = Vec::new();
    let recorded = measure(async {
        let base = serve(vec![
            (
                "/",
                auth().token_from_query("access_token").build().unwrap(),
            ),
            (
                "/write",
                auth().require_scope("movies:write").build().unwrap(),
            ),
            (
                "/admin",
                auth()
                    .authorize(|user| user.sub == "admin")
                    .build()
                    .unwrap(),
            ),
            (
                "/down",
                JwtAuthLayer::builder()
                    .key_store(KeyStore::new(KeySet::new([])))
                    .build()
                    .unwrap(),
            ),
        ])
        .await;
        let root = format!("{base}/");
        let valid = hs256(&claims());
        let cases: Vec<(&str, Option<String>, StatusCode)> = vec![
            ("/", None, StatusCode::UNAUTHORIZED),
            (
                "/?access_token=a.b.c",
                Some(valid.clone()),
                StatusCode::BAD_REQUEST,
            ),
            ("/", Some("not-a-token".into()), StatusCode::UNAUTHORIZED),
            ("/", Some("x".repeat(9000)), StatusCode::UNAUTHORIZED),
            (
                "/",
                Some(mac_raw(
                    r#"{"alg":"HS256"}"#,
                    &claims().to_string(),
                    b"a-different-secret-0123456789abcdef",
                )),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/",
                Some(token_with(json!({"exp": now() - 3600}))),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/",
                Some(token_with(json!({"exp": now() - 3600}))),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "/",
                Some(token_with(json!({"aud": "another-api"}))),
                StatusCode::UNAUTHORIZED,
            ),
            ("/write", Some(valid.clone()), StatusCode::FORBIDDEN),
            ("/admin", Some(valid.clone()), StatusCode::FORBIDDEN),
            (
                "/down",
                Some(valid.clone()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (path, token, status) in cases {
            let url = format!("{base}{path}");
            assert_eq!(get_status(&url, token.as_deref()).await, status, "{path}");
            sent.extend(token);
        }
        assert_eq!(get_status(&root, Some(&valid)).await, StatusCode::OK);
    });
    let refused = |kind: &str, reason: &str, count: u64| {
        (labels(&[(LABEL_KIND, kind), (LABEL_REASON, reason)]), count)
    };
    let mut expected = vec![
        refused("missing_token", "missing_token", 1),
        refused("ambiguous_token", "ambiguous_token", 1),
        refused("invalid_token", "malformed", 1),
        refused("invalid_token", "too_large", 1),
        refused("invalid_token", "signature", 1),
        refused("invalid_token", "expired", 2),
        refused("invalid_token", "audience", 1),
        refused("insufficient_scope", "insufficient_scope", 1),
        refused("forbidden", "forbidden", 1),
        refused("unavailable", "unavailable", 1),
    ];
    expected.sort();
    assert_eq!(recorded.counters(REQUESTS_REFUSED), expected);
    assert_eq!(
        recorded.counters(REQUESTS_ALLOWED),
        [(labels(&[(LABEL_TOKEN, "verified")]), 1)]
    );
    // Label values come from the crate's fixed set, never from a request.
    for value in recorded.label_values() {
        assert!(
            sent.iter().all(|token| !token.contains(value)),
            "label value {value:?} is part of a token sent"
        );
    }
}

/// A denylist on `(iss, jti)` whose store can be made unreachable.
#[derive(Clone, Default)]
struct Denylist {
    revoked: Arc<Mutex<HashSet<String>>>,
    unreachable: Arc<AtomicBool>,
}

impl RevocationCheck for Denylist {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        let unreachable = self.unreachable.load(Ordering::SeqCst);
        let revoked = claims
            .jti
            .as_ref()
            .is_some_and(|jti| self.revoked.lock().unwrap().contains(jti));
        Box::pin(async move {
            // A real store answers later: the layer's future waits for it.
            tokio::task::yield_now().await;
            if unreachable {
                Err::<bool, BoxError>("denylist store unreachable".into())
            } else {
                Ok(revoked)
            }
        })
    }
}

#[test]
fn revocation_answers_are_counted_once_and_store_errors_too() {
    let denylist = Denylist::default();
    denylist.revoked.lock().unwrap().insert("stolen".into());
    let recorded = measure({
        let denylist = denylist.clone();
        async move {
            let base = serve(vec![
                ("/", auth().revocation(denylist.clone()).build().unwrap()),
                (
                    "/write",
                    auth()
                        .revocation(denylist.clone())
                        .require_scope("movies:write")
                        .build()
                        .unwrap(),
                ),
            ])
            .await;
            let root = format!("{base}/");
            let live = token_with(json!({"jti": "live"}));
            let stolen = token_with(json!({"jti": "stolen"}));
            assert_eq!(get_status(&root, Some(&live)).await, StatusCode::OK);
            assert_eq!(
                get_status(&root, Some(&stolen)).await,
                StatusCode::UNAUTHORIZED
            );
            // Revoked before forbidden: one refusal, counted as revoked.
            assert_eq!(
                get_status(&format!("{base}/write"), Some(&stolen)).await,
                StatusCode::UNAUTHORIZED
            );
            // Live but lacking the scope: counted once the store answered.
            assert_eq!(
                get_status(&format!("{base}/write"), Some(&live)).await,
                StatusCode::FORBIDDEN
            );
            denylist.unreachable.store(true, Ordering::SeqCst);
            assert_eq!(
                get_status(&root, Some(&live)).await,
                StatusCode::SERVICE_UNAVAILABLE
            );
            assert_eq!(
                get_status(&root, Some(&live)).await,
                StatusCode::SERVICE_UNAVAILABLE
            );
            // A token refused before the lookup costs no store error.
            assert_eq!(
                get_status(&root, Some("not-a-token")).await,
                StatusCode::UNAUTHORIZED
            );
        }
    });
    let refused = |kind: &str, reason: &str, count: u64| {
        (labels(&[(LABEL_KIND, kind), (LABEL_REASON, reason)]), count)
    };
    let mut expected = vec![
        refused("invalid_token", "revoked", 2),
        refused("insufficient_scope", "insufficient_scope", 1),
        refused("unavailable", "unavailable", 2),
        refused("invalid_token", "malformed", 1),
    ];
    expected.sort();
    assert_eq!(recorded.counters(REQUESTS_REFUSED), expected);
    assert_eq!(
        recorded.counters(REQUESTS_ALLOWED),
        [(labels(&[(LABEL_TOKEN, "verified")]), 1)]
    );
    assert_eq!(recorded.counters(REVOCATION_ERRORS), [(vec![], 2)]);
}
