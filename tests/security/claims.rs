//! Checklist §3 Claims (`docs/security-checklist.md`).

use crate::support::*;

/// Checklist §3.1 (docs/security-checklist.md).
#[tokio::test]
async fn exp_is_required_numeric_non_negative_and_exclusive() {
    let strict = builder::<User>()
        .hs256(SECRET)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    // RFC 7519: invalid "on or after" exp; the clock only moves forward
    // between minting and checking.
    let at_now = hs(&claims_with(&[("exp", json!(now()))]));
    assert_invalid_token(&send(&strict, bearer(&at_now)).await, "exp == now");
    let later = hs(&claims_with(&[("exp", json!(now() + 60))]));
    assert_accepted(&send(&strict, bearer(&later)).await, "exp in a minute");

    let layer = hs_layer();
    for (case, token) in [
        ("missing", hs(&claims_without("exp"))),
        (
            "string",
            hs(&claims_with(&[("exp", json!((now() + 300).to_string()))])),
        ),
        ("negative", hs(&claims_with(&[("exp", json!(-1))]))),
        ("null", hs(&claims_with(&[("exp", Value::Null)]))),
        ("boolean", hs(&claims_with(&[("exp", json!(true))]))),
        ("array", hs(&claims_with(&[("exp", json!([now() + 300]))]))),
        ("far past", hs(&claims_with(&[("exp", json!(0))]))),
        ("too large", hs(&claims_with(&[("exp", json!(1e300))]))),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // The default leeway is small but not zero.
    assert!(DEFAULT_LEEWAY <= Duration::from_secs(60));
    let just_expired = hs(&claims_with(&[("exp", json!(now() - 5))]));
    assert_accepted(&send(&layer, bearer(&just_expired)).await, "within leeway");
    let expired = hs(&claims_with(&[("exp", json!(now() - 90))]));
    assert_invalid_token(&send(&layer, bearer(&expired)).await, "beyond leeway");
    let lenient = builder::<User>()
        .hs256(SECRET)
        .leeway(Duration::from_secs(300))
        .build()
        .unwrap();
    assert_accepted(&send(&lenient, bearer(&expired)).await, "configured leeway");
}

/// Checklist §3.2 (docs/security-checklist.md).
#[tokio::test]
async fn nbf_in_the_future_is_rejected() {
    let layer = hs_layer();
    for (case, nbf) in [("now", json!(now())), ("within leeway", json!(now() + 5))] {
        let token = hs(&claims_with(&[("nbf", nbf)]));
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, nbf) in [
        ("in two minutes", json!(now() + 120)),
        ("string", json!(now().to_string())),
        ("negative", json!(-5)),
    ] {
        let token = hs(&claims_with(&[("nbf", nbf)]));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

/// Checklist §3.3 (docs/security-checklist.md).
#[tokio::test]
async fn iat_in_the_future_and_max_age() {
    let layer = hs_layer();
    let future = hs(&claims_with(&[("iat", json!(now() + 120))]));
    assert_invalid_token(&send(&layer, bearer(&future)).await, "iat in the future");
    let string = hs(&claims_with(&[("iat", json!(now().to_string()))]));
    assert_invalid_token(&send(&layer, bearer(&string)).await, "iat string");
    let old = hs(&claims_with(&[("iat", json!(now() - 86_400))]));
    assert_accepted(&send(&layer, bearer(&old)).await, "old iat without max_age");
    let no_iat = hs(&claims_without("iat"));
    assert_accepted(
        &send(&layer, bearer(&no_iat)).await,
        "no iat without max_age",
    );

    let aged = builder::<User>()
        .hs256(SECRET)
        .max_age(Duration::from_secs(60))
        .build()
        .unwrap();
    let fresh = hs(&claims_with(&[("iat", json!(now() - 10))]));
    assert_accepted(&send(&aged, bearer(&fresh)).await, "fresh");
    let stale = hs(&claims_with(&[("iat", json!(now() - 600))]));
    assert_invalid_token(&send(&aged, bearer(&stale)).await, "older than max_age");
    assert_invalid_token(&send(&aged, bearer(&no_iat)).await, "max_age needs iat");
}

/// Checklist §3.4 (docs/security-checklist.md).
#[tokio::test]
async fn wrongly_typed_registered_claims_are_rejected() {
    // An untyped claims type: only the layer's own strict pass can refuse.
    let layer = builder::<Value>().hs256(SECRET).build().unwrap();
    for (case, claims) in [
        ("aud string", claims()),
        (
            "aud array",
            claims_with(&[("aud", json!(["other", AUDIENCE]))]),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(hs(&claims))).await, case);
    }
    for (case, name, value) in [
        ("aud number", "aud", json!(7)),
        ("aud empty array", "aud", json!([])),
        ("aud array of numbers", "aud", json!([7])),
        ("aud array with a number", "aud", json!([AUDIENCE, 7])),
        ("aud object", "aud", json!({"aud": AUDIENCE})),
        ("aud null", "aud", Value::Null),
        ("iss array", "iss", json!([ISSUER])),
        ("iss number", "iss", json!(7)),
        ("iss null", "iss", Value::Null),
        ("sub number", "sub", json!(7)),
        ("sub array", "sub", json!(["user-1"])),
        ("sub object", "sub", json!({})),
        ("jti number", "jti", json!(7)),
    ] {
        let token = hs(&claims_with(&[(name, value)]));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

/// Checklist §3.6 (docs/security-checklist.md).
#[tokio::test]
async fn claims_rule_failure_is_invalid_token_and_authorize_failure_is_forbidden() {
    let rule_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&rule_calls);
    let layer = builder::<User>()
        .hs256(SECRET)
        .claims_rule(move |user: &User| {
            calls.fetch_add(1, Ordering::SeqCst);
            user.sub != "banned"
        })
        .authorize(|user: &User| {
            user.scope
                .as_deref()
                .is_some_and(|s| s.split(' ').any(|s| s == "admin"))
        })
        .build()
        .unwrap();
    let admin = claims_with(&[("scope", json!("movies:read admin"))]);
    assert_accepted(&send(&layer, bearer(hs(&admin))).await, "admin");

    let banned = claims_with(&[("sub", json!("banned")), ("scope", json!("admin"))]);
    assert_invalid_token(&send(&layer, bearer(hs(&banned))).await, "claims_rule");

    let reply = send(&layer, bearer(hs(&claims()))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.header("www-authenticate"), Some(FORBIDDEN_CHALLENGE));
    assert_eq!(
        reply.json(),
        json!({"error": "insufficient_scope", "error_description": FORBIDDEN_DESCRIPTION})
    );

    // Application rules only ever see verified claims.
    let before = rule_calls.load(Ordering::SeqCst);
    let forged = mac_token(
        Algorithm::HS256,
        segments(HEADER, &admin.to_string()),
        OTHER_SECRET,
    );
    assert_invalid_token(&send(&layer, bearer(&forged)).await, "forged");
    assert_eq!(rule_calls.load(Ordering::SeqCst), before);
}

/// Checklist §3.5 (docs/security-checklist.md).
#[tokio::test]
async fn several_issuers_and_audiences() {
    let layer = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer("https://a.test")
        .issuer("https://b.test")
        .audience("x")
        .audience("y")
        .build()
        .unwrap();
    let with = |iss: Value, aud: Value| hs(&claims_with(&[("iss", iss), ("aud", aud)]));
    for (case, token) in [
        ("first issuer", with(json!("https://a.test"), json!("x"))),
        ("second issuer", with(json!("https://b.test"), json!("y"))),
        (
            "one audience of several",
            with(json!("https://a.test"), json!(["z", "y"])),
        ),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        ("other issuer", with(json!("https://c.test"), json!("x"))),
        ("issuer prefix", with(json!("https://a.test/"), json!("x"))),
        ("other audience", with(json!("https://a.test"), json!("z"))),
        (
            "no accepted audience",
            with(json!("https://a.test"), json!(["z", "w"])),
        ),
        (
            "no issuer",
            hs(&claims_with(&[("aud", json!("x"))]).without("iss")),
        ),
        (
            "no audience",
            hs(&claims_with(&[("iss", json!("https://a.test"))]).without("aud")),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // RFC 7519 §4.1.3: a token for some audience is refused by a verifier
    // that names none, unless told any audience will do.
    let no_audience = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .build()
        .unwrap();
    let token = hs256(&claims());
    assert_invalid_token(&send(&no_audience, bearer(&token)).await, "unexpected aud");
    let any_audience = JwtAuthLayer::<User>::builder()
        .hs256(SECRET)
        .issuer(ISSUER)
        .any_audience()
        .build()
        .unwrap();
    assert_accepted(&send(&any_audience, bearer(&token)).await, "any audience");
}
