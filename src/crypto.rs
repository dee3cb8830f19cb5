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
