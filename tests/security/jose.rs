//! Checklist §2 The token's form and header (`docs/security-checklist.md`).

use crate::support::*;

/// Checklist §2.1 (docs/security-checklist.md).
#[tokio::test]
async fn malformed_compact_form_is_invalid_token() {
    let layer = hs_layer();
    let header = b64(HEADER.as_bytes());
    let claims_json = claims().to_string();
    let payload = b64(claims_json.as_bytes());
    let valid = hs256_raw(HEADER, &claims_json);
    let signature = valid.rsplit('.').next().unwrap().to_owned();

    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("two segments".into(), format!("{header}.{payload}").into()),
        (
            "four segments".into(),
            format!("{valid}.{signature}").into(),
        ),
        (
            "five segments".into(),
            format!("{valid}.{signature}.{signature}").into(),
        ),
        ("leading dot".into(), format!(".{valid}").into()),
        ("trailing dot".into(), format!("{valid}.").into()),
        (
            "empty signature".into(),
            format!("{header}.{payload}.").into(),
        ),
        (
            "empty header".into(),
            mac_token(Algorithm::HS256, format!(".{payload}"), SECRET),
        ),
        (
            "impossible base64 length".into(),
            mac_token(Algorithm::HS256, format!("{header}.{payload}A"), SECRET),
        ),
        // A 32-byte MAC leaves two unused bits: the same MAC, spelled otherwise.
        (
            "non-canonical signature".into(),
            format!("{header}.{payload}.{}", set_trailing_bit(&signature)).into(),
        ),
    ];
    // The canonical twins of the flawed tokens below: each must pass, so
    // only the flaw can explain a refusal.
    let mut controls = vec![("plain".to_owned(), valid.clone())];

    // Each flaw is MACed over its own text, so a lenient decoder would
    // accept it.
    let padded_json = pad_to_remainder(&claims_json, 1);
    let padded = URL_SAFE.encode(padded_json.as_bytes());
    assert!(padded.ends_with("=="));
    controls.push(("padding".into(), hs256_raw(HEADER, &padded_json)));
    cases.push((
        "'=' padding".into(),
        mac_token(Algorithm::HS256, format!("{header}.{padded}"), SECRET),
    ));
    controls.push((
        "non-canonical payload".into(),
        hs256_raw(HEADER, &padded_json),
    ));
    cases.push((
        "non-canonical payload".into(),
        mac_token(
            Algorithm::HS256,
            format!(
                "{header}.{}",
                set_trailing_bit(&b64(padded_json.as_bytes()))
            ),
            SECRET,
        ),
    ));
    let padded_header = pad_to_remainder(HEADER, 1);
    controls.push((
        "non-canonical header".into(),
        hs256_raw(&padded_header, &claims_json),
    ));
    cases.push((
        "non-canonical header".into(),
        mac_token(
            Algorithm::HS256,
            format!(
                "{}.{payload}",
                set_trailing_bit(&b64(padded_header.as_bytes()))
            ),
            SECRET,
        ),
    ));
    // '+' and '/': the standard alphabet instead of base64url.
    for ch in ['+', '/'] {
        let (json, standard) = (0..3)
            .map(|shift| {
                let json = format!(
                    "{}{}",
                    " ".repeat(shift),
                    claims_with(&[("x", json!("???>>>???>>>"))])
                );
                let standard = STANDARD_NO_PAD.encode(json.as_bytes());
                (json, standard)
            })
            .find(|(_, standard)| standard.contains(ch))
            .expect("some alignment produces the character");
        controls.push((format!("alphabet {ch}"), hs256_raw(HEADER, &json)));
        cases.push((
            format!("standard alphabet {ch:?}"),
            mac_token(Algorithm::HS256, format!("{header}.{standard}"), SECRET),
        ));
    }

    // Whitespace and every other byte outside [A-Za-z0-9_.-], in each
    // segment.
    let mut outside: Vec<u8> = (0x20..0x7f)
        .filter(|b: &u8| !b.is_ascii_alphanumeric() && !b"-_.".contains(b))
        .collect();
    outside.extend([b'\t', 0x80, 0xc3, 0xa9, 0xff]);
    let inserted = |segment: &str, byte: u8| {
        let (front, back) = segment.split_at(segment.len() / 2);
        [front.as_bytes(), &[byte], back.as_bytes()].concat()
    };
    for byte in outside {
        let in_header = [&inserted(&header, byte)[..], b".", payload.as_bytes()].concat();
        let in_payload = [header.as_bytes(), b".", &inserted(&payload, byte)[..]].concat();
        let in_signature = [
            header.as_bytes(),
            b".",
            payload.as_bytes(),
            b".",
            &inserted(&signature, byte)[..],
        ]
        .concat();
        cases.extend([
            (
                format!("byte {byte:#04x} in the header"),
                mac_token(Algorithm::HS256, in_header, SECRET),
            ),
            (
                format!("byte {byte:#04x} in the payload"),
                mac_token(Algorithm::HS256, in_payload, SECRET),
            ),
            (format!("byte {byte:#04x} in the signature"), in_signature),
        ]);
    }

    for (case, token) in controls {
        assert_accepted(&send(&layer, bearer(&token)).await, &case);
    }
    for (case, token) in cases {
        assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
    }
}

/// `json` with trailing spaces until its length is `remainder` modulo 3.
fn pad_to_remainder(json: &str, remainder: usize) -> String {
    let mut json = json.to_owned();
    while json.len() % 3 != remainder {
        json.push(' ');
    }
    json
}

/// Sets the lowest bit of the last base64url character, which only a
/// lenient decoder ignores when the segment's length leaves unused bits.
fn set_trailing_bit(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (rest, last) = segment.split_at(segment.len() - 1);
    let index = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    assert!(
        index % 2 == 0,
        "the last character already has its low bit set"
    );
    format!("{rest}{}", ALPHABET[index | 1] as char)
}

/// Checklist §2.2 (docs/security-checklist.md).
#[tokio::test]
async fn alg_none_in_any_case_is_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for alg in ["none", "None", "nOnE", "NONE"] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let unsigned = format!("{}.", segments(&header, &payload));
        assert_invalid_token(&send(&layer, bearer(&unsigned)).await, &unsigned);
        // A verifier that skipped the signature for `none` would take this.
        let with_mac = hs256_raw(&header, &payload);
        assert_invalid_token(&send(&layer, bearer(&with_mac)).await, alg);
    }
    for header in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":"HS256 "}"#,
        r#"{"alg":""}"#,
        r#"{"alg":null}"#,
        r#"{"alg":["HS256"]}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }
}

/// Checklist §2.2 (docs/security-checklist.md).
#[tokio::test]
async fn only_the_algorithm_a_key_is_pinned_to_is_accepted() {
    let payload = claims().to_string();
    // 64 bytes: long enough for HS512 (RFC 7518 §3.2), so one secret can
    // be pinned to each HMAC algorithm in turn.
    const SECRET_64: &[u8] = b"integration-test-secret-long-enough-for-hs512-0123456789abcdefgh";
    let hs256_only = builder::<User>().hs256(SECRET_64).build().unwrap();
    for (alg, name) in [(Algorithm::HS384, "HS384"), (Algorithm::HS512, "HS512")] {
        let header = format!(r#"{{"alg":"{name}","typ":"JWT"}}"#);
        let token = mac_token(alg, segments(&header, &payload), SECRET_64);
        assert_invalid_token(&send(&hs256_only, bearer(&token)).await, name);
        // The same secret pinned to that algorithm takes the same token.
        let pinned = match alg {
            Algorithm::HS384 => builder::<User>().hs384(SECRET_64),
            _ => builder::<User>().hs512(SECRET_64),
        };
        let pinned = pinned.build().unwrap();
        assert_accepted(&send(&pinned, bearer(&token)).await, name);
    }

    // One RSA key pinned to RS256 refuses PS256 made with the same key pair.
    let ps256 = key(Algorithm::PS256).sign(&claims()).unwrap();
    let rs256_only = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    assert_invalid_token(&send(&rs256_only, bearer(&ps256)).await, "PS256 to RS256");
    let ps256_key = builder::<User>()
        .rsa_pem(Algorithm::PS256, RSA_PUBLIC)
        .build()
        .unwrap();
    assert_accepted(&send(&ps256_key, bearer(&ps256)).await, "PS256 control");
    let rs256 = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_invalid_token(&send(&ps256_key, bearer(&rs256)).await, "RS256 to PS256");
}

/// Checklist §2.3 (docs/security-checklist.md).
#[tokio::test]
async fn hs256_macd_with_the_rsa_public_key_is_rejected() {
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    let genuine = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&genuine)).await, "RS256 control");

    let payload = claims().to_string();
    for header in [
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"RS256"}"#,
    ] {
        // The classic confusion: the verifier's public PEM as HMAC secret,
        // with and without its final newline.
        for secret in [RSA_PUBLIC, RSA_PUBLIC.trim_end()] {
            let forged = mac_token(
                Algorithm::HS256,
                segments(header, &payload),
                secret.as_bytes(),
            );
            assert_invalid_token(&send(&layer, bearer(&forged)).await, header);
        }
    }
}

/// Checklist §2.4 (docs/security-checklist.md).
#[tokio::test]
async fn es256_all_zero_signature_is_rejected() {
    let layer = builder::<User>().ec_pem(EC_PUBLIC).build().unwrap();
    let genuine = key(Algorithm::ES256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&genuine)).await, "ES256 control");
    let (input, signature) = genuine.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(signature.len(), 64);

    let mut r_zero = signature.clone();
    r_zero[..32].fill(0);
    let mut s_zero = signature;
    s_zero[32..].fill(0);
    for (case, forged) in [
        ("r = s = 0", vec![0u8; 64]),
        // The DER form Java's verifier took (CVE-2022-21449's "MAYCAQACAQA").
        (
            "DER r = s = 0",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("r = 0", r_zero),
        ("s = 0", s_zero),
    ] {
        let token = format!("{input}.{}", b64(&forged));
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    let es384 = builder::<User>().ec_pem(EC384_PUBLIC).build().unwrap();
    let genuine = key(Algorithm::ES384).sign(&claims()).unwrap();
    assert_accepted(&send(&es384, bearer(&genuine)).await, "ES384 control");
    let (input, _) = genuine.rsplit_once('.').unwrap();
    let token = format!("{input}.{}", b64(&[0u8; 96]));
    assert_invalid_token(&send(&es384, bearer(&token)).await, "ES384 r = s = 0");
}

/// Checklist §2.5 (docs/security-checklist.md).
#[tokio::test]
async fn jwk_jku_x5u_x5c_headers_never_choose_a_key_nor_cause_a_request() {
    // Anything the layer fetched because of a token would connect here.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    let attacker =
        SigningKey::from_pem(Algorithm::RS256, "attacker", RSA2_PRIVATE.as_bytes()).unwrap();
    let attacker_jwk = attacker.public_jwk().unwrap().clone();
    let attacker_key = EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap();
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    // Proves the forged tokens are genuinely signed by the embedded key.
    let attackers_own_layer = builder::<User>()
        .key(VerifyingKey::from_jwk(&attacker_jwk).unwrap())
        .build()
        .unwrap();

    let x5c = STANDARD.encode(b"not really a certificate, never parsed");
    let headers = [
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "jku": url}),
        json!({"alg": "RS256", "kid": "attacker", "jku": url}),
        json!({"alg": "RS256", "x5u": url}),
        json!({"alg": "RS256", "x5c": [x5c]}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk, "jku": url, "x5u": url, "x5c": [x5c]}),
    ];
    for header in headers {
        let token = sign_with(
            &attacker_key,
            Algorithm::RS256,
            &header.to_string(),
            &claims().to_string(),
        );
        let case = header.to_string();
        assert_accepted(&send(&attackers_own_layer, bearer(&token)).await, &case);
        assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
    }
    let connection = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        connection.is_err(),
        "a token's header made the layer connect to {url}"
    );
}

/// Checklist §2.6 (docs/security-checklist.md).
#[tokio::test]
async fn kid_is_only_a_lookup_key_into_the_configured_set() {
    let layer = builder::<User>()
        .key(
            VerifyingKey::hmac(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs"),
        )
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token = hs256_raw(r#"{"alg":"HS256","kid":"hs"}"#, &payload);
    assert_accepted(&send(&layer, bearer(&token)).await, "kid control");

    // A file holding a secret the attacker knows: were a kid ever read as a
    // path, the token MACed with the file's content would verify.
    let dir = std::env::temp_dir().join(format!("tower-jwt-auth-kid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("attacker.key");
    std::fs::write(&file, OTHER_SECRET).unwrap();
    let path = file.to_str().unwrap().to_owned();

    let kids = [
        path.clone(),
        format!("../../../../../../..{path}"),
        format!("file://{path}"),
        "../../../../etc/passwd".into(),
        "/dev/null".into(),
        "hs' OR '1'='1".into(),
        "hs\"; DROP TABLE keys; --".into(),
        "hs\u{0}".into(),
        "hs ".into(),
        "HS".into(),
        "*".into(),
        String::new(),
        "unknown".into(),
        "x".repeat(600),
        "x".repeat(5000),
    ];
    for kid in &kids {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        for secret in [OTHER_SECRET, SECRET, b""] {
            let token = mac_token(Algorithm::HS256, segments(&header, &payload), secret);
            let case = format!("kid {}", kid.chars().take(40).collect::<String>());
            assert_invalid_token(&send(&layer, bearer(&token)).await, &case);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Checklist §2.7 (docs/security-checklist.md).
#[tokio::test]
async fn crit_is_always_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    assert_accepted(
        &send(
            &layer,
            bearer(hs256_raw(r#"{"alg":"HS256","exp":1}"#, &payload)),
        )
        .await,
        "control",
    );
    for header in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","crit":["alg"]}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":"exp","exp":1}"#,
        r#"{"alg":"HS256","crit":null}"#,
        r#"{"crit":["x"],"alg":"HS256","x":1}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }
}

/// Checklist §2.8 (docs/security-checklist.md).
#[tokio::test]
async fn typ_at_jwt_profile_is_enforced_when_enabled() {
    let layer = builder::<User>()
        .hs256(SECRET)
        .require_typ_at_jwt()
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token_with =
        |typ: &str| hs256_raw(&json!({"alg": "HS256", "typ": typ}).to_string(), &payload);
    for typ in [
        "at+jwt",
        "AT+JWT",
        "At+Jwt",
        "application/at+jwt",
        "APPLICATION/AT+JWT",
        "Application/At+JWT",
    ] {
        assert_accepted(&send(&layer, bearer(token_with(typ))).await, typ);
    }
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt ",
        " at+jwt",
        "at+jwt2",
        "at+jwtx",
        "application/at+jwt+x",
        "xapplication/at+jwt",
        "application/",
        "",
    ] {
        assert_invalid_token(&send(&layer, bearer(token_with(typ))).await, typ);
    }
    let untyped = hs256_raw(r#"{"alg":"HS256"}"#, &payload);
    assert_invalid_token(&send(&layer, bearer(&untyped)).await, "no typ");
    let numeric = hs256_raw(r#"{"alg":"HS256","typ":7}"#, &payload);
    assert_invalid_token(&send(&layer, bearer(&numeric)).await, "typ 7");

    // What the issuer module signs as an access token matches the profile.
    let access = common::hs256_key().sign_access_token(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&access)).await, "sign_access_token");

    // The profile is opt-in.
    assert_accepted(
        &send(&hs_layer(), bearer(token_with("JWT"))).await,
        "no profile",
    );
}

/// Checklist §2.9 (docs/security-checklist.md).
#[tokio::test]
async fn nested_tokens_are_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for cty in ["JWT", "jwt", "application/jwt", "APPLICATION/JWT"] {
        let header = json!({"alg": "HS256", "cty": cty}).to_string();
        let token = hs256_raw(&header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, cty);
    }
}

/// Checklist §2.10 (docs/security-checklist.md).
#[tokio::test]
async fn duplicate_members_are_rejected() {
    let layer = hs_layer();
    let payload = claims().to_string();
    for header in [
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","x":1,"x":1}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ] {
        let token = hs256_raw(header, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, header);
    }

    let base = claims();
    let exp = now() + 300;
    let many: String = (0..40).map(|i| format!(r#""m{i}":{i},"#)).collect();
    for (case, members) in [
        ("exp twice", format!(r#""exp":{exp}"#)),
        ("sub twice", r#""sub":"user-2""#.to_owned()),
        ("iss twice", format!(r#""iss":"{ISSUER}""#)),
        ("aud twice", format!(r#""aud":"{AUDIENCE}""#)),
        ("unregistered twice", r#""role":"a","role":"a""#.to_owned()),
        ("escaped twice", r#""\u0073ub":"user-1""#.to_owned()),
        // Past the point where the detector switches to hashing.
        ("many members", format!(r#"{many}"m3":0"#)),
    ] {
        let payload = with_members(&base, &members);
        let token = hs256_raw(HEADER, &payload);
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
    let distinct = with_members(&base, &many[..many.len() - 1]);
    assert_accepted(
        &send(&layer, bearer(hs256_raw(HEADER, &distinct))).await,
        "many distinct members",
    );
}
