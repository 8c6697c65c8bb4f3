//! The handshake floor (section `handshakes`): the provider's raw crypto for one TLS 1.3
//! handshake pair, timed directly with no TLS code around it, and each stack's handshake
//! rate as a fraction of the rate that floor allows. What is not crypto (rustls's state
//! machines and messages, the stack's own work, the transport) is the rest of each op.
//!
//! One full handshake pair is, with the bench's certificate (ECDSA P-256, signed by an
//! ECDSA P-256 CA) and the provider's own algorithms:
//! - the key exchange: the client's key share, the server's share and secret
//!   (`start_and_complete`, as rustls's server calls it: a KEM encapsulation for a hybrid
//!   group), the client's secret;
//! - the server's CertificateVerify signature, and the client's two verifications (the
//!   CertificateVerify and the CA's signature on the certificate);
//! - the key schedule on each side (RFC 8446 section 7.1): 3 HKDF-Extract, 18 HKDF-Expand
//!   (the derived, handshake, application, exporter and resumption secrets, and a key and
//!   an IV for each of four traffic secrets, and two finished keys), 2 HMACs (the Finished
//!   messages);
//! - the transcript hash on each side: 1.5 KB hashed, and 6 running hashes taken.
//!
//! A resumed pair (PSK with (EC)DHE) has no signature or verification; it adds the binder
//! (an expand and an HMAC per side), and the server's two tickets (a resumption PSK
//! expanded per ticket on each side; the ticket's own encryption is not counted).

use std::time::{Duration, Instant};

use lazytls::rustls::crypto::{CryptoProvider, hash, tls13::Hkdf};
use lazytls::rustls::pki_types::PrivateKeyDer;
use lazytls::rustls::{SignatureScheme, SupportedCipherSuite};

use crate::support::{self, Figure, Kx, Pki, fmt_value};

/// The crypto of one TLS 1.3 handshake pair, with what it needs prepared once.
struct FloorOps {
    provider: std::sync::Arc<CryptoProvider>,
    hkdf: &'static dyn Hkdf,
    hash: &'static dyn hash::Hash,
    signer: Box<dyn lazytls::rustls::sign::Signer>,
    verify: &'static dyn lazytls::rustls::pki_types::SignatureVerificationAlgorithm,
    public_key: Vec<u8>,
    transcript: Vec<u8>,
}

impl FloorOps {
    fn new(pki: &Pki, kx: Kx) -> FloorOps {
        let provider = support::provider(kx);
        let suite = match provider.cipher_suites.iter().find_map(|s| match s {
            SupportedCipherSuite::Tls13(s) => Some(*s),
            #[allow(
                unreachable_patterns,
                reason = "TLS 1.2 suites exist only with `tls12`"
            )]
            _ => None,
        }) {
            Some(suite) => suite,
            None => panic!("the bench provider has a TLS 1.3 suite"),
        };
        let (key, public_key): (PrivateKeyDer<'static>, Vec<u8>) = pki.server_key_pair();
        let signing = provider
            .key_provider
            .load_private_key(key)
            .expect("server key loads");
        let signer = signing
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("an ECDSA P-256 signer");
        let verify = provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == SignatureScheme::ECDSA_NISTP256_SHA256)
            .map(|(_, algs)| algs[0])
            .expect("an ECDSA P-256 verifier");
        FloorOps {
            hkdf: suite.hkdf_provider,
            hash: suite.common.hash_provider,
            provider,
            signer,
            verify,
            public_key,
            transcript: vec![0x16; 1500],
        }
    }

    /// One side's key schedule, transcript hash included; `resumed` adds the binder and
    /// the two tickets' PSKs.
    fn key_schedule(&self, shared: &[u8], resumed: bool) {
        let mut hasher = self.hash.start();
        let mut hashes = Vec::with_capacity(6);
        for part in self.transcript.chunks(250) {
            hasher.update(part);
            hashes.push(hasher.fork_finish());
        }
        let th = hashes[0].as_ref();
        let zeros = [0u8; 32];
        let early = self.hkdf.extract_from_secret(None, &zeros);
        let expand = |e: &dyn lazytls::rustls::crypto::tls13::HkdfExpander, label: &[u8]| {
            std::hint::black_box(e.expand_block(&[label, th]));
        };
        expand(&*early, b"derived");
        if resumed {
            let binder_key = early.expand_block(&[b"res binder", th]);
            expand(&*early, b"finished");
            std::hint::black_box(self.hkdf.hmac_sign(&binder_key, th));
        }
        let handshake = self.hkdf.extract_from_secret(Some(&zeros), shared);
        for label in [&b"c hs traffic"[..], b"s hs traffic", b"derived"] {
            expand(&*handshake, label);
        }
        let master = self.hkdf.extract_from_secret(Some(&zeros), &zeros);
        for label in [
            &b"c ap traffic"[..],
            b"s ap traffic",
            b"exp master",
            b"res master",
        ] {
            expand(&*master, label);
        }
        // A key and an IV per traffic secret, and the two finished keys.
        for label in [&b"key"[..], b"iv"]
            .repeat(4)
            .into_iter()
            .chain([&b"finished"[..]; 2])
        {
            expand(&*master, label);
        }
        let finished = master.expand_block(&[b"finished", th]);
        for h in &hashes[..2] {
            std::hint::black_box(self.hkdf.hmac_sign(&finished, h.as_ref()));
        }
        if resumed {
            for _ in 0..2 {
                expand(&*master, b"resumption");
            }
        }
    }

    /// One handshake pair's crypto.
    fn pair(&self, resumed: bool) {
        let group = self.provider.kx_groups[0];
        let client = group.start().expect("client key share");
        let server = group
            .start_and_complete(client.pub_key())
            .expect("server share");
        let client_secret = client.complete(&server.pub_key).expect("client secret");
        if !resumed {
            let signature = self.signer.sign(&self.transcript[..130]).expect("sign");
            for _ in 0..2 {
                let ok = self.verify.verify_signature(
                    &self.public_key,
                    &self.transcript[..130],
                    &signature,
                );
                assert!(ok.is_ok(), "the signature verifies");
            }
        }
        self.key_schedule(client_secret.secret_bytes(), resumed);
        self.key_schedule(server.secret.secret_bytes(), resumed);
    }
}

/// Microseconds per handshake pair's crypto: the median of `reps` samples of `budget`.
fn floor_us(ops: &FloorOps, resumed: bool, budget: Duration, reps: usize) -> f64 {
    let samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            let mut n = 0u32;
            while n == 0 || t0.elapsed() < budget {
                ops.pair(resumed);
                n += 1;
            }
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    support::median(&samples).expect("at least one sample")
}

/// Measures the floor for each kind of the handshake table, prints it beside the stacks'
/// rates (from `figures`, which the handshake table filled), and adds its figures.
pub(crate) fn handshake_floor(
    plan: &crate::Plan,
    pki: &Pki,
    figures: &mut Vec<Figure>,
    kinds: &[(&str, Kx, bool)],
) {
    println!();
    println!(
        "## The handshake floor: {}'s raw crypto for one TLS 1.3 handshake pair, µs (median of {}); each stack's rate as a fraction of the floor's, and its µs per op beyond it",
        support::PROVIDER_NAME,
        plan.reps
    );
    println!(
        "{:<23} {:>8} {:>10} {:>8} {:>9} {:>8} {:>11} {:>11}",
        "kind",
        "floor µs",
        "floor hs/s",
        "lazytls",
        "lz-rustls",
        "tokio-r",
        "over µs L",
        "over µs T"
    );
    for &(kind, kx, resumed) in kinds {
        let ops = FloorOps::new(pki, kx);
        // Warm-up.
        floor_us(&ops, resumed, Duration::from_millis(10), 1);
        let floor = floor_us(&ops, resumed, plan.handshake_budget, plan.reps);
        let floor_rate = 1e6 / floor;
        let rate = |suffix: &str| {
            let name = format!("handshakes_per_sec/{kind}{suffix}");
            figures.iter().find(|f| f.name == name).cloned()
        };
        let (native, rustls_layer) = (rate(""), rate("/rustls-layer"));
        let fraction = |v: Option<f64>| v.map(|v| v / floor_rate);
        let over = |v: Option<f64>| v.map(|v| 1e6 / v - floor);
        let (l, t) = (
            native.as_ref().and_then(|f| f.lazytls),
            native.as_ref().and_then(|f| f.tokio_rustls),
        );
        let lr = rustls_layer.as_ref().and_then(|f| f.lazytls);
        println!(
            "{:<23} {:>8} {:>10} {:>8} {:>9} {:>8} {:>11} {:>11}",
            kind,
            fmt_value(Some(floor)),
            fmt_value(Some(floor_rate)),
            fmt_value(fraction(l)),
            fmt_value(fraction(lr)),
            fmt_value(fraction(t)),
            fmt_value(over(l)),
            fmt_value(over(t)),
        );
        figures.push(Figure::limit(
            format!("handshake_floor_us/{kind}"),
            "µs",
            floor,
        ));
        figures.push(Figure {
            name: format!("handshake_rate_over_floor/{kind}"),
            lazytls: fraction(l),
            tokio_rustls: fraction(t),
            unit: "fraction",
            value: None,
        });
        figures.push(Figure {
            name: format!("handshake_us_beyond_floor/{kind}"),
            lazytls: over(l),
            tokio_rustls: over(t),
            unit: "µs",
            value: None,
        });
    }
}
