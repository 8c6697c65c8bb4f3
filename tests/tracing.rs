//! The `tracing` feature: one `tls_handshake` span per handshake with the side, SNI,
//! ALPN, version, suite, duration and outcome; failures at `debug`, never `error`.
#![cfg(feature = "tracing")]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A span's name and the fields recorded on it.
type SpanFields = (String, HashMap<String, String>);

/// Collects span fields by span name and side, and the levels of events.
#[derive(Default)]
struct Capture {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, SpanFields>>,
    event_levels: Mutex<Vec<Level>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// The subscriber: a handle on the shared capture.
struct Sub(Arc<Capture>);

impl Subscriber for Sub {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        self.0
            .spans
            .lock()
            .unwrap()
            .insert(id, (span.metadata().name().to_string(), fields));
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some((_, fields)) = self.0.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        self.0
            .event_levels
            .lock()
            .unwrap()
            .push(*event.metadata().level());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn handshake_spans(capture: &Capture) -> Vec<HashMap<String, String>> {
    let spans = capture.spans.lock().unwrap();
    let mut out: Vec<_> = spans
        .values()
        .filter(|(n, _)| n == "tls_handshake")
        .map(|(_, f)| f.clone())
        .collect();
    out.sort_by_key(|f| f.get("side").cloned());
    out
}

#[test]
fn a_span_per_handshake_with_what_was_negotiated() {
    let capture = Arc::new(Capture::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(Sub(capture.clone()), || {
        rt.block_on(async {
            let pki = Pki::new();
            let mut client = pki.client_config_with(lazytls::rustls::DEFAULT_VERSIONS);
            client.alpn_protocols = vec![b"h2".to_vec()];
            let mut server = pki.server_config_with(lazytls::rustls::DEFAULT_VERSIONS);
            server.alpn_protocols = vec![b"h2".to_vec()];
            let (mut c, mut s) = duplex_pair(Arc::new(client), Arc::new(server));
            let (a, b) = bounded("handshake", async {
                tokio::join!(c.handshake(), s.handshake())
            })
            .await;
            a.unwrap();
            b.unwrap();
        })
    });
    let spans = handshake_spans(&capture);
    assert_eq!(spans.len(), 2, "{spans:?}");
    for (span, side) in spans.iter().zip(["client", "server"]) {
        assert_eq!(span.get("side").map(String::as_str), Some(side), "{span:?}");
        assert_eq!(
            span.get("sni").map(String::as_str),
            Some("localhost"),
            "{span:?}"
        );
        assert_eq!(span.get("alpn").map(String::as_str), Some("h2"), "{span:?}");
        assert_eq!(
            span.get("outcome").map(String::as_str),
            Some("ok"),
            "{span:?}"
        );
        assert!(
            span.contains_key("version")
                && span.contains_key("suite")
                && span.contains_key("duration_us"),
            "{span:?}"
        );
    }
}

#[test]
fn a_failed_handshake_is_logged_below_error() {
    let capture = Arc::new(Capture::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(Sub(capture.clone()), || {
        rt.block_on(async {
            let pki = Pki::new();
            let other = Pki::new();
            // The client trusts another CA: both sides fail.
            let (mut c, mut s) = duplex_pair(other.client_config(), pki.server_config());
            let (a, b) = bounded("handshake", async {
                tokio::join!(c.handshake(), s.handshake())
            })
            .await;
            assert!(a.is_err() && b.is_err());
        })
    });
    let spans = handshake_spans(&capture);
    assert_eq!(spans.len(), 2, "{spans:?}");
    for span in &spans {
        let outcome = span.get("outcome").cloned().unwrap_or_default();
        assert!(outcome.starts_with("tls:"), "{span:?}");
    }
    let levels = capture.event_levels.lock().unwrap();
    assert!(
        !levels.contains(&Level::ERROR) && !levels.contains(&Level::WARN),
        "{levels:?}"
    );
}
