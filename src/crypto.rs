//! Which of jsonwebtoken's signature backends this crate drives.
//!
//! jsonwebtoken panics at the first decode when both of its backend features
//! are enabled and nobody installed a process default. We never rely on that
//! default for verification (verifiers are built from an explicit provider),
//! and we install our choice as the default before signing, so enabling both
//! features is safe: `aws_lc_rs` wins.

use jsonwebtoken::crypto::CryptoProvider;

#[cfg(not(any(feature = "rust_crypto", feature = "aws_lc_rs")))]
compile_error!(
    "tower-jwt-auth needs a signature backend: enable `rust_crypto` (default) or `aws_lc_rs`"
);

/// The provider selected by this crate's features.
pub(crate) fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

#[cfg(any(feature = "issue", test))]
/// Makes jsonwebtoken's process-wide default usable (signing and JWK
/// helpers read it). A default installed earlier by the application wins.
pub(crate) fn ensure_default_installed() {
    let _ = CryptoProvider::install_default(provider());
}

/// SHA-256 of `data`, from the selected backend (feature `dpop`: the proof
/// key's thumbprint, `ath`, replay keys).
#[cfg(feature = "dpop")]
pub(crate) fn sha256(data: &[u8]) -> Vec<u8> {
    (provider().key_utils.compute_digest)(data, jsonwebtoken::jwk::ThumbprintHash::SHA256)
        // Both backends compute SHA-256 for any input; only a hash they
        // lack is an error.
        .expect("the signature backend computes SHA-256")
}

/// HMAC-SHA-256 of `data` under `key`, from the selected backend (feature
/// `dpop`: server nonces).
#[cfg(feature = "dpop")]
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use jsonwebtoken::crypto::JwtSigner;
    let key = jsonwebtoken::EncodingKey::from_secret(key);
    let signer: Box<dyn JwtSigner> =
        (provider().signer_factory)(&jsonwebtoken::Algorithm::HS256, &key)
            // HMAC takes keys of any length; only another family is an error.
            .expect("the signature backend builds HMAC-SHA-256 signers");
    signer
        .try_sign(data)
        .expect("HMAC-SHA-256 never fails once keyed")
}

#[cfg(all(test, feature = "dpop"))]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_answers() {
        // FIPS 180-2 "abc"; RFC 4231 test case 2.
        assert_eq!(
            sha256(b"abc"),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
