//! Checklist §4 Answers (`docs/security-checklist.md`).

use crate::support::*;

/// Checklist §4.1 (docs/security-checklist.md).
#[tokio::test]
async fn missing_scope_is_insufficient_scope() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    for (case, claims) in [
        ("other scope", claims()),
        ("no scope", claims_without("scope")),
        (
            "prefix only",
            claims_with(&[("scope", json!("movies:writer"))]),
        ),
        (
            "scp without it",
            claims_with(&[("scp", json!(["movies:read"]))]),
        ),
    ] {
        let reply = send(&layer, bearer(hs(&claims))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{case}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(
                r#"Bearer realm="api", error="insufficient_scope", error_description="The access token lacks the required scope", scope="movies:write""#
            ),
            "{case}"
        );
        assert_eq!(
            reply.json(),
            json!({
                "error": "insufficient_scope",
                "error_description": INSUFFICIENT_SCOPE_DESCRIPTION,
                "scope": "movies:write",
            }),
            "{case}"
        );
    }
    for (case, claims) in [
        (
            "scope list",
            claims_with(&[("scope", json!("movies:read movies:write"))]),
        ),
        (
            "scp array",
            claims_with(&[("scp", json!(["movies:write"]))]).without("scope"),
        ),
        (
            "scp string",
            claims_with(&[("scp", json!("movies:write"))]).without("scope"),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(hs(&claims))).await, case);
    }

    let grpc_reply = send(&layer, grpc(bearer(hs(&claims())))).await;
    assert_grpc(&grpc_reply, "7", "gRPC missing scope");

    // A forged token on a scoped route is invalid, not merely unauthorized.
    let forged = mac_token(
        Algorithm::HS256,
        segments(
            HEADER,
            &claims_with(&[("scope", json!("movies:write"))]).to_string(),
        ),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");

    let both = builder::<User>()
        .hs256(SECRET)
        .require_scope("a")
        .require_scope("b")
        .build()
        .unwrap();
    let reply = send(&both, bearer(hs(&claims_with(&[("scope", json!("a"))])))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .ends_with(r#"scope="a b""#),
        "{reply:?}"
    );
}

/// Checklist §4.2 (docs/security-checklist.md).
#[tokio::test]
async fn bad_signature_and_expired_answers_like_bad_signature_alone() {
    let layer = hs_layer();
    let forge = |claims: &Value| {
        String::from_utf8(mac_token(
            Algorithm::HS256,
            segments(HEADER, &claims.to_string()),
            OTHER_SECRET,
        ))
        .unwrap()
    };
    let expired_claims = claims_with(&[("exp", json!(now() - 3600))]);
    let bad_signature = send(&layer, bearer(forge(&claims()))).await;
    let bad_and_expired = send(&layer, bearer(forge(&expired_claims))).await;
    assert_invalid_token(&bad_signature, "bad signature");
    assert_eq!(bad_and_expired, bad_signature, "byte-identical answers");

    // Every claim failure answers the same too: bodies are generic.
    let everything_wrong = claims_with(&[
        ("exp", json!(now() - 3600)),
        ("nbf", json!(now() + 3600)),
        ("iss", json!("https://evil.test")),
        ("aud", json!("elsewhere")),
    ]);
    for claims in [&expired_claims, &everything_wrong] {
        assert_eq!(send(&layer, bearer(hs(claims))).await, bad_signature);
        assert_eq!(send(&layer, bearer(forge(claims))).await, bad_signature);
    }

    // And the signature is what was checked first.
    let reasons = builder::<User>()
        .hs256(SECRET)
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    for claims in [&expired_claims, &everything_wrong] {
        let reply = send(&reasons, bearer(forge(claims))).await;
        assert_reason(&reply, Reason::Signature, "forged");
    }
    let reply = send(&reasons, bearer(hs(&expired_claims))).await;
    assert_reason(&reply, Reason::Expired, "genuine but expired");
}

/// Checklist §4.3 (docs/security-checklist.md).
#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    let layer = hs_layer();
    let payload = claims().to_string();
    let unauthenticated = [
        ("no token", grpc(no_credentials())),
        ("malformed", grpc(bearer("a.b"))),
        (
            "expired",
            grpc(bearer(hs(&claims_with(&[("exp", json!(now() - 3600))])))),
        ),
        (
            "bad signature",
            grpc(bearer(mac_token(
                Algorithm::HS256,
                segments(HEADER, &payload),
                OTHER_SECRET,
            ))),
        ),
        (
            "alg none",
            grpc(bearer(format!(
                "{}.",
                segments(r#"{"alg":"none"}"#, &payload)
            ))),
        ),
        ("oversized", grpc(bearer("A".repeat(10_000)))),
    ];
    for (case, request) in unauthenticated {
        assert_grpc(&send(&layer, request).await, "16", case);
    }
    let proto = with_content_type(bearer("a.b"), Version::HTTP_2, "application/grpc+proto");
    assert_grpc(&send(&layer, proto).await, "16", "application/grpc+proto");

    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    assert_grpc(
        &send(&scoped, grpc(bearer(hs256(&claims())))).await,
        "7",
        "missing scope",
    );
    let denied = builder::<User>()
        .hs256(SECRET)
        .authorize(|_| false)
        .build()
        .unwrap();
    assert_grpc(
        &send(&denied, grpc(bearer(hs256(&claims())))).await,
        "7",
        "authorize",
    );

    // A valid token passes through to the inner service untouched.
    let reply = send(&layer, grpc(bearer(hs256(&claims())))).await;
    assert_accepted(&reply, "gRPC valid");
    assert!(reply.headers.get("grpc-status").is_none());
    // Status 14 is covered by the revocation tests below.
}

/// Checklist §4.6 (docs/security-checklist.md).
#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after_then_recovers() {
    let store = KeyStore::new(KeySet::default());
    let layer = builder::<User>()
        .key_store(store.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let token = hs256(&claims());

    let reply = send(&layer, bearer(&token)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.header(RETRY_AFTER.as_str()).is_some());
    assert_eq!(reply.header(WWW_AUTHENTICATE.as_str()), None);
    assert_eq!(reply.json()["error_description"], UNAVAILABLE_DESCRIPTION);
    let grpc = send(&layer, grpc(bearer(&token))).await;
    assert_eq!(grpc.status, StatusCode::OK);
    assert_eq!(grpc.header("grpc-status"), Some("14"));

    // Once keys arrive, the same token passes: nothing was cached as bad.
    store.replace(KeySet::new([
        VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()
    ]));
    assert_eq!(send(&layer, bearer(&token)).await.status, StatusCode::OK);
}

/// Checklist §4.5 (docs/security-checklist.md).
#[tokio::test]
async fn custom_renderer_replaces_http_answers_but_not_grpc() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let layer = builder::<User>()
        .hs256(SECRET)
        .on_rejection(move |rejection| {
            log.lock().unwrap().push(rejection.clone());
            Response::builder()
                .status(rejection.status())
                .header("x-custom", "yes")
                .body(Bytes::from(format!(
                    "custom {}",
                    rejection.error_code().unwrap_or("none")
                )))
                .unwrap()
        })
        .build()
        .unwrap();

    let reply = send(&layer, no_credentials()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.text(), "custom none");
    assert_eq!(reply.header("x-custom"), Some("yes"));
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none());

    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));
    let reply = send(&layer, bearer(&expired)).await;
    assert_eq!(reply.text(), "custom invalid_token");
    // The renderer is handed the precise reason the client never sees.
    assert_eq!(
        seen.lock().unwrap().last().map(Rejection::kind),
        Some(&RejectionKind::InvalidToken(Reason::Expired))
    );

    let reply = send(&layer, grpc(bearer(&expired))).await;
    assert_grpc(&reply, "16", "gRPC keeps its fixed form");
    assert!(reply.headers.get("x-custom").is_none());

    assert_accepted(&send(&layer, bearer(hs256(&claims()))).await, "valid");
}

#[track_caller]
fn assert_no_store(reply: &Reply, case: &str) {
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{case}: {reply:?}"
    );
}

/// gRPC-web trailers-only: HTTP 200, the status in the headers.
#[track_caller]
fn assert_grpc_web(reply: &Reply, content_type: &str, code: &str, case: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {reply:?}");
    assert_eq!(reply.header("content-type"), Some(content_type), "{case}");
    assert_eq!(reply.header("grpc-status"), Some(code), "{case}");
    assert!(reply.body.is_empty(), "{case}: trailers-only has no body");
    assert!(reply.headers.get(WWW_AUTHENTICATE).is_none(), "{case}");
}

/// Checklist §4.4 (docs/security-checklist.md).
#[tokio::test]
async fn grpc_answers_only_for_http2_grpc_or_grpc_web() {
    let layer = hs_layer();
    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));

    // The content type is the client's word: over HTTP/1.1 it earns no 200.
    for (version, content_type) in [
        (Version::HTTP_11, "application/grpc"),
        (Version::HTTP_11, "application/grpc+proto"),
        (Version::HTTP_10, "application/grpc"),
    ] {
        let case = format!("{version:?} {content_type}");
        let reply = send(
            &layer,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_missing_token(&reply, &case);
        assert_no_store(&reply, &case);
        let reply = send(
            &layer,
            with_content_type(bearer(&expired), version, content_type),
        )
        .await;
        assert_invalid_token(&reply, &case);
        assert_no_store(&reply, &case);
    }

    // gRPC proper (HTTP/2) keeps its trailers-only answer.
    let reply = send(&layer, grpc(no_credentials())).await;
    assert_grpc(&reply, "16", "HTTP/2 gRPC");
    assert_no_store(&reply, "HTTP/2 gRPC");

    // gRPC-web runs over HTTP/1.1 (or 2): gRPC answers, in its content type.
    for (version, content_type, answered_as) in [
        (
            Version::HTTP_11,
            "application/grpc-web",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_11,
            "application/grpc-web+proto",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_2,
            "application/grpc-web+proto",
            "application/grpc-web+proto",
        ),
        (
            Version::HTTP_11,
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ),
    ] {
        let case = format!("{version:?} {content_type}");
        let reply = send(
            &layer,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_grpc_web(&reply, answered_as, "16", &case);
        assert_no_store(&reply, &case);
        let valid = with_content_type(bearer(hs256(&claims())), version, content_type);
        assert_accepted(&send(&layer, valid).await, &case);
    }

    // The switch for HTTP-only services: nothing ever answers 200.
    let http_only = builder::<User>()
        .hs256(SECRET)
        .grpc_answers(false)
        .build()
        .unwrap();
    for (version, content_type) in [
        (Version::HTTP_2, "application/grpc"),
        (Version::HTTP_11, "application/grpc-web+proto"),
        (Version::HTTP_2, "application/grpc-web-text"),
    ] {
        let case = format!("grpc_answers(false), {version:?} {content_type}");
        let reply = send(
            &http_only,
            with_content_type(no_credentials(), version, content_type),
        )
        .await;
        assert_missing_token(&reply, &case);
        assert_no_store(&reply, &case);
    }
    assert_accepted(
        &send(&http_only, grpc(bearer(hs256(&claims())))).await,
        "grpc_answers(false), valid",
    );

    // Every other rejection is no-store too, HTTP and gRPC, default and
    // custom rendering.
    let scoped = builder::<User>()
        .hs256(SECRET)
        .require_scope("movies:write")
        .build()
        .unwrap();
    let token = hs256(&claims());
    let two_places = {
        let mut request = bearer(&token);
        request.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        request
    };
    let store = KeyStore::new(KeySet::default());
    let empty = builder::<User>().key_store(store).build().unwrap();
    for (case, reply) in [
        ("403", send(&scoped, bearer(&token)).await),
        ("403 gRPC", send(&scoped, grpc(bearer(&token))).await),
        ("400", send(&layer, two_places).await),
        ("503", send(&empty, bearer(&token)).await),
        ("503 gRPC", send(&empty, grpc(bearer(&token))).await),
    ] {
        assert_no_store(&reply, case);
    }
    let custom = builder::<User>()
        .hs256(SECRET)
        .on_rejection(|rejection| {
            Response::builder()
                .status(rejection.status())
                .body(Bytes::new())
                .unwrap()
        })
        .build()
        .unwrap();
    assert_no_store(&send(&custom, no_credentials()).await, "custom renderer");
    let cacheable = builder::<User>()
        .hs256(SECRET)
        .on_rejection(|rejection| {
            Response::builder()
                .status(rejection.status())
                .header("cache-control", "private, max-age=5")
                .body(Bytes::new())
                .unwrap()
        })
        .build()
        .unwrap();
    assert_eq!(
        send(&cacheable, no_credentials())
            .await
            .header("cache-control"),
        Some("private, max-age=5"),
        "a renderer's own Cache-Control is kept"
    );
    // Accepted requests are left alone.
    let reply = send(&layer, bearer(&token)).await;
    assert!(reply.headers.get("cache-control").is_none());
}
