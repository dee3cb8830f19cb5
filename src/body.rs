//! The response body of [`JwtAuth`](crate::JwtAuth): the inner service's
//! body, or a rejection's small JSON document. An enum body (like
//! tower-http's `limit`) keeps the layer free of any demand on the inner
//! response type, so it fits axum, tonic and hyper alike.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of the authentication middleware.
    pub struct JwtAuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> JwtAuthBody<B> {
    /// Wraps a body, so routes outside the layer can answer with the same
    /// body type as routes behind it (plain hyper routing).
    pub fn new(body: B) -> Self {
        Self::inner(body)
    }

    pub(crate) fn inner(body: B) -> Self {
        JwtAuthBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn rejection(data: Bytes) -> Self {
        let data = if data.is_empty() { None } else { Some(data) };
        JwtAuthBody {
            kind: Kind::Rejection { data },
        }
    }
}

impl<B> fmt::Debug for JwtAuthBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("JwtAuthBody::Inner"),
            Kind::Rejection { .. } => f.write_str("JwtAuthBody::Rejection"),
        }
    }
}

impl<B> Body for JwtAuthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
