//! The builder methods of a remote key source, kept beside it so that the
//! builder itself only carries one field for them.

use serde::de::DeserializeOwned;

use super::{HttpClient, RemoteKeys, RemoteOptions};
use crate::builder::JwtAuthBuilder;
use crate::error::Error;
use crate::keys::KeyStore;

/// What the builder was told about remote keys.
#[derive(Debug, Default)]
pub(crate) struct RemoteSetup {
    source: Option<Source>,
    options: RemoteOptions,
}

#[derive(Debug)]
enum Source {
    Jwks(String),
    Oidc(String),
    Ready(RemoteKeys),
}

impl RemoteSetup {
    fn set(&mut self, source: Source) -> Result<(), Error> {
        if self.source.is_some() {
            return Err(Error::Config("one remote key source per layer".into()));
        }
        self.source = Some(source);
        Ok(())
    }

    /// The source to start, if any, and the store the layer reads: the
    /// source's, or `store` when there is no source.
    pub(crate) fn build(
        self,
        store: Option<KeyStore>,
        has_keys: bool,
    ) -> Result<(Option<RemoteKeys>, Option<KeyStore>), Error> {
        let remote = match self.source {
            None => return Ok((None, store)),
            Some(_) if store.is_some() || has_keys => {
                return Err(Error::Config(
                    "use either a remote key source or local keys".into(),
                ));
            }
            Some(Source::Ready(keys)) => keys,
            Some(Source::Jwks(url)) => RemoteKeys::jwks_url(&url, self.options)?,
            Some(Source::Oidc(issuer)) => RemoteKeys::oidc_issuer(&issuer, self.options)?,
        };
        let store = remote.key_store().clone();
        Ok((Some(remote), Some(store)))
    }
}

impl<C> JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn remote_source(mut self, source: Source) -> Self {
        if let Err(err) = self.remote.set(source) {
            self.error.get_or_insert(err);
        }
        self
    }

    /// Reads the keys from the JWK set at `url` (`https`, or `http` on
    /// loopback), fetched in the background and kept current; see
    /// [`keys::remote`](crate::keys::remote). Requests get 503 until the
    /// first fetch succeeds; [`JwtAuthLayer::ready`](crate::JwtAuthLayer::ready)
    /// waits for it.
    pub fn jwks_url(self, url: impl Into<String>) -> Self {
        self.remote_source(Source::Jwks(url.into()))
    }

    /// Reads the keys of the OpenID issuer `issuer`: its
    /// `/.well-known/openid-configuration` must name exactly `issuer`, and
    /// its `jwks_uri` is then read as by [`jwks_url`](Self::jwks_url).
    /// Also accepts `issuer` as `iss` (and so requires `iss`).
    pub fn oidc_issuer(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.issuer(issuer.clone())
            .remote_source(Source::Oidc(issuer))
    }

    /// Reads the keys from a remote source made beforehand (shared by
    /// several layers, say). A source made with
    /// [`RemoteKeys::oidc_issuer`] also sets its issuer as `iss`.
    pub fn remote_keys(self, keys: RemoteKeys) -> Self {
        let this = match keys.issuer() {
            Some(issuer) => self.issuer(issuer.to_owned()),
            None => self,
        };
        this.remote_source(Source::Ready(keys))
    }

    /// Settings of the source made by [`jwks_url`](Self::jwks_url) or
    /// [`oidc_issuer`](Self::oidc_issuer) (default
    /// [`RemoteOptions::default`]).
    pub fn remote_options(mut self, options: RemoteOptions) -> Self {
        let client = self.remote.options.client.take();
        self.remote.options = options;
        if self.remote.options.client.is_none() {
            self.remote.options.client = client;
        }
        self
    }

    /// Sends the fetches of [`jwks_url`](Self::jwks_url) and
    /// [`oidc_issuer`](Self::oidc_issuer), discovery included, through
    /// `client` (see [`client`](super::client)).
    pub fn http_client(mut self, client: impl HttpClient) -> Self {
        self.remote.options = std::mem::take(&mut self.remote.options).http_client(client);
        self
    }
}

/// The same settings for one [`Issuer`](crate::Issuer) of several, whose
/// methods live beside the issuer's other ones.
impl RemoteSetup {
    pub(crate) fn is_set(&self) -> bool {
        self.source.is_some()
    }

    pub(crate) fn jwks(&mut self, url: String) -> Result<(), Error> {
        self.set(Source::Jwks(url))
    }

    pub(crate) fn oidc(&mut self, issuer: String) -> Result<(), Error> {
        self.set(Source::Oidc(issuer))
    }

    pub(crate) fn keys(&mut self, keys: RemoteKeys) -> Result<(), Error> {
        self.set(Source::Ready(keys))
    }

    pub(crate) fn options(&mut self, options: RemoteOptions) {
        let client = self.options.client.take();
        self.options = options;
        if self.options.client.is_none() {
            self.options.client = client;
        }
    }

    pub(crate) fn http_client(&mut self, client: impl HttpClient) {
        self.options = std::mem::take(&mut self.options).http_client(client);
    }
}
