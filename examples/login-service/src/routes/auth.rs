//! Registration, login, refresh, logout and the caller's claims.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_jwt_auth::axum::Claims;
use tower_jwt_auth::dpop::DpopProof;
use utoipa::ToSchema;

use super::responses::{BearerRejection, JsonBodyRejections, TokenEndpointRejections};
use crate::AppState;
use crate::dpop;
use crate::error::{ApiError, ErrorBody, Json};
use crate::metrics::{self, LoginFailure};
use crate::passwords;
use crate::sessions::{AccessClaims, TokenResponse};
use crate::throttle::{self, Admission};
use crate::users::{self, Account, CreateError};

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Trimmed; compared case-insensitively. One `@` between non-empty
    /// parts without spaces or control characters.
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = "^[ \\t\\n\\r]*[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u2069\\u3000\\ufeff]+@[^@\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u2069\\u3000\\ufeff]+[ \\t\\n\\r]*$"
    )]
    pub email: String,
    /// 8 to 128 characters, never truncated.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    pub password: String,
    #[schema(example = "Ada Lovelace", max_length = 100, pattern = "^[^\\u0000]*$")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The optional `DPoP` proof header of the token endpoints.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "parameter documentation, never constructed")]
pub struct DpopHeader {
    /// A DPoP proof (RFC 9449): a JWT of `typ` `dpop+jwt` signed by the
    /// client's key, with `htm` `POST`, `htu` this endpoint's URL (under
    /// the issuer URL), a fresh `iat` and a unique `jti`, and no `ath`.
    /// With it, the access token is bound to the key (`cnf.jkt`,
    /// `token_type: DPoP`) and so is the refresh token: it then works only
    /// with a proof by the same key. Without it, Bearer tokens as before.
    #[param(rename = "DPoP")]
    dpop: Option<String>,
}

/// Token responses must not be cached (RFC 6749 §5.1).
fn no_store(body: TokenResponse) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A token endpoint's answer, success or error, with the newer DPoP nonce
/// `proof` earned (it carried the previous one), so a client that fails
/// here for another reason has the current nonce for its next attempt.
fn answer(result: Result<Response, ApiError>, proof: Option<&DpopProof>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    dpop::hand_on_nonce(response.headers_mut(), proof);
    response
}

/// Create an account with the `user` role.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = Account),
        JsonBodyRejections,
        (status = 409, description = "Email already registered", body = ErrorBody),
        (status = 422, description = "Missing field, invalid email or password policy", body = ErrorBody),
        (status = 429, description = "Too many registrations from this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    if let Some(name) = &req.name {
        super::reject_nul("name", name)?;
    }
    // Invalid input costs no hash: answer it before counting.
    users::validate(&req.email, &req.password, req.name.as_deref(), "user")
        .map_err(ApiError::unprocessable)?;
    let client = state.client_key(peer.ip(), &headers);
    if let Some(wait) = state.throttle.reserve_registration(&client).await? {
        metrics::registration_throttled();
        return Err(ApiError::too_many_registrations(wait));
    }
    match users::create(
        &state.store,
        &state.hasher,
        &req.email,
        req.password,
        req.name,
        "user",
    )
    .await
    {
        Ok(account) => {
            tracing::info!(user = %account.id, "account registered");
            metrics::registered();
            Ok((StatusCode::CREATED, Json(account)))
        }
        Err(CreateError::Invalid(why)) => Err(ApiError::unprocessable(why)),
        Err(CreateError::Taken) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "an account with this email exists",
        )),
        Err(CreateError::Db(e)) => Err(e.into()),
    }
}

/// Exchange email and password for an access token and a refresh token.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    params(
        ("login_device" = Option<String>, Cookie,
            description = "The device cookie from an earlier successful login to this account, if any"),
        DpopHeader,
    ),
    responses(
        (status = 200, description = "Logged in; `token_type` is `DPoP` when a proof was sent", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "A new device cookie `login_device` (HttpOnly, SameSite=Strict, Path=/auth; Secure unless the issuer is http on loopback). Presented at later logins to this account, it exempts this browser from the account lockout that failures by others cause; it has its own small failure budget and never replaces the password."),
                ("DPoP-Nonce" = String, description = "When the proof carried the server's previous nonce (with --dpop-nonce-secs): the current one, for the next proof"))),
        TokenEndpointRejections,
        (status = 401, description = "Unknown email or wrong password (one answer for both)", body = ErrorBody,
            headers(("DPoP-Nonce" = String, description = "As on the 200"))),
        (status = 422, description = "Missing field", body = ErrorBody),
        (status = 429, description = "Too many failed attempts for this account (untrusted clients), this device cookie or this client address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database, or the DPoP replay store (Redis) of a request with a proof, unavailable", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    // A refused proof is the client's mistake, not a failed login: it is
    // answered before anything is counted or hashed.
    let proof = state
        .dpop
        .token_endpoint_proof(&method, &uri, &headers)
        .await?;
    let result = log_in(&state, peer, &headers, req, proof.as_ref()).await;
    Ok(answer(result, proof.as_ref()))
}

/// The login after its proof, if any, was accepted.
async fn log_in(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    req: LoginRequest,
    proof: Option<&DpopProof>,
) -> Result<Response, ApiError> {
    let key = users::email_key(&req.email);
    let client = state.client_key(peer.ip(), headers);
    let account = throttle::account_digest(&key);
    // A browser that logged in to this account before is judged by its own
    // failures, not by the account lockout others may have caused.
    let counters = match state.devices.trusted(headers, &account) {
        Some(device) => throttle::LoginKeys::device(&device),
        None => throttle::LoginKeys::untrusted(&account, &client),
    };
    // Decided and counted before the slow hash: parallel guesses cannot
    // all pass a check none of them has recorded yet.
    // The account is read in the same transaction; a key with NUL in it
    // cannot name one.
    let email_key = (!key.contains('\0')).then_some(key.as_str());
    let found = match state.throttle.reserve_login(&counters, email_key).await? {
        Admission::Admitted(found) => found,
        Admission::Refused(wait) => {
            metrics::login_failed(LoginFailure::Throttled);
            return Err(ApiError::too_many_attempts(wait));
        }
    };
    let (subject, stored_hash) = found.unzip();
    // An over-long password cannot be anyone's; verify a placeholder so the
    // work stays the same and the attacker's length does not drive the cost.
    let acceptable = req.password.chars().count() <= passwords::MAX_CHARS;
    let candidate = if acceptable {
        req.password
    } else {
        String::new()
    };
    let verified = state.hasher.verify(candidate, stored_hash).await && acceptable;

    match subject {
        Some(subject) if verified => {
            // The throttle's release and the new session: one commit.
            let release = state.throttle.succeeded(&counters);
            let jkt = proof.map(|proof| proof.jkt.as_str());
            let tokens = state.sessions.start(&subject, Some(&release), jkt).await?;
            tracing::info!(user = %subject.id, "login succeeded");
            metrics::login_succeeded();
            let mut response = no_store(tokens);
            response
                .headers_mut()
                .insert(header::SET_COOKIE, state.devices.issue(&account));
            Ok(response)
        }
        _ => {
            // Counted by the reservation already.
            state.throttle.failed(&counters).await?;
            tracing::info!(client = %client, "login failed");
            metrics::login_failed(LoginFailure::BadCredentials);
            Err(ApiError::invalid_credentials())
        }
    }
}

/// Exchange a refresh token for a new pair. Each refresh token works once;
/// presenting a used one revokes its whole session.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    params(DpopHeader),
    responses(
        (status = 200, description = "New token pair; `token_type` is `DPoP` when a proof was sent", body = TokenResponse,
            headers(("DPoP-Nonce" = String, description = "When the proof carried the server's previous nonce (with --dpop-nonce-secs): the current one, for the next proof"))),
        TokenEndpointRejections,
        (status = 401, description = "Refresh token invalid, expired, reused or revoked", body = ErrorBody,
            headers(("DPoP-Nonce" = String, description = "As on the 200"))),
        (status = 422, description = "Missing field", body = ErrorBody),
        (status = 503, description = "Database, or the DPoP replay store (Redis) of a request with a proof, unavailable", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let proof = state
        .dpop
        .token_endpoint_proof(&method, &uri, &headers)
        .await?;
    let jkt = proof.as_ref().map(|proof| proof.jkt.as_str());
    let result = state.sessions.refresh(&req.refresh_token, jkt).await;
    Ok(answer(result.map(no_store), proof.as_ref()))
}

/// End the session: revokes its refresh tokens and this access token.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 204, description = "Logged out"),
        BearerRejection,
        (status = 503, description = "Revocation store, or the DPoP replay store of a DPoP request, unavailable", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Claims(claims): Claims<AccessClaims>,
) -> Result<StatusCode, ApiError> {
    state.sessions.logout(&claims).await?;
    tracing::info!(user = %claims.sub, "logged out");
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere: revokes every session of the caller's account and
/// every access token issued to it up to now (this second included), on
/// every instance and every resource server that mirrors revocations.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 204, description = "Every session ended; every access token issued so far refused"),
        BearerRejection,
        (status = 503, description = "Database, revocation store or DPoP replay store unavailable", body = ErrorBody),
    )
)]
pub async fn logout_all(
    State(state): State<AppState>,
    Claims(claims): Claims<AccessClaims>,
) -> Result<StatusCode, ApiError> {
    state.sessions.logout_everywhere(&claims).await?;
    tracing::info!(user = %claims.sub, "logged out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// The verified claims of the caller's access token.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    security(("bearer" = []), ("dpop" = [])),
    responses(
        (status = 200, description = "The caller's claims", body = AccessClaims),
        BearerRejection,
        (status = 503, description = "Revocation store, or the DPoP replay store of a DPoP request, unavailable", body = ErrorBody),
    )
)]
pub async fn me(Claims(claims): Claims<AccessClaims>) -> Json<AccessClaims> {
    Json(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn documented_email_pattern_is_the_one_the_server_enforces() {
        let schema = serde_json::to_value(RegisterRequest::schema()).unwrap();
        assert_eq!(
            schema["properties"]["email"]["pattern"],
            users::EMAIL_PATTERN,
            "{schema}"
        );
    }
}
