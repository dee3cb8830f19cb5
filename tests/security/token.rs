//! Checklist §1 Finding the token (`docs/security-checklist.md`).

use crate::support::*;

/// Checklist §1.1 (docs/security-checklist.md).
#[tokio::test]
async fn valid_token_reaches_the_inner_service_with_typed_claims() {
    let reply = send(&hs_layer(), bearer(hs256(&claims()))).await;
    let body = assert_accepted(&reply, "valid HS256 token");
    assert_eq!(body, json!({"sub": "user-1", "scope": "movies:read"}));

    // An untyped claims type receives the whole verified claim set.
    let layer = builder::<Value>().hs256(SECRET).build().unwrap();
    let expected = claims_with(&[("role", json!(["admin"]))]);
    let body = assert_accepted(&send(&layer, bearer(hs(&expected))).await, "Value");
    assert_eq!(body, expected);
}

/// Checklist §1.2 (docs/security-checklist.md).
#[tokio::test]
async fn no_credentials_or_another_scheme_gets_a_bare_challenge() {
    let layer = hs_layer();
    let token = hs256(&claims());
    assert_missing_token(&send(&layer, no_credentials()).await, "no header");
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Digest username=\"u\"".to_owned(),
        format!("Token {token}"),
        format!("Bearerx {token}"),
        format!("MAC {token}"),
    ] {
        let reply = send(&layer, authorization(value.as_bytes()).unwrap()).await;
        assert_missing_token(&reply, &value);
    }
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {token}");
        let reply = send(&layer, authorization(value.as_bytes()).unwrap()).await;
        assert_accepted(&reply, scheme);
    }
    let layer = builder::<User>()
        .hs256(SECRET)
        .realm("movies")
        .build()
        .unwrap();
    let reply = send(&layer, no_credentials()).await;
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="movies""#)
    );
}

/// Checklist §1.3 (docs/security-checklist.md).
#[tokio::test]
async fn a_token_in_two_places_is_invalid_request() {
    let token = hs256(&claims());
    let layer = builder::<User>()
        .hs256(SECRET)
        .token_from_query("access_token")
        .token_from_cookie("jwt")
        .build()
        .unwrap();
    let in_query = format!("/movies?access_token={token}");
    let in_cookie = format!("theme=dark; jwt={token}");
    let in_header = format!("Bearer {token}");
    let cases = [
        (
            "header and query",
            request()
                .uri(&in_query)
                .header(AUTHORIZATION, &in_header)
                .body(String::new()),
        ),
        (
            "header and cookie",
            request()
                .header(AUTHORIZATION, &in_header)
                .header(COOKIE, &in_cookie)
                .body(String::new()),
        ),
        (
            "query and cookie",
            request()
                .uri(&in_query)
                .header(COOKIE, &in_cookie)
                .body(String::new()),
        ),
        (
            "two Authorization headers",
            request()
                .header(AUTHORIZATION, &in_header)
                .header(AUTHORIZATION, &in_header)
                .body(String::new()),
        ),
        (
            "query parameter twice",
            request()
                .uri(format!("{in_query}&access_token={token}"))
                .body(String::new()),
        ),
        (
            "cookie twice",
            request()
                .header(COOKIE, format!("jwt={token}; jwt={token}"))
                .body(String::new()),
        ),
    ];
    for (case, request) in cases {
        let request = request.unwrap();
        assert_invalid_request(&send(&layer, request).await, case);
    }
    // Each place alone is fine.
    let query_only = request().uri(&in_query).body(String::new()).unwrap();
    assert_accepted(&send(&layer, query_only).await, "query alone");
    let cookie_only = request()
        .header(COOKIE, &in_cookie)
        .body(String::new())
        .unwrap();
    assert_accepted(&send(&layer, cookie_only).await, "cookie alone");
    assert_accepted(&send(&layer, bearer(&token)).await, "header alone");

    let two = request()
        .uri(&in_query)
        .header(AUTHORIZATION, &in_header)
        .body(String::new())
        .unwrap();
    assert_grpc(&send(&layer, grpc(two)).await, "3", "gRPC, two places");
}

/// Checklist §1.3 (docs/security-checklist.md).
#[tokio::test]
async fn query_and_cookie_are_off_unless_configured() {
    let layer = hs_layer();
    let token = hs256(&claims());
    let in_query = request()
        .uri(format!("/movies?access_token={token}"))
        .body(String::new())
        .unwrap();
    assert_missing_token(&send(&layer, in_query).await, "query not configured");
    for cookie in ["access_token", "jwt", "token"] {
        let in_cookie = request()
            .header(COOKIE, format!("{cookie}={token}"))
            .body(String::new())
            .unwrap();
        assert_missing_token(&send(&layer, in_cookie).await, cookie);
    }
}

/// Checklist §1.5 (docs/security-checklist.md).
#[tokio::test]
async fn oversized_tokens_are_rejected_before_decoding() {
    let pad = "x".repeat(DEFAULT_MAX_TOKEN_LEN);
    let big = hs(&claims_with(&[("pad", json!(pad))]));
    assert!(big.len() > DEFAULT_MAX_TOKEN_LEN);
    assert_invalid_token(&send(&hs_layer(), bearer(&big)).await, "oversized valid");
    // Size is the only thing wrong with it.
    let roomy = builder::<User>()
        .hs256(SECRET)
        .max_token_len(64 * 1024)
        .build()
        .unwrap();
    assert_accepted(&send(&roomy, bearer(&big)).await, "under a raised limit");

    // Garbage that any decoding would refuse as malformed is refused as too
    // large instead: the size check comes first.
    let reasons = builder::<User>()
        .hs256(SECRET)
        .on_rejection(with_reason_header)
        .build()
        .unwrap();
    let default = hs_layer();
    for (case, byte) in [("bad base64", b'A'), ("outside the alphabet", b'%')] {
        // Three segments whose lengths no base64 decoder accepts.
        let mut at_limit = vec![byte; DEFAULT_MAX_TOKEN_LEN];
        at_limit[1] = b'.';
        at_limit[6] = b'.';
        let mut over = at_limit.clone();
        over.push(byte);
        assert_reason(
            &send(&reasons, bearer(&at_limit)).await,
            Reason::Malformed,
            &format!("{case} at the limit"),
        );
        assert_reason(
            &send(&reasons, bearer(&over)).await,
            Reason::TooLarge,
            &format!("{case} over the limit"),
        );
        assert_invalid_token(&send(&default, bearer(&over)).await, case);
    }
}

/// Checklist §1.4 (docs/security-checklist.md).
#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let layer = builder::<User>().hs256(SECRET).optional().build().unwrap();
    let reply = send(&layer, no_credentials()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), ANONYMOUS, "inner called without claims");
    let basic = authorization(b"Basic dXNlcjpwYXNz").unwrap();
    assert_eq!(send(&layer, basic).await.text(), ANONYMOUS);

    let body = assert_accepted(&send(&layer, bearer(hs256(&claims()))).await, "valid");
    assert_eq!(body["sub"], "user-1");
    let expired = hs(&claims_with(&[("exp", json!(now() - 3600))]));
    assert_invalid_token(&send(&layer, bearer(&expired)).await, "expired");
    assert_invalid_token(&send(&layer, bearer("garbage")).await, "garbage");
}
