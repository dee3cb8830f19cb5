//! End-to-end login and registration throttling: per account, per client
//! address (behind trusted proxies too), decided before hashing, on SQLite
//! always and on PostgreSQL when `DATABASE_URL` points at one.

mod common;

use std::time::Duration;

use common::{Backend, PASSWORD, Service, TestDb, error_of, retry_after_of};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

on_both_backends!(
    failed_logins_are_throttled_per_account_and_the_lockout_ends,
    failed_logins_are_throttled_per_client_address,
    parallel_guesses_on_one_account_are_decided_before_hashing,
    parallel_guesses_from_one_address_are_decided_before_hashing,
    abandoned_logins_never_push_hashing_beyond_its_permits,
    registration_flood_from_one_address_gets_429_after_the_limit,
    address_limits_key_on_the_forwarded_client_only_behind_a_trusted_proxy,
);

async fn failed_logins_are_throttled_per_account_and_the_lockout_ends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let svc = Service::start_with(&db, |c| {
        c.throttle.account_failures = 3;
        // Long enough that a loaded machine's slow hash cannot outlast it
        // before the blocked attempt below; its end is reached by moving
        // the lock into the past, not by sleeping.
        c.throttle.base_lockout = Duration::from_secs(30);
        c.throttle.max_lockout = Duration::from_secs(30);
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
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let (status, body) = error_of(blocked).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "too_many_attempts");

    // Another account from the same address is unaffected.
    assert_eq!(
        attempt("bystander@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    // The lockout is bounded: once its 30 s have passed the owner gets in.
    let pool = db.connect().await;
    sqlx::query("UPDATE login_throttle SET blocked_until = blocked_until - 31")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
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
    assert_only_the_limit_is_evaluated(&svc, guesses, correct).await;
    svc.stop().await;
    db.remove().await;
}

/// Fires the 40 `guesses` at once, then `correct` while they run: at most
/// the limit (5) of them may have been evaluated (401), every other one
/// refused (429) before hashing, and so must the correct password be.
async fn assert_only_the_limit_is_evaluated(svc: &Service, guesses: Vec<Value>, correct: Value) {
    let (evaluated, refused, correct) = burst(svc, guesses, correct).await;
    assert!(
        (1..=5).contains(&evaluated),
        "{evaluated} guesses evaluated"
    );
    assert_eq!(evaluated + refused, 40);
    assert_eq!(correct, StatusCode::TOO_MANY_REQUESTS);
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
    assert_only_the_limit_is_evaluated(&svc, guesses, correct).await;
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
