//! Unit tests of key handling, beside the module so they can reach its
//! crate-private pieces (the verification counter, `from_decoding_key`).

use jsonwebtoken::DecodingKey;

use super::*;
use crate::error::Error;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn short_hmac_secrets_are_refused() {
    let err = VerifyingKey::hmac(Algorithm::HS256, b"short").unwrap_err();
    assert!(matches!(err, Error::WeakSecret { len: 5 }));
    assert!(VerifyingKey::hmac(Algorithm::HS256, &SECRET[..31]).is_err());
    assert!(VerifyingKey::hmac(Algorithm::HS256, SECRET).is_ok());
    assert!(VerifyingKey::hmac(Algorithm::HS256, b"").is_err());
}

#[test]
fn issue7_item_10_hmac_secrets_are_at_least_the_hash_size() {
    let secret = [7u8; 64];
    for (alg, min) in [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ] {
        assert_eq!(min_hmac_secret_len(alg), min);
        assert!(VerifyingKey::hmac(alg, &secret[..min]).is_ok(), "{alg:?}");
        let err = VerifyingKey::hmac(alg, &secret[..min - 1]).unwrap_err();
        assert!(
            matches!(err, Error::WeakSecret { len } if len == min - 1),
            "{alg:?}"
        );
    }
    assert!(VerifyingKey::hmac(Algorithm::HS384, &secret[..40]).is_err());
}

#[test]
fn issue7_item_10_rsa_keys_are_parsed_when_configured() {
    assert!(VerifyingKey::rsa_der(Algorithm::RS256, b"garbage").is_err());
    let pkcs1 = std::fs::read(fixture("rsa_public_pkcs1.der")).unwrap();
    assert!(VerifyingKey::rsa_der(Algorithm::RS256, &pkcs1).is_ok());
    // A well-formed but too small key, by construction: 2041 bits in
    // 256 bytes.
    let mut n = vec![0xffu8; 256];
    n[0] = 0x01;
    let small = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
    assert!(VerifyingKey::from_decoding_key(Algorithm::RS256, small).is_err());
    n[0] = 0x80;
    let enough = DecodingKey::from_rsa_raw_components(&n, &[1, 0, 1]);
    assert!(VerifyingKey::from_decoding_key(Algorithm::RS256, enough).is_ok());
}

#[test]
fn issue7_item_11_kidless_tokens_cost_at_most_max_keys_tried_verifications() {
    use base64::Engine;
    /// A compact JWS over `{}` with `header`, MACed with `secret`.
    fn mac(secret: &[u8], header: &str) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let input = format!("{}.{}", b64(header.as_bytes()), b64(b"{}"));
        crate::crypto::ensure_default_installed();
        let key = jsonwebtoken::EncodingKey::from_secret(secret);
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap();
        format!("{input}.{signature}")
    }
    /// The verdict, and how many signature checks it took.
    fn verify(set: &KeySet, token: &str) -> (Result<(), crate::Reason>, usize) {
        VERIFICATIONS.with(|count| count.set(0));
        let verdict = set.verify_jws(token).map(|_| ());
        (verdict, VERIFICATIONS.with(std::cell::Cell::get))
    }

    // Eight HS256 keys without kid, then one named "k9".
    let secrets: Vec<[u8; 32]> = (1..=9u8).map(|i| [i; 32]).collect();
    let mut set = KeySet::new(
        secrets[..8]
            .iter()
            .map(|s| VerifyingKey::hmac(Algorithm::HS256, s).unwrap()),
    );
    set.push(
        VerifyingKey::hmac(Algorithm::HS256, secrets[8])
            .unwrap()
            .with_kid("k9"),
    );
    let kidless = r#"{"alg":"HS256"}"#;
    assert_eq!(verify(&set, &mac(&secrets[0], kidless)), (Ok(()), 1));
    let last = MAX_KEYS_TRIED - 1;
    assert_eq!(
        verify(&set, &mac(&secrets[last], kidless)),
        (Ok(()), MAX_KEYS_TRIED)
    );
    // Beyond the bound: refused after MAX_KEYS_TRIED checks, not nine.
    for (signer, secret) in secrets.iter().enumerate().skip(MAX_KEYS_TRIED) {
        assert_eq!(
            verify(&set, &mac(secret, kidless)),
            (Err(crate::Reason::Signature), MAX_KEYS_TRIED),
            "signer {signer}"
        );
    }
    // A kid no key carries: the kid-less keys answer to it, bounded alike.
    let unknown = r#"{"alg":"HS256","kid":"whatever"}"#;
    assert_eq!(
        verify(&set, &mac(&secrets[7], unknown)),
        (Err(crate::Reason::Signature), MAX_KEYS_TRIED)
    );
    // A kid that names a key is tried first, wherever the key sits.
    let named = r#"{"alg":"HS256","kid":"k9"}"#;
    assert_eq!(verify(&set, &mac(&secrets[8], named)), (Ok(()), 1));
}

#[test]
fn a_key_is_pinned_to_its_family() {
    assert!(VerifyingKey::hmac(Algorithm::RS256, SECRET).is_err());
    assert!(VerifyingKey::rsa_der(Algorithm::HS256, b"whatever").is_err());
}

#[test]
fn find_matches_kid_and_algorithm_exactly() {
    let a = VerifyingKey::hmac(Algorithm::HS256, SECRET)
        .unwrap()
        .with_kid("a");
    let b = VerifyingKey::hmac(Algorithm::HS512, [7u8; 64])
        .unwrap()
        .with_kid("b");
    let set = KeySet::new([a, b]);
    assert_eq!(set.find(Some("a"), Algorithm::HS256).count(), 1);
    assert_eq!(set.find(Some("a"), Algorithm::HS512).count(), 0);
    assert_eq!(
        set.find(Some("../../etc/passwd"), Algorithm::HS256).count(),
        0
    );
    assert_eq!(set.find(None, Algorithm::HS512).count(), 1);
    let anonymous = KeySet::new([VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()]);
    assert_eq!(anonymous.find(Some("any"), Algorithm::HS256).count(), 1);
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn public_keys_load_from_pem_and_der_files() {
    for (file, alg) in [
        ("rsa_public.pem", Algorithm::RS256),
        ("rsa_public.der", Algorithm::RS256),
        ("ec_public.pem", Algorithm::ES256),
        ("ec_public.der", Algorithm::ES256),
        ("ec384_public.pem", Algorithm::ES384),
        ("ed_public.pem", Algorithm::EdDSA),
        ("ed_public.der", Algorithm::EdDSA),
    ] {
        let key =
            VerifyingKey::public_key_file(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(key.algorithm(), alg, "{file}");
    }
    let pkcs1 = std::fs::read(fixture("rsa_public_pkcs1.der")).unwrap();
    assert!(VerifyingKey::rsa_der(Algorithm::PS256, pkcs1).is_ok());
    assert!(VerifyingKey::public_key_file(fixture("ed_private.pem")).is_err());
    assert!(VerifyingKey::public_key_file(fixture("missing.pem")).is_err());
    assert!(VerifyingKey::public_key_der(b"not der").is_err());
}

#[test]
fn jwks_load_from_files() {
    let dir = std::env::temp_dir().join(format!("tower-jwt-auth-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        r#"{"keys":[{"kty":"oct","kid":"a","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#,
    )
    .unwrap();
    assert_eq!(KeySet::from_jwks_file(&path).unwrap().len(), 1);
    std::fs::write(&path, "{").unwrap();
    assert!(KeySet::from_jwks_file(&path).is_err());
    assert!(KeySet::from_jwks_file(dir.join("absent.json")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn store_replacement_is_seen_by_clones() {
    let store = KeyStore::new(KeySet::default());
    let clone = store.clone();
    store.replace(KeySet::new([
        VerifyingKey::hmac(Algorithm::HS256, SECRET).unwrap()
    ]));
    assert_eq!(clone.load().len(), 1);
}

/// A refresh that brings a key back unchanged keeps that key's identity
/// (what the token cache and the prepared verifiers are keyed by); a key
/// that changed in any way is a new key.
#[test]
fn keys_fetched_again_unchanged_keep_their_identity() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    let der = std::fs::read(fixture("rsa_public_pkcs1.der")).unwrap();
    let (n, e) = super::rsa::parse_pkcs1(&der).unwrap();
    let b64 = |bytes: &[u8]| {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        URL_SAFE_NO_PAD.encode(&bytes[start..])
    };
    let rsa = |alg: &str| {
        VerifyingKey::from_jwk(&json!({
            "kty": "RSA", "kid": "r", "alg": alg, "n": b64(n), "e": b64(e)
        }))
        .unwrap()
    };
    let pem = |file: &str, kid: &str| {
        VerifyingKey::public_key_file(fixture(file))
            .unwrap()
            .with_kid(kid)
    };
    let held = KeySet::new([
        rsa("RS256"),
        pem("ec_public.pem", "e"),
        pem("ed_public.pem", "d"),
    ]);
    let mut fetched = KeySet::new([
        rsa("RS256"),                    // the same JWK again
        pem("ec_public.pem", "e"),       // the same key and kid again
        pem("ed_public.pem", "renamed"), // same material, another kid
        rsa("PS256"),                    // same material, another algorithm
        pem("ec384_public.pem", "e"),    // the same kid, another key
        VerifyingKey::rsa_der(Algorithm::RS256, &der)
            .unwrap()
            .with_kid("r"), // DER, not n/e
    ]);
    let before: Vec<u64> = fetched.keys().iter().map(VerifyingKey::id).collect();
    assert!(before.iter().all(|id| !held.contains_id(*id)));
    fetched.keep_unchanged(&held);
    let ids: Vec<u64> = fetched.keys().iter().map(VerifyingKey::id).collect();
    assert_eq!(ids[0], held.keys()[0].id());
    assert_eq!(ids[1], held.keys()[1].id());
    assert_eq!(&ids[2..], &before[2..], "changed keys are new keys");
    assert!(ids[2..].iter().all(|id| !held.contains_id(*id)));
    assert_eq!(fetched.len(), 6);
}

/// JWK parsing (`jwk.rs`).
mod jwk {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    const K: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn key(v: Value) -> Result<VerifyingKey, Error> {
        VerifyingKey::from_jwk_with(&v, &JwkPolicy::default())
    }

    #[test]
    fn use_and_key_ops_are_enforced() {
        assert!(key(json!({"kty":"oct","k":K,"use":"sig"})).is_ok());
        assert!(key(json!({"kty":"oct","k":K,"use":"enc"})).is_err());
        assert!(key(json!({"kty":"oct","k":K,"key_ops":["verify","sign"]})).is_ok());
        assert!(key(json!({"kty":"oct","k":K,"key_ops":["encrypt"]})).is_err());
        assert!(key(json!({"kty":"oct","k":K,"key_ops":["verify","verify"]})).is_err());
        assert!(key(json!({"kty":"oct","k":K,"key_ops":"verify"})).is_err());
    }

    #[test]
    fn alg_must_fit_the_key() {
        assert!(key(json!({"kty":"oct","k":K,"alg":"RS256"})).is_err());
        assert!(key(json!({"kty":"oct","k":K,"alg":"none"})).is_err());
        // HS512 needs a 64-byte secret (RFC 7518 §3.2); K is 32 bytes.
        assert!(key(json!({"kty":"oct","k":K,"alg":"HS512"})).is_err());
        let k64 = URL_SAFE_NO_PAD.encode([0u8; 64]);
        let k = key(json!({"kty":"oct","k":k64,"alg":"HS512"})).unwrap();
        assert_eq!(k.algorithm(), Algorithm::HS512);
    }

    #[test]
    fn weak_or_non_canonical_material_is_refused() {
        assert!(key(json!({"kty":"oct","k":"c2hvcnQ"})).is_err());
        assert!(key(json!({"kty":"oct","k":format!("{K}=")})).is_err());
        assert!(key(json!({"kty":"oct","k":K.replace('A', "+")})).is_err());
        assert!(key(json!({"kty":"OKP","crv":"Ed25519","x":"AAAA"})).is_err());
        assert!(key(json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"})).is_err());
        assert!(key(json!({"kty":"RSA","n":"AQAB","e":"AQAB"})).is_err());
    }

    #[test]
    fn sets_skip_unusable_keys_and_keep_kids() {
        let set = KeySet::parse_jwks(
            &json!({"keys":[{"kty":"oct","k":K,"kid":"a"},{"kty":"oct","k":K,"use":"enc"},7]}),
            &JwkPolicy::default(),
        )
        .unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.keys()[0].kid(), Some("a"));
        let no_secrets = JwkPolicy::default().without_symmetric_keys();
        assert!(
            KeySet::parse_jwks(&json!({"keys":[{"kty":"oct","k":K}]}), &no_secrets)
                .unwrap()
                .is_empty()
        );
    }
}
