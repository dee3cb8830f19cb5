//! Per-thread cache of ready-to-use signature verifiers.
//!
//! jsonwebtoken's verifiers (`Box<dyn JwtVerifier>`) are neither `Send` nor
//! `Sync`, so they cannot live in a key set shared by every worker. Building
//! one per request would redo the key setup each time (HMAC pads, point
//! decompression for EdDSA/ECDSA). Each thread therefore builds a key's
//! verifier once and keeps it, keyed by the key's process-unique id: no lock,
//! no atomic, and bounded so rotated-out keys cannot pile up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::crypto::JwtVerifier;

use crate::alg::Algorithm;
use crate::crypto::provider;

/// Above this many cached verifiers a thread starts over; far more than any
/// sane key set, and a bound on what rotated keys can leave behind.
const MAX_CACHED: usize = 256;

/// Key ids are sequential integers: Fibonacci hashing spreads them well
/// without SipHash's cost.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Verifiers = HashMap<u64, Box<dyn JwtVerifier>, BuildHasherDefault<IdHasher>>;

thread_local! {
    static VERIFIERS: RefCell<Verifiers> = RefCell::new(Verifiers::default());
}

/// Checks `signature` over `message` with the key `id`, building and caching
/// the verifier on this thread's first use of the key.
pub(crate) fn verify(
    id: u64,
    alg: Algorithm,
    key: &DecodingKey,
    message: &[u8],
    signature: &Vec<u8>,
) -> bool {
    let cached = VERIFIERS.try_with(|cell| {
        let mut verifiers = cell.borrow_mut();
        if let Some(verifier) = verifiers.get(&id) {
            return verifier.verify(message, signature).is_ok();
        }
        let Ok(verifier) = (provider().verifier_factory)(&alg.to_jsonwebtoken(), key) else {
            return false;
        };
        let ok = verifier.verify(message, signature).is_ok();
        if verifiers.len() >= MAX_CACHED {
            verifiers.clear();
        }
        verifiers.insert(id, verifier);
        ok
    });
    match cached {
        Ok(ok) => ok,
        // The thread is shutting down and its cache is gone: verify uncached.
        Err(_) => (provider().verifier_factory)(&alg.to_jsonwebtoken(), key)
            .map(|verifier| verifier.verify(message, signature).is_ok())
            .unwrap_or(false),
    }
}

/// Builds a verifier once, to reject unusable keys at configuration time.
pub(crate) fn check_usable(alg: Algorithm, key: &DecodingKey) -> bool {
    (provider().verifier_factory)(&alg.to_jsonwebtoken(), key).is_ok()
}
