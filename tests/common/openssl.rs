//! `openssl` and `curl` as child processes: a guard that kills the process on every path
//! and drains its output from the start, a scratch directory with the PEM files they read,
//! `openssl s_server` started on a free loopback port, `openssl s_client` connected to a
//! listener of ours, and `curl` against one of our servers.
//!
//! A missing `openssl` or `curl` fails the test (`.ci/run` installs them). Every wait on a
//! process is bounded by the `step` it was started with.

use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lazytls::TlsStream;
use lazytls::rustls::{ProtocolVersion, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use super::{Pki, assert_bytes, bounded, version_of};

/// A scratch directory with the PEM files of a [`Pki`] (`ca.pem`, `server.pem`,
/// `server.key`, `client.pem` and `client.key`), removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `tag` goes into the directory's name (the test binary and the test, say).
    pub fn new(tag: &str, pki: &Pki) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lazytls-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.join("server.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
        std::fs::write(dir.join("client.pem"), &pki.client_cert_pem).unwrap();
        std::fs::write(dir.join("client.key"), &pki.client_key_pem).unwrap();
        Scratch(dir)
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The same, as a command-line argument.
    pub fn file(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One output pipe of a [`Proc`], read to its end by a task: the bytes so far, and how
/// many have come.
struct Drained {
    task: Option<JoinHandle<io::Result<()>>>,
    bytes: Arc<Mutex<Vec<u8>>>,
    seen: Arc<AtomicUsize>,
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut r: R) -> Drained {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let (out, count) = (bytes.clone(), seen.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // Each turn takes at least one byte or ends.
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let mut out = out.lock().unwrap();
            out.extend_from_slice(&buf[..n]);
            count.store(out.len(), Ordering::Release);
        }
    });
    Drained {
        task: Some(task),
        bytes,
        seen,
    }
}

/// A child process that is killed when this is dropped, on every path (panics included).
/// Its stdout and stderr are drained by tasks from the start, so it never blocks on them.
pub struct Proc {
    what: String,
    child: Child,
    /// Bound on each wait for the process.
    step: Duration,
    stdout: Drained,
    stderr: Drained,
}

impl Proc {
    /// Runs `program` with `args`, every pipe open; waits on it are bounded by `step`.
    pub fn spawn(program: &str, args: &[&str], step: Duration) -> Proc {
        let what = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{what}`: {e}. {program} must be installed (.ci/run installs it)"
                )
            });
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));
        Proc {
            what,
            child,
            step,
            stdout,
            stderr,
        }
    }

    pub fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin taken once")
    }

    /// How many bytes of stdout have come so far.
    pub fn stdout_seen(&self) -> Arc<AtomicUsize> {
        self.stdout.seen.clone()
    }

    pub fn stdout_contains(&self, text: &[u8]) -> bool {
        let out = self.stdout.bytes.lock().unwrap();
        out.windows(text.len()).any(|w| w == text)
    }

    /// Everything on stdout so far, as text.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.bytes.lock().unwrap()).into_owned()
    }

    /// Everything on stderr so far, as text.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.bytes.lock().unwrap()).into_owned()
    }

    /// Waits (bounded by the step, polled every 10 ms) until stderr has `count` whole
    /// lines containing `text`; returns the last of them, or fails with stderr.
    ///
    /// Only lines ended by a newline count: an unbuffered `eprintln!` writes each piece
    /// of its format separately, so the tail of stderr may be half a line.
    pub async fn wait_for_stderr_lines(&mut self, text: &str, count: usize) -> String {
        let polls = self.step.as_millis() / 10;
        for _ in 0..polls {
            let err = self.stderr_so_far();
            let whole = &err[..err.rfind('\n').map_or(0, |end| end + 1)];
            let lines: Vec<&str> = whole.lines().filter(|l| l.contains(text)).collect();
            if lines.len() >= count {
                return lines[count - 1].to_owned();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.fail(&format!(
            "no {count} lines with {text:?} on stderr within {:?}",
            self.step
        ))
        .await
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits (bounded by the step, polled every 10 ms) until stdout contains `text`;
    /// fails with stderr otherwise.
    pub async fn wait_for_stdout(&mut self, text: &str) {
        let polls = self.step.as_millis() / 10;
        for _ in 0..polls {
            if self.stdout_contains(text.as_bytes()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let out = String::from_utf8_lossy(&self.stdout.bytes.lock().unwrap()).into_owned();
        self.fail(&format!(
            "no {text:?} on stdout within {:?}; stdout:\n{out}",
            self.step
        ))
        .await
    }

    async fn collect(what: &str, pipe: &mut Drained, step: Duration) -> Vec<u8> {
        let task = pipe
            .task
            .take()
            .unwrap_or_else(|| panic!("{what} collected twice"));
        match tokio::time::timeout(step, task).await {
            Ok(joined) => joined.unwrap().unwrap_or_else(|e| panic!("{what}: {e}")),
            Err(_) => panic!("{what}: not closed within {step:?}"),
        }
        std::mem::take(&mut *pipe.bytes.lock().unwrap())
    }

    /// Everything the process wrote to stdout (waits for it to close it).
    pub async fn stdout(&mut self) -> Vec<u8> {
        let what = format!("stdout of `{}`", self.what);
        Self::collect(&what, &mut self.stdout, self.step).await
    }

    /// Everything the process wrote to stderr (waits for it to close it).
    pub async fn stderr(&mut self) -> String {
        let what = format!("stderr of `{}`", self.what);
        let err = Self::collect(&what, &mut self.stderr, self.step).await;
        String::from_utf8_lossy(&err).into_owned()
    }

    /// Kills the process (if still running) and returns its stderr.
    pub async fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(self.step, self.child.wait()).await;
        self.stderr().await
    }

    /// Fails the test with the process's stderr.
    pub async fn fail(&mut self, why: &str) -> ! {
        let stderr = self.kill_and_stderr().await;
        panic!("{why}\n`{}` stderr:\n{stderr}", self.what);
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(self.step, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                self.fail(&format!("did not exit within {:?}", self.step))
                    .await
            }
        }
    }

    /// Waits for a successful exit; fails with stderr otherwise.
    pub async fn wait_success(&mut self) {
        let status = self.wait().await;
        if !status.success() {
            self.fail(&format!("exited with {status}")).await;
        }
    }

    /// Runs our side's handshake with this process (bounded); fails with the process's
    /// stderr if it does not complete.
    pub async fn handshake<IO>(&mut self, tls: &mut TlsStream<IO>, peer: &str)
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        if let Err(e) = tokio::time::timeout(self.step, tls.handshake())
            .await
            .unwrap_or(Err(lazytls::Error::HandshakeTimeout))
        {
            self.fail(&format!("handshake with {peer}: {e}")).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Harmless if it has exited already; kill_on_drop is a second line of defence.
        let _ = self.child.start_kill();
    }
}

/// A loopback port that was free a moment ago (and is closed now).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `openssl s_server` with the scratch directory's certificate (and `args`) on
/// [`free_port`], and returns it with that port once it listens. A port taken in the
/// meantime is retried with another.
///
/// It is ready once it prints `ACCEPT`, which it does when it has bound the port. A TCP
/// probe would not do: with tests running in parallel, it could reach another process that
/// took the port first. `-quiet` silences `ACCEPT`: see [`s_server_once`].
pub async fn s_server(scratch: &Scratch, args: &[&str], step: Duration) -> (Proc, u16) {
    assert!(
        !args.contains(&"-quiet"),
        "s_server -quiet prints no ACCEPT: use s_server_once"
    );
    let (proc, port, _) = start_s_server(scratch, args, step, false).await;
    (proc, port)
}

/// Starts `openssl s_server -naccept 1` (see [`s_server`]) and returns it with the one TCP
/// connection it will serve. With `-quiet`, which silences `ACCEPT`, readiness is the
/// first successful connect instead (a probe of its own would use up `-naccept 1`).
pub async fn s_server_once(scratch: &Scratch, args: &[&str], step: Duration) -> (Proc, TcpStream) {
    let mut all = vec!["-naccept", "1"];
    all.extend(args);
    let quiet = args.contains(&"-quiet");
    let (mut proc, port, connected) = start_s_server(scratch, &all, step, quiet).await;
    if let Some(tcp) = connected {
        return (proc, tcp);
    }
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(tcp) => (proc, tcp),
        Err(e) => proc.fail(&format!("connecting to s_server: {e}")).await,
    }
}

/// [`s_server`]'s start: ready on `ACCEPT`, or (`probe`) on the first successful connect,
/// which is returned.
async fn start_s_server(
    scratch: &Scratch,
    args: &[&str],
    step: Duration,
    probe: bool,
) -> (Proc, u16, Option<TcpStream>) {
    let (cert, key) = (scratch.file("server.pem"), scratch.file("server.key"));
    'attempt: for _attempt in 0..5 {
        let port = free_port();
        let accept = format!("127.0.0.1:{port}");
        let mut all = vec!["s_server", "-accept", &accept, "-cert", &cert, "-key", &key];
        all.extend(args);
        let mut proc = Proc::spawn("openssl", &all, step);
        // At most 400 × 25 ms = 10 s until it listens.
        for _ in 0..400 {
            if let Some(status) = proc.child.try_wait().unwrap() {
                let stderr = proc.kill_and_stderr().await;
                if stderr.contains("in use") {
                    continue 'attempt; // Someone took the port: another attempt.
                }
                panic!("`{}` exited at start with {status}:\n{stderr}", proc.what);
            }
            if probe {
                if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    return (proc, port, Some(tcp));
                }
            } else if proc.stdout_contains(b"ACCEPT") {
                return (proc, port, None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        proc.fail("s_server did not listen within 10 s").await;
    }
    panic!("openssl s_server could not bind a port in 5 attempts");
}

/// The `openssl` flag that pins the one protocol version of `v`: `-tls1_3` or `-tls1_2`.
pub fn version_flag(v: &[&'static SupportedProtocolVersion]) -> &'static str {
    if version_of(v) == ProtocolVersion::TLSv1_3 {
        "-tls1_3"
    } else {
        "-tls1_2"
    }
}

/// Feeds `data` to a child's stdin and hands the pipe back open: an EOF on stdin makes
/// s_server drop the connection, and makes s_client stop, before the transfer is over.
pub fn feed(mut stdin: ChildStdin, data: Vec<u8>) -> JoinHandle<io::Result<ChildStdin>> {
    tokio::spawn(async move {
        stdin.write_all(&data).await?;
        stdin.flush().await?;
        Ok(stdin)
    })
}

/// The end of a transfer with `openssl s_server -quiet` ([`s_server_once`]), once every
/// byte is across: the `feeder` ([`feed`]) is done; our close_notify goes out through `w`;
/// s_server answers with its own and exits, so `r` reads a clean, empty end; and
/// s_server's stdout is `up`, exactly. Its stdin stays open until it has exited.
pub async fn close_with_s_server<W, R>(
    server: &mut Proc,
    feeder: JoinHandle<io::Result<ChildStdin>>,
    w: &mut W,
    r: &mut R,
    up: &[u8],
) where
    W: AsyncWrite + Unpin + ?Sized,
    R: AsyncRead + Unpin + ?Sized,
{
    let stdin = bounded("feeding s_server", feeder).await.unwrap().unwrap();
    bounded("close", w.shutdown()).await.unwrap();
    let mut rest = Vec::new();
    let end = bounded("read to end", r.read_to_end(&mut rest)).await;
    server.wait_success().await;
    drop(stdin);
    let out = server.stdout().await;
    assert_bytes("s_server's stdout", &out, up);
    end.expect("clean end of stream from s_server");
    assert!(rest.is_empty());
}

/// Starts `openssl s_client` against `connect` (`HOST:PORT`), sending SNI `localhost`,
/// trusting the scratch directory's CA and failing on a bad certificate; `args` come on
/// top.
pub fn spawn_s_client(scratch: &Scratch, connect: &str, args: &[&str], step: Duration) -> Proc {
    let ca = scratch.file("ca.pem");
    let mut all = vec!["s_client", "-connect", connect, "-servername", "localhost"];
    all.extend(["-CAfile", &ca, "-verify_return_error"]);
    all.extend(args);
    Proc::spawn("openssl", &all, step)
}

/// [`spawn_s_client`] against a listener of ours: returns it with the TCP connection it
/// made.
pub async fn s_client(scratch: &Scratch, args: &[&str], step: Duration) -> (Proc, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let connect = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut client = spawn_s_client(scratch, &connect, args, step);
    let tcp = match tokio::time::timeout(step, listener.accept()).await {
        Ok(Ok((tcp, _))) => tcp,
        Ok(Err(e)) => panic!("accept: {e}"),
        Err(_) => client.fail("s_client did not connect").await,
    };
    (client, tcp)
}

/// Checks the status page of `openssl s_server -www`: it names the protocol version
/// (`TLSv1.3`, say) and is complete.
pub fn check_www_page(page: &str, version: &str) {
    assert!(
        page.contains(&format!("New, {version}, Cipher is ")),
        "the page does not report {version}:\n{page}"
    );
    assert!(
        page.trim_end().ends_with("</BODY></HTML>"),
        "page cut short:\n{page}"
    );
}

/// Runs `curl -sS` (and `args`) on `https://localhost:{port}{path}`, with `localhost`
/// pinned to 127.0.0.1 and the scratch directory's CA. Returns its stdout; fails on a
/// non-zero exit.
pub async fn curl(
    scratch: &Scratch,
    port: u16,
    args: &[&str],
    path: &str,
    step: Duration,
) -> Vec<u8> {
    let url = format!("https://localhost:{port}{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = scratch.file("ca.pem");
    let mut all = vec!["-sS", "--resolve", &resolve, "--cacert", &ca];
    all.extend(args);
    all.push(&url);
    let mut curl = Proc::spawn("curl", &all, step);
    drop(curl.stdin());
    let out = curl.stdout().await;
    curl.wait_success().await;
    out
}
