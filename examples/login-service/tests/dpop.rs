//! DPoP (RFC 9449) end to end over HTTP: login and refresh with a proof
//! issue `token_type: DPoP` access tokens bound to the proof's key
//! (`cnf.jkt`); bound refresh tokens need a proof by the same key; the
//! protected routes take bound tokens only with valid proofs by their key,
//! and Bearer tokens as before; refused proofs at the token endpoints are
//! 400 `invalid_dpop_proof`; the discovery document announces the proof
//! algorithms; the walkthrough client (`examples/dpop_client.rs`) runs; and
//! with `--dpop-nonce-secs` proofs need a current server nonce, which every
//! instance on the database shares.
//! On SQLite always and on PostgreSQL when `DATABASE_URL` points at one.

mod common;
#[path = "../examples/dpop_client.rs"]
#[allow(dead_code, reason = "the example's main is not called here")]
mod dpop_client;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Backend, Binary, PASSWORD, Service, TestDb, claims_of, cli_add_user, error_of};
use dpop_client::{DpopKey, proof_claims};
use login_service::config::Clock;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    a_login_with_a_proof_binds_the_tokens_to_its_key,
    refused_token_endpoint_proofs_are_invalid_dpop_proof,
    bound_refresh_tokens_need_a_proof_by_the_same_key,
    a_bearer_session_refreshed_with_a_proof_is_bound_from_then_on,
    with_nonces_proofs_need_a_current_one_that_every_instance_shares,
);

/// `POST path` with a JSON body and these `DPoP` headers (none, one, more).
async fn post_with_proofs(svc: &Service, path: &str, body: &Value, proofs: &[&str]) -> Response {
    let mut request = svc.client.post(svc.url(path)).json(body);
    for proof in proofs {
        request = request.header("DPoP", *proof);
    }
    request.send().await.unwrap()
}

/// Logs in with a proof by `key`; the token response.
async fn dpop_login(svc: &Service, key: &DpopKey, email: &str) -> Value {
    let proof = key.proof("POST", &svc.url("/auth/login"), None);
    let body = json!({"email": email, "password": PASSWORD});
    let response = post_with_proofs(svc, "/auth/login", &body, &[&proof]).await;
    assert_eq!(response.status(), StatusCode::OK, "DPoP login of {email}");
    response.json().await.unwrap()
}

/// Refreshes with a proof by `key` (or none).
async fn dpop_refresh(svc: &Service, key: Option<&DpopKey>, refresh_token: &str) -> Response {
    let body = json!({"refresh_token": refresh_token});
    match key {
        Some(key) => {
            let proof = key.proof("POST", &svc.url("/auth/refresh"), None);
            post_with_proofs(svc, "/auth/refresh", &body, &[&proof]).await
        }
        None => post_with_proofs(svc, "/auth/refresh", &body, &[]).await,
    }
}

/// `method path` with `Authorization: <scheme> <token>` and, if given, a
/// `DPoP` proof.
async fn call(
    svc: &Service,
    method: Method,
    path: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = svc
        .client
        .request(method, svc.url(path))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

/// `GET /auth/me` the DPoP way with `proof`.
async fn me_with(svc: &Service, token: &str, proof: &str) -> Response {
    call(
        svc,
        Method::GET,
        "/auth/me",
        "DPoP",
        token,
        Some(proof),
        None,
    )
    .await
}

/// A fresh, valid proof of `key` for `GET /auth/me` with `token`.
fn me_proof(svc: &Service, key: &DpopKey, token: &str) -> String {
    key.proof("GET", &svc.url("/auth/me"), Some(token))
}

/// 400 `invalid_dpop_proof` in the documented error shape.
async fn assert_invalid_dpop_proof(response: Response, case: &str) {
    let (status, body) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
    assert_eq!(body["error"], "invalid_dpop_proof", "{case}: {body}");
}

/// A 401 with a DPoP challenge carrying an error (beside the Bearer one
/// the protected routes also offer).
fn assert_dpop_challenge(response: &Response, case: &str) {
    dpop_challenge_with(response, "error=", case);
}

/// Asserts a 401 with a DPoP challenge that contains `part`.
fn dpop_challenge_with(response: &Response, part: &str, case: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    let challenges: Vec<&str> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("DPoP ") && c.contains(part)),
        "{case}: {challenges:?}"
    );
}

async fn a_login_with_a_proof_binds_the_tokens_to_its_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("dpop@example.com", PASSWORD).await;
    let key = DpopKey::generate().unwrap();

    let tokens = dpop_login(&svc, &key, "dpop@example.com").await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["cnf"]["jkt"], key.thumbprint().as_str());

    // The token with a fresh proof by its key: accepted, every time.
    for _ in 0..2 {
        let response = me_with(&svc, token, &me_proof(&svc, &key, token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["email"], "dpop@example.com");
        assert_eq!(me["cnf"]["jkt"], key.thumbprint().as_str());
    }

    // Replayed proof.
    let proof = me_proof(&svc, &key, token);
    assert_eq!(me_with(&svc, token, &proof).await.status(), StatusCode::OK);
    assert_dpop_challenge(&me_with(&svc, token, &proof).await, "replayed proof");
    // A valid proof by another key.
    let other = DpopKey::generate_es256().unwrap();
    let response = me_with(&svc, token, &me_proof(&svc, &other, token)).await;
    assert_dpop_challenge(&response, "another key's proof");
    // As a Bearer token, with or without a proof: stolen, it is useless.
    let bearer = svc.get_bearer("/auth/me", token).await;
    assert_eq!(
        bearer.status(),
        StatusCode::UNAUTHORIZED,
        "bound token as Bearer"
    );
    let response = call(
        &svc,
        Method::GET,
        "/auth/me",
        "Bearer",
        token,
        Some(&me_proof(&svc, &key, token)),
        None,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "Bearer with a proof"
    );
    // No proof at all.
    let response = call(&svc, Method::GET, "/auth/me", "DPoP", token, None, None).await;
    assert_dpop_challenge(&response, "no proof");
    // Proofs that do not fit the request.
    let wrong = [
        ("no ath", key.proof("GET", &svc.url("/auth/me"), None)),
        (
            "ath of another token",
            key.proof("GET", &svc.url("/auth/me"), Some("another token")),
        ),
        (
            "wrong htm",
            key.proof("POST", &svc.url("/auth/me"), Some(token)),
        ),
        (
            "wrong htu",
            key.proof("GET", &svc.url("/auth/logout"), Some(token)),
        ),
        (
            "htu of another host",
            key.proof("GET", "http://login.example.com/auth/me", Some(token)),
        ),
    ];
    for (case, proof) in &wrong {
        assert_dpop_challenge(&me_with(&svc, token, proof).await, case);
    }

    // A Bearer login is exactly as before, and so is its token.
    let bearer = svc.login("dpop@example.com", PASSWORD).await;
    assert_eq!(bearer["token_type"], "Bearer");
    let bearer_token = bearer["access_token"].as_str().unwrap();
    assert!(claims_of(bearer_token).get("cnf").is_none());
    let response = svc.get_bearer("/auth/me", bearer_token).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Logout works the DPoP way, and ends the bound token.
    let proof = key.proof("POST", &svc.url("/auth/logout"), Some(token));
    let response = call(
        &svc,
        Method::POST,
        "/auth/logout",
        "DPoP",
        token,
        Some(&proof),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = me_with(&svc, token, &me_proof(&svc, &key, token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "logged out");

    svc.stop().await;
    db.remove().await;
}

async fn refused_token_endpoint_proofs_are_invalid_dpop_proof(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("proofs@example.com", PASSWORD).await;
    let key = DpopKey::generate().unwrap();
    let login_url = svc.url("/auth/login");
    let body = json!({"email": "proofs@example.com", "password": PASSWORD});

    let valid = key.proof("POST", &login_url, None);
    let mut hs256 = key.header();
    hs256["alg"] = json!("HS256");
    let mut typ_jwt = key.header();
    typ_jwt["typ"] = json!("JWT");
    let mut no_jwk = key.header();
    no_jwk.as_object_mut().unwrap().remove("jwk");
    let mut stale = proof_claims("POST", &login_url, None);
    stale["iat"] = json!(stale["iat"].as_u64().unwrap() - 3600);
    let mut future = proof_claims("POST", &login_url, None);
    future["iat"] = json!(future["iat"].as_u64().unwrap() + 3600);
    let mut no_jti = proof_claims("POST", &login_url, None);
    no_jti.as_object_mut().unwrap().remove("jti");
    let other = DpopKey::generate().unwrap();
    // Signed by another key than the one in its header.
    let forged = other.sign(&key.header(), &proof_claims("POST", &login_url, None));
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("not a JWT", vec!["not-a-proof".to_owned()]),
        ("wrong htm", vec![key.proof("GET", &login_url, None)]),
        (
            "wrong htu",
            vec![key.proof("POST", &svc.url("/auth/refresh"), None)],
        ),
        (
            "ath at the token endpoint",
            vec![key.proof("POST", &login_url, Some("some token"))],
        ),
        (
            "alg HS256",
            vec![key.sign(&hs256, &proof_claims("POST", &login_url, None))],
        ),
        (
            "typ JWT",
            vec![key.sign(&typ_jwt, &proof_claims("POST", &login_url, None))],
        ),
        (
            "no jwk",
            vec![key.sign(&no_jwk, &proof_claims("POST", &login_url, None))],
        ),
        ("iat an hour ago", vec![key.sign(&key.header(), &stale)]),
        ("iat in an hour", vec![key.sign(&key.header(), &future)]),
        ("no jti", vec![key.sign(&key.header(), &no_jti)]),
        ("signature by another key", vec![forged]),
        (
            "two DPoP headers",
            vec![
                key.proof("POST", &login_url, None),
                key.proof("POST", &login_url, None),
            ],
        ),
    ];
    for (case, proofs) in &cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let response = post_with_proofs(&svc, "/auth/login", &body, &proofs).await;
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{case}: no login"
        );
        assert_invalid_dpop_proof(response, case).await;
    }

    // None of that counted as a failed login (the account is not locked
    // after more refusals than its failure limit), and the valid proof
    // still logs in, once.
    let response = post_with_proofs(&svc, "/auth/login", &body, &[&valid]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let replayed = post_with_proofs(&svc, "/auth/login", &body, &[&valid]).await;
    assert_invalid_dpop_proof(replayed, "replayed login proof").await;

    // A wrong password with a valid proof is a wrong password.
    let wrong = json!({"email": "proofs@example.com", "password": "wrong password"});
    let proof = key.proof("POST", &login_url, None);
    let (status, body) =
        error_of(post_with_proofs(&svc, "/auth/login", &wrong, &[&proof]).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_credentials");

    // Refresh checks its proofs alike.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh_body = json!({"refresh_token": refresh_token});
    let bad = key.proof("POST", &login_url, None);
    let response = post_with_proofs(&svc, "/auth/refresh", &refresh_body, &[&bad]).await;
    assert_invalid_dpop_proof(response, "refresh with the login URL as htu").await;
    // …and the refused request did not spend the refresh token.
    let response = dpop_refresh(&svc, Some(&key), refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK);

    svc.stop().await;
    db.remove().await;
}

async fn bound_refresh_tokens_need_a_proof_by_the_same_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("refresh@example.com", PASSWORD).await;
    let key = DpopKey::generate().unwrap();
    let other = DpopKey::generate().unwrap();
    let tokens = dpop_login(&svc, &key, "refresh@example.com").await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Without a proof, or with another key's: refused, and not spent.
    let response = dpop_refresh(&svc, None, &first).await;
    assert_invalid_dpop_proof(response, "bound refresh without a proof").await;
    let response = dpop_refresh(&svc, Some(&other), &first).await;
    assert_invalid_dpop_proof(response, "bound refresh with another key").await;

    // With the key: a new pair, bound to the same key.
    let response = dpop_refresh(&svc, Some(&key), &first).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renewed: Value = response.json().await.unwrap();
    assert_eq!(renewed["token_type"], "DPoP");
    let token = renewed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&token)["cnf"]["jkt"], key.thumbprint().as_str());
    assert_eq!(
        claims_of(&token)["sid"],
        claims_of(tokens["access_token"].as_str().unwrap())["sid"]
    );
    let response = me_with(&svc, &token, &me_proof(&svc, &key, &token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The successor is bound too.
    let second = renewed["refresh_token"].as_str().unwrap().to_owned();
    let response = dpop_refresh(&svc, Some(&other), &second).await;
    assert_invalid_dpop_proof(response, "successor with another key").await;

    // Reuse of the spent token, by the key holder: the family is revoked,
    // as for any reuse, and its access tokens with it.
    let (status, body) = error_of(dpop_refresh(&svc, Some(&key), &first).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let response = dpop_refresh(&svc, Some(&key), &second).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );
    let response = me_with(&svc, &token, &me_proof(&svc, &key, &token)).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "session revoked"
    );

    svc.stop().await;
    db.remove().await;
}

async fn a_bearer_session_refreshed_with_a_proof_is_bound_from_then_on(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("upgrade@example.com", PASSWORD).await;
    let tokens = svc.login("upgrade@example.com", PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");

    // Refreshed without a proof: Bearer, as before.
    let response = dpop_refresh(&svc, None, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bearer: Value = response.json().await.unwrap();
    assert_eq!(bearer["token_type"], "Bearer");
    assert!(
        claims_of(bearer["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none()
    );

    // Refreshed with a proof: the new pair is bound to its key…
    let key = DpopKey::generate().unwrap();
    let response = dpop_refresh(&svc, Some(&key), bearer["refresh_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bound: Value = response.json().await.unwrap();
    assert_eq!(bound["token_type"], "DPoP");
    let token = bound["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["cnf"]["jkt"], key.thumbprint().as_str());
    let response = me_with(&svc, token, &me_proof(&svc, &key, token)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // …and so is the session: no going back to Bearer, no other key.
    let next = bound["refresh_token"].as_str().unwrap();
    let response = dpop_refresh(&svc, None, next).await;
    assert_invalid_dpop_proof(response, "bound by a refresh, then no proof").await;
    let other = DpopKey::generate().unwrap();
    let response = dpop_refresh(&svc, Some(&other), next).await;
    assert_invalid_dpop_proof(response, "bound by a refresh, then another key").await;
    let response = dpop_refresh(&svc, Some(&key), next).await;
    assert_eq!(response.status(), StatusCode::OK);

    svc.stop().await;
    db.remove().await;
}

/// The discovery document names the proof algorithms, and they are the
/// ones accepted: an ES256 and an EdDSA proof log in, an HS256 one (even
/// correctly keyed) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_announces_the_proof_algorithms_it_accepts() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    let doc: Value = svc.get_json("/.well-known/openid-configuration").await;
    let algs: Vec<&str> = doc["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        algs.contains(&"ES256") && algs.contains(&"EdDSA"),
        "{algs:?}"
    );
    assert!(algs.iter().all(|alg| !alg.starts_with("HS")), "{algs:?}");
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("cnf")),
        "{doc}"
    );

    svc.register("algs@example.com", PASSWORD).await;
    for key in [
        DpopKey::generate().unwrap(),
        DpopKey::generate_es256().unwrap(),
    ] {
        let tokens = dpop_login(&svc, &key, "algs@example.com").await;
        assert_eq!(tokens["token_type"], "DPoP", "{}", key.header()["alg"]);
    }
    svc.stop().await;
    db.remove().await;
}

/// Admins' bound tokens write movies with proofs (the `movies:write`
/// layer takes DPoP too), and not without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_take_bound_tokens_with_proofs() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    cli_add_user(&db.url, "editor@example.com", PASSWORD, "admin");
    let key = DpopKey::generate().unwrap();
    let tokens = dpop_login(&svc, &key, "editor@example.com").await;
    let token = tokens["access_token"].as_str().unwrap();
    let movie = json!({"title": "Proof of Possession", "year": 2023});

    let response = call(
        &svc,
        Method::POST,
        "/movies",
        "DPoP",
        token,
        None,
        Some(&movie),
    )
    .await;
    assert_dpop_challenge(&response, "write without a proof");
    let proof = key.proof("POST", &svc.url("/movies"), Some(token));
    let response = call(
        &svc,
        Method::POST,
        "/movies",
        "DPoP",
        token,
        Some(&proof),
        Some(&movie),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    svc.stop().await;
    db.remove().await;
}

/// The README's walkthrough, as a user runs it against a started service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_client_logs_in_with_dpop_and_its_replay_is_refused() {
    let db = TestDb::new(Backend::Sqlite).await;
    let svc = Service::start(&db).await;
    let mut narration = Vec::new();
    let seen = dpop_client::walkthrough(&svc.base, "walk@example.com", PASSWORD, &mut narration)
        .await
        .unwrap();
    let narration = String::from_utf8(narration).unwrap();
    assert_eq!(seen.token_type, "DPoP", "{narration}");
    assert_eq!(seen.cnf_jkt, seen.thumbprint, "{narration}");
    assert_eq!(seen.me_status, 200, "{narration}");
    assert_eq!(seen.me_email, "walk@example.com", "{narration}");
    assert_eq!(seen.replay_status, 401, "{narration}");
    assert!(seen.replay_challenge.starts_with("DPoP"), "{narration}");
    assert!(
        seen.replay_challenge.contains("invalid_dpop_proof"),
        "{narration}"
    );

    // Run again for the same account: it is registered already (409), and
    // the walkthrough goes on to log in.
    let again = dpop_client::walkthrough(&svc.base, "walk@example.com", PASSWORD, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!((again.me_status, again.replay_status), (200, 401));
    svc.stop().await;
    db.remove().await;
}

/// A proof by `key` for `method url` (and `token`), made at `at`, carrying
/// `nonce` if given.
fn proof_at(
    key: &DpopKey,
    method: &str,
    url: &str,
    token: Option<&str>,
    nonce: Option<&str>,
    at: SystemTime,
) -> String {
    let mut claims = proof_claims(method, url, token);
    claims["iat"] = json!(at.duration_since(UNIX_EPOCH).unwrap().as_secs());
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    key.sign(&key.header(), &claims)
}

/// The `DPoP-Nonce` header of `response`, if any.
fn nonce_of(response: &Response) -> Option<String> {
    response
        .headers()
        .get("dpop-nonce")
        .map(|value| value.to_str().unwrap().to_owned())
}

/// 400 `use_dpop_nonce` at a token endpoint; the nonce it hands out.
async fn assert_use_dpop_nonce(response: Response, case: &str) -> String {
    let nonce = nonce_of(&response).unwrap_or_else(|| panic!("{case}: no DPoP-Nonce"));
    let (status, body) = error_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
    assert_eq!(body["error"], "use_dpop_nonce", "{case}: {body}");
    nonce
}

/// 401 with a DPoP challenge `use_dpop_nonce` on a protected route; the
/// nonce it hands out.
fn assert_use_dpop_nonce_challenge(response: &Response, case: &str) -> String {
    dpop_challenge_with(response, r#"error="use_dpop_nonce""#, case);
    nonce_of(response).unwrap_or_else(|| panic!("{case}: no DPoP-Nonce"))
}

/// `--dpop-nonce-secs`: a proof without a current server nonce is refused
/// with one to use (400 at the token endpoints, 401 on protected routes),
/// and the retry with it works; a forged one is refused the same way;
/// Bearer requests need none. Both instances on the database accept each
/// other's nonces; a service on another database does not. One rotation
/// later the nonce is still accepted and the answers hand on the current
/// one (`DPoP-Nonce`, also on a failed login); two rotations later it is
/// refused. The DPoP clock is injected and still.
async fn with_nonces_proofs_need_a_current_one_that_every_instance_shares(backend: Backend) {
    const ROTATION: u64 = 300;
    let db = TestDb::new(backend).await;
    // The middle of a slot, so that only the test moves across slots.
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = UNIX_EPOCH + Duration::from_secs(now_secs / ROTATION * ROTATION + ROTATION / 2);
    let offset = Arc::new(AtomicU64::new(0));
    let clock = {
        let offset = offset.clone();
        Clock::new(move || start + Duration::from_secs(offset.load(Ordering::SeqCst)))
    };
    let with_nonces = |config: &mut login_service::Config| {
        config.dpop_nonce_rotation = Some(Duration::from_secs(ROTATION));
        config.dpop_clock = Some(clock.clone());
    };
    let a = Service::start_with(&db, with_nonces).await;
    // Behind the same public URL as `a`: its issuer, and the `htu` of every
    // proof below, whichever instance it is sent to.
    let b = Service::start_with(&db, |config| {
        with_nonces(config);
        config.issuer = a.base.clone();
    })
    .await;
    let email = "nonce@example.com";
    a.register(email, PASSWORD).await;
    let key = DpopKey::generate().unwrap();
    let body = json!({"email": email, "password": PASSWORD});
    let login = |nonce: Option<&str>| {
        proof_at(
            &key,
            "POST",
            &a.url("/auth/login"),
            None,
            nonce,
            clock.now(),
        )
    };
    let me = |token: &str, nonce: Option<&str>| {
        proof_at(
            &key,
            "GET",
            &a.url("/auth/me"),
            Some(token),
            nonce,
            clock.now(),
        )
    };

    // Asked for, then used.
    let response = post_with_proofs(&a, "/auth/login", &body, &[&login(None)]).await;
    let nonce = assert_use_dpop_nonce(response, "login without a nonce").await;
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAA";
    let response = post_with_proofs(&a, "/auth/login", &body, &[&login(Some(forged))]).await;
    assert_eq!(
        assert_use_dpop_nonce(response, "forged nonce").await,
        nonce,
        "the current nonce again"
    );
    let response = post_with_proofs(&a, "/auth/login", &body, &[&login(Some(&nonce))]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(nonce_of(&response), None, "the nonce is current");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refresh = |nonce: Option<&str>| {
        proof_at(
            &key,
            "POST",
            &a.url("/auth/refresh"),
            None,
            nonce,
            clock.now(),
        )
    };
    let refresh_body = json!({"refresh_token": refresh_token});
    let response = post_with_proofs(&a, "/auth/refresh", &refresh_body, &[&refresh(None)]).await;
    assert_eq!(
        assert_use_dpop_nonce(response, "refresh without a nonce").await,
        nonce
    );

    let response = me_with(&a, token, &me(token, None)).await;
    assert_eq!(
        assert_use_dpop_nonce_challenge(&response, "/auth/me without a nonce"),
        nonce
    );
    let response = me_with(&a, token, &me(token, Some(&nonce))).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The other instance: its own URLs, the same nonces.
    let response = me_with(&b, token, &me(token, Some(&nonce))).await;
    assert_eq!(response.status(), StatusCode::OK, "a's nonce at b");
    let response = post_with_proofs(&b, "/auth/login", &body, &[&login(None)]).await;
    assert_eq!(assert_use_dpop_nonce(response, "b asks").await, nonce);
    // A service on another database has another secret: other nonces.
    let other_db = TestDb::new(backend).await;
    let c = Service::start_with(&other_db, |config| {
        with_nonces(config);
        config.issuer = a.base.clone();
    })
    .await;
    let response = post_with_proofs(&c, "/auth/login", &body, &[&login(Some(&nonce))]).await;
    let theirs = assert_use_dpop_nonce(response, "a's nonce on another database").await;
    assert_ne!(theirs, nonce);
    c.stop().await;
    other_db.remove().await;
    // Bearer: no proof, no nonce.
    let bearer = b.access_token(email, PASSWORD).await;
    assert_eq!(
        b.get_bearer("/auth/me", &bearer).await.status(),
        StatusCode::OK
    );

    // One rotation later: still accepted, and the current nonce handed on.
    offset.store(ROTATION, Ordering::SeqCst);
    let response = post_with_proofs(&a, "/auth/login", &body, &[&login(Some(&nonce))]).await;
    assert_eq!(response.status(), StatusCode::OK, "previous nonce at login");
    let next = nonce_of(&response).expect("the login hands on the current nonce");
    assert_ne!(next, nonce);
    // So does a failed login.
    let wrong = json!({"email": email, "password": "not the password at all"});
    let response = post_with_proofs(&a, "/auth/login", &wrong, &[&login(Some(&nonce))]).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "wrong password"
    );
    assert_eq!(nonce_of(&response).as_deref(), Some(next.as_str()));
    let response = me_with(&b, token, &me(token, Some(&nonce))).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "previous nonce at /auth/me"
    );
    assert_eq!(nonce_of(&response).as_deref(), Some(next.as_str()));
    let response = post_with_proofs(
        &a,
        "/auth/refresh",
        &refresh_body,
        &[&refresh(Some(&nonce))],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "previous nonce at refresh"
    );
    assert_eq!(nonce_of(&response).as_deref(), Some(next.as_str()));
    let response = me_with(&a, token, &me(token, Some(&next))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(nonce_of(&response), None, "the next nonce is current");

    // Two rotations later: the first nonce has expired.
    offset.store(2 * ROTATION, Ordering::SeqCst);
    let response = post_with_proofs(&a, "/auth/login", &body, &[&login(Some(&nonce))]).await;
    let newest = assert_use_dpop_nonce(response, "expired nonce at login").await;
    assert!(newest != nonce && newest != next, "{newest}");
    let response = me_with(&a, token, &me(token, Some(&nonce))).await;
    assert_eq!(
        assert_use_dpop_nonce_challenge(&response, "expired nonce at /auth/me"),
        newest
    );

    a.stop().await;
    b.stop().await;
    db.remove().await;
}

/// The binary's `--dpop-nonce-secs` (and `DPOP_NONCE_SECS`) turns nonces
/// on: a login proof without one is answered `use_dpop_nonce`, where the
/// same proof without the setting reaches the password check (an unknown
/// account: 401). Values outside 0 and 10–86400 are refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_requires_nonces_with_dpop_nonce_secs() {
    let db = TestDb::new(Backend::Sqlite).await;
    let key = DpopKey::generate().unwrap();
    let issuer = "http://login.test";
    let body = json!({"email": "nobody@example.com", "password": PASSWORD});
    for (flag, env, nonces) in [
        (Some("--dpop-nonce-secs=60"), None, true),
        (None, Some("60"), true),
        (None, None, false),
        (Some("--dpop-nonce-secs=0"), None, false),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_login-service"));
        command
            .args(["--listen", "127.0.0.1:0", "--issuer", issuer])
            .args(flag)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "login_service=info")
            .env_remove("DPOP_NONCE_SECS")
            .env_remove("LISTEN")
            .env_remove("KEY_ENCRYPTION_KEY_FILE")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        if let Some(value) = env {
            command.env("DPOP_NONCE_SECS", value);
        }
        let mut binary = Binary::spawn(&mut command);
        let address = binary.address_logged("login-service listening").await;
        let response = common::client()
            .post(format!("http://{address}/auth/login"))
            .header(
                "DPoP",
                key.proof("POST", &format!("{issuer}/auth/login"), None),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        let case = format!("{flag:?} DPOP_NONCE_SECS={env:?}");
        if nonces {
            assert_use_dpop_nonce(response, &case).await;
        } else {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
            assert_eq!(nonce_of(&response), None, "{case}");
        }
    }
    // Rotations a client could not follow, or that would never rotate.
    for value in ["5", "86401", "-1", "soon"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_login-service"))
            .args(["--listen", "127.0.0.1:0"])
            .arg(format!("--dpop-nonce-secs={value}"))
            .env("DATABASE_URL", &db.url)
            .env_remove("DPOP_NONCE_SECS")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--dpop-nonce-secs {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--dpop-nonce-secs"), "{stderr}");
    }
    db.remove().await;
}
