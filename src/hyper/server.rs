//! [`WithConnectionInfo`]: a server-side hyper service that hands each request its
//! connection's TLS parameters.

use http::Request;

use crate::info::ConnectionInfoHandle;

/// A hyper service that puts its connection's [`ConnectionInfoHandle`] into every
/// request's extensions, so that handlers can read the client's certificate, the SNI and
/// the ALPN protocol of their own connection:
/// `req.extensions().get::<ConnectionInfoHandle>().and_then(|h| h.get())`.
///
/// Wrap the service per connection, with the stream's
/// [`info_handle`](crate::TlsStream::info_handle), which can be taken before the
/// handshake: it has completed by the time a request arrives.
///
/// ```no_run
/// use std::convert::Infallible;
/// use hyper::{Request, Response, body::Incoming};
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use lazytls::ConnectionInfoHandle;
/// use lazytls::hyper::WithConnectionInfo;
///
/// async fn handle(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
///     let tls = req.extensions().get::<ConnectionInfoHandle>().and_then(|h| h.get());
///     let sni = tls.and_then(|t| t.sni.clone());
///     Ok(Response::new(format!("sni={sni:?}\n")))
/// }
///
/// # async fn run(listener: lazytls::TlsListener) -> std::io::Result<()> {
/// while let Some((tls, _peer)) = listener.accept_until_shutdown().await? {
///     let service = WithConnectionInfo::new(
///         hyper::service::service_fn(handle),
///         tls.info_handle(),
///     );
///     tokio::spawn(async move {
///         let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
///         let _ = builder.serve_connection(TokioIo::new(tls), service).await;
///     });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WithConnectionInfo<S> {
    inner: S,
    info: ConnectionInfoHandle,
}

impl<S> WithConnectionInfo<S> {
    /// `inner`, with `info` in the extensions of each request it gets.
    pub fn new(inner: S, info: ConnectionInfoHandle) -> Self {
        WithConnectionInfo { inner, info }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gives the wrapped service back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> hyper::service::Service<Request<B>> for WithConnectionInfo<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        self.inner.call(req)
    }
}
