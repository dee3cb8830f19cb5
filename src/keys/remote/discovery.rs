//! OpenID Connect discovery: the issuer's
//! `/.well-known/openid-configuration` names its `jwks_uri`, and must name
//! exactly the configured issuer.

use http::Uri;
use serde::Deserialize;

use super::client::HttpClient;
use super::fetch::{self, Document, Fetched, Limits};
use super::{FetchError, location};

/// The members of a discovery document this crate reads.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Fetches the discovery document at `url` and returns its `jwks_uri`.
pub(crate) async fn discover(
    client: &dyn HttpClient,
    issuer: &str,
    url: &Uri,
    limits: Limits,
) -> Result<Uri, FetchError> {
    match fetch::get(client, url, None, Document::Discovery, limits).await? {
        Fetched::Modified { body, .. } => jwks_uri(&body, issuer),
        Fetched::NotModified { .. } => Err(FetchError::Discovery(
            "304 Not Modified to an unconditional request".into(),
        )),
    }
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly
/// `issuer` (OpenID Connect Discovery §4.3), checked like a configured URL.
pub(crate) fn jwks_uri(body: &[u8], issuer: &str) -> Result<Uri, FetchError> {
    let metadata: Metadata = serde_json::from_slice(body)
        .map_err(|e| FetchError::Json(format!("discovery document: {e}")))?;
    if metadata.issuer != issuer {
        return Err(FetchError::Discovery(format!(
            "the document's issuer {:?} is not the configured {issuer:?}",
            metadata.issuer.chars().take(200).collect::<String>()
        )));
    }
    location::parse(&metadata.jwks_uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://id.example.com";

    #[test]
    fn reads_jwks_uri_of_the_right_issuer() {
        let doc = br#"{"issuer":"https://id.example.com","jwks_uri":"https://id.example.com/keys","other":1}"#;
        assert_eq!(
            jwks_uri(doc, ISSUER).unwrap().to_string(),
            "https://id.example.com/keys"
        );
    }

    #[test]
    fn refuses_another_issuer_even_nearly_equal() {
        for issuer in [
            "https://id.example.com/",
            "https://ID.example.com",
            "https://evil.example.com",
        ] {
            let doc =
                format!(r#"{{"issuer":"{issuer}","jwks_uri":"https://id.example.com/keys"}}"#);
            assert!(
                matches!(
                    jwks_uri(doc.as_bytes(), ISSUER),
                    Err(FetchError::Discovery(_))
                ),
                "{issuer}"
            );
        }
    }

    #[test]
    fn refuses_bad_documents() {
        for doc in [
            &br#"{"issuer":"https://id.example.com"}"#[..],
            br#"{"issuer":"https://id.example.com","jwks_uri":"http://id.example.com/keys"}"#,
            br#"{"issuer":"https://id.example.com","jwks_uri":7}"#,
            br#"{"issuer":"https://id.example.com","issuer":"https://id.example.com","jwks_uri":"https://a/k"}"#,
            b"<html>",
        ] {
            assert!(jwks_uri(doc, ISSUER).is_err(), "{}", String::from_utf8_lossy(doc));
        }
    }
}
