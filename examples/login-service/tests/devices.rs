//! End-to-end device cookies: a browser that logged in before keeps
//! logging in while an attacker keeps the account locked, and nothing else
//! passes for such a browser; on SQLite always and on PostgreSQL when
//! `DATABASE_URL` points at one.

mod common;

use common::{Backend, PASSWORD, Service, TestDb, error_of, retry_after_of};
use reqwest::{Response, StatusCode};
use serde_json::json;

on_both_backends!(
    a_trusted_device_logs_in_while_an_attacker_keeps_the_account_locked,
    a_stolen_device_cookie_does_not_bypass_the_password,
    a_forged_or_tampered_device_cookie_is_untrusted,
);

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
