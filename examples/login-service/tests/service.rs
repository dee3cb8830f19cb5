//! End-to-end: the real service on a loopback port, driven over HTTP, on
//! SQLite always and on PostgreSQL when `DATABASE_URL` points at one.

mod common;

use std::time::Duration;

use common::{Backend, Service, TestDb, cli_add_user, error_of};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    session_lifecycle_register_login_me_refresh_reuse_logout,
    emails_are_unique_case_insensitively_and_trimmed,
    unknown_email_and_wrong_password_get_the_same_answer,
    failed_logins_are_throttled_per_account_and_the_lockout_ends,
    failed_logins_are_throttled_per_client_address,
    bad_input_gets_clear_json_errors,
    movies_are_public_to_read_and_need_movies_write_to_change,
    tokens_verify_with_a_layer_configured_only_from_the_published_jwks,
    key_rotation_publishes_both_keys_and_old_tokens_keep_working,
    instances_on_one_database_share_keys_and_revocations,
    registration_can_be_switched_off,
    parallel_guesses_on_one_account_are_decided_before_hashing,
    parallel_guesses_from_one_address_are_decided_before_hashing,
    abandoned_logins_never_push_hashing_beyond_its_permits,
    registration_flood_from_one_address_gets_429_after_the_limit,
    address_limits_key_on_the_forwarded_client_only_behind_a_trusted_proxy,
    a_trusted_device_logs_in_while_an_attacker_keeps_the_account_locked,
    a_stolen_device_cookie_does_not_bypass_the_password,
    a_forged_or_tampered_device_cookie_is_untrusted,
);

const PASSWORD: &str = "correct horse battery staple";

/// The JSON in part `index` of a compact JWT: 0 the header, 1 the claims.
fn token_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn claims_of(token: &str) -> Value {
    token_part(token, 1)
}

fn header_of(token: &str) -> Value {
    token_part(token, 0)
}

fn retry_after_of(response: &Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn session_lifecycle_register_login_me_refresh_reuse_logout(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    let account = svc.register("ada@example.com", PASSWORD).await;
    assert_eq!(account["email"], "ada@example.com");
    let user_id = account["id"].as_str().unwrap().to_owned();

    let (access, refresh) = login_issues_claims_for(&svc, &user_id).await;
    let (access2, refresh2) = refresh_rotates(&svc, &access, &refresh).await;
    reuse_revokes_the_family(&svc, &refresh, &refresh2, &access2).await;
    let access_other = svc.access_token("ada@example.com", PASSWORD).await;
    logout_ends_only_its_session(&svc, &access_other).await;

    let anonymous = svc.get("/auth/me").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    svc.stop().await;
    db.remove().await;
}

/// A login's access token carries the documented claims; returns the pair.
async fn login_issues_claims_for(svc: &Service, user_id: &str) -> (String, String) {
    let tokens = svc.login("ada@example.com", PASSWORD).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&access)["typ"], "at+jwt");
    assert_eq!(header_of(&access)["alg"], "EdDSA");

    let me = svc.get_bearer("/auth/me", &access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["sub"], user_id);
    assert_eq!(me["iss"], svc.base.as_str());
    assert_eq!(me["aud"], "login-service");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["scope"], "movies:read");
    assert!(me["jti"].is_string());
    assert_eq!(
        me["exp"].as_i64().unwrap() - me["iat"].as_i64().unwrap(),
        900
    );
    (access, refresh)
}

/// Refresh rotates: a new pair, and the old refresh token is spent.
async fn refresh_rotates(svc: &Service, access: &str, refresh: &str) -> (String, String) {
    let refreshed = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let refreshed: Value = refreshed.json().await.unwrap();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access2)["sid"], claims_of(access)["sid"]);
    assert_eq!(
        svc.get_bearer("/auth/me", &access2).await.status(),
        StatusCode::OK
    );
    (access2, refresh2)
}

/// Reusing the rotated token is theft or a bug: the family dies, so even
/// the legitimately rotated successor is refused.
async fn reuse_revokes_the_family(svc: &Service, refresh: &str, refresh2: &str, access2: &str) {
    let reused = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh}))
        .await;
    let (status, body) = error_of(reused).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_grant");
    let successor = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh2}))
        .await;
    assert_eq!(successor.status(), StatusCode::UNAUTHORIZED);
    // The dead family's access tokens die with it, without waiting for exp.
    assert_eq!(
        svc.get_bearer("/auth/me", access2).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// A new login, then logout: the access token is refused at once and its
/// session's refresh token is dead; `other_session` stays valid.
async fn logout_ends_only_its_session(svc: &Service, other_session: &str) {
    let tokens = svc.login("ada@example.com", PASSWORD).await;
    let access3 = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh3 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let logout = svc
        .call_bearer(Method::POST, "/auth/logout", &access3, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let refused = svc.get_bearer("/auth/me", &access3).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"login-service\""),
        "{challenge}"
    );
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let after_logout = svc
        .post_json("/auth/refresh", json!({"refresh_token": refresh3}))
        .await;
    assert_eq!(after_logout.status(), StatusCode::UNAUTHORIZED);
    // Logging out of one session leaves the others alone.
    assert_eq!(
        svc.get_bearer("/auth/me", other_session).await.status(),
        StatusCode::OK
    );
}

async fn emails_are_unique_case_insensitively_and_trimmed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;

    let account = svc.register("  Grace.Hopper@Example.COM ", PASSWORD).await;
    assert_eq!(account["email"], "Grace.Hopper@Example.COM");
    let again = svc
        .post_json(
            "/auth/register",
            json!({"email": "grace.hopper@example.com", "password": "another password"}),
        )
        .await;
    let (status, body) = error_of(again).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "email_taken");

    let tokens = svc.login(" GRACE.hopper@example.com", PASSWORD).await;
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], account["id"]);

    svc.stop().await;
    db.remove().await;
}

async fn unknown_email_and_wrong_password_get_the_same_answer(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("alan@example.com", PASSWORD).await;

    let wrong = svc
        .post_json(
            "/auth/login",
            json!({"email": "alan@example.com", "password": "wrong password"}),
        )
        .await;
    let unknown = svc
        .post_json(
            "/auth/login",
            json!({"email": "nobody@example.com", "password": "wrong password"}),
        )
        .await;
    let too_long = svc
        .post_json(
            "/auth/login",
            json!({"email": "alan@example.com", "password": "x".repeat(500)}),
        )
        .await;
    let wrong = error_of(wrong).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.1["error"], "invalid_credentials");
    assert_eq!(error_of(unknown).await, wrong);
    assert_eq!(error_of(too_long).await, wrong);

    svc.stop().await;
    db.remove().await;
}

async fn failed_logins_are_throttled_per_account_and_the_lockout_ends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 3;
        c.throttle.base_lockout = Duration::from_secs(1);
        c.throttle.max_lockout = Duration::from_secs(1);
    })
    .await;
    svc.register("victim@example.com", PASSWORD).await;
    svc.register("bystander@example.com", PASSWORD).await;

    let attempt = |email: &'static str, password: &'static str| {
        svc.post_json("/auth/login", json!({"email": email, "password": password}))
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("victim@example.com", "guess guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Blocked now, even with the right password (which is not checked).
    let blocked = attempt("Victim@example.com", PASSWORD).await;
    let retry_after = retry_after_of(&blocked);
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    let (status, body) = error_of(blocked).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "too_many_attempts");

    // Another account from the same address is unaffected.
    assert_eq!(
        attempt("bystander@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    // The lockout is bounded: after it the owner gets in.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        attempt("victim@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    svc.stop().await;
    db.remove().await;
}

async fn failed_logins_are_throttled_per_client_address(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.address_failures = 4;
        c.throttle.account_failures = 100;
    })
    .await;
    svc.register("someone@example.com", PASSWORD).await;

    // Spraying one password over many accounts trips the address limit.
    for i in 0..4 {
        let response = svc
            .post_json(
                "/auth/login",
                json!({"email": format!("user{i}@example.com"), "password": "Password1"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = svc
        .post_json(
            "/auth/login",
            json!({"email": "someone@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = retry_after_of(&blocked);
    assert!((1..=30).contains(&retry_after), "{retry_after}");

    svc.stop().await;
    db.remove().await;
}

/// Fires `guesses` logins at once; as soon as one of them has been refused
/// (so the limit is certainly consumed) sends `correct` while the rest of the
/// burst may still be in flight. Returns (401s, 429s, status of `correct`).
async fn burst(svc: &Service, guesses: Vec<Value>, correct: Value) -> (usize, usize, StatusCode) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for body in guesses {
        let request = svc.client.post(svc.url("/auth/login")).json(&body);
        let tx = tx.clone();
        tasks.spawn(async move {
            let status = request.send().await.unwrap().status();
            let _ = tx.send(status);
            status
        });
    }
    drop(tx);
    while let Some(status) = rx.recv().await {
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    let correct = svc.post_json("/auth/login", correct).await.status();
    let (mut evaluated, mut refused) = (0, 0);
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (evaluated, refused, correct)
}

/// Issue 7.1: the lock is taken with the attempt, before the slow hash, so
/// a burst cannot have every guess evaluated.
async fn parallel_guesses_on_one_account_are_decided_before_hashing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 5;
        c.throttle.address_failures = 1000;
    })
    .await;
    svc.register("burst@example.com", PASSWORD).await;

    let guesses = (0..40)
        .map(|i| json!({"email": "burst@example.com", "password": format!("guess number {i}")}))
        .collect();
    let correct = json!({"email": "burst@example.com", "password": PASSWORD});
    let (evaluated, refused, correct) = burst(&svc, guesses, correct).await;
    assert!(
        (1..=5).contains(&evaluated),
        "{evaluated} guesses evaluated"
    );
    assert_eq!(evaluated + refused, 40);
    assert_eq!(correct, StatusCode::TOO_MANY_REQUESTS);

    svc.stop().await;
    db.remove().await;
}

async fn parallel_guesses_from_one_address_are_decided_before_hashing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 1000;
        c.throttle.address_failures = 5;
    })
    .await;
    svc.register("sprayed@example.com", PASSWORD).await;

    let guesses = (0..40)
        .map(|i| json!({"email": format!("user{i}@example.com"), "password": "Password1"}))
        .collect();
    let correct = json!({"email": "sprayed@example.com", "password": PASSWORD});
    let (evaluated, refused, correct) = burst(&svc, guesses, correct).await;
    assert!(
        (1..=5).contains(&evaluated),
        "{evaluated} guesses evaluated"
    );
    assert_eq!(evaluated + refused, 40);
    assert_eq!(correct, StatusCode::TOO_MANY_REQUESTS);

    svc.stop().await;
    db.remove().await;
}

/// Issue 7.4: a client that sends a login and hangs up drops the handler;
/// the hash it started must keep holding its permit until it ends.
async fn abandoned_logins_never_push_hashing_beyond_its_permits(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 1000;
        c.throttle.address_failures = 1000;
    })
    .await;
    let address = svc.base.trim_start_matches("http://").to_owned();
    let body = json!({"email": "gone@example.com", "password": "hanging up now"}).to_string();
    let request = format!(
        "POST /auth/login HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let hasher = svc.app.hasher();
    for _ in 0..30 {
        let started = hasher.load().started;
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        // Hang up once this login's hash is running.
        hasher.started(started + 1).await;
        drop(stream);
    }
    hasher.idle().await;
    let load = hasher.load();
    assert!(load.max_running >= 1, "{load:?}");
    assert!(load.max_running <= load.permits, "{load:?}");

    svc.stop().await;
    db.remove().await;
}

/// Issue 7.4: registration costs a hash like a login, so it is throttled
/// per client address too.
async fn registration_flood_from_one_address_gets_429_after_the_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| c.throttle.registrations_per_address = 3).await;
    for i in 0..3 {
        svc.register(&format!("new{i}@example.com"), PASSWORD).await;
    }
    for i in 3..5 {
        let refused = svc
            .post_json(
                "/auth/register",
                json!({"email": format!("new{i}@example.com"), "password": PASSWORD}),
            )
            .await;
        let retry_after = retry_after_of(&refused);
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
        let (status, body) = error_of(refused).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"], "too_many_attempts");
    }
    // Logins from that address are a separate budget.
    svc.login("new0@example.com", PASSWORD).await;

    svc.stop().await;
    db.remove().await;
}

/// Issue 7.3: behind a reverse proxy every client shares the proxy's
/// address; the forwarded one counts, but only from a trusted proxy.
/// Logs in to the owner's account with one extra header.
fn login_with_header(
    svc: &Service,
    header: (&'static str, &'static str),
    password: &str,
) -> impl Future<Output = reqwest::Result<Response>> {
    svc.client
        .post(svc.url("/auth/login"))
        .header(header.0, header.1)
        .json(&json!({"email": "owner@example.com", "password": password}))
        .send()
}

async fn address_limits_key_on_the_forwarded_client_only_behind_a_trusted_proxy(backend: Backend) {
    let db = TestDb::new(backend).await;
    let limits = |c: &mut login_service::Config| {
        c.throttle.address_failures = 3;
        c.throttle.account_failures = 1000;
    };
    // The test client (127.0.0.1) plays the proxy.
    let behind_proxy = Service::start_with(&db, |c| {
        limits(c);
        c.trusted_proxies = vec![login_service::parse_trusted_proxy("127.0.0.0/8").unwrap()];
    })
    .await;
    behind_proxy.register("owner@example.com", PASSWORD).await;

    // One client behind the proxy (which appended its address to whatever
    // the client claimed) uses up its address limit...
    for header in [
        ("x-forwarded-for", "192.0.2.1, 198.51.100.7"),
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=\"198.51.100.7:5555\""),
    ] {
        let response = login_with_header(&behind_proxy, header, "wrong password")
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_with_header(&behind_proxy, ("x-forwarded-for", "198.51.100.7"), PASSWORD)
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...and another client behind the same proxy is not locked out.
    let other = login_with_header(&behind_proxy, ("x-forwarded-for", "198.51.100.8"), PASSWORD)
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    // Where the peer is not a trusted proxy, a spoofed header changes
    // nothing: every attempt counts against the peer.
    let direct = Service::start_with(&db, |c| {
        limits(c);
        c.trusted_proxies = vec![login_service::parse_trusted_proxy("10.0.0.0/8").unwrap()];
    })
    .await;
    for header in [
        ("x-forwarded-for", "203.0.113.1"),
        ("forwarded", "for=203.0.113.2"),
        ("x-forwarded-for", "203.0.113.3"),
    ] {
        let response = login_with_header(&direct, header, "wrong password")
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let spoofed = login_with_header(&direct, ("x-forwarded-for", "203.0.113.4"), PASSWORD)
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);

    behind_proxy.stop().await;
    direct.stop().await;
    db.remove().await;
}

/// Logs in, optionally presenting `cookie` (`name=value`); returns the
/// response.
async fn login_with_cookie(
    svc: &Service,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> Response {
    let mut request = svc
        .client
        .post(svc.url("/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// The `name=value` of the device cookie a login set, checking its
/// attributes.
fn device_cookie_of(response: &Response) -> String {
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .expect("a device cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(attributes[0].starts_with("login_device="), "{set_cookie}");
    for expected in ["HttpOnly", "SameSite=Strict", "Path=/auth"] {
        assert!(attributes.contains(&expected), "{set_cookie}");
    }
    // The test issuer is plain http on loopback: Secure would drop it.
    assert!(!attributes.contains(&"Secure"), "{set_cookie}");
    attributes[0].to_owned()
}

/// Issue 7.2: an attacker's failures lock the account for untrusted
/// clients only; the owner's browser, known by its device cookie, gets in.
async fn a_trusted_device_logs_in_while_an_attacker_keeps_the_account_locked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 3;
        c.throttle.address_failures = 1000;
    })
    .await;
    svc.register("owner@example.com", PASSWORD).await;
    let earlier = login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await;
    assert_eq!(earlier.status(), StatusCode::OK);
    let cookie = device_cookie_of(&earlier);

    // The attacker keeps guessing: the account is locked for untrusted
    // clients, the owner's other browsers included.
    for _ in 0..6 {
        let guess = login_with_cookie(&svc, "owner@example.com", "guess guess", None).await;
        assert_ne!(guess.status(), StatusCode::OK);
    }
    let untrusted = login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await;
    assert_eq!(untrusted.status(), StatusCode::TOO_MANY_REQUESTS);

    // The owner's device is not locked out, and gets a fresh cookie.
    let trusted = login_with_cookie(&svc, "OWNER@example.com", PASSWORD, Some(&cookie)).await;
    assert_eq!(trusted.status(), StatusCode::OK);
    let renewed = device_cookie_of(&trusted);
    let again = login_with_cookie(&svc, "owner@example.com", PASSWORD, Some(&renewed)).await;
    assert_eq!(again.status(), StatusCode::OK);
    // Its success does not lift the attacker's lockout.
    let untrusted = login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await;
    assert_eq!(untrusted.status(), StatusCode::TOO_MANY_REQUESTS);

    svc.stop().await;
    db.remove().await;
}

/// Issue 7.2: the cookie only lifts the account lockout; the password is
/// still checked, and the device has its own small budget.
async fn a_stolen_device_cookie_does_not_bypass_the_password(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.device_failures = 3;
        c.throttle.account_failures = 1000;
        c.throttle.address_failures = 1000;
    })
    .await;
    svc.register("owner@example.com", PASSWORD).await;
    let stolen =
        device_cookie_of(&login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await);

    for _ in 0..3 {
        let guess =
            login_with_cookie(&svc, "owner@example.com", "guess guess", Some(&stolen)).await;
        let (status, body) = error_of(guess).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_credentials");
    }
    // Its budget is spent: that device is locked out, right password or not.
    let locked = login_with_cookie(&svc, "owner@example.com", PASSWORD, Some(&stolen)).await;
    assert!(retry_after_of(&locked) >= 1);
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // The device's failures are its own: the account is not locked.
    let elsewhere = login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await;
    assert_eq!(elsewhere.status(), StatusCode::OK);

    svc.stop().await;
    db.remove().await;
}

/// Issue 7.2: only a cookie this service signed for this account is trusted.
async fn a_forged_or_tampered_device_cookie_is_untrusted(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 2;
        c.throttle.address_failures = 1000;
    })
    .await;
    svc.register("owner@example.com", PASSWORD).await;
    svc.register("other@example.com", PASSWORD).await;
    let genuine =
        device_cookie_of(&login_with_cookie(&svc, "owner@example.com", PASSWORD, None).await);
    let others =
        device_cookie_of(&login_with_cookie(&svc, "other@example.com", PASSWORD, None).await);
    for _ in 0..2 {
        let guess = login_with_cookie(&svc, "owner@example.com", "guess guess", None).await;
        assert_eq!(guess.status(), StatusCode::UNAUTHORIZED);
    }

    let (name, value) = genuine.split_once('=').unwrap();
    let flip = |s: &str, at: usize| {
        let mut bytes = s.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let forged = [
        format!("{name}={}", flip(value, value.len() - 2)),
        format!("{name}={}", flip(value, 0)),
        format!("{name}=garbage"),
        format!("{name}="),
        format!("{name}={value}.extra"),
        others,
    ];
    for cookie in &forged {
        let response = login_with_cookie(&svc, "owner@example.com", PASSWORD, Some(cookie)).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{cookie}");
    }
    // Among other cookies, the genuine one still works.
    let jar = format!("theme=dark; {genuine}; other=1");
    let response = login_with_cookie(&svc, "owner@example.com", PASSWORD, Some(&jar)).await;
    assert_eq!(response.status(), StatusCode::OK);

    svc.stop().await;
    db.remove().await;
}

/// Bodies each refused with a clear status: (path, content type, body,
/// expected status).
fn malformed_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    let mut cases = unreadable_bodies();
    cases.extend(rule_breaking_bodies());
    cases
}

/// Bodies that are not JSON, not declared JSON, or lack a field.
fn unreadable_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    vec![
        (
            "/auth/login",
            "application/json",
            b"{\"email\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/auth/login",
            "application/json",
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/auth/login",
            "application/json",
            b"{\"email\":\"a@b.c\"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "application/json",
            b"{\"email\":1,\"password\":2}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/auth/register",
            "application/x-www-form-urlencoded",
            b"email=a".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/auth/refresh",
            "application/json",
            b"{}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ]
}

/// Bodies that parse but break a limit or rule.
fn rule_breaking_bodies() -> Vec<(&'static str, &'static str, Vec<u8>, StatusCode)> {
    vec![
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(
                &json!({"email": "big@example.com", "password": "x".repeat(20 * 1024)}),
            )
            .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "short@example.com", "password": "seven77"}))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "long@example.com", "password": "x".repeat(129)}))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(&json!({"email": "not an email", "password": PASSWORD})).unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/register",
            "application/json",
            serde_json::to_vec(
                &json!({"email": "nul@example.com", "password": PASSWORD, "name": "a\u{0}b"}),
            )
            .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/auth/login",
            "application/json",
            serde_json::to_vec(&json!({"email": "nul\u{0}@example.com", "password": PASSWORD}))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
    ]
}

/// Malformed ids, paging parameters, unknown routes and methods.
async fn assert_bad_paths_and_queries_are_refused(svc: &Service) {
    let checks = [
        ("/movies/not-a-uuid", StatusCode::NOT_FOUND),
        (
            "/movies/00000000-0000-4000-8000-000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("/movies/%00", StatusCode::NOT_FOUND),
        ("/movies?limit=abc", StatusCode::BAD_REQUEST),
        ("/movies?limit=0", StatusCode::BAD_REQUEST),
        ("/movies?limit=101", StatusCode::BAD_REQUEST),
        ("/no/such/route", StatusCode::NOT_FOUND),
    ];
    for (path, expected) in checks {
        assert_eq!(error_of(svc.get(path).await).await.0, expected, "{path}");
    }
    let wrong_method = svc
        .client
        .delete(svc.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(wrong_method).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn bad_input_gets_clear_json_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    let post_raw = |path: &'static str, content_type: &'static str, body: Vec<u8>| {
        svc.client
            .post(svc.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    for (path, content_type, body, expected) in malformed_bodies() {
        let response = post_raw(path, content_type, body).await.unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(status, expected, "{path} {content_type}: {error}");
    }

    // Without any content type at all.
    let bare = svc
        .client
        .post(svc.url("/auth/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bare).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Paths and queries.
    assert_bad_paths_and_queries_are_refused(&svc).await;

    // The service is still healthy afterwards.
    svc.register("fine@example.com", PASSWORD).await;
    svc.stop().await;
    db.remove().await;
}

/// A token without `movies:write` is refused every write, with an
/// `insufficient_scope` challenge.
async fn assert_readers_cannot_write(svc: &Service, reader: &str, existing: &str, movie: &Value) {
    let forbidden = svc
        .call_bearer(Method::POST, "/movies", reader, Some(movie))
        .await;
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let (status, body) = error_of(forbidden).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    for (method, body) in [(Method::PUT, Some(movie)), (Method::DELETE, None)] {
        let response = svc.call_bearer(method, existing, reader, body).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}

async fn movies_are_public_to_read_and_need_movies_write_to_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    cli_add_user(&db.url, "admin@example.com", PASSWORD, "admin");
    svc.register("reader@example.com", PASSWORD).await;
    let admin = svc.access_token("ADMIN@example.com", PASSWORD).await;
    assert_eq!(claims_of(&admin)["scope"], "movies:read movies:write");
    let reader = svc.access_token("reader@example.com", PASSWORD).await;

    let listed: Vec<Value> = svc.get_json("/movies").await;
    assert_eq!(listed.len(), 3, "the seeded catalogue");
    let existing = format!("/movies/{}", listed[0]["id"].as_str().unwrap());
    let one = svc.get(&existing).await;
    assert_eq!(one.status(), StatusCode::OK);

    let movie = json!({"title": "Paris, Texas", "director": "Wim Wenders", "year": 1984});
    let anonymous = svc.post_json("/movies", movie.clone()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    assert_readers_cannot_write(&svc, &reader, &existing, &movie).await;

    let created = svc
        .call_bearer(Method::POST, "/movies", &admin, Some(&movie))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let path = format!("/movies/{}", created["id"].as_str().unwrap());
    assert_eq!(created["title"], "Paris, Texas");

    let edited = json!({"title": "Paris, Texas", "director": "Wim Wenders", "year": 1985});
    let updated = svc
        .call_bearer(Method::PUT, &path, &admin, Some(&edited))
        .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let fetched: Value = svc.get_json(&path).await;
    assert_eq!(fetched["year"], 1985);

    let bad_movie = json!({"title": "", "year": 1500});
    let invalid = svc
        .call_bearer(Method::POST, "/movies", &admin, Some(&bad_movie))
        .await;
    assert_eq!(error_of(invalid).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let deleted = svc.call_bearer(Method::DELETE, &path, &admin, None).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = svc.get(&path).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = svc.call_bearer(Method::DELETE, &path, &admin, None).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    svc.stop().await;
    db.remove().await;
}

/// `token` with one character of its signature changed.
fn with_other_signature(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig = parts[2].clone().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(sig).unwrap();
    parts.join(".")
}

/// A third-party service that knows nothing but the discovery document.
async fn tokens_verify_with_a_layer_configured_only_from_the_published_jwks(backend: Backend) {
    use axum::routing::get;
    use tower_jwt_auth::{JwtAuthLayer, KeySet, KeyStore};

    let db = TestDb::new(backend).await;
    let svc = Service::start(&db).await;
    svc.register("ext@example.com", PASSWORD).await;
    let token = svc.access_token("ext@example.com", PASSWORD).await;

    let discovery: Value = svc.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], svc.base.as_str());
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let jwks = svc
        .client
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let layer = JwtAuthLayer::<Value>::builder()
        .key_store(KeyStore::new(KeySet::from_jwks_str(&jwks).unwrap()))
        .issuer(discovery["issuer"].as_str().unwrap())
        .audience("login-service")
        .require_typ_at_jwt()
        .build()
        .unwrap();
    let other = axum::Router::new()
        .route(
            "/whoami",
            get(
                |tower_jwt_auth::axum::Claims(c): tower_jwt_auth::axum::Claims<Value>| async move {
                    c["email"].as_str().unwrap_or_default().to_owned()
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/whoami", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, other).await });

    let ok = svc.get_bearer_abs(&other_url, &token).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "ext@example.com");

    // Same claims, other signature: must not verify.
    let forged = with_other_signature(&token);
    assert_eq!(
        svc.get_bearer_abs(&other_url, &forged).await.status(),
        StatusCode::UNAUTHORIZED
    );

    server.abort();
    svc.stop().await;
    db.remove().await;
}

async fn key_rotation_publishes_both_keys_and_old_tokens_keep_working(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.key_reload_interval = Duration::from_millis(200);
    })
    .await;
    svc.register("rot@example.com", PASSWORD).await;
    let old = svc.access_token("rot@example.com", PASSWORD).await;

    // As `login-service keys rotate` does, from outside the running
    // instance, which must notice by itself.
    let kid = login_service::rotate_key(&db.url, db.kek.as_deref(), 0)
        .await
        .unwrap();
    let mut jwks = Value::Null;
    for _ in 0..50 {
        jwks = svc.get_json("/.well-known/jwks.json").await;
        if jwks["keys"].as_array().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert!(kids.contains(&kid.as_str()));
    assert!(kids.contains(&header_of(&old)["kid"].as_str().unwrap()));

    let new = svc.access_token("rot@example.com", PASSWORD).await;
    assert_eq!(header_of(&new)["kid"], kid.as_str());
    for token in [&old, &new] {
        assert_eq!(
            svc.get_bearer("/auth/me", token).await.status(),
            StatusCode::OK
        );
    }

    svc.stop().await;
    db.remove().await;
}

async fn instances_on_one_database_share_keys_and_revocations(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = Service::start(&db).await;
    let b = Service::start_with(&db, |c| {
        // Both instances are one issuer behind a load balancer.
        c.issuer = a.base.clone();
    })
    .await;
    a.register("multi@example.com", PASSWORD).await;
    let tokens = b.login("multi@example.com", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        a.get_bearer("/auth/me", &access).await.status(),
        StatusCode::OK
    );

    let refreshed = a
        .post_json(
            "/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    let logout = a
        .call_bearer(Method::POST, "/auth/logout", &access, None)
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        b.get_bearer("/auth/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    a.stop().await;
    b.stop().await;
    db.remove().await;
}

async fn registration_can_be_switched_off(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| c.registration = false).await;
    let response = svc
        .post_json(
            "/auth/register",
            json!({"email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);
    let doc: Value = svc.get_json("/openapi.json").await;
    assert!(doc["paths"].get("/auth/register").is_none());
    assert!(doc["paths"].get("/auth/login").is_some());

    // Operators still create accounts from the command line.
    cli_add_user(&db.url, "op@example.com", PASSWORD, "user");
    svc.login("op@example.com", PASSWORD).await;

    svc.stop().await;
    db.remove().await;
}
