//! Device cookies, after OWASP's "Slow Down Online Guessing Attacks with
//! Device Cookies": a browser that once logged in to an account carries a
//! cookie proving it, and is then judged by its own failures only, so an
//! attacker who keeps an account locked for untrusted clients does not lock
//! its owner out.
//!
//! The cookie is `nonce.issued_at.mac`, the MAC an HMAC-SHA256 over the
//! account digest, nonce and time with a server secret. It names no account
//! and needs no table: only the failures of a device are stored, in the
//! throttle table under its nonce. It never replaces the password.
//!
//! The secret lives in the database (`device_cookie_secrets`), created by
//! the first instance to start, so every instance on that database accepts
//! the others' cookies without configuration, as with the signing keys. Like
//! them it is stored encrypted under the key-encryption key: a reader of the
//! database or a backup could otherwise forge a cookie per guess and escape
//! the account lockout. `keys rewrap` moves it to a new KEK with the keys.
//! Deleting the row (and restarting) makes every device untrusted again,
//! which is harmless, and changes the DPoP nonces derived from the secret
//! (`--dpop-nonce-secs`): each client is asked for a new nonce once; during
//! a rolling restart, instances on the old and the new secret refuse each
//! other's nonces until all have restarted.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::kek::{self, Kek};
use crate::store::{Store, now, secs};

pub const COOKIE_NAME: &str = "login_device";
/// What the secret is sealed for (the AEAD's associated data), as a
/// signing key is sealed for its kid.
pub const SECRET_AD: &str = "device-cookie-secret";

#[derive(Clone)]
pub struct DeviceCookies {
    secret: std::sync::Arc<[u8]>,
    /// `Secure` unless the issuer is plain http on loopback (development),
    /// where a browser would refuse to store a `Secure` cookie.
    secure: bool,
    /// The issuer's path followed by `/auth`: sent to the login route only.
    path: String,
    ttl_secs: i64,
}

impl std::fmt::Debug for DeviceCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCookies")
            .field("secure", &self.secure)
            .field("path", &self.path)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl DeviceCookies {
    /// Loads the shared secret, creating it if this is the first start.
    ///
    /// # Errors
    /// When the database cannot be read or written.
    pub async fn bootstrap(
        store: &Store,
        kek: &Kek,
        issuer: &str,
        ttl: std::time::Duration,
    ) -> Result<Self, crate::BoxError> {
        let candidate = kek.seal(SECRET_AD, &random::<32>())?;
        let stored = store.device_cookie_secret(&candidate, now()).await?;
        let secret = if kek::is_sealed(&stored) {
            kek.open(SECRET_AD, &stored)?
        } else {
            // Stored in plaintext by a version before encryption.
            let secret = URL_SAFE_NO_PAD.decode(&stored)?;
            store
                .reseal_device_cookie_secret(&stored, &kek.seal(SECRET_AD, &secret)?)
                .await?;
            secret
        };
        let (secure, path) = cookie_scope(issuer);
        Ok(Self {
            secret: secret.into(),
            secure,
            path,
            ttl_secs: secs(ttl),
        })
    }

    /// The nonce of the first device cookie in `headers` that this service
    /// signed for `account` (an [`crate::throttle::account_digest`]) and
    /// that has not expired. Anything else, forged, tampered with, for
    /// another account or malformed, is `None`: an untrusted client.
    pub fn trusted(&self, headers: &HeaderMap, account: &str) -> Option<String> {
        let now = now();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE_NAME)
            .find_map(|(_, value)| self.check(value, account, now))
    }

    fn check(&self, value: &str, account: &str, now: i64) -> Option<String> {
        let mut parts = value.split('.');
        let (nonce, issued, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.is_empty() || nonce.len() > 64 {
            return None;
        }
        let issued_at: i64 = issued.parse().ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.mac(account, nonce, issued_at)
            .verify_slice(&mac)
            .ok()?;
        let fresh = issued_at <= now + 60 && now < issued_at.saturating_add(self.ttl_secs);
        fresh.then(|| nonce.to_owned())
    }

    /// A `Set-Cookie` value for a new device cookie for `account`.
    pub fn issue(&self, account: &str) -> HeaderValue {
        let nonce = URL_SAFE_NO_PAD.encode(random::<16>());
        let issued_at = now();
        let mac =
            URL_SAFE_NO_PAD.encode(self.mac(account, &nonce, issued_at).finalize().into_bytes());
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE_NAME}={nonce}.{issued_at}.{mac}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            self.path, self.ttl_secs
        );
        HeaderValue::from_str(&cookie).expect("base64, digits and ASCII attributes")
    }

    /// A key for `purpose`, derived from the stored secret (HMAC-SHA256
    /// of a label naming the purpose): every instance on the database
    /// derives the same one, as it reads the same secret, and no device
    /// cookie's MAC input can equal the label (it starts differently).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(format!("login-service derived key v1|{purpose}").as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, account: &str, nonce: &str, issued_at: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        // The parts are base64url and digits: '|' cannot occur in them.
        mac.update(
            format!("login-service device cookie v1|{account}|{nonce}|{issued_at}").as_bytes(),
        );
        mac
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    argon2::password_hash::rand_core::RngCore::fill_bytes(
        &mut argon2::password_hash::rand_core::OsRng,
        &mut bytes,
    );
    bytes
}

/// Whether the cookie is `Secure`, and its path, from the issuer URL.
fn cookie_scope(issuer: &str) -> (bool, String) {
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let secure = !(scheme.eq_ignore_ascii_case("http") && loopback);
    // Only characters that are safe in a cookie attribute.
    let path: String = path
        .trim_end_matches('/')
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ';' && *c != ',')
        .collect();
    (secure, format!("{path}/auth"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        headers
    }

    #[tokio::test]
    async fn instances_on_one_database_share_the_secret_and_trust_each_others_cookies() {
        let path = std::env::temp_dir().join(format!("devices_{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url, 1).await.unwrap();
        let ttl = std::time::Duration::from_secs(3600);
        let kek = Kek::ephemeral();
        let a = DeviceCookies::bootstrap(&store, &kek, "http://127.0.0.1:1", ttl)
            .await
            .unwrap();
        let b = DeviceCookies::bootstrap(&store, &kek, "http://127.0.0.1:2", ttl)
            .await
            .unwrap();
        let cookie = jar(&a.issue("account-a"));
        assert!(b.trusted(&cookie, "account-a").is_some());
        assert!(b.trusted(&cookie, "account-b").is_none());
        let expired = DeviceCookies {
            ttl_secs: 0,
            ..b.clone()
        };
        assert!(expired.trusted(&cookie, "account-a").is_none());
        // Derived keys: the same on every instance, one per purpose, and
        // neither the secret itself nor anything another secret derives.
        assert_eq!(a.derive_key("dpop-nonce"), b.derive_key("dpop-nonce"));
        assert_ne!(a.derive_key("dpop-nonce"), a.derive_key("other"));
        assert_ne!(&a.derive_key("dpop-nonce")[..], &*a.secret);
        let stranger = DeviceCookies {
            secret: vec![9u8; 32].into(),
            ..a.clone()
        };
        assert_ne!(
            stranger.derive_key("dpop-nonce"),
            a.derive_key("dpop-nonce")
        );
        store.close().await;
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn the_secret_is_stored_sealed_and_opens_only_under_the_kek() {
        let path = std::env::temp_dir().join(format!("devices_{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url, 1).await.unwrap();
        let ttl = std::time::Duration::from_secs(3600);
        // A secret left in plaintext by a version before encryption.
        let plaintext = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(
            store.device_cookie_secret(&plaintext, now()).await.unwrap(),
            plaintext
        );
        let kek = Kek::ephemeral();
        let devices = DeviceCookies::bootstrap(&store, &kek, "http://127.0.0.1:1", ttl)
            .await
            .unwrap();
        assert_eq!(&*devices.secret, &[7u8; 32], "the old secret is kept");
        let stored = store.device_cookie_secret("unused", now()).await.unwrap();
        assert!(kek::is_sealed(&stored), "sealed on start: {stored}");
        assert!(!stored.contains(&plaintext));
        assert_eq!(kek.open(SECRET_AD, &stored).unwrap(), [7u8; 32]);
        // Another KEK opens nothing and changes nothing.
        let other = DeviceCookies::bootstrap(&store, &Kek::ephemeral(), "http://x", ttl).await;
        assert!(other.is_err());
        assert_eq!(
            store.device_cookie_secret("unused", now()).await.unwrap(),
            stored
        );
        store.close().await;
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn cookies_are_secure_except_for_plain_http_on_loopback() {
        assert_eq!(
            cookie_scope("http://127.0.0.1:3000"),
            (false, "/auth".into())
        );
        assert_eq!(
            cookie_scope("http://localhost:3000/"),
            (false, "/auth".into())
        );
        assert_eq!(cookie_scope("http://[::1]:3000"), (false, "/auth".into()));
        assert_eq!(cookie_scope("https://127.0.0.1"), (true, "/auth".into()));
        assert_eq!(
            cookie_scope("https://id.example.com/login"),
            (true, "/login/auth".into())
        );
        assert_eq!(
            cookie_scope("http://id.example.com"),
            (true, "/auth".into())
        );
    }
}
