//! The OpenAPI document served at /openapi.json against what the running
//! router really does: every route documented, security exactly on the
//! protected ones, documented errors in the documented shape.

mod common;

use std::collections::BTreeSet;

use common::{Backend, PASSWORD, Service, TestDb, cli_add_user};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The routes of the service as its specification lists them, and whether
/// each needs a bearer token.
const ROUTES: [(&str, &str, bool); 13] = [
    ("post", "/auth/register", false),
    ("post", "/auth/login", false),
    ("post", "/auth/refresh", false),
    ("get", "/auth/me", true),
    ("get", "/movies", false),
    ("post", "/movies", true),
    ("get", "/movies/{id}", false),
    ("put", "/movies/{id}", true),
    ("delete", "/movies/{id}", true),
    ("get", "/.well-known/jwks.json", false),
    ("get", "/.well-known/openid-configuration", false),
    // Last: probing them with the token ends the session the probes use
    // (logout-all gets a token of a new session).
    ("post", "/auth/logout", true),
    ("post", "/auth/logout-all", true),
];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push((method.to_owned(), path.clone(), op));
            }
        }
    }
    ops
}

async fn fetch_doc(svc: &Service) -> Value {
    let response = svc.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_route_is_documented_with_security_exactly_on_protected_ones() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    cli_add_user(&db.url, "admin@example.com", PASSWORD, "admin");
    let admin = svc.access_token("admin@example.com", PASSWORD).await;
    let doc = fetch_doc(&svc).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let scheme = &doc["components"]["securitySchemes"]["dpop"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(
        (&scheme["in"], &scheme["name"]),
        (&json!("header"), &json!("DPoP"))
    );

    for (method, path, protected) in ROUTES {
        assert_operation_documented(&doc["paths"][path][method], method, path, protected);

        // The router agrees: the documented method is served, and only a
        // token opens what the document says is protected.
        let token = if path == "/auth/logout-all" {
            svc.access_token("admin@example.com", PASSWORD).await
        } else {
            admin.clone()
        };
        assert_router_agrees(&svc, &token, method, path, protected).await;
    }

    // Methods the document does not list are not served on its paths.
    assert_unlisted_methods_are_refused(&svc, &doc).await;

    svc.stop().await;
    db.remove().await;
}

/// Any movie id: only the shape matters to the router.
const MOVIE: &str = "0b7f3c1e-4d1a-4f5e-9a51-3f0e6c2d9a01";

/// `op` requires the bearer scheme exactly when `protected`, and documents
/// the error responses that come with a token and with a body.
fn assert_operation_documented(op: &Value, method: &str, path: &str, protected: bool) {
    let security = op.get("security");
    if protected {
        let names: Vec<&String> = security
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{method} {path} lacks security"))
            .iter()
            .flat_map(|req| req.as_object().unwrap().keys())
            .collect();
        // Either scheme: a Bearer token, or a DPoP-bound one with its proof.
        assert_eq!(names, ["bearer", "dpop"], "{method} {path}");
        for status in ["401", "503"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{method} {path} {status}"
            );
        }
    } else {
        assert!(security.is_none(), "{method} {path} should be public");
    }
    if op.get("requestBody").is_some() {
        for status in ["400", "413", "415", "422"] {
            let response = &op["responses"][status];
            assert_eq!(
                response["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
}

/// The documented method is served, and only a token opens what the
/// document says is protected.
async fn assert_router_agrees(
    svc: &Service,
    admin: &str,
    method: &str,
    path: &str,
    protected: bool,
) {
    let url = svc.url(&path.replace("{id}", MOVIE));
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let anonymous = svc
        .client
        .request(method.clone(), &url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = anonymous.status();
    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    assert_eq!(
        status == StatusCode::UNAUTHORIZED,
        protected,
        "{method} {path}: {status}"
    );
    let body: Value = anonymous.json().await.unwrap_or(Value::Null);
    assert_ne!(
        body["error_description"], "no such route",
        "{method} {path}"
    );
    if protected {
        let authorized = svc
            .client
            .request(method.clone(), &url)
            .bearer_auth(admin)
            .json(&json!({"title": "Probe", "year": 2000}))
            .send()
            .await
            .unwrap();
        assert_ne!(
            authorized.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
}

/// Methods the document does not list are not served on its paths.
async fn assert_unlisted_methods_are_refused(svc: &Service, doc: &Value) {
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = svc
                .client
                .request(method.clone(), svc.url(&path.replace("{id}", MOVIE)))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_offline_and_can_be_switched_off() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    let page = svc.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Vendored assets: the page's script comes from this server.
    let bundle = svc.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    let init = svc.get("/docs/swagger-initializer.js").await;
    let init = init.text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    svc.stop().await;

    let svc = Service::start_with(&db, |c| c.docs = false).await;
    let page = svc.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(fetch_doc(&svc).await["paths"].get("/auth/login").is_some());
    svc.stop().await;
    db.remove().await;
}

/// The token endpoints document their optional `DPoP` proof header, the
/// 400 `invalid_dpop_proof` answer and `token_type`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoints_document_dpop() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    let doc = fetch_doc(&svc).await;
    for path in ["/auth/login", "/auth/refresh"] {
        let op = &doc["paths"][path]["post"];
        let header = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "DPoP")
            .unwrap_or_else(|| panic!("{path}: no DPoP parameter in {op}"));
        assert_eq!(header["in"], "header", "{path}");
        assert_ne!(header["required"], true, "{path}");
        let bad_request = &op["responses"]["400"];
        assert!(
            bad_request["description"]
                .as_str()
                .unwrap()
                .contains("invalid_dpop_proof"),
            "{path}: {bad_request}"
        );
        assert!(bad_request["headers"]["DPoP-Nonce"].is_object(), "{path}");
    }
    let token_type = &doc["components"]["schemas"]["TokenResponse"]["properties"]["token_type"];
    assert!(
        token_type["description"].as_str().unwrap().contains("DPoP"),
        "{token_type}"
    );
    let metadata = &doc["components"]["schemas"]["IssuerMetadata"]["properties"];
    assert!(
        metadata["dpop_signing_alg_values_supported"].is_object(),
        "{metadata}"
    );
    svc.stop().await;
    db.remove().await;
}

/// Issue 7: the throttling answers and the device cookie are in the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_documents_429_and_login_its_device_cookie() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    let doc = fetch_doc(&svc).await;
    let register = &doc["paths"]["/auth/register"]["post"]["responses"]["429"];
    assert!(register["headers"]["Retry-After"].is_object(), "{register}");
    let login = &doc["paths"]["/auth/login"]["post"];
    assert!(
        login["responses"]["200"]["headers"]["Set-Cookie"].is_object(),
        "{login}"
    );
    let cookie = login["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "login_device")
        .expect("the device cookie parameter");
    assert_eq!(cookie["in"], "cookie");
    svc.stop().await;
    db.remove().await;
}
