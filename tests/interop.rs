//! Interop on loopback TCP (issue 2, item 10), TLS 1.2 and TLS 1.3 each, 10 MiB each way,
//! every byte checked:
//!
//! - our client against a tokio-rustls echo server, and a tokio-rustls client against
//!   our echo server;
//! - our client against `openssl s_server` (our bytes come out of its stdout, its stdin
//!   comes back to us), and `openssl s_client` against our echo server;
//! - our client reading `openssl s_server -www`'s status page, and `curl` fetching a tiny
//!   HTTP/1.1 response from our server.
//!
//! `openssl` and `curl` must be on `PATH` (`.ci/run` installs them); a missing one fails
//! the test. Every step is bounded in time, and every child process is killed on every
//! path (see [`Proc`]).

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use lazytls::rustls::{ProtocolVersion, SupportedProtocolVersion};
use lazytls::{TlsAcceptor, TlsConnector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

const SIZE: usize = 10 * 1024 * 1024;

/// Bound on one step that involves a child process.
const STEP: Duration = Duration::from_secs(30);

fn version_of(v: &[&'static SupportedProtocolVersion]) -> ProtocolVersion {
    assert_eq!(v.len(), 1, "each run pins one protocol version");
    v[0].version
}

fn is_tls13(v: &[&'static SupportedProtocolVersion]) -> bool {
    version_of(v) == ProtocolVersion::TLSv1_3
}

/// Compares without printing megabytes on failure.
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first differing byte at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Echoes what `s` reads until EOF (or `limit` bytes). Reading never waits for writing
/// (an unbounded queue sits between them), so a peer that only reads once it has written
/// everything cannot deadlock it. Returns the stream and every byte it received.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(s: S, limit: usize) -> io::Result<(S, Vec<u8>)> {
    let (mut r, mut w) = tokio::io::split(s);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reading = async move {
        let mut received = Vec::with_capacity(limit.min(SIZE));
        // Each turn takes at least one byte or ends, so at most `limit` turns.
        while received.len() < limit {
            let mut chunk = vec![0; (64 * 1024).min(limit - received.len())];
            let n = r.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            received.extend_from_slice(&chunk);
            let _ = tx.send(chunk);
        }
        Ok::<_, io::Error>((r, received))
        // `tx` is dropped here, which ends the writing loop.
    };
    let writing = async move {
        while let Some(chunk) = rx.recv().await {
            w.write_all(&chunk).await?;
        }
        w.flush().await?;
        Ok::<_, io::Error>(w)
    };
    let (r, w) = tokio::join!(reading, writing);
    let (r, received) = r?;
    Ok((r.unsplit(w?), received))
}

/// The client side of an echo: writes `data` while reading as many bytes back; then
/// sends close_notify and reads to the end (which must be clean and empty).
async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(s: S, data: &[u8]) -> (S, Vec<u8>) {
    let (mut r, mut w) = tokio::io::split(s);
    let (wr, rr) = tokio::join!(
        async {
            w.write_all(data).await?;
            w.flush().await
        },
        async {
            let mut got = vec![0; data.len()];
            r.read_exact(&mut got).await.map(|_| got)
        }
    );
    wr.expect("client write");
    let got = rr.expect("client read");
    let mut s = r.unsplit(w);
    s.shutdown().await.expect("client shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .await
        .expect("client: clean end of stream after close");
    assert!(
        rest.is_empty(),
        "client: {} bytes after the echo",
        rest.len()
    );
    (s, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_with_tokio_rustls_server() {
    let pki = Pki::new();
    for v in versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config_with(v)));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let tls = acceptor.accept(tcp).await?;
            let (mut tls, received) = echo(tls, usize::MAX).await?;
            tls.shutdown().await?;
            let version = tls.get_ref().1.protocol_version();
            Ok::<_, io::Error>((received, version))
        });

        let tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
        let client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        let data = pattern(SIZE, 1);
        let (client, got) = bounded("our client", echo_client(client, &data)).await;
        assert_bytes("echo from tokio-rustls", &got, &data);
        let info = client.info().unwrap();
        assert_eq!(info.protocol_version, Some(version_of(v)));
        println!("{v:?}: our client's record layer: {:?}", info.record_layer);

        let (received, version) = bounded("tokio-rustls server", server)
            .await
            .unwrap()
            .expect("tokio-rustls server");
        assert_bytes("tokio-rustls server received", &received, &data);
        assert_eq!(version, Some(version_of(v)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokio_rustls_client_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::new(Arc::new(pki.server_config_with(v)));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let (mut tls, received) = echo(acceptor.accept(tcp), usize::MAX).await?;
            tls.shutdown().await?;
            Ok::<_, io::Error>((received, tls.info().cloned()))
        });

        let tcp = bounded("connect", TcpStream::connect(addr)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(pki.client_config_with(v)));
        let client = bounded("tokio-rustls connect", connector.connect(localhost(), tcp))
            .await
            .expect("tokio-rustls handshake");
        let data = pattern(SIZE, 3);
        let (client, got) = bounded("tokio-rustls client", echo_client(client, &data)).await;
        assert_bytes("echo from our server", &got, &data);
        assert_eq!(client.get_ref().1.protocol_version(), Some(version_of(v)));

        let (received, info) = bounded("our server", server)
            .await
            .unwrap()
            .expect("our server");
        assert_bytes("our server received", &received, &data);
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        println!("{v:?}: our server's record layer: {:?}", info.record_layer);
    }
}

/// A scratch directory with the PEM files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str, pki: &Pki) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lazytls-interop-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.join("server.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> String {
        let path: &Path = &self.0;
        path.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed when this is dropped, on every path (panics included).
/// Its stdout and stderr are drained by tasks from the start, so it never blocks on them.
struct Proc {
    what: String,
    child: Child,
    stdout: Option<JoinHandle<io::Result<Vec<u8>>>>,
    stderr: Option<JoinHandle<io::Result<Vec<u8>>>>,
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut r: R) -> JoinHandle<io::Result<Vec<u8>>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.map(|_| out)
    })
}

impl Proc {
    fn spawn(program: &str, args: &[&str]) -> Proc {
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{what}`: {e}. openssl and curl must be installed (.ci/run installs them)")
            });
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Proc {
            what,
            child,
            stdout,
            stderr,
        }
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin taken once")
    }

    async fn collect(what: &str, task: Option<JoinHandle<io::Result<Vec<u8>>>>) -> Vec<u8> {
        let task = task.unwrap_or_else(|| panic!("{what} collected twice"));
        match tokio::time::timeout(STEP, task).await {
            Ok(joined) => joined.unwrap().unwrap_or_else(|e| panic!("{what}: {e}")),
            Err(_) => panic!("{what}: not closed within {STEP:?}"),
        }
    }

    /// Everything the process wrote to stdout (waits for it to close it).
    async fn stdout(&mut self) -> Vec<u8> {
        Self::collect(&format!("stdout of `{}`", self.what), self.stdout.take()).await
    }

    /// Kills the process (if still running) and returns its stderr.
    async fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(STEP, self.child.wait()).await;
        let err = Self::collect(&format!("stderr of `{}`", self.what), self.stderr.take()).await;
        String::from_utf8_lossy(&err).into_owned()
    }

    /// Fails the test with the process's stderr.
    async fn fail(&mut self, why: &str) -> ! {
        let stderr = self.kill_and_stderr().await;
        panic!("{why}\n`{}` stderr:\n{stderr}", self.what);
    }

    /// Waits (bounded) for the process to exit.
    async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(STEP, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => self.fail(&format!("did not exit within {STEP:?}")).await,
        }
    }

    /// Waits for a successful exit; fails with stderr otherwise.
    async fn wait_success(&mut self) {
        let status = self.wait().await;
        if !status.success() {
            self.fail(&format!("exited with {status}")).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Harmless if it has exited already; kill_on_drop is a second line of defence.
        let _ = self.child.start_kill();
    }
}

/// A port that was free a moment ago (openssl must be told a port; the race with other
/// processes is handled by retrying in [`s_server`]).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `openssl s_server -naccept 1` with our certificate and returns it with the
/// one TCP connection it will serve. Readiness is the first successful connect (a probe
/// would use up `-naccept 1`); a port taken in the meantime is retried with another.
async fn s_server(scratch: &Scratch, args: &[&str]) -> (Proc, TcpStream) {
    let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
    for _attempt in 0..5 {
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut all = vec!["s_server", "-naccept", "1", "-accept", &accept];
        all.extend(["-cert", &cert, "-key", &key]);
        all.extend(args);
        let mut proc = Proc::spawn("openssl", &all);
        // At most 400 × 25 ms = 10 s until it listens.
        let mut connected = None;
        for _ in 0..400 {
            if let Some(status) = proc.child.try_wait().unwrap() {
                let stderr = proc.kill_and_stderr().await;
                if stderr.contains("in use") {
                    break; // Someone took the port: another attempt.
                }
                panic!("`{}` exited at start with {status}:\n{stderr}", proc.what);
            }
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(tcp) => {
                    connected = Some(tcp);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        if let Some(tcp) = connected {
            return (proc, tcp);
        }
        if proc.child.try_wait().unwrap().is_none() {
            proc.fail("s_server did not listen within 10 s").await;
        }
    }
    panic!("openssl s_server could not bind a port in 5 attempts");
}

fn openssl_version_flag(v: &[&'static SupportedProtocolVersion]) -> &'static str {
    if is_tls13(v) { "-tls1_3" } else { "-tls1_2" }
}

/// Feeds `data` to a child's stdin and hands the pipe back open: an EOF on stdin makes
/// s_server drop the connection, and makes s_client stop, before the transfer is over.
fn feed(mut stdin: ChildStdin, data: Vec<u8>) -> JoinHandle<io::Result<ChildStdin>> {
    tokio::spawn(async move {
        stdin.write_all(&data).await?;
        stdin.flush().await?;
        Ok(stdin)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_with_openssl_s_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("s_server", &pki);
        // -quiet: stdout carries only the received bytes, and stdin is not parsed for
        // command letters.
        let (mut server, tcp) = s_server(&scratch, &["-quiet", openssl_version_flag(v)]).await;
        let mut client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        if let Err(e) = tokio::time::timeout(STEP, client.handshake())
            .await
            .unwrap_or(Err(lazytls::Error::HandshakeTimeout))
        {
            server.fail(&format!("handshake with s_server: {e}")).await;
        }
        assert_eq!(client.info().unwrap().protocol_version, Some(version_of(v)));

        let up = pattern(SIZE, 1); // to s_server, out of its stdout
        let down = pattern(SIZE, 2); // into its stdin, to us
        let feeder = feed(server.stdin(), down.clone());
        let (mut r, mut w) = tokio::io::split(client);
        let exchanged = tokio::time::timeout(STEP, async {
            tokio::join!(
                async {
                    w.write_all(&up).await?;
                    w.flush().await
                },
                async {
                    let mut got = vec![0; SIZE];
                    r.read_exact(&mut got).await.map(|_| got)
                }
            )
        })
        .await;
        let (wr, rr) = match exchanged {
            Ok(both) => both,
            Err(_) => server.fail("10 MiB each way did not finish").await,
        };
        if let Err(e) = wr {
            server.fail(&format!("write to s_server: {e}")).await;
        }
        match rr {
            Ok(got) => assert_bytes("from s_server's stdin", &got, &down),
            Err(e) => server.fail(&format!("read from s_server: {e}")).await,
        }
        let stdin = bounded("feeding s_server", feeder).await.unwrap().unwrap();

        // All bytes are across: close. s_server answers with its own close_notify and
        // exits (-naccept 1).
        let mut client = r.unsplit(w);
        bounded("close", client.shutdown()).await.unwrap();
        let mut rest = Vec::new();
        let end = bounded("read to end", client.read_to_end(&mut rest)).await;
        server.wait_success().await;
        drop(stdin);
        let out = server.stdout().await;
        assert_bytes("s_server's stdout", &out, &up);
        end.expect("clean end of stream from s_server");
        assert!(rest.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssl_s_client_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("s_client", &pki);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let ca = scratch.file("ca.pem");
        let mut client = Proc::spawn(
            "openssl",
            &[
                "s_client",
                "-quiet",
                "-nocommands",
                "-connect",
                &connect,
                "-servername",
                "localhost",
                "-verify_hostname",
                "localhost",
                "-CAfile",
                &ca,
                "-verify_return_error",
                openssl_version_flag(v),
            ],
        );
        let tcp = match tokio::time::timeout(STEP, listener.accept()).await {
            Ok(Ok((tcp, _))) => tcp,
            Ok(Err(e)) => panic!("accept: {e}"),
            Err(_) => client.fail("s_client did not connect").await,
        };
        let acceptor = TlsAcceptor::new(Arc::new(pki.server_config_with(v)));
        // Our server echoes exactly SIZE bytes, closes, then reads s_client's close_notify.
        let server = tokio::spawn(async move {
            let (mut tls, received) = echo(acceptor.accept(tcp), SIZE).await?;
            tls.shutdown().await?;
            let mut rest = Vec::new();
            let end = tls.read_to_end(&mut rest).await.map(|_| rest);
            Ok::<_, io::Error>((received, tls.info().cloned(), end))
        });

        let data = pattern(SIZE, 5);
        let feeder = feed(client.stdin(), data.clone());
        let out = client.stdout().await; // closed when s_client exits
        client.wait_success().await;
        let stdin = bounded("feeding s_client", feeder).await.unwrap().unwrap();
        drop(stdin);
        assert_bytes("s_client's stdout (the echo)", &out, &data);

        let (received, info, end) = bounded("our server", server).await.unwrap().unwrap();
        assert_bytes("our server received", &received, &data);
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        let rest = end.expect("s_client's close_notify");
        assert!(rest.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn our_client_reads_openssl_www_page() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("www", &pki);
        let (mut server, tcp) =
            s_server(&scratch, &["-quiet", "-www", openssl_version_flag(v)]).await;
        drop(server.stdin()); // unused in -www mode
        let mut client =
            TlsConnector::new(Arc::new(pki.client_config_with(v))).connect(localhost(), tcp);
        // The request is written before any handshake: the write drives it.
        let mut page = Vec::new();
        let fetched = tokio::time::timeout(STEP, async {
            client.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            client.flush().await?;
            client.read_to_end(&mut page).await?;
            // s_server -www waits for our close_notify (or EOF) before it exits.
            client.shutdown().await
        })
        .await;
        match fetched {
            Ok(Ok(())) => {}
            Ok(Err(e)) => server.fail(&format!("fetching the page: {e}")).await,
            Err(_) => server.fail("the page did not arrive").await,
        }
        server.wait_success().await;

        let page = String::from_utf8_lossy(&page);
        let name = if is_tls13(v) { "TLSv1.3" } else { "TLSv1.2" };
        assert!(
            page.starts_with("HTTP/1.0 200 ok\r\n"),
            "status line: {:?}",
            page.lines().next()
        );
        assert!(
            page.contains(&format!("New, {name}, Cipher is ")),
            "the page does not report {name}:\n{page}"
        );
        assert!(
            page.trim_end().ends_with("</BODY></HTML>"),
            "page cut short:\n{page}"
        );
        let info = client.info().unwrap();
        assert_eq!(info.protocol_version, Some(version_of(v)));
        if is_tls13(v) {
            // OpenSSL names TLS 1.3 suites as the RFC does; rustls adds "13".
            let suite = format!("{:?}", info.cipher_suite.unwrap().suite());
            let openssl_name = suite.replacen("TLS13_", "TLS_", 1);
            assert!(
                page.contains(&format!("Cipher is {openssl_name}")),
                "the page does not name {openssl_name}:\n{page}"
            );
        }
    }
}

/// Reads an HTTP request head (up to the blank line), at most 64 KiB.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_with_our_server() {
    let pki = Pki::new();
    for v in versions() {
        let scratch = Scratch::new("curl", &pki);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = pki.server_config_with(v);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::new(Arc::new(config));
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp);
            let head = read_head(&mut tls).await?;
            tls.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            )
            .await?;
            tls.shutdown().await?;
            // Take whatever curl sends last (its close_notify, if any) so that closing
            // the socket cannot reset the connection under curl.
            let mut rest = Vec::new();
            let end = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
                .await
                .map(|r| r.map(|_| rest.len()));
            Ok::<_, io::Error>((head, tls.info().cloned(), end))
        });

        let url = format!("https://localhost:{port}/");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let ca = scratch.file("ca.pem");
        let mut args = vec![
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
        ];
        if is_tls13(v) {
            args.push("--tlsv1.3");
        } else {
            args.extend(["--tlsv1.2", "--tls-max", "1.2"]);
        }
        args.push(&url);
        let mut curl = Proc::spawn("curl", &args);
        drop(curl.stdin());
        let out = curl.stdout().await;
        curl.wait_success().await;
        assert_eq!(String::from_utf8_lossy(&out), "hello", "curl's output");

        let (head, info, end) = bounded("our server", server).await.unwrap().unwrap();
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("get / http/1.1\r\n"), "request: {head:?}");
        assert!(
            head.contains(&format!("\r\nhost: localhost:{port}\r\n")),
            "request: {head:?}"
        );
        let info = info.expect("info after the handshake");
        assert_eq!(info.protocol_version, Some(version_of(v)));
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(info.sni.as_deref(), Some("localhost"));
        println!("{v:?}: after our close, reading from curl ended with {end:?}");
    }
}
