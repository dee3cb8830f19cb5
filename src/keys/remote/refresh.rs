//! The background task: fetch at start, refresh on schedule or when a
//! request asks, keep the last good keys through failures up to the
//! maximum staleness, log what an operator wants to know.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Uri};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep_until};

use super::discovery;
use super::fetch::{self, Document, Fetched, Limits};
use super::schedule::{backoff, jitter, next_refresh, stale_at, too_stale};
use super::{FetchError, Shared, Status, Target};
use crate::keys::{KeySet, VerifyingKey};
use crate::metrics::{self, KeyFetch};

/// A successful fetch.
enum Update {
    Keys {
        set: KeySet,
        etag: Option<HeaderValue>,
        max_age: Option<std::time::Duration>,
    },
    NotModified {
        max_age: Option<std::time::Duration>,
    },
}

/// What the task remembers between fetches.
#[derive(Default)]
struct State {
    etag: Option<HeaderValue>,
    /// The JWKS URL, once discovered (OIDC) or as configured.
    jwks_uri: Option<Uri>,
    last_good: Option<Instant>,
    failures: u32,
    /// Keys skipped in the last document, so each is reported once.
    skipped: BTreeSet<String>,
}

/// Runs until `closed` fires (the last handle is dropped).
pub(super) async fn run(shared: Arc<Shared>, mut closed: oneshot::Receiver<()>) {
    let mut state = State::default();
    if let Target::Jwks(uri) = &shared.target {
        state.jwks_uri = Some(uri.clone());
    }
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            () = shared.wake.notified() => {
                if !lock(&shared).requested() {
                    continue; // a wake already served
                }
            }
            () = sleep_until(next) => {}
        }
        let asked = lock(&shared).begin();
        let result = tokio::select! {
            biased;
            _ = &mut closed => break,
            result = state.attempt(&shared) => result,
        };
        next = state.settle(&shared, &result, asked, Instant::now());
        lock(&shared).end();
        shared.done.send_modify(|status| {
            *status = Status {
                fetches: status.fetches.wrapping_add(1),
                keys: shared.store.guard().len(),
                last_success: state.last_good.map(Instant::into_std),
                next_fetch: Some(next.into_std()),
                failures: state.failures,
                last_error: result.err(),
            }
        });
    }
    tracing::debug!(source = %describe(&shared.target), "key source dropped; refresh task ends");
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, super::schedule::Gate> {
    shared.gate.lock().unwrap_or_else(|e| e.into_inner())
}

fn describe(target: &Target) -> String {
    match target {
        Target::Jwks(uri) => uri.to_string(),
        Target::Oidc { issuer, .. } => issuer.clone(),
    }
}

impl State {
    /// One fetch: discovery first when the JWKS URL is not known yet.
    async fn attempt(&mut self, shared: &Shared) -> Result<Update, FetchError> {
        let options = &shared.options;
        let limits = Limits {
            timeout: options.timeout,
            max_body: options.max_body_len,
            max_redirects: options.max_redirects,
        };
        let client = shared.client.as_ref();
        let jwks_uri = match (&self.jwks_uri, &shared.target) {
            (Some(uri), _) => uri.clone(),
            (None, Target::Oidc { issuer, discovery }) => {
                let uri = discovery::discover(client, issuer, discovery, limits).await?;
                tracing::debug!(%issuer, jwks_uri = %uri, "OpenID discovery");
                self.etag = None;
                self.jwks_uri = Some(uri.clone());
                uri
            }
            (None, Target::Jwks(uri)) => uri.clone(),
        };
        match fetch::get(
            client,
            &jwks_uri,
            self.etag.as_ref(),
            Document::Jwks,
            limits,
        )
        .await?
        {
            Fetched::NotModified { max_age } => Ok(Update::NotModified { max_age }),
            Fetched::Modified {
                body,
                etag,
                max_age,
            } => {
                let set = self.parse(&body, shared)?;
                Ok(Update::Keys { set, etag, max_age })
            }
        }
    }

    /// The usable keys of a document; each newly skipped key is reported
    /// once, at `warn`.
    fn parse(&mut self, body: &[u8], shared: &Shared) -> Result<KeySet, FetchError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| FetchError::Json(e.to_string()))?;
        let mut skipped = BTreeSet::new();
        let set = KeySet::parse_jwks_reporting(&value, &shared.options.jwk_policy, |jwk, err| {
            let kid = jwk.get("kid").and_then(|k| k.as_str()).unwrap_or("(none)");
            skipped.insert(format!("kid {kid:.64}: {err}"));
        })
        .map_err(|e| FetchError::Json(e.to_string()))?;
        for skip in skipped.difference(&self.skipped) {
            tracing::warn!(source = %describe(&shared.target), key = %skip, "JWK skipped");
        }
        self.skipped = skipped;
        if set.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        Ok(set)
    }

    /// Applies a fetch's outcome; returns when to fetch next.
    fn settle(
        &mut self,
        shared: &Shared,
        result: &Result<Update, FetchError>,
        asked: bool,
        now: Instant,
    ) -> Instant {
        let source = describe(&shared.target);
        let options = &shared.options;
        let max_age = match result {
            Ok(Update::Keys { set, etag, max_age }) => {
                metrics::key_fetch(KeyFetch::Ok);
                let held = shared.store.load();
                report_rotation(&source, &held, set, asked);
                let mut set = set.clone();
                set.keep_unchanged(&held);
                shared.store.replace(set);
                self.etag = etag.clone();
                *max_age
            }
            Ok(Update::NotModified { max_age }) => {
                metrics::key_fetch(KeyFetch::NotModified);
                tracing::debug!(%source, "JWK set not modified");
                *max_age
            }
            Err(err) => return self.failed(shared, &source, err, now),
        };
        if self.failures > 0 {
            tracing::info!(%source, failures = self.failures, "key source recovered");
        }
        self.failures = 0;
        self.last_good = Some(now);
        metrics::keys_age(Duration::ZERO);
        next_refresh(now, max_age, options)
    }

    fn failed(&mut self, shared: &Shared, source: &str, err: &FetchError, now: Instant) -> Instant {
        let options = &shared.options;
        self.failures = self.failures.saturating_add(1);
        metrics::key_fetch(KeyFetch::Failed);
        if let Some(last_good) = self.last_good {
            metrics::keys_age(now.saturating_duration_since(last_good));
        }
        let keys = shared.store.guard().len();
        if self.failures == 1 {
            tracing::warn!(%source, error = %err, keys, "key fetch failed; keeping the keys held");
        } else {
            tracing::debug!(%source, error = %err, failures = self.failures, "key fetch failed again");
        }
        if let Target::Oidc { .. } = shared.target {
            // The issuer may have moved its keys: discover again.
            self.jwks_uri = None;
        }
        if keys > 0 && too_stale(now, self.last_good, options.max_staleness) {
            tracing::warn!(%source, "keys too stale to keep; requests answer 503 until a fetch succeeds");
            shared.store.replace(KeySet::default());
            self.etag = None;
        }
        let retry = now + backoff(self.failures, options, jitter());
        match stale_at(self.last_good, options.max_staleness) {
            Some(deadline) if deadline > now && keys > 0 => retry.min(deadline),
            _ => retry,
        }
    }
}

/// Logs kids added and removed (`info`), or a routine refresh (`debug`).
fn report_rotation(source: &str, old: &KeySet, new: &KeySet, asked: bool) {
    let kids = |set: &KeySet| -> BTreeSet<String> { set.keys().iter().map(label).collect() };
    let (old, new) = (kids(old), kids(new));
    let added: Vec<_> = new.difference(&old).collect();
    let removed: Vec<_> = old.difference(&new).collect();
    if added.is_empty() && removed.is_empty() {
        tracing::debug!(%source, keys = new.len(), asked, "JWK set refreshed, unchanged");
    } else {
        tracing::info!(%source, ?added, ?removed, keys = new.len(), asked, "JWK set rotated");
    }
}

fn label(key: &VerifyingKey) -> String {
    format!("{}/{:?}", key.kid().unwrap_or("(no kid)"), key.algorithm())
}
