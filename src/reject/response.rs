//! The answers: RFC 6750 over HTTP, trailers-only over gRPC.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use super::{DpopChallenge, GRPC_MESSAGE, GRPC_STATUS, Rejection, RejectionKind, Scheme};

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// The header carrying a server nonce for DPoP proofs (RFC 9449 §8, §9).
pub const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// No rejection may be stored and replayed by a cache.
pub(crate) const NO_STORE: &str = "no-store";

impl Rejection {
    /// The default RFC 6750 HTTP answer, with `realm`.
    pub fn to_http_response(&self, realm: &str) -> Response<Bytes> {
        let status = self.status();
        let mut response = Response::new(self.json_body());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        } else {
            for challenge in self.challenges(realm) {
                if let Ok(challenge) = HeaderValue::from_str(&challenge) {
                    headers.append(WWW_AUTHENTICATE, challenge);
                }
            }
        }
        self.add_dpop_nonce(headers);
        response
    }

    /// Every challenge of the answer, one `WWW-Authenticate` field each:
    /// the Bearer one alone, or, from a layer accepting DPoP, the Bearer one
    /// (unless DPoP is required) and the DPoP one, the error code in the
    /// challenge of the scheme the request used (RFC 9449 §7.1, §7.2).
    fn challenges(&self, realm: &str) -> Vec<String> {
        let Some((dpop, scheme)) = self.dpop_challenge() else {
            return vec![self.challenge(realm)];
        };
        let dpop_error = dpop.required
            || scheme == Scheme::Dpop
            || matches!(
                self.kind(),
                RejectionKind::InvalidDpopProof(_) | RejectionKind::UseDpopNonce
            );
        let mut challenges = Vec::with_capacity(2);
        if !dpop.required {
            challenges.push(if dpop_error {
                format!("Bearer realm=\"{}\"", quote(realm))
            } else {
                self.challenge(realm)
            });
        }
        challenges.push(self.dpop_challenge_text(realm, dpop, dpop_error));
        challenges
    }

    /// `DPoP realm="…"[, error="…", error_description="…"[, scope="…"]], algs="…"`.
    fn dpop_challenge_text(&self, realm: &str, dpop: &DpopChallenge, with_error: bool) -> String {
        let mut text = format!("DPoP realm=\"{}\"", quote(realm));
        if let Some(code) = self.error_code().filter(|_| with_error) {
            text.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ));
            if let RejectionKind::InsufficientScope { required } = self.kind() {
                text.push_str(&format!(", scope=\"{}\"", quote(required)));
            }
        }
        text.push_str(&format!(", algs=\"{}\"", quote(&dpop.algs)));
        text
    }

    fn add_dpop_nonce(&self, headers: &mut http::HeaderMap) {
        if let Some(nonce) = self
            .dpop_nonce()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            headers.insert(DPOP_NONCE, nonce);
        }
    }

    /// The gRPC answer: HTTP 200, trailers-only, as tonic writes a `Status`.
    /// Meant for gRPC requests only (HTTP/2, or gRPC-web): anything that
    /// judges by the HTTP status reads it as a success.
    pub fn to_grpc_response(&self) -> Response<Bytes> {
        self.grpc_response_as("application/grpc")
    }

    /// The gRPC-web answer: as [`Rejection::to_grpc_response`], trailers-only
    /// (the status in the headers, as gRPC-web allows), with the gRPC-web
    /// content type tonic-web answers with; `text` for
    /// `application/grpc-web-text`.
    pub fn to_grpc_web_response(&self, text: bool) -> Response<Bytes> {
        self.grpc_response_as(if text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        })
    }

    fn grpc_response_as(&self, content_type: &'static str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
        headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_code().as_i32()));
        // The descriptions are plain ASCII without '%', so no percent-encoding is needed.
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static(self.description()));
        if matches!(self.kind(), RejectionKind::Unavailable) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        self.add_dpop_nonce(headers);
        response
    }

    /// The `Bearer` `WWW-Authenticate` challenge (RFC 6750 §3). A layer
    /// accepting DPoP answers with a `DPoP` challenge too (or instead, when
    /// it requires DPoP): [`Rejection::to_http_response`] writes them all.
    pub fn challenge(&self, realm: &str) -> String {
        let realm = quote(realm);
        match (self.error_code(), self.kind()) {
            (None, _) => format!("Bearer realm=\"{realm}\""),
            (Some(code), RejectionKind::InsufficientScope { required }) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\", scope=\"{}\"",
                self.description(),
                quote(required)
            ),
            (Some(code), _) => format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
                self.description()
            ),
        }
    }

    fn json_body(&self) -> Bytes {
        let code = self.error_code().unwrap_or("unauthorized");
        let body = match self.kind() {
            RejectionKind::InsufficientScope { required } => serde_json::json!({
                "error": code, "error_description": self.description(), "scope": required,
            }),
            _ => serde_json::json!({ "error": code, "error_description": self.description() }),
        };
        Bytes::from(body.to_string())
    }
}

/// RFC 6750 quoted strings exclude `"` and `\`, and a header value built
/// from a string holds visible ASCII and spaces only: drop the rest rather
/// than emit a header a client cannot parse, or none at all. Scopes
/// required by a [`Policy`](crate::Policy) are valid scope tokens already
/// (checked when it is built); this guards hand-made rejections and realms.
fn quote(value: &str) -> String {
    value
        .chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reject::{GrpcCode, Reason, RejectionKind};

    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let r = Rejection::from(RejectionKind::MissingToken).to_http_response("api");
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer realm=\"api\"");
    }

    #[test]
    fn invalid_token_descriptions_do_not_depend_on_the_reason() {
        let a =
            Rejection::from(RejectionKind::InvalidToken(Reason::Signature)).to_http_response("api");
        let b =
            Rejection::from(RejectionKind::InvalidToken(Reason::Expired)).to_http_response("api");
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.body(), b.body());
        assert!(
            a.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"api\", error=\"invalid_token\"")
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::from(RejectionKind::InsufficientScope {
            required: "movies:write".into(),
        });
        let http = r.to_http_response("api");
        assert_eq!(http.status(), 403);
        assert!(
            http.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with("scope=\"movies:write\"")
        );
        let body: serde_json::Value = serde_json::from_slice(http.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn grpc_answers_are_trailers_only() {
        let r = Rejection::from(RejectionKind::Unavailable).to_grpc_response();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "14");
        assert_eq!(
            Rejection::from(RejectionKind::Forbidden)
                .to_grpc_response()
                .headers()["grpc-status"],
            "7"
        );
        assert_eq!(
            Rejection::from(RejectionKind::MissingToken)
                .to_grpc_response()
                .headers()["grpc-status"],
            "16"
        );
        assert!(r.body().is_empty());
        let web = Rejection::from(RejectionKind::MissingToken).to_grpc_web_response(false);
        assert_eq!(web.headers()[CONTENT_TYPE], "application/grpc-web+proto");
        assert_eq!(web.headers()["grpc-status"], "16");
        let text = Rejection::from(RejectionKind::MissingToken).to_grpc_web_response(true);
        assert_eq!(
            text.headers()[CONTENT_TYPE],
            "application/grpc-web-text+proto"
        );
    }

    #[test]
    fn every_answer_is_no_store() {
        for rejection in [
            Rejection::from(RejectionKind::MissingToken),
            Rejection::from(RejectionKind::AmbiguousToken),
            Rejection::from(RejectionKind::InvalidToken(Reason::Expired)),
            Rejection::from(RejectionKind::Forbidden),
            Rejection::from(RejectionKind::Unavailable),
        ] {
            for response in [
                rejection.to_http_response("api"),
                rejection.to_grpc_response(),
                rejection.to_grpc_web_response(false),
            ] {
                assert_eq!(response.headers()[CACHE_CONTROL], "no-store", "{rejection}");
            }
        }
    }

    #[test]
    fn grpc_codes_are_typed_and_numbered_as_on_the_wire() {
        for (rejection, code, number) in [
            (
                Rejection::from(RejectionKind::MissingToken),
                GrpcCode::Unauthenticated,
                "16",
            ),
            (
                Rejection::from(RejectionKind::AmbiguousToken),
                GrpcCode::InvalidArgument,
                "3",
            ),
            (
                Rejection::from(RejectionKind::Forbidden),
                GrpcCode::PermissionDenied,
                "7",
            ),
            (
                Rejection::from(RejectionKind::Unavailable),
                GrpcCode::Unavailable,
                "14",
            ),
        ] {
            assert_eq!(rejection.grpc_code(), code);
            assert_eq!(rejection.to_grpc_response().headers()[GRPC_STATUS], number);
        }
    }

    #[test]
    fn unavailable_asks_to_retry() {
        let r = Rejection::from(RejectionKind::Unavailable).to_http_response("api");
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key(RETRY_AFTER));
    }

    #[test]
    fn scope_attribute_is_quoted_safely() {
        let r = Rejection::from(RejectionKind::InsufficientScope {
            required: "a\"b\\c d\r\né\u{7f}".into(),
        });
        let challenge = r.challenge("api");
        assert!(challenge.ends_with(", scope=\"abc d\""), "{challenge}");
        let http = r.to_http_response("réalm");
        assert_eq!(
            http.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"ralm\", error=\"insufficient_scope\", \
             error_description=\"The access token lacks the required scope\", scope=\"abc d\""
        );
    }

    #[test]
    fn realm_cannot_break_the_header() {
        assert_eq!(
            Rejection::from(RejectionKind::MissingToken).challenge("a\"b\\c"),
            "Bearer realm=\"abc\""
        );
    }
}
