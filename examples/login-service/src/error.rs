//! One JSON error shape for every failure this service produces itself,
//! matching the `{"error", "error_description"}` body of the library's
//! RFC 6750 rejections so clients parse a single format.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `invalid_credentials`.
    #[schema(example = "invalid_request")]
    pub error: String,
    /// A human-readable explanation; never echoes secrets.
    pub error_description: String,
}

/// An error that renders as [`ErrorBody`] with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
    retry_after: Option<u64>,
    /// A `DPoP-Nonce` to send (RFC 9449 §8), with `use_dpop_nonce`.
    dpop_nonce: Option<HeaderValue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            retry_after: None,
            dpop_nonce: None,
        }
    }

    /// Sends `nonce` in a `DPoP-Nonce` header, if it is a valid header value.
    pub fn with_dpop_nonce(mut self, nonce: &str) -> Self {
        self.dpop_nonce = HeaderValue::from_str(nonce).ok();
        self
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn unprocessable(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            description,
        )
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "email or password is incorrect",
        )
    }

    pub fn too_many_attempts(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed login attempts; retry later",
            )
        }
    }

    pub fn too_many_registrations(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many registrations from this address; retry later",
            )
        }
    }

    /// A dependency cannot answer now: 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, description)
        }
    }

    /// A DPoP proof at the token endpoints (login, refresh) was refused
    /// (RFC 9449 §5): 400 `invalid_dpop_proof`.
    pub fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    #[cfg(test)]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    #[cfg(test)]
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Logs the cause and hides it: database errors can carry SQL and values.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // The store being unreachable is an outage, not a bug: 503 tells
            // clients and load balancers to come back.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(cause = %err, "database unavailable");
                Self {
                    retry_after: Some(5),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "the database is unavailable",
                    )
                }
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            error_description: self.description,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(nonce) = self.dpop_nonce {
            response
                .headers_mut()
                .insert(tower_jwt_auth::reject::DPOP_NONCE, nonce);
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_request",
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

/// `axum::Json` whose rejections are JSON [`ErrorBody`] responses
/// (400 syntax, 413 too large, 415 content type, 422 shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with a JSON 400 rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` with a JSON 400 rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Unknown paths get the same JSON shape as every other error.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn extract(content_type: Option<&str>, body: &'static str) -> ApiError {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Input {
            email: String,
        }
        let mut builder = axum::http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let req = builder.body(Body::from(body)).unwrap();
        Json::<Input>::from_request(req, &()).await.unwrap_err()
    }

    #[tokio::test]
    async fn json_rejections_map_to_clear_statuses() {
        let syntax = extract(Some("application/json"), "{").await;
        assert_eq!(syntax.status(), StatusCode::BAD_REQUEST);
        let shape = extract(Some("application/json"), "{}").await;
        assert_eq!(shape.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let media = extract(Some("text/plain"), "{}").await;
        assert_eq!(media.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let missing = extract(None, "{}").await;
        assert_eq!(missing.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(missing.code(), "unsupported_media_type");
    }

    #[tokio::test]
    async fn retry_after_is_sent_for_throttling() {
        let response = ApiError::too_many_attempts(42).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }
}
