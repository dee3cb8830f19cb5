//! Checklist §6 Revocation (`docs/security-checklist.md`).

use crate::support::*;

/// A real in-memory denylist, keyed on `(iss, jti)` as `revoke` advises.
#[derive(Clone, Default)]
struct Denylist {
    revoked: Arc<Mutex<HashSet<(String, String)>>>,
    unreachable: Arc<AtomicBool>,
    lookups: Arc<AtomicUsize>,
}

impl Denylist {
    fn revoke(&self, iss: &str, jti: &str) {
        self.revoked
            .lock()
            .unwrap()
            .insert((iss.to_owned(), jti.to_owned()));
    }
}

impl RevocationCheck for Denylist {
    fn is_revoked(&self, claims: &RegisteredClaims) -> RevocationFuture {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let unreachable = self.unreachable.load(Ordering::SeqCst);
        let key = claims.iss.clone().zip(claims.jti.clone());
        let revoked = key.is_some_and(|key| self.revoked.lock().unwrap().contains(&key));
        Box::pin(async move {
            // A real store answers later: make the layer wait for it.
            tokio::task::yield_now().await;
            let answer: Result<bool, BoxError> = if unreachable {
                Err("denylist store unreachable".into())
            } else {
                Ok(revoked)
            };
            answer
        })
    }
}

/// Checklist §6.1 (docs/security-checklist.md).
#[tokio::test]
async fn revoked_tokens_are_invalid_and_an_unreachable_store_is_unavailable() {
    let denylist = Denylist::default();
    let layer = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .issuer("https://other-issuer.test")
        .audience(AUDIENCE)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let token =
        |iss: &str, jti: &str| hs(&claims_with(&[("iss", json!(iss)), ("jti", json!(jti))]));
    denylist.revoke(ISSUER, "stolen");

    assert_invalid_token(
        &send(&layer, bearer(token(ISSUER, "stolen"))).await,
        "revoked",
    );
    assert_grpc(
        &send(&layer, grpc(bearer(token(ISSUER, "stolen")))).await,
        "16",
        "revoked over gRPC",
    );
    let body = assert_accepted(
        &send(&layer, bearer(token(ISSUER, "fine"))).await,
        "other jti",
    );
    assert_eq!(body["sub"], "user-1");
    assert_accepted(
        &send(&layer, bearer(token("https://other-issuer.test", "stolen"))).await,
        "same jti, another issuer",
    );

    // Forged tokens never cost a store round-trip.
    let lookups = denylist.lookups.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(HEADER, &claims_with(&[("jti", json!("x"))]).to_string()),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");
    assert_eq!(denylist.lookups.load(Ordering::SeqCst), lookups);

    denylist.unreachable.store(true, Ordering::SeqCst);
    let reply = send(&layer, bearer(token(ISSUER, "fine"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    let retry_after = reply.header(RETRY_AFTER.as_str()).expect("Retry-After");
    assert!(
        retry_after.parse::<u32>().is_ok_and(|s| s > 0),
        "{retry_after}"
    );
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(
        reply.json(),
        json!({"error": "temporarily_unavailable", "error_description": UNAVAILABLE_DESCRIPTION})
    );
    assert_grpc(
        &send(&layer, grpc(bearer(token(ISSUER, "fine")))).await,
        "14",
        "store unreachable over gRPC",
    );
}

/// Checklist §6.2 (docs/security-checklist.md).
#[tokio::test]
async fn revoked_beats_forbidden() {
    let denylist = Denylist::default();
    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let denied = builder::<User>()
        .hs256(SECRET)
        .authorize(|_| false)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let token = |jti: &str, scope: &str| {
        hs(&claims_with(&[
            ("jti", json!(jti)),
            ("scope", json!(scope)),
        ]))
    };
    denylist.revoke(ISSUER, "revoked");

    // Revoked, lacking the scope: invalid (401), not forbidden (403).
    let revoked_unscoped = token("revoked", "movies:read");
    assert_invalid_token(
        &send(&scoped, bearer(&revoked_unscoped)).await,
        "revoked, no scope",
    );
    assert_grpc(
        &send(&scoped, grpc(bearer(&revoked_unscoped))).await,
        "16",
        "revoked, no scope, gRPC",
    );
    // Revoked, with the scope: 401.
    assert_invalid_token(
        &send(&scoped, bearer(token("revoked", "movies:write"))).await,
        "revoked, with scope",
    );
    // Revoked, refused by an authorization rule: 401 too.
    assert_invalid_token(
        &send(&denied, bearer(&revoked_unscoped)).await,
        "revoked, authorize false",
    );
    assert_grpc(
        &send(&denied, grpc(bearer(&revoked_unscoped))).await,
        "16",
        "revoked, authorize false, gRPC",
    );

    // Live tokens: the scope and the rule still decide.
    let reply = send(&scoped, bearer(token("live", "movies:read"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert_grpc(
        &send(&scoped, grpc(bearer(token("live", "movies:read")))).await,
        "7",
        "live, no scope, gRPC",
    );
    let reply = send(&denied, bearer(token("live", "movies:read"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    assert_eq!(reply.header("www-authenticate"), Some(FORBIDDEN_CHALLENGE));
    assert_accepted(
        &send(&scoped, bearer(token("live", "movies:write"))).await,
        "live, with scope",
    );

    // Revocation still comes only after the signature and the 401 claim
    // checks: a forged or expired token costs no lookup.
    let lookups = denylist.lookups.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(
            HEADER,
            &claims_with(&[("jti", json!("revoked"))]).to_string(),
        ),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&scoped, bearer(&forged)).await, "forged");
    let expired = hs(&claims_with(&[
        ("jti", json!("revoked")),
        ("exp", json!(now() - 3600)),
    ]));
    assert_invalid_token(&send(&scoped, bearer(&expired)).await, "expired");
    assert_eq!(denylist.lookups.load(Ordering::SeqCst), lookups);

    // `verify` (no revocation check) keeps answering 403 for the scope.
    assert_eq!(
        scoped
            .verify(&token("live", "movies:read"))
            .unwrap_err()
            .status(),
        StatusCode::FORBIDDEN
    );
}

/// Checklist §6.1 to §6.3 on the synchronous path: a store answering from
/// memory (`is_revoked_now`) gets the same answers as one the layer awaits,
/// and a mirror that cannot vouch for a token fails closed.
#[tokio::test]
async fn an_in_memory_store_answers_the_same_without_a_future() {
    use tower_jwt_auth::revoke::{MemoryRevocations, Revocation, StalePolicy};

    let store = MemoryRevocations::new();
    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .revocation(store.clone())
        .build()
        .unwrap();
    let iat = now();
    let token = |jti: &str, sub: &str, sid: &str, scope: &str| {
        hs(&claims_with(&[
            ("jti", json!(jti)),
            ("sub", json!(sub)),
            ("sid", json!(sid)),
            ("iat", json!(iat)),
            ("scope", json!(scope)),
        ]))
    };
    store.extend([
        Revocation::token(ISSUER, "revoked", now() + 3600),
        Revocation::session(ISSUER, "family-1", now() + 3600),
        Revocation::subject(ISSUER, "everywhere", iat + 1, now() + 3600),
    ]);
    for (jti, sub, sid, case) in [
        ("revoked", "user-1", "s", "revoked jti"),
        ("j", "user-1", "family-1", "revoked session"),
        ("j", "everywhere", "s", "subject logged out everywhere"),
    ] {
        assert_invalid_token(
            &send(&scoped, bearer(token(jti, sub, sid, "movies:write"))).await,
            case,
        );
        // Revoked beats forbidden here too.
        assert_invalid_token(
            &send(&scoped, bearer(token(jti, sub, sid, "movies:read"))).await,
            case,
        );
        assert_grpc(
            &send(&scoped, grpc(bearer(token(jti, sub, sid, "movies:read")))).await,
            "16",
            case,
        );
    }
    assert_accepted(
        &send(
            &scoped,
            bearer(token("live", "user-1", "s", "movies:write")),
        )
        .await,
        "live",
    );
    let reply = send(&scoped, bearer(token("live", "user-1", "s", "movies:read"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");

    // A mirror its source never confirmed: 503 (gRPC 14) for live tokens,
    // still 401 for what it holds; current once confirmed.
    let mirror = MemoryRevocations::builder()
        .mirror(Duration::from_secs(5), StalePolicy::FailClosed)
        .build();
    mirror.revoke(Revocation::token(ISSUER, "revoked", now() + 3600));
    let layer = builder::<User>()
        .hs256(SECRET)
        .revocation(mirror.clone())
        .build()
        .unwrap();
    let live = token("live", "user-1", "s", "");
    let reply = send(&layer, bearer(&live)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
    assert!(reply.header(RETRY_AFTER.as_str()).is_some(), "{reply:?}");
    assert_grpc(
        &send(&layer, grpc(bearer(&live))).await,
        "14",
        "stale mirror",
    );
    assert_invalid_token(
        &send(&layer, bearer(token("revoked", "user-1", "s", ""))).await,
        "revoked, stale mirror",
    );
    mirror.confirm_current(std::time::Instant::now());
    assert_accepted(&send(&layer, bearer(&live)).await, "live, current mirror");
}
