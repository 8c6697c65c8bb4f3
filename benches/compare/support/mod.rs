//! Support for the `compare` bench: the allocation counter (an `LD_PRELOAD` shim, since the
//! crate forbids unsafe code and so cannot have a Rust `#[global_allocator]`), the PKI and
//! the rustls configurations on an explicit, restricted provider, and the statistics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lazytls::rustls::crypto::CryptoProvider;
use lazytls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use lazytls::rustls::{self, ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

// ---------------------------------------------------------------------------------------
// Allocation counting
// ---------------------------------------------------------------------------------------

/// The C source of the counting shim.
const SHIM_SOURCE: &str = include_str!("alloccount.c");
/// The variable the shim's `getenv` answers with the counters.
const STATS_VAR: &str = "__LAZYTLS_ALLOC_STATS";
/// Set in the re-executed child so it does not re-execute again.
const CHILD_VAR: &str = "LAZYTLS_BENCH_CHILD";

/// Where cargo puts build output (`target/`), found from the bench executable's path.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/compare-<hash>
        let deps = exe.parent();
        if let Some(deps) = deps.filter(|d| d.file_name().is_some_and(|n| n == "deps")) {
            if let Some(target) = deps.parent().and_then(Path::parent) {
                return target.to_path_buf();
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// Unless this process is already the counting child, compiles the shim and runs this
/// bench again with it preloaded, then exits with the child's status. Returns (to run
/// in-process without allocation figures) only if that is impossible.
pub(crate) fn reexec_with_counter() {
    if std::env::var_os(CHILD_VAR).is_some() || std::env::var_os(STATS_VAR).is_some() {
        return;
    }
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        eprintln!(
            "compare: the allocation counter needs glibc on Linux; allocation figures will be n/a"
        );
        return;
    }
    let dir = target_dir().join("lazytls-bench");
    let so = match build_shim(&dir) {
        Ok(so) => so,
        Err(e) => {
            eprintln!("compare: no allocation counter ({e}); allocation figures will be n/a");
            return;
        }
    };
    let mut preload = so.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(old);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("compare: cannot find own executable ({e}); allocation figures will be n/a");
            return;
        }
    };
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", preload)
        .env(CHILD_VAR, "1")
        .status();
    match status {
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!(
                "compare: cannot re-run with the counter ({e}); allocation figures will be n/a"
            )
        }
    }
}

fn build_shim(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let src = dir.join("alloccount.c");
    let so = dir.join("liballoccount.so");
    std::fs::write(&src, SHIM_SOURCE).map_err(|e| format!("write {}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .output()
        .map_err(|e| format!("run {cc}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cc} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(so)
}

/// The process-wide counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    allocs: i64,
    bytes: i64,
    live: i64,
    /// Length of the string the reading allocated (it is counted in the next interval).
    text_len: i64,
}

/// What happened between two moments: allocations made, bytes requested by them, and the
/// change in live heap (bytes the allocator holds for blocks not yet freed).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Delta {
    pub(crate) allocs: i64,
    pub(crate) bytes: i64,
    pub(crate) live: i64,
}

/// Reads the counters; `None` when the shim is not loaded.
fn read() -> Option<Snapshot> {
    // std copies the value into a fresh Vec: one allocation of `text.len()` bytes, made
    // after the shim formatted the counters and freed again before this returns.
    let text = std::env::var(STATS_VAR).ok()?;
    let mut it = text.split(' ').map(|f| f.parse::<i64>().ok());
    let allocs = it.next()??;
    let _frees = it.next()??;
    let bytes = it.next()??;
    let live = it.next()??;
    Some(Snapshot {
        allocs,
        bytes,
        live,
        text_len: text.len() as i64,
    })
}

/// The start of a measured interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(Option<Snapshot>);

/// Reads the allocation counters of the whole process, when the shim is loaded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counter {
    available: bool,
    /// Allocations that one reading itself adds to the next interval (std's copy of the
    /// value), found by calibration.
    read_allocs: i64,
}

impl Counter {
    pub(crate) fn new() -> Counter {
        let (Some(a), Some(b)) = (read(), read()) else {
            return Counter {
                available: false,
                read_allocs: 0,
            };
        };
        let counter = Counter {
            available: true,
            read_allocs: b.allocs - a.allocs,
        };
        // Self-check: one known allocation must count as exactly one, of its size.
        let mark = counter.mark();
        drop(std::hint::black_box(Vec::<u8>::with_capacity(1000)));
        match counter.since(mark) {
            Some(Delta {
                allocs: 1,
                bytes: 1000,
                live: 0,
            }) => counter,
            other => {
                eprintln!(
                    "compare: allocation counter failed its self-check ({other:?}); figures n/a"
                );
                Counter {
                    available: false,
                    read_allocs: 0,
                }
            }
        }
    }

    pub(crate) fn available(&self) -> bool {
        self.available
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark(if self.available { read() } else { None })
    }

    /// What happened since `mark`, less the counter's own reading.
    pub(crate) fn since(&self, mark: Mark) -> Option<Delta> {
        let a = mark.0?;
        let b = read()?;
        Some(Delta {
            allocs: b.allocs - a.allocs - self.read_allocs,
            bytes: b.bytes - a.bytes - a.text_len,
            live: b.live - a.live,
        })
    }
}

// ---------------------------------------------------------------------------------------
// PKI and configurations
// ---------------------------------------------------------------------------------------

/// Which key-exchange groups the provider offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kx {
    /// The provider's default list (aws-lc-rs: X25519MLKEM768 first).
    Default,
    /// X25519 only.
    X25519,
}

#[cfg(feature = "aws-lc-rs")]
use lazytls::rustls::crypto::aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use lazytls::rustls::crypto::ring as backend;

/// The provider's name, for the report.
pub(crate) const PROVIDER_NAME: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

/// The provider of the enabled crypto feature, restricted to AES-128-GCM (TLS 1.3, and the
/// ECDSA TLS 1.2 suite) and, for [`Kx::X25519`], to X25519.
pub(crate) fn provider(kx: Kx) -> Arc<CryptoProvider> {
    let mut p = backend::default_provider();
    p.cipher_suites = vec![
        backend::cipher_suite::TLS13_AES_128_GCM_SHA256,
        #[cfg(feature = "tls12")]
        backend::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ];
    if kx == Kx::X25519 {
        p.kx_groups = vec![backend::kx_group::X25519];
    }
    Arc::new(p)
}

/// A protocol version under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    #[cfg(feature = "tls12")]
    Tls12,
    Tls13,
}

impl Version {
    pub(crate) fn all() -> Vec<Version> {
        vec![
            #[cfg(feature = "tls12")]
            Version::Tls12,
            Version::Tls13,
        ]
    }

    fn rustls(self) -> &'static [&'static SupportedProtocolVersion] {
        #[cfg(feature = "tls12")]
        static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
        static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            #[cfg(feature = "tls12")]
            Version::Tls12 => TLS12,
            Version::Tls13 => TLS13,
        }
    }

    /// As in the figure names: `TLSv1.2`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "tls12")]
            Version::Tls12 => "TLSv1.2",
            Version::Tls13 => "TLSv1.3",
        }
    }

    /// As in Go's benchmark names: `TLSv12`.
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            #[cfg(feature = "tls12")]
            Version::Tls12 => "TLSv12",
            Version::Tls13 => "TLSv13",
        }
    }
}

/// A CA and an ECDSA P-256 server certificate for `localhost`, made by rcgen.
pub(crate) struct Pki {
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
    /// The server key's public half, raw (an uncompressed P-256 point).
    server_public: Vec<u8>,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "lazytls bench CA");
        // rcgen's default key pair is ECDSA P-256 with SHA-256.
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["localhost".to_string()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        Pki {
            ca: ca.der().clone(),
            server_chain: vec![server_cert.der().clone()],
            server_key: server_key.serialize_der(),
            server_public: server_key.public_key_raw().to_vec(),
        }
    }

    fn server_key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.server_key.clone()).into()
    }

    /// The server's private key and its raw public key (for the handshake floor).
    pub(crate) fn server_key_pair(&self) -> (PrivateKeyDer<'static>, Vec<u8>) {
        (self.server_key(), self.server_public.clone())
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        roots
    }

    /// A client and a server configuration for one version and key exchange. Client-side
    /// resumption is on only when `resumption` is; otherwise the server sends no tickets
    /// either, so that nothing is cached in the configurations.
    pub(crate) fn configs(&self, version: Version, kx: Kx, resumption: bool) -> Configs {
        let mut server = ServerConfig::builder_with_provider(provider(kx))
            .with_protocol_versions(version.rustls())
            .expect("server versions")
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key())
            .expect("server certificate");
        let mut client = ClientConfig::builder_with_provider(provider(kx))
            .with_protocol_versions(version.rustls())
            .expect("client versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        if !resumption {
            client.resumption = rustls::client::Resumption::disabled();
            server.send_tls13_tickets = 0;
        }
        Configs {
            client: Arc::new(client),
            server: Arc::new(server),
        }
    }
}

/// One client and one server configuration, shared by both implementations.
#[derive(Clone)]
pub(crate) struct Configs {
    pub(crate) client: Arc<ClientConfig>,
    pub(crate) server: Arc<ServerConfig>,
}

/// The name the server certificate is for; borrowed from a static, so cloning it does not
/// allocate.
pub(crate) fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid DNS name")
}

// ---------------------------------------------------------------------------------------
// Statistics and the summary
// ---------------------------------------------------------------------------------------

/// The median of the samples (mean of the middle two for an even count).
pub(crate) fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// One figure of the summary: both implementations' medians and their ratio.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) lazytls: Option<f64>,
    pub(crate) tokio_rustls: Option<f64>,
    pub(crate) unit: &'static str,
    /// A limit that belongs to neither stack (a floor), in place of their two values.
    pub(crate) value: Option<f64>,
}

impl Figure {
    pub(crate) fn new(
        name: String,
        unit: &'static str,
        lazytls: &[f64],
        tokio_rustls: &[f64],
    ) -> Figure {
        Figure {
            name,
            lazytls: median(lazytls),
            tokio_rustls: median(tokio_rustls),
            unit,
            value: None,
        }
    }

    /// A limit both stacks are measured against (the AEAD floor, the handshake floor).
    pub(crate) fn limit(name: String, unit: &'static str, value: f64) -> Figure {
        Figure {
            name,
            lazytls: None,
            tokio_rustls: None,
            unit,
            value: Some(value),
        }
    }

    /// lazytls ÷ tokio-rustls.
    pub(crate) fn ratio(&self) -> Option<f64> {
        match (self.lazytls, self.tokio_rustls) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        if let Some(value) = self.value {
            return serde_json::json!({"name": self.name, "value": value, "unit": self.unit});
        }
        serde_json::json!({
            "name": self.name,
            "lazytls": self.lazytls,
            "tokio_rustls": self.tokio_rustls,
            "ratio": self.ratio(),
            "unit": self.unit,
        })
    }
}

/// Formats a figure value for the tables.
pub(crate) fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "n/a".to_string(),
        Some(v) if v.abs() >= 100.0 || v == v.trunc() => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The five columns of a comparison row: lazytls, lz-rustls and tokio-rustls, and the two
/// ratios, as every table prints them.
pub(crate) fn columns(n: &Figure, r: &Figure) -> String {
    format!(
        "{:>8} {:>9} {:>8} {:>6} {:>7}",
        fmt_value(n.lazytls),
        fmt_value(r.lazytls),
        fmt_value(n.tokio_rustls),
        fmt_ratio(n.ratio()),
        fmt_ratio(r.ratio())
    )
}

/// Formats a ratio for the tables.
pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}"))
}

/// The machine, for the report header.
pub(crate) fn machine() -> Vec<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let cores = cores();
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    vec![
        format!("date: {} UTC", now_utc()),
        format!("lazytls commit: {commit}"),
        format!("cpu: {cpu}"),
        format!("cores: {cores}"),
        format!("rustc: {rustc}"),
        format!("load: {}", loadavg()),
    ]
}

/// The cores this process may run on.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

/// The current time as `YYYY-MM-DD HH:MM`, UTC (civil-from-days, proleptic Gregorian).
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

/// CPU time run so far by the live threads of this process (the sum of the first field of
/// `/proc/self/task/*/schedstat`, in nanoseconds); `None` where that is not readable.
pub(crate) fn cpu_time() -> Option<std::time::Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between the listing and the read; it no longer counts.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split(' ').next()?.trim().parse::<u64>().ok()?;
    }
    Some(std::time::Duration::from_nanos(total))
}

/// `/proc/loadavg`'s three averages.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}
