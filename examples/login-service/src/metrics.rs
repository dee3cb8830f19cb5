//! Prometheus metrics, served on a listener of their own when asked for
//! (`--metrics-listen`): the service's logins, throttles, registrations and
//! password hashing, and the library's `tower_jwt_auth_*` metrics from the
//! layer that protects its routes.
//!
//! `metrics-exporter-prometheus` keeps the values and renders the text
//! format; the route is served here with axum rather than by the exporter's
//! own HTTP listener (its default features), which would bring a second
//! HTTP server stack and a push-gateway client with its own TLS. Served
//! here, the scrape samples the hashing gauges at the moment it is read,
//! stops with the service, and answers nothing but `GET /metrics`.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{BoxError, Hasher};

/// Counter: successful logins.
pub const LOGIN_SUCCESSES: &str = "login_service_login_successes_total";
/// Counter: refused logins, by `reason`: `bad_credentials` (unknown email
/// or wrong password: one answer for both) or `throttled` (429).
pub const LOGIN_FAILURES: &str = "login_service_login_failures_total";
/// Counter: attempts refused with 429, by `action`: `login` or
/// `registration`.
pub const THROTTLED: &str = "login_service_throttled_total";
/// Counter: accounts created through `POST /auth/register`.
pub const REGISTRATIONS: &str = "login_service_registrations_total";
/// Gauge: password hashes waiting for a permit (the hashing queue's depth).
pub const HASHES_WAITING: &str = "login_service_password_hashes_waiting";
/// Gauge: password hashes running.
pub const HASHES_RUNNING: &str = "login_service_password_hashes_running";
/// Gauge: the most password hashes that may run at once.
pub const HASH_PERMITS: &str = "login_service_password_hash_permits";
/// Counter: password hashes started (logins and registrations).
pub const HASHES: &str = "login_service_password_hashes_total";

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginFailure {
    /// Unknown email or wrong password.
    BadCredentials,
    /// Too many failed attempts: 429.
    Throttled,
}

/// A login that returned tokens.
pub(crate) fn login_succeeded() {
    metrics::counter!(LOGIN_SUCCESSES).increment(1);
}

/// A refused login; a throttled one counts as a throttle too.
pub(crate) fn login_failed(why: LoginFailure) {
    let reason = match why {
        LoginFailure::BadCredentials => "bad_credentials",
        LoginFailure::Throttled => "throttled",
    };
    metrics::counter!(LOGIN_FAILURES, "reason" => reason).increment(1);
    if why == LoginFailure::Throttled {
        metrics::counter!(THROTTLED, "action" => "login").increment(1);
    }
}

/// A registration refused with 429.
pub(crate) fn registration_throttled() {
    metrics::counter!(THROTTLED, "action" => "registration").increment(1);
}

/// An account created through the API.
pub(crate) fn registered() {
    metrics::counter!(REGISTRATIONS).increment(1);
}

/// Describes the service's metrics and the library's to the installed
/// recorder.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(LOGIN_SUCCESSES, Unit::Count, "Successful logins.");
    describe_counter!(
        LOGIN_FAILURES,
        Unit::Count,
        "Refused logins, by reason: bad_credentials, throttled."
    );
    describe_counter!(
        THROTTLED,
        Unit::Count,
        "Attempts refused with 429, by action: login, registration."
    );
    describe_counter!(
        REGISTRATIONS,
        Unit::Count,
        "Accounts created through POST /auth/register."
    );
    describe_gauge!(
        HASHES_WAITING,
        Unit::Count,
        "Password hashes waiting for a permit: the hashing queue's depth."
    );
    describe_gauge!(HASHES_RUNNING, Unit::Count, "Password hashes running.");
    describe_gauge!(
        HASH_PERMITS,
        Unit::Count,
        "The most password hashes that may run at once."
    );
    describe_counter!(HASHES, Unit::Count, "Password hashes started.");
    tower_jwt_auth::metrics::describe();
}

/// The process's Prometheus recorder; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the Prometheus recorder as the process's `metrics` recorder
    /// and describes every metric. Install it before building the app, so
    /// that nothing is recorded into the void. The recorder is per process:
    /// a second call returns the first one's.
    ///
    /// # Errors
    /// When another `metrics` recorder is installed already.
    pub fn install() -> Result<Self, BoxError> {
        static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = &*installed {
            return Ok(Self {
                handle: handle.clone(),
            });
        }
        let handle = PrometheusBuilder::new().install_recorder()?;
        describe();
        *installed = Some(handle.clone());
        Ok(Self { handle })
    }

    /// The metrics as Prometheus text, with the hashing gauges of `hasher`
    /// read now.
    pub fn render(&self, hasher: &Hasher) -> String {
        let load = hasher.load();
        metrics::gauge!(HASHES_WAITING).set(load.waiting as f64);
        metrics::gauge!(HASHES_RUNNING).set(load.running as f64);
        metrics::gauge!(HASH_PERMITS).set(load.permits as f64);
        metrics::counter!(HASHES).absolute(load.started as u64);
        // Without the exporter's own listener nothing else runs its upkeep
        // (it drains histograms; none here yet, but the library may add some).
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// `GET /metrics`, and nothing else.
    pub fn router(&self, hasher: Hasher) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state((self.clone(), hasher))
    }

    /// Serves [`Self::router`] on `listener` until `shutdown` resolves.
    ///
    /// # Errors
    /// When accepting connections fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        hasher: Hasher,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router(hasher))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn scrape(State((metrics, hasher)): State<(Metrics, Hasher)>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(&hasher),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counters under their labels and the hashing gauges read at
    /// render time, with a recorder of this test's own.
    #[tokio::test(flavor = "current_thread")]
    async fn renders_counters_by_label_and_samples_the_hasher() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = Metrics {
            handle: recorder.handle(),
        };
        let hasher = Hasher::new().await;
        let hash = hasher.hash("correct horse".into()).await;
        assert!(hasher.verify("correct horse".into(), Some(hash)).await);
        let text = metrics::with_local_recorder(&recorder, || {
            describe();
            login_succeeded();
            login_failed(LoginFailure::BadCredentials);
            login_failed(LoginFailure::BadCredentials);
            login_failed(LoginFailure::Throttled);
            registration_throttled();
            registered();
            metrics.render(&hasher)
        });
        let permits = hasher.load().permits;
        for line in [
            "# TYPE login_service_login_successes_total counter".to_owned(),
            "login_service_login_successes_total 1".to_owned(),
            r#"login_service_login_failures_total{reason="bad_credentials"} 2"#.to_owned(),
            r#"login_service_login_failures_total{reason="throttled"} 1"#.to_owned(),
            r#"login_service_throttled_total{action="login"} 1"#.to_owned(),
            r#"login_service_throttled_total{action="registration"} 1"#.to_owned(),
            "login_service_registrations_total 1".to_owned(),
            "# TYPE login_service_password_hashes_waiting gauge".to_owned(),
            "login_service_password_hashes_waiting 0".to_owned(),
            "login_service_password_hashes_running 0".to_owned(),
            format!("login_service_password_hash_permits {permits}"),
            "login_service_password_hashes_total 2".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
    }
}
