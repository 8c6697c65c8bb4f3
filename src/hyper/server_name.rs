//! The TLS server name of a connection: from the URI's host, fixed, or picked by a closure.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::Uri;
use rustls::pki_types::ServerName;

use super::ConnectError;

/// Picks the TLS server name for a request URI. `None` falls back to the URI's host.
pub(super) type ResolveFn = dyn Fn(&Uri) -> Option<ServerName<'static>> + Send + Sync;

/// Where the server name (SNI and the name the certificate is checked against) comes from.
#[derive(Clone)]
pub(super) enum ServerNameSource {
    /// The URI's host: a DNS name, or an IP address (brackets stripped; no SNI is sent).
    Uri,
    /// The same name for every connection.
    Fixed(ServerName<'static>),
    /// A closure; `None` falls back to the URI's host.
    Resolver(Arc<ResolveFn>),
}

impl fmt::Debug for ServerNameSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerNameSource::Uri => f.write_str("FromUri"),
            ServerNameSource::Fixed(name) => f.debug_tuple("Fixed").field(name).finish(),
            ServerNameSource::Resolver(_) => f.write_str("Resolver(..)"),
        }
    }
}

/// The server name for a URI's host: IPv6 brackets are stripped, and an IP literal becomes
/// [`ServerName::IpAddress`] (rustls sends no SNI for it and checks the certificate's IP
/// addresses).
pub(super) fn server_name_from_uri(uri: &Uri) -> Result<ServerName<'static>, ConnectError> {
    let host = uri.host().ok_or(ConnectError::MissingHost)?;
    server_name_from_host(host)
}

pub(super) fn server_name_from_host(host: &str) -> Result<ServerName<'static>, ConnectError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut ip_text = bare;
    if bare.contains(':') {
        // An IPv6 zone (`%eth0`, `%25eth0` in a URI) routes locally; the certificate names
        // the address alone.
        ip_text = bare.split('%').next().unwrap_or(bare);
    }
    if let Ok(ip) = ip_text.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare)
        .map(|name| name.to_owned())
        .map_err(|_| ConnectError::InvalidServerName(host.to_owned()))
}
