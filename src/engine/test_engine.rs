//! [`TestEngine`]: an engine with buffers of its own, for the tests and fuzz targets that
//! drive engines against each other with no transport. In the crate, the I/O core owns
//! the buffers and their policy (`engine_io.rs`); here they are only grown to fit.

use std::io::IoSlice;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::{Buffers, Engine, HandshakeStatus, MAX_RECORD, ReadStatus, Window};
use crate::error::Error;
use crate::info::{ConnectionInfo, RecordLayer};

/// An [`Engine`] and its [`Buffers`], with the engine's calls in the shape they had when
/// the engine owned its buffers.
pub(crate) struct TestEngine {
    engine: Engine,
    bufs: Buffers,
}

impl TestEngine {
    pub(crate) fn client(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        layer: RecordLayer,
    ) -> Result<Self, Error> {
        Engine::client(config, name, layer).map(TestEngine::with)
    }

    pub(crate) fn server(config: Arc<ServerConfig>, layer: RecordLayer) -> Result<Self, Error> {
        Engine::server(config, layer).map(TestEngine::with)
    }

    /// A server whose config the stream would choose from the ClientHello.
    #[cfg(test)]
    pub(crate) fn server_resolving(layer: RecordLayer) -> Self {
        TestEngine::with(Engine::server_resolving(layer))
    }

    fn with(engine: Engine) -> Self {
        TestEngine {
            engine,
            bufs: Buffers::default(),
        }
    }

    pub(crate) fn drive_handshake(&mut self) -> Result<HandshakeStatus, Error> {
        self.engine.drive_handshake(&mut self.bufs)
    }

    pub(crate) fn read(&mut self, out: &mut [u8]) -> Result<ReadStatus, Error> {
        self.engine.read(&mut self.bufs, out)
    }

    pub(crate) fn write(&mut self, data: &[IoSlice<'_>]) -> Result<usize, Error> {
        self.engine.write(&mut self.bufs, data)
    }

    pub(crate) fn close_notify(&mut self) -> Result<(), Error> {
        self.engine.close_notify(&mut self.bufs)
    }

    #[cfg(test)]
    pub(crate) fn refresh_traffic_keys(&mut self) -> Result<(), Error> {
        self.engine.refresh_traffic_keys(&mut self.bufs)
    }

    pub(crate) fn collect_alert(&mut self) {
        self.engine.collect_alert(&mut self.bufs);
    }

    /// Outgoing TLS bytes waiting for the peer.
    pub(crate) fn tx(&mut self) -> &mut Window {
        &mut self.bufs.tx
    }

    /// Room for incoming bytes, sized as the I/O core sizes a transport read.
    pub(crate) fn rx_spare(&mut self) -> &mut [u8] {
        let want = self.engine.read_room(&self.bufs);
        self.bufs.rx.reserve_capped(want, MAX_RECORD);
        self.bufs.rx.spare()
    }

    /// Bytes received from the transport all at once, however many records they are.
    #[cfg(test)]
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        self.bufs.rx.extend(bytes);
    }

    /// Marks `n` bytes of [`TestEngine::rx_spare`]'s room as received.
    pub(crate) fn rx_commit(&mut self, n: usize) {
        self.bufs.rx.commit(n);
    }

    /// Incoming bytes not yet consumed.
    pub(crate) fn rx_len(&self) -> usize {
        self.bufs.rx.len()
    }

    #[cfg(test)]
    pub(crate) fn take_info(&mut self) -> Option<ConnectionInfo> {
        self.engine.take_info()
    }

    pub(crate) fn info_ref(&self) -> Option<&ConnectionInfo> {
        self.engine.info_ref()
    }

    /// The native layer, if in use.
    #[cfg(test)]
    pub(crate) fn native_mut(&mut self) -> Option<&mut super::record::Native> {
        self.engine.native_mut()
    }
}
