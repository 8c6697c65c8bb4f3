//! A PostgreSQL server of a test's own: a fresh cluster in a scratch directory (`initdb`,
//! then `pg_ctl start`), listening on a free loopback port with TLS on, and a role with a
//! SCRAM-SHA-256 password. Dropping the [`PgServer`] stops the server and removes the
//! directory, on every path (a panicking test prints the server's log first).
//!
//! The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/*/bin`) or
//! `PATH`; when there are none the test fails, naming the package (`.ci/test` installs it).
//! PostgreSQL refuses to run as root, so as root every command runs as the package's
//! `postgres` user (through `setpriv`), and that user owns the directory.
//!
//! `pg_hba.conf` allows TCP only over TLS, with the password:
//!
//! ```text
//! local     all all                trust
//! hostssl   all all 127.0.0.1/32   scram-sha-256
//! hostnossl all all 127.0.0.1/32   reject
//! ```
//!
//! Every command is bounded in time (and killed past it); starting retries on another port
//! at most three times.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lazytls::rustls::pki_types::CertificateDer;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::process::Command;
use tokio_postgres::NoTls;

use super::openssl::free_port;

/// The role the tests log in as, and its password.
pub const USER: &str = "lazytls";
pub const PASSWORD: &str = "lazytls-scram-password";
/// The superuser `initdb` makes, which logs in over the Unix socket without a password.
pub const SUPERUSER: &str = "postgres";

/// A test CA and a server certificate for `localhost` and 127.0.0.1 that it signed: the
/// certificate's signature algorithm is the CA key's.
pub struct ServerPki {
    pub ca: CertificateDer<'static>,
    pub ca_pem: String,
    pub server_cert: CertificateDer<'static>,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl ServerPki {
    /// The CA's key signs with `ca_alg`; the server's key is of `server_alg`.
    pub fn new(
        ca_alg: &'static rcgen::SignatureAlgorithm,
        server_alg: &'static rcgen::SignatureAlgorithm,
    ) -> ServerPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a client that trusts another test CA must find no issuer for
        // the server's certificate (`UnknownIssuer`), not one whose signature fails.
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lazytls postgres test CA {}",
            N.fetch_add(1, Ordering::Relaxed)
        );
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(ca_params, key_for(ca_alg)).unwrap();
        let server_key = key_for(server_alg);
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        ServerPki {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            server_cert: cert.der().clone(),
            server_cert_pem: cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }
}

/// A fresh key for `alg`. RSA ones (ring cannot generate them) reuse the test RSA key, and
/// Ed25519 ones come from `openssl genpkey`: ring writes PKCS#8 v2, with the public key,
/// which OpenSSL 3.0 (PostgreSQL's, on Debian 12) refuses as "unsupported".
fn key_for(alg: &'static rcgen::SignatureAlgorithm) -> KeyPair {
    if alg == &rcgen::PKCS_ED25519 {
        let out = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519"])
            .output()
            .expect("openssl (the tests need it on PATH)");
        assert!(out.status.success(), "openssl genpkey: {out:?}");
        return KeyPair::from_pem(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    }
    KeyPair::generate_for(alg).unwrap_or_else(|_| {
        KeyPair::from_pem_and_sign_algo(super::rsa::RSA_TEST_KEY, alg).expect("RSA test key")
    })
}

/// A running cluster; stopped and removed on drop.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl PgServer {
    /// A new cluster serving `pki`'s server certificate, with the [`USER`] role made.
    pub async fn start(tag: &str, pki: &ServerPki) -> PgServer {
        let bin = postgres_bin();
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lazytls-pg-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        write_private(&dir.join("server.crt"), &pki.server_cert_pem);
        write_private(&dir.join("server.key"), &pki.server_key_pem);
        // From here on the guard removes the directory, whatever fails.
        let mut server = PgServer {
            dir,
            bin,
            port: 0,
            running: false,
        };
        server.hand_to_postgres_user().await;
        server.init().await;
        server.start_on_a_free_port().await;
        server.make_role().await;
        server
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// A config for [`USER`] over TCP to 127.0.0.1, with `sslmode=require`; the host name
    /// (checked against the certificate) is `localhost`.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config_naming("localhost")
    }

    /// [`Self::config`] with another host name.
    pub fn config_naming(&self, host: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .hostaddr([127, 0, 0, 1].into())
            .port(self.port)
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres")
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// Writes `text` to `name` in the server's scratch directory, for a client to read.
    pub fn scratch_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    async fn hand_to_postgres_user(&self) {
        if is_root() {
            let owner = format!("{SUPERUSER}:{SUPERUSER}");
            let dir = self.dir.to_str().unwrap();
            run(Command::new("chown").args(["-R", &owner, dir]), "chown").await;
        }
    }

    async fn init(&self) {
        let data = self.dir.join("data");
        let mut initdb = self.pg_command("initdb");
        initdb.arg("-D").arg(&data).args([
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=reject",
            "--no-sync",
            "--no-locale",
            "--encoding=UTF8",
        ]);
        run(&mut initdb, "initdb").await;
        let dir = self.dir.display();
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\n# lazytls test\nlisten_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{dir}/sock'\nssl = on\n\
                 ssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
                 password_encryption = 'scram-sha-256'\nmax_connections = 20\n\
                 shared_buffers = 16MB\nfsync = off\nsynchronous_commit = off\n\
                 full_page_writes = off\nlog_connections = on\n"
            ),
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local     all all                trust\n\
             hostssl   all all 127.0.0.1/32   scram-sha-256\n\
             hostnossl all all 127.0.0.1/32   reject\n",
        )
        .unwrap();
    }

    /// `pg_ctl start` on a free port; a port taken in the meantime is retried with another.
    async fn start_on_a_free_port(&mut self) {
        for _ in 0..3 {
            self.port = free_port();
            let mut start = self.pg_command("pg_ctl");
            start
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "30", "-o"])
                .arg(format!("-p {}", self.port))
                .arg("start");
            // Marked before the outcome is known (a server may run even if pg_ctl gave up
            // waiting for it): stopping one that does not run fails harmlessly.
            self.running = true;
            let started = bounded_output(&mut start, "pg_ctl start").await;
            if started.status.success() {
                return;
            }
            self.stop();
            if !self.log().contains("could not bind") {
                break;
            }
        }
        panic!("PostgreSQL did not start; its log:\n{}", self.log());
    }

    /// [`USER`], logging in with a SCRAM-SHA-256 password (the server's hashing of it).
    async fn make_role(&self) {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.socket_dir())
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres");
        let (client, connection) = config.connect(NoTls).await.expect("superuser login");
        let io = tokio::spawn(connection);
        let sql = format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}';"
        );
        client.batch_execute(&sql).await.unwrap();
        let stored: String = (client.query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&USER],
        ))
        .await
        .unwrap()
        .get(0);
        assert!(stored.starts_with("SCRAM-SHA-256$"), "stored as {stored}");
        drop(client);
        io.await.unwrap().unwrap();
    }

    /// `name` from the PostgreSQL binaries, run as the `postgres` user when we are root,
    /// in the scratch directory (initdb and pg_ctl return to their working directory, which
    /// that user must be able to enter).
    fn pg_command(&self, name: &str) -> Command {
        let mut command = as_postgres_user(self.bin.join(name));
        command.current_dir(&self.dir);
        Command::from(command)
    }

    /// `pg_ctl stop`, fast (clients are disconnected) and then immediate; blocking, for
    /// `Drop`, each bounded by pg_ctl's own timeout.
    fn stop(&mut self) {
        if !std::mem::take(&mut self.running) {
            return;
        }
        for mode in ["fast", "immediate"] {
            let mut stop = as_postgres_user(self.bin.join("pg_ctl"));
            stop.current_dir(&self.dir)
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", mode, "-w", "-t", "20", "stop"]);
            match stop.output() {
                Ok(out) if out.status.success() => return,
                Ok(out) => eprintln!(
                    "pg_ctl stop -m {mode} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("pg_ctl stop -m {mode}: {e}"),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- PostgreSQL log ----\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: the newest under
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else the one of `initdb` on `PATH`.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed: no initdb under /usr/lib/postgresql/*/bin or on \
             PATH. Install Debian's `postgresql` package (apt-get install postgresql); \
             `bash .ci/test` does."
        )
    })
}

/// Whether we run as root (then PostgreSQL runs as the `postgres` user).
fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = std::process::Command::new("id").arg("-u").output();
        out.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

/// `program`, run as the `postgres` user when we are root.
fn as_postgres_user(program: PathBuf) -> std::process::Command {
    if !is_root() {
        return std::process::Command::new(program);
    }
    let mut command = std::process::Command::new("setpriv");
    command.args([
        "--reuid",
        SUPERUSER,
        "--regid",
        SUPERUSER,
        "--init-groups",
        "--",
    ]);
    command.arg(program);
    command
}

/// Runs `command` (killed past 60 s) and requires success.
async fn run(command: &mut Command, what: &str) {
    let out = bounded_output(command, what).await;
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `command`'s output, killing it past 60 s.
async fn bounded_output(command: &mut Command, what: &str) -> Output {
    command
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    match tokio::time::timeout(Duration::from_secs(60), command.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("{what}: cannot run it: {e}"),
        Err(_) => panic!("{what}: did not finish within 60 s"),
    }
}

/// Writes `text` readable by its owner only: PostgreSQL refuses a key file others can read.
fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}
