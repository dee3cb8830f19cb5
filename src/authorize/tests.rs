use std::convert::Infallible;

use http::header::WWW_AUTHENTICATE;
use http::{Request, Response, StatusCode, Version};
use serde::Deserialize;
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::reject::RejectionKind;

#[derive(Clone, Debug, Deserialize)]
struct User {
    sub: String,
}

fn user() -> User {
    User { sub: "u".into() }
}

/// Checks `policy` against a payload, as a route layer reads it.
fn check(policy: &Policy<User>, payload: &str) -> Result<(), RejectionKind> {
    policy
        .check(&user(), payload.as_bytes(), None)
        .map_err(|rejection| rejection.kind().clone())
}

fn scope_missing(required: &str) -> Result<(), RejectionKind> {
    Err(RejectionKind::InsufficientScope {
        required: required.into(),
    })
}

const FORBIDDEN: Result<(), RejectionKind> = Err(RejectionKind::Forbidden);

#[test]
fn scope_string_is_space_delimited() {
    let policy = Policy::builder().scope("movies:write").build().unwrap();
    assert_eq!(
        check(&policy, r#"{"scope":"movies:read movies:write"}"#),
        Ok(())
    );
    assert_eq!(
        check(&policy, r#"{"scope":"movies:read"}"#),
        scope_missing("movies:write")
    );
    // A scope is a whole token, never a substring or a prefix.
    assert_eq!(
        check(&policy, r#"{"scope":"movies:writer movies"}"#),
        scope_missing("movies:write")
    );
    assert_eq!(check(&policy, r#"{}"#), scope_missing("movies:write"));
}

#[test]
fn scp_is_an_array_or_a_space_delimited_string() {
    let policy = Policy::builder().scope("b").build().unwrap();
    assert_eq!(check(&policy, r#"{"scp":["a","b"]}"#), Ok(()));
    assert_eq!(check(&policy, r#"{"scp":"a b"}"#), Ok(()));
    assert_eq!(check(&policy, r#"{"scp":["a b"]}"#), scope_missing("b"));
    assert_eq!(check(&policy, r#"{"scp":["a"]}"#), scope_missing("b"));
    // Either claim may grant it.
    assert_eq!(check(&policy, r#"{"scope":"a","scp":["b"]}"#), Ok(()));
}

#[test]
fn all_of_needs_every_scope_and_names_them_all() {
    let policy = Policy::builder()
        .all_scopes(["a", "b"])
        .scope("c")
        .build()
        .unwrap();
    assert_eq!(check(&policy, r#"{"scope":"c b a"}"#), Ok(()));
    assert_eq!(check(&policy, r#"{"scope":"a c"}"#), scope_missing("a b c"));
}

#[test]
fn any_of_needs_one_scope_of_each_alternative() {
    let policy = Policy::builder()
        .any_scope(["read", "admin"])
        .any_scope(["eu", "us"])
        .build()
        .unwrap();
    assert_eq!(check(&policy, r#"{"scope":"admin us"}"#), Ok(()));
    assert_eq!(check(&policy, r#"{"scope":"read eu"}"#), Ok(()));
    assert_eq!(
        check(&policy, r#"{"scope":"eu"}"#),
        scope_missing("read admin")
    );
    assert_eq!(
        check(&policy, r#"{"scope":"read"}"#),
        scope_missing("eu us")
    );
}

const KEYCLOAK: &str = r#"{
    "realm_access": {"roles": ["admin"]},
    "resource_access": {"movies.api": {"roles": ["editor"]}, "other": {"roles": ["owner"]}},
    "roles": ["reader"],
    "groups": ["/staff", "/staff/ops"]
}"#;

#[test]
fn each_role_path_is_read() {
    for (at, role) in [
        (Roles::realm(), "admin"),
        (Roles::client("movies.api"), "editor"),
        (Roles::client("other"), "owner"),
        (Roles::claim("roles"), "reader"),
        (Roles::claim("groups"), "/staff/ops"),
        (Roles::path(["resource_access", "other", "roles"]), "owner"),
    ] {
        let policy = Policy::builder().role(at.clone(), role).build().unwrap();
        assert_eq!(check(&policy, KEYCLOAK), Ok(()), "{at}");
        let policy = Policy::builder()
            .role(at.clone(), "nobody")
            .build()
            .unwrap();
        assert_eq!(check(&policy, KEYCLOAK), FORBIDDEN, "{at}");
    }
}

#[test]
fn realm_and_client_roles_are_kept_apart() {
    // "admin" is a realm role only, "editor" a client role only.
    let client_admin = Policy::builder()
        .role(Roles::client("movies.api"), "admin")
        .build()
        .unwrap();
    assert_eq!(check(&client_admin, KEYCLOAK), FORBIDDEN);
    let realm_editor = Policy::builder()
        .role(Roles::realm(), "editor")
        .build()
        .unwrap();
    assert_eq!(check(&realm_editor, KEYCLOAK), FORBIDDEN);
    // Another client's role does not count either, nor a top-level one.
    let owner = Policy::builder()
        .role(Roles::client("movies.api"), "owner")
        .build()
        .unwrap();
    assert_eq!(check(&owner, KEYCLOAK), FORBIDDEN);
    let reader = Policy::builder()
        .role(Roles::realm(), "reader")
        .build()
        .unwrap();
    assert_eq!(check(&reader, KEYCLOAK), FORBIDDEN);
    // A client id with a dot is one name, not a path.
    let dotted = br#"{"resource_access": {"movies": {"api": {"roles": ["editor"]}}}}"#;
    let policy = Policy::<User>::builder()
        .role(Roles::client("movies.api"), "editor")
        .build()
        .unwrap();
    assert!(policy.check(&user(), dotted, None).is_err());
}

#[test]
fn any_and_all_roles() {
    let any = Policy::builder()
        .any_role(Roles::claim("groups"), ["/admins", "/staff"])
        .build()
        .unwrap();
    assert_eq!(check(&any, KEYCLOAK), Ok(()));
    let all = Policy::builder()
        .all_roles(Roles::claim("groups"), ["/staff", "/staff/ops"])
        .build()
        .unwrap();
    assert_eq!(check(&all, KEYCLOAK), Ok(()));
    let all = Policy::builder()
        .all_roles(Roles::claim("groups"), ["/staff", "/admins"])
        .build()
        .unwrap();
    assert_eq!(check(&all, KEYCLOAK), FORBIDDEN);
    let none = Policy::builder()
        .any_role(Roles::claim("groups"), ["/admins", "/ops"])
        .build()
        .unwrap();
    assert_eq!(check(&none, KEYCLOAK), FORBIDDEN);
}

#[test]
fn predicates_see_the_application_claims() {
    let policy = Policy::builder()
        .claims(|user: &User| user.sub == "u")
        .build()
        .unwrap();
    assert_eq!(check(&policy, "{}"), Ok(()));
    let policy = Policy::builder()
        .claims(|user: &User| user.sub == "u")
        .claims(|user: &User| user.sub.len() > 3)
        .build()
        .unwrap();
    assert_eq!(check(&policy, "{}"), FORBIDDEN);
}

#[test]
fn scopes_are_checked_first_so_the_answer_names_them() {
    let policy = Policy::builder()
        .claims(|_: &User| false)
        .role(Roles::realm(), "admin")
        .scope("x")
        .build()
        .unwrap();
    assert_eq!(check(&policy, KEYCLOAK), scope_missing("x"));
}

#[test]
fn bad_names_are_refused_when_building() {
    for scope in ["", "a b", "a\"b", "a\\b", "é", "a\tb", "a\u{7f}"] {
        let err = Policy::<User>::builder().scope(scope).build().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{scope:?}");
    }
    assert!(Policy::<User>::builder().scope("!#[]~").build().is_ok());
    assert!(
        Policy::<User>::builder()
            .any_scope(Vec::<String>::new())
            .build()
            .is_err()
    );
    assert!(
        Policy::<User>::builder()
            .any_role(Roles::realm(), Vec::<String>::new())
            .build()
            .is_err()
    );
    assert!(
        Policy::<User>::builder()
            .role(Roles::realm(), "")
            .build()
            .is_err()
    );
    assert!(
        Policy::<User>::builder()
            .role(Roles::path(Vec::<String>::new()), "a")
            .build()
            .is_err()
    );
    // The layer-wide form refuses them too.
    let err = crate::JwtAuthLayer::<User>::builder()
        .hs256(b"0123456789abcdef0123456789abcdef")
        .require_scope("movies write")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
}

#[test]
fn building_a_payload_policy_makes_layers_keep_the_payload() {
    let _ = Policy::<User>::builder().claims(|_| true).build().unwrap();
    // Other tests in this process may have set it already; once set it
    // stays set, and a scope policy always sets it.
    let _ = Policy::<User>::builder().scope("a").build().unwrap();
    assert!(payload_wanted());
}

async fn ok(_: Request<()>) -> Result<Response<&'static str>, Infallible> {
    Ok(Response::new("inner"))
}

fn request(claims: Option<User>, payload: Option<&str>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(claims) = claims {
        request.extensions_mut().insert(claims);
    }
    if let Some(payload) = payload {
        request
            .extensions_mut()
            .insert(TokenPayload::new(payload.as_bytes()));
    }
    request
}

#[tokio::test]
async fn the_layer_answers_401_403_or_calls_the_inner_service() {
    let policy = Policy::<User>::builder().scope("w").build().unwrap();
    let service = AuthorizeLayer::new(policy).layer(service_fn(ok));

    let granted = request(Some(user()), Some(r#"{"scope":"w"}"#));
    let response = service.clone().oneshot(granted).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let lacking = request(Some(user()), Some(r#"{"scope":"r"}"#));
    let response = service.clone().oneshot(lacking).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"api\", error=\"insufficient_scope\", \
         error_description=\"The access token lacks the required scope\", scope=\"w\""
    );

    // No claims: an optional authentication layer let a stranger through.
    let response = service.clone().oneshot(request(None, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");

    // Claims without the payload: the policy cannot judge; never a pass.
    let response = service.oneshot(request(Some(user()), None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_predicate_only_policy_needs_no_payload() {
    let policy = Policy::builder()
        .claims(|user: &User| user.sub == "u")
        .build()
        .unwrap();
    let service = AuthorizeLayer::new(policy).layer(service_fn(ok));
    let response = service
        .clone()
        .oneshot(request(Some(user()), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let other = User { sub: "v".into() };
    let response = service.oneshot(request(Some(other), None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        "Bearer realm=\"api\", error=\"insufficient_scope\", \
         error_description=\"The access token does not grant access to this resource\""
    );
}

#[tokio::test]
async fn grpc_requests_get_permission_denied() {
    let policy = Policy::<User>::builder()
        .role(Roles::realm(), "admin")
        .build()
        .unwrap();
    let service = AuthorizeLayer::new(policy).layer(service_fn(ok));
    let mut grpc = request(Some(user()), Some(r#"{"realm_access":{"roles":[]}}"#));
    *grpc.version_mut() = Version::HTTP_2;
    grpc.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let response = service.clone().oneshot(grpc).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
    let mut anonymous = request(None, None);
    *anonymous.version_mut() = Version::HTTP_2;
    anonymous
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let response = service.oneshot(anonymous).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
}

#[tokio::test]
async fn require_answers_as_the_authentication_layer_does() {
    let auth = crate::JwtAuthLayer::<User>::builder()
        .hs256(b"0123456789abcdef0123456789abcdef")
        .realm("movies")
        .grpc_answers(false)
        .build()
        .unwrap();
    let policy = Policy::builder().claims(|_: &User| false).build().unwrap();
    let service = auth.require(policy).layer(service_fn(ok));
    let mut grpc = request(Some(user()), None);
    *grpc.version_mut() = Version::HTTP_2;
    grpc.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    let response = service.oneshot(grpc).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"movies\""),
        "{challenge}"
    );
}
