//! Checklist §5 Keys (`docs/security-checklist.md`).

use crate::support::*;

/// Checklist §5.1 (docs/security-checklist.md).
#[tokio::test]
async fn a_jwks_own_alg_use_and_key_ops_are_enforced() {
    const SECRET_ENC: &[u8] = b"encryption-key-never-for-signatures-000";
    const SECRET_WRAP: &[u8] = b"wrapping-key-never-for-signatures-00000";
    // HS512 keys are at least 64 bytes (RFC 7518 §3.2).
    const SECRET_512: &[u8] = b"hs512-pinned-key-for-this-test-0000000000000000000000000000000000";
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "sig", "alg": "HS256", "use": "sig", "k": b64(SECRET)},
        {"kty": "oct", "kid": "enc", "use": "enc", "k": b64(SECRET_ENC)},
        {"kty": "oct", "kid": "wrap", "key_ops": ["wrapKey"], "k": b64(SECRET_WRAP)},
        {"kty": "oct", "kid": "h512", "alg": "HS512", "key_ops": ["verify"], "k": b64(SECRET_512)},
    ]});
    let layer = builder::<User>()
        .jwks_str(&jwks.to_string())
        .build()
        .unwrap();
    let payload = claims().to_string();
    let token = |alg: Algorithm, kid: &str, secret: &[u8]| {
        let header = json!({"alg": format!("{alg:?}"), "kid": kid}).to_string();
        mac_token(alg, segments(&header, &payload), secret)
    };
    for (case, token) in [
        ("use sig", token(Algorithm::HS256, "sig", SECRET)),
        ("alg HS512", token(Algorithm::HS512, "h512", SECRET_512)),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        ("use enc", token(Algorithm::HS256, "enc", SECRET_ENC)),
        (
            "key_ops wrapKey",
            token(Algorithm::HS256, "wrap", SECRET_WRAP),
        ),
        (
            "alg HS512 key used for HS256",
            token(Algorithm::HS256, "h512", SECRET_512),
        ),
        (
            "alg HS256 key used for HS512",
            token(Algorithm::HS512, "sig", SECRET),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }

    // An RSA JWK pinned to PS256 refuses RS256 made with the same key.
    let mut jwk = key(Algorithm::RS256).public_jwk().unwrap().clone();
    let rs256 = key(Algorithm::RS256).sign(&claims()).unwrap();
    let as_declared = builder::<User>()
        .jwks_str(&json!({"keys": [jwk]}).to_string())
        .build()
        .unwrap();
    assert_accepted(&send(&as_declared, bearer(&rs256)).await, "RSA JWK as is");
    jwk["alg"] = json!("PS256");
    let repinned = builder::<User>()
        .jwks_str(&json!({"keys": [jwk]}).to_string())
        .build()
        .unwrap();
    assert_invalid_token(&send(&repinned, bearer(&rs256)).await, "RSA JWK alg PS256");

    // A set without a single verification key configures nothing.
    for unusable in [
        json!({"keys": [{"kty": "oct", "use": "enc", "k": b64(SECRET)}]}),
        json!({"keys": [{"kty": "oct", "key_ops": ["sign"], "k": b64(SECRET)}]}),
        json!({"keys": [{"kty": "oct", "alg": "none", "k": b64(SECRET)}]}),
    ] {
        let built = builder::<User>().jwks_str(&unusable.to_string()).build();
        assert!(built.is_err(), "{unusable} configured a key");
    }
}

/// Checklist §5.3 (docs/security-checklist.md).
#[tokio::test]
async fn several_keys_are_chosen_by_kid() {
    let layer = builder::<User>()
        .key(
            VerifyingKey::hmac(Algorithm::HS256, SECRET)
                .unwrap()
                .with_kid("hs-a"),
        )
        .key(
            VerifyingKey::hmac(Algorithm::HS256, OTHER_SECRET)
                .unwrap()
                .with_kid("hs-b"),
        )
        .key(
            VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC)
                .unwrap()
                .with_kid("RS256"),
        )
        .key(VerifyingKey::ec_pem(EC_PUBLIC).unwrap().with_kid("ES256"))
        .build()
        .unwrap();
    let payload = claims().to_string();
    let hmac = |kid: &str, secret: &[u8]| {
        let header = json!({"alg": "HS256", "kid": kid}).to_string();
        mac_token(Algorithm::HS256, segments(&header, &payload), secret)
    };
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    for (case, token) in [
        ("hs-a", hmac("hs-a", SECRET)),
        ("hs-b", hmac("hs-b", OTHER_SECRET)),
        (
            "RS256",
            key(Algorithm::RS256).sign(&claims()).unwrap().into_bytes(),
        ),
        (
            "ES256",
            key(Algorithm::ES256).sign(&claims()).unwrap().into_bytes(),
        ),
        // Documented: a token without a kid is tried on the first keys of
        // its alg (at most `keys::MAX_KEYS_TRIED`; two HS256 keys here).
        ("no kid", hs256_raw(HEADER, &payload).into_bytes()),
    ] {
        assert_accepted(&send(&layer, bearer(&token)).await, case);
    }
    for (case, token) in [
        // The kid selects the key: no falling back to the others.
        ("hs-a named, hs-b's MAC", hmac("hs-a", OTHER_SECRET)),
        ("hs-b named, hs-a's MAC", hmac("hs-b", SECRET)),
        ("unknown kid", hmac("hs-c", SECRET)),
        (
            "kid of a key pinned to another alg",
            sign_with(
                &rsa_key,
                Algorithm::RS256,
                r#"{"alg":"RS256","kid":"ES256"}"#,
                &payload,
            )
            .into_bytes(),
        ),
    ] {
        assert_invalid_token(&send(&layer, bearer(&token)).await, case);
    }
}

/// Checklist §5.5 (docs/security-checklist.md).
#[tokio::test]
async fn asymmetric_algorithms_verify_with_the_fixture_keys() {
    let cases = [
        (
            Algorithm::RS256,
            VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC),
        ),
        (
            Algorithm::PS256,
            VerifyingKey::rsa_pem(Algorithm::PS256, RSA_PUBLIC),
        ),
        (Algorithm::ES256, VerifyingKey::ec_pem(EC_PUBLIC)),
        (Algorithm::ES384, VerifyingKey::ec_pem(EC384_PUBLIC)),
        (Algorithm::EdDSA, VerifyingKey::ed_pem(ED_PUBLIC)),
    ];
    for (alg, verifying) in cases {
        let case = format!("{alg:?}");
        let layer = builder::<User>().key(verifying.unwrap()).build().unwrap();
        let token = key(alg).sign(&claims()).unwrap();
        let body = assert_accepted(&send(&layer, bearer(&token)).await, &case);
        assert_eq!(body["sub"], "user-1", "{case}");

        // One signature character changed mid-way (never the last, whose
        // unused bits would make it a base64 test instead).
        let mut forged = token.into_bytes();
        let at = forged.len() - 10;
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert_invalid_token(&send(&layer, bearer(&forged)).await, &case);
    }
}

/// DER for the RSA key tests: a crafted key need not be a real one to be
/// refused for its size.
mod der {
    fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        match len {
            0..0x80 => out.push(len as u8),
            0x80..0x100 => out.extend([0x81, len as u8]),
            _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    fn integer(magnitude: &[u8]) -> Vec<u8> {
        let mut content = magnitude.to_vec();
        if content[0] & 0x80 != 0 {
            content.insert(0, 0);
        }
        wrap(0x02, &content)
    }

    /// PKCS#1 `RSAPublicKey`.
    pub(super) fn pkcs1(n: &[u8], e: &[u8]) -> Vec<u8> {
        let mut body = integer(n);
        body.extend(integer(e));
        wrap(0x30, &body)
    }

    /// SubjectPublicKeyInfo around a PKCS#1 key (rsaEncryption, NULL).
    pub(super) fn spki(pkcs1: &[u8]) -> Vec<u8> {
        let algorithm = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bits = vec![0];
        bits.extend_from_slice(pkcs1);
        let mut body = algorithm.to_vec();
        body.extend(wrap(0x03, &bits));
        wrap(0x30, &body)
    }

    pub(super) fn pem(spki: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(spki);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }
}

/// An odd modulus of exactly `bits` bits (not a product of two primes, which
/// no configuration-time check can tell).
fn modulus(bits: usize) -> Vec<u8> {
    let mut n = vec![0xff; bits.div_ceil(8)];
    n[0] >>= n.len() * 8 - bits;
    n
}

/// Checklist §5.2 (docs/security-checklist.md).
#[tokio::test]
async fn keys_are_checked_when_configured() {
    const E: &[u8] = &[1, 0, 1];
    // Garbage DER used to build and refuse every token; now the builder
    // reports it.
    assert!(VerifyingKey::rsa_der(Algorithm::RS256, b"garbage").is_err());
    let built = builder::<User>()
        .key(VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap())
        .public_key_pem(der::pem(b"garbage"))
        .build();
    assert!(built.is_err(), "garbage PEM built");

    // Every RSA input path counts bits: 2041 bits in 256 bytes is refused,
    // 2048 and 4096 accepted, 4097 and 8192 (which the rust_crypto backend
    // can never verify with) refused.
    let dir = std::env::temp_dir().join(format!("tower-jwt-auth-item10-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (bits, accepted) in [
        (2041, false),
        (2047, false),
        (2048, true),
        (3072, true),
        (4096, true),
        (4097, false),
        (8192, false),
    ] {
        let n = modulus(bits);
        let pkcs1 = der::pkcs1(&n, E);
        let spki = der::spki(&pkcs1);
        let pem = der::pem(&spki);
        let jwk = json!({"kty": "RSA", "alg": "RS256", "n": b64(&n), "e": b64(E)});
        let der_file = dir.join(format!("{bits}.der"));
        let pem_file = dir.join(format!("{bits}.pem"));
        std::fs::write(&der_file, &spki).unwrap();
        std::fs::write(&pem_file, &pem).unwrap();
        for (path, result) in [
            (
                "PKCS#1 DER",
                VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1),
            ),
            ("SPKI DER", VerifyingKey::public_key_der(&spki)),
            ("PEM", VerifyingKey::rsa_pem(Algorithm::PS256, &pem)),
            ("any PEM", VerifyingKey::public_key_pem(&pem)),
            ("DER file", VerifyingKey::public_key_file(&der_file)),
            ("PEM file", VerifyingKey::public_key_file(&pem_file)),
            ("JWK", VerifyingKey::from_jwk(&jwk)),
        ] {
            assert_eq!(result.is_ok(), accepted, "{bits} bits, {path}: {result:?}");
        }
        let set = KeySet::from_jwks(&json!({"keys": [jwk]}));
        assert_eq!(set.is_ok(), accepted, "{bits} bits, JWK set");
        let layer = builder::<User>().rsa_pem(Algorithm::RS256, &pem).build();
        assert_eq!(layer.is_ok(), accepted, "{bits} bits, builder");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    // Exponents both backends refuse anyway are refused up front.
    for e in [&[1][..], &[2], &[1, 0, 0], &[3, 0, 0, 0, 0, 1]] {
        let pkcs1 = der::pkcs1(&modulus(2048), e);
        assert!(
            VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1).is_err(),
            "e = {e:?}"
        );
    }
    // A private key handed in as a public one is not a PKCS#1 public key.
    assert!(VerifyingKey::rsa_pem(Algorithm::RS256, RSA_PRIVATE).is_err());
    // The fixture keys (2048-bit, real) still verify.
    let layer = builder::<User>()
        .rsa_pem(Algorithm::RS256, RSA_PUBLIC)
        .build()
        .unwrap();
    let token = key(Algorithm::RS256).sign(&claims()).unwrap();
    assert_accepted(&send(&layer, bearer(&token)).await, "2048-bit fixture");

    // HMAC secrets are at least the hash output size (RFC 7518 §3.2).
    let secret = [0x5a; 64];
    for (alg, refused, accepted) in [
        (Algorithm::HS256, 31, 32),
        (Algorithm::HS384, 40, 48),
        (Algorithm::HS384, 47, 48),
        (Algorithm::HS512, 63, 64),
    ] {
        assert!(
            VerifyingKey::hmac(alg, &secret[..refused]).is_err(),
            "{alg:?} {refused}"
        );
        assert!(
            VerifyingKey::hmac(alg, &secret[..accepted]).is_ok(),
            "{alg:?} {accepted}"
        );
    }
    assert!(builder::<User>().hs384(&secret[..40]).build().is_err());
    assert!(builder::<User>().hs384(&secret[..48]).build().is_ok());
    assert!(builder::<User>().hs512(&secret[..63]).build().is_err());
    assert!(builder::<User>().hs512(&secret[..64]).build().is_ok());
    let short_512 = json!({"kty": "oct", "alg": "HS512", "k": b64(&secret[..48])});
    assert!(VerifyingKey::from_jwk(&short_512).is_err());
    assert!(SigningKey::hmac(Algorithm::HS512, "k", &secret[..63]).is_err());
}

/// Checklist §5.4 (docs/security-checklist.md).
#[tokio::test]
async fn kidless_tokens_are_tried_on_a_bounded_number_of_keys() {
    use tower_jwt_auth::keys::MAX_KEYS_TRIED;
    // Many keys of one algorithm: kid-less ones, then some with kids.
    let secrets: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("bounded-kidless-test-secret-number-{i:02}").into_bytes())
        .collect();
    let mut layer = builder::<User>().on_rejection(with_reason_header);
    for (i, secret) in secrets.iter().enumerate() {
        let key = VerifyingKey::hmac(Algorithm::HS256, secret).unwrap();
        layer = layer.key(if i < 6 {
            key
        } else {
            key.with_kid(format!("k{i}"))
        });
    }
    let layer = layer.build().unwrap();
    let payload = claims().to_string();
    let kidless = |i: usize| mac_token(Algorithm::HS256, segments(HEADER, &payload), &secrets[i]);

    for i in 0..MAX_KEYS_TRIED {
        assert_accepted(&send(&layer, bearer(kidless(i))).await, &format!("key {i}"));
    }
    for i in MAX_KEYS_TRIED..secrets.len() {
        assert_reason(
            &send(&layer, bearer(kidless(i))).await,
            Reason::Signature,
            &format!("kid-less, key {i} beyond the bound"),
        );
    }
    // Keys with kids are still reached by naming them.
    for (i, secret) in secrets.iter().enumerate().skip(6) {
        let header = json!({"alg": "HS256", "kid": format!("k{i}")}).to_string();
        let token = mac_token(Algorithm::HS256, segments(&header, &payload), secret);
        assert_accepted(&send(&layer, bearer(&token)).await, &format!("kid k{i}"));
    }
}
