//! The loaded keys and which of them sign and are published when.

use tower_jwt_auth::issue::SigningKey;

#[derive(Debug)]
pub(super) struct RingKey {
    pub(super) activates_at: i64,
    pub(super) key: SigningKey,
}

/// Every stored key, oldest generation first.
#[derive(Debug)]
pub struct KeyRing {
    pub(super) keys: Vec<RingKey>,
}

impl KeyRing {
    /// The newest key whose activation time has come.
    pub fn signing_key(&self, now: i64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.activates_at <= now)
            .or_else(|| self.keys.first())
            .map(|k| &k.key)
    }

    /// Keys a verifier must know at `now`: upcoming ones, the active one,
    /// and retired ones whose tokens (`retention` seconds at most) may still
    /// be in use.
    pub fn published(&self, now: i64, retention: i64) -> Vec<&SigningKey> {
        let activations: Vec<i64> = self.keys.iter().map(|k| k.activates_at).collect();
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, _)| !expired(&activations, *i, now, retention))
            .map(|(_, k)| &k.key)
            .collect()
    }
}

/// Whether key `i` (of keys in generation order, given by activation time)
/// was superseded by a newer active key at least `retention` seconds before
/// `now`, so no token it signed can still be valid.
pub(super) fn expired(activations: &[i64], i: usize, now: i64, retention: i64) -> bool {
    let retired_at = activations[i + 1..]
        .iter()
        .copied()
        .filter(|&at| at <= now)
        .min();
    retired_at.is_some_and(|at| at + retention <= now)
}

#[cfg(test)]
mod tests {
    use tower_jwt_auth::Algorithm;

    use super::*;
    use crate::keys::generate_ed25519;

    fn ring(activations: &[i64]) -> KeyRing {
        let keys = activations
            .iter()
            .map(|&activates_at| {
                let (kid, der) = generate_ed25519().unwrap();
                RingKey {
                    activates_at,
                    key: SigningKey::from_pkcs8_der(Algorithm::EdDSA, kid, &der).unwrap(),
                }
            })
            .collect();
        KeyRing { keys }
    }

    fn kids(keys: Vec<&SigningKey>) -> Vec<String> {
        keys.into_iter().map(|k| k.kid().to_owned()).collect()
    }

    #[test]
    fn upcoming_key_is_published_but_does_not_sign_yet() {
        let r = ring(&[100, 200]);
        assert_eq!(r.signing_key(150).unwrap().kid(), r.keys[0].key.kid());
        assert_eq!(r.published(150, 60).len(), 2);
        assert_eq!(r.signing_key(200).unwrap().kid(), r.keys[1].key.kid());
    }

    #[test]
    fn only_keys_superseded_longer_than_the_retention_expire() {
        // Generation 1 active from 100, 2 from 200, 3 upcoming at 500.
        let at = [100, 200, 500];
        assert!(!expired(&at, 0, 259, 60));
        assert!(expired(&at, 0, 260, 60));
        assert!(!expired(&at, 1, 400, 0), "the active key stays");
        assert!(!expired(&at, 2, 400, 60), "upcoming keys stay");
        assert!(expired(&at, 1, 560, 60));
    }

    #[test]
    fn retired_key_is_published_until_its_tokens_expire() {
        let r = ring(&[100, 200]);
        let both = kids(vec![&r.keys[0].key, &r.keys[1].key]);
        assert_eq!(kids(r.published(259, 60)), both);
        assert_eq!(kids(r.published(260, 60)), vec![both[1].clone()]);
    }
}
