//! Server nonces (RFC 9449 §8, §9): stateless, keyed, rotating.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::hmac_sha256;
use crate::error::Error;

/// Shortest secret [`Nonces::new`] accepts, in bytes (256 bits).
pub const MIN_NONCE_SECRET_LEN: usize = 32;

/// Bytes of the MAC a nonce carries: 144 bits, 24 base64url characters.
const NONCE_BYTES: usize = 18;

/// What tells these MACs apart from any other use of the secret.
const CONTEXT: &[u8] = b"tower-jwt-auth DPoP nonce v1\0";

/// Server-provided nonces for DPoP proofs: a MAC of the current time slot
/// under a secret, so that every instance holding the secret issues and
/// checks the same nonces without sharing any state.
///
/// A nonce is issued for the slot of `rotate_every` it is made in and
/// accepted during that slot and the next one: it lives between
/// `rotate_every` and twice that. A proof carrying the previous slot's
/// nonce is accepted, and the response carries the current one in
/// `DPoP-Nonce` (RFC 9449 §8.2), so clients move on before theirs
/// expires; a proof without a nonce, or with an expired or forged one, is
/// answered `401 use_dpop_nonce` with a fresh nonce.
///
/// Give every instance the same secret (at least
/// [`MIN_NONCE_SECRET_LEN`] random bytes) and the same `rotate_every`;
/// their clocks should agree within a small fraction of it.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_jwt_auth::dpop::Nonces;
///
/// let nonces = Nonces::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(300))?;
/// let now = SystemTime::now();
/// let nonce = nonces.current_at(now);
/// assert!(nonces.is_valid_at(&nonce, now + Duration::from_secs(300)));
/// assert!(!nonces.is_valid_at(&nonce, now + Duration::from_secs(600)));
/// # Ok::<(), tower_jwt_auth::Error>(())
/// ```
#[derive(Clone)]
pub struct Nonces {
    secret: Arc<[u8]>,
    rotate_every: u64,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("rotate_every", &Duration::from_secs(self.rotate_every))
            .finish_non_exhaustive()
    }
}

/// How a nonce compares with the slots accepted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Made in the current slot.
    Current,
    /// Made in the previous slot: accepted, and a newer one is handed out.
    Previous,
    /// Anything else.
    Invalid,
}

impl Nonces {
    /// Nonces under `secret`, a new one every `rotate_every` (whole
    /// seconds, at least one).
    ///
    /// # Errors
    /// [`Error::WeakSecret`] for a secret shorter than
    /// [`MIN_NONCE_SECRET_LEN`]; [`Error::Config`] for a period under a
    /// second.
    pub fn new(secret: impl AsRef<[u8]>, rotate_every: Duration) -> Result<Self, Error> {
        let secret = secret.as_ref();
        if secret.len() < MIN_NONCE_SECRET_LEN {
            return Err(Error::WeakSecret { len: secret.len() });
        }
        if rotate_every.as_secs() == 0 {
            return Err(Error::Config(
                "DPoP nonces must rotate every second or slower".into(),
            ));
        }
        Ok(Nonces {
            secret: secret.into(),
            rotate_every: rotate_every.as_secs(),
        })
    }

    /// The nonce to hand out now (system clock).
    pub fn current(&self) -> String {
        self.current_at(SystemTime::now())
    }

    /// The nonce to hand out at `now`.
    pub fn current_at(&self, now: SystemTime) -> String {
        self.for_slot(self.slot(now))
    }

    /// Whether `nonce` is accepted at `now`: made in the current or the
    /// previous slot.
    pub fn is_valid_at(&self, nonce: &str, now: SystemTime) -> bool {
        self.freshness(nonce, now) != Freshness::Invalid
    }

    pub(crate) fn freshness(&self, nonce: &str, now: SystemTime) -> Freshness {
        let slot = self.slot(now);
        if constant_time_eq(nonce.as_bytes(), self.for_slot(slot).as_bytes()) {
            Freshness::Current
        } else if slot > 0 && constant_time_eq(nonce.as_bytes(), self.for_slot(slot - 1).as_bytes())
        {
            Freshness::Previous
        } else {
            Freshness::Invalid
        }
    }

    fn slot(&self, now: SystemTime) -> u64 {
        let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        seconds / self.rotate_every
    }

    fn for_slot(&self, slot: u64) -> String {
        let mut message = Vec::with_capacity(CONTEXT.len() + 16);
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(&self.rotate_every.to_be_bytes());
        message.extend_from_slice(&slot.to_be_bytes());
        let mac = hmac_sha256(&self.secret, &message);
        URL_SAFE_NO_PAD.encode(&mac[..NONCE_BYTES])
    }
}

/// Compares without stopping at the first difference: a nonce's MAC is
/// never guessed a byte at a time.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"nonce-secret-0123456789abcdef0123456789";

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn nonces_rotate_and_live_for_two_slots() {
        let nonces = Nonces::new(SECRET, Duration::from_secs(60)).unwrap();
        let first = nonces.current_at(at(6_000));
        assert_eq!(first.len(), 24);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(nonces.current_at(at(6_059)), first);
        assert_eq!(nonces.freshness(&first, at(6_059)), Freshness::Current);
        let second = nonces.current_at(at(6_060));
        assert_ne!(second, first);
        assert_eq!(nonces.freshness(&first, at(6_119)), Freshness::Previous);
        assert_eq!(nonces.freshness(&first, at(6_120)), Freshness::Invalid);
        assert_eq!(nonces.freshness(&second, at(6_000)), Freshness::Invalid);
    }

    #[test]
    fn another_secret_or_period_makes_other_nonces() {
        let nonces = Nonces::new(SECRET, Duration::from_secs(60)).unwrap();
        let other = Nonces::new(
            b"another-secret-0123456789abcdef0123",
            Duration::from_secs(60),
        )
        .unwrap();
        let slower = Nonces::new(SECRET, Duration::from_secs(120)).unwrap();
        let nonce = nonces.current_at(at(6_000));
        assert!(!other.is_valid_at(&nonce, at(6_000)));
        assert!(!slower.is_valid_at(&nonce, at(6_000)));
        // Every instance with the same secret checks the same nonces.
        let twin = Nonces::new(SECRET, Duration::from_secs(60)).unwrap();
        assert!(twin.is_valid_at(&nonce, at(6_000)));
        for garbage in ["", "x", &nonce[1..], &format!("{nonce}A")] {
            assert!(!nonces.is_valid_at(garbage, at(6_000)), "{garbage}");
        }
    }

    #[test]
    fn weak_secrets_and_zero_periods_are_refused() {
        assert!(matches!(
            Nonces::new(b"short", Duration::from_secs(60)),
            Err(Error::WeakSecret { len: 5 })
        ));
        assert!(Nonces::new(SECRET, Duration::from_millis(500)).is_err());
        let debug = format!(
            "{:?}",
            Nonces::new(SECRET, Duration::from_secs(60)).unwrap()
        );
        assert!(!debug.contains("nonce-secret"), "{debug}");
    }
}
