"""The serving benchmark's driver; `benches/serving/run` prepares everything and calls it.

Starts the four servers (pinned to CPU 0), drives them with h2load and the Rust
`serving_client` (pinned to CPU 1), one figure at a time, the contenders interleaved and
their order rotated every repetition, and hands the samples to `report.py`. See README.md.
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import report

SERVER_CPU, CLIENT_CPU = "0", "1"
CONTENDERS = ["lazytls", "tokio-rustls", "nginx", "go"]
SUITE = "TLS_AES_128_GCM_SHA256"
# Connections (and streams per connection) of the keep-alive rows.
H1_CONNS, H2_CONNS, H2_STREAMS = 64, 16, 32
CONNECT_CONCURRENCY = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Before each sample that follows new-connection load: wait (at most the wait, a little
# over TCP's 60 s TIME_WAIT) until fewer sockets than the limit are in TIME_WAIT.
TIME_WAIT_LIMIT, TIME_WAIT_WAIT = 1000, 70.0


class Plan:
    """The run's settings, from the environment (README.md lists them)."""

    def __init__(self, args):
        env = os.environ
        self.quick = env.get("LAZYTLS_SERVING_QUICK", "") not in ("", "0")
        self.reps = int(env.get("LAZYTLS_SERVING_REPS", "3"))
        self.secs = float(env.get("LAZYTLS_SERVING_SECS", "2" if self.quick else "10"))
        self.warm = 0.5 if self.quick else 1.0
        default_idle = "500" if self.quick else "10000"
        self.idle_conns = int(env.get("LAZYTLS_SERVING_IDLE_CONNS", default_idle))
        chosen = env.get("LAZYTLS_SERVING_CONTENDERS", ",".join(CONTENDERS)).split(",")
        self.contenders = [c for c in CONTENDERS if c in chosen]
        # On by default in full mode; a quick run skips the waits (its connection rows are
        # then biased by sample order, see `drain_time_wait`).
        drain = env.get("LAZYTLS_SERVING_DRAIN", "0" if self.quick else "1")
        self.drain = drain not in ("", "0")
        self.work, self.target, self.bins = Path(args.work), Path(args.target), Path(args.bins)
        self.pki, self.www = self.work / "pki", self.work / "www"
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.fd_limit = 1 << 20 if soft == resource.RLIM_INFINITY else min(soft, 1 << 20)
        # Each side holds one descriptor per idle connection, plus its own few.
        room = self.fd_limit - 256
        if self.idle_conns > room:
            log(f"open-file limit {self.fd_limit}: idle connections lowered to {room}")
            self.idle_conns = room


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process, pinned to SERVER_CPU, on a port of its own."""

    def __init__(self, plan, name):
        self.plan, self.name, self.port = plan, name, free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None

    def argv(self):
        p, pki, www = self.plan, self.plan.pki, self.plan.www
        files = [str(pki / "server.pem"), str(pki / "server.key")]
        bodies = [str(www / "small.txt"), str(www / "64k.bin")]
        if self.name in ("lazytls", "tokio-rustls"):
            return [str(p.bins / "serving_server"), "--stack", self.name, "--addr", self.addr,
                    "--cert", files[0], "--key", files[1], "--small", bodies[0],
                    "--large", bodies[1]]
        if self.name == "go":
            return [str(p.work / "go-server"), "-addr", self.addr, "-cert", files[0],
                    "-key", files[1], "-small", bodies[0], "-large", bodies[1]]
        prefix = p.work / f"nginx-{self.port}"
        # Enough connection slots for the idle row, and no more: nginx allocates and
        # touches them all at start, which would inflate its base RSS.
        slots = min(p.fd_limit - 64, p.idle_conns + 1024)
        conf = report.nginx_conf(prefix, self.port, pki, www, p.fd_limit, slots)
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        (prefix / "nginx.conf").write_text(conf)
        return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                "-e", str(prefix / "error.log")]

    def start(self):
        env = dict(os.environ, GOMAXPROCS="1")
        logs = self.plan.work / "logs"
        logs.mkdir(exist_ok=True)
        out = open(logs / f"{self.name}-{self.port}.log", "w")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + self.argv(), env=env,
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        with open(self.plan.work / "pids", "a") as pids:
            pids.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {logs}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} is not listening on {self.addr} after 10 s")

    def cpu_secs(self):
        """utime + stime of the whole process (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def h2load(plan, server, path, h1, rps=None, log_file=None):
    """One h2load run; the server's CPU time is read when h2load starts and ends its main
    phase (it prints both as they happen), so the warm-up is left out of it."""
    conns, streams = (H1_CONNS, 1) if h1 else (H2_CONNS, H2_STREAMS)
    argv = ["taskset", "-c", CLIENT_CPU, "h2load", "-t", "1", "-c", str(conns),
            "-m", str(streams), "-D", f"{int(plan.secs * 1000)}ms",
            "--warm-up-time", f"{int(plan.warm * 1000)}ms", "--tls13-ciphers", SUITE]
    argv += ["--h1"] if h1 else []
    argv += ["--rps", str(rps)] if rps else []
    argv += ["--log-file", str(log_file)] if log_file else []
    argv.append(f"https://{server.addr}{path}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # h2load keeps reconnecting to a server that closes on it; never wait for ever.
    watchdog = threading.Timer(plan.secs + plan.warm + 30, proc.kill)
    watchdog.start()
    lines, cpu = [], {}
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Main benchmark duration is started" in line:
                cpu["start"] = server.cpu_secs()
            elif "Main benchmark duration is over" in line:
                cpu["end"] = server.cpu_secs()
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = report.parse_h2load("".join(lines))
    if result["ok"] and len(cpu) == 2:
        result["cpu_us"] = (cpu["end"] - cpu["start"]) / result["ok"] * 1e6
    if result["failed"] or not result["ok"]:
        log(f"  {server.name}: h2load: {result['ok']} ok, {result['failed']} failed")
    return result


def client(plan, server, *args):
    return [str(plan.bins / "serving_client"), *args, "--addr", server.addr,
            "--ca", str(plan.pki / "ca.pem")]


def connect(plan, server, resume):
    """New connections, one request each; server CPU time over the client's whole run."""
    argv = ["taskset", "-c", CLIENT_CPU] + client(plan, server, "connect")
    argv += ["--secs", str(plan.secs), "--concurrency", str(CONNECT_CONCURRENCY)]
    argv += ["--resume"] if resume else []
    before = server.cpu_secs()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=plan.secs + 60)
    after = server.cpu_secs()
    if out.returncode != 0 or not out.stdout.strip():
        log(f"  {server.name}: serving_client failed: {out.stderr.strip()}")
        return None
    data = json.loads(out.stdout.strip().splitlines()[-1])
    if data["errors"]:
        log(f"  {server.name}: {data['errors']} failed connections: {out.stderr.strip()}")
    conns = data["conns"]
    if not conns:
        return None
    return {"rate": conns / data["secs"], "cpu_us": (after - before) / conns * 1e6,
            "resumed": data["resumed"] / conns}


def idle_memory(plan, name):
    """RSS per idle keep-alive connection, on a fresh server of its own: opened with one
    request each, measured once all are open."""
    server = Server(plan, name).start()
    holder = None
    try:
        warm = ["taskset", "-c", CLIENT_CPU, "h2load", "--h1", "-n", "256", "-c", "4",
                f"https://{server.addr}/"]
        subprocess.run(warm, capture_output=True, timeout=60)
        time.sleep(0.5)
        before = server.rss_kib()
        argv = ["taskset", "-c", CLIENT_CPU]
        argv += client(plan, server, "hold", "--conns", str(plan.idle_conns))
        argv += ["--max-secs", "600"]
        holder = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        with open(plan.work / "pids", "a") as pids:
            pids.write(f"{holder.pid}\n")
        watchdog = threading.Timer(60 + plan.idle_conns / 100, holder.kill)
        watchdog.start()
        line = holder.stdout.readline()
        watchdog.cancel()
        if not line.startswith("held"):
            holder.kill()
            log(f"  {name}: serving_client hold failed: {holder.communicate()[1].strip()}")
            return None
        time.sleep(1.0)
        after = server.rss_kib()
        return {"kib_per_conn": (after - before) / plan.idle_conns, "base_mib": before / 1024}
    finally:
        if holder and holder.poll() is None:
            holder.kill()
            holder.wait()
        server.stop()


def rounds(plan, what):
    """(rep, contender) for every sample of a figure: all contenders once per repetition,
    their order rotated each time, so that drift in the machine's load hits all of them."""
    for rep in range(plan.reps):
        k = rep % len(plan.contenders)
        for name in plan.contenders[k:] + plan.contenders[:k]:
            log(f"{what}: rep {rep + 1}/{plan.reps}: {name}")
            yield rep, name


def keep_alive_rows(plan, servers, results, tls):
    for h1, proto in ((True, "h1"), (False, "h2")):
        for path, body in (("/", "small"), ("/64k", "64k")):
            key = f"{proto}/{body}"
            for _, name in rounds(plan, key):
                r = h2load(plan, servers[name], path, h1)
                results.add(f"{key}/req_per_s", name, r["rps"] if r["ok"] else None)
                results.add(f"{key}/cpu_us_per_req", name, r.get("cpu_us"))
                tls.setdefault(name, {})[proto] = r["tls"]


def time_wait_sockets():
    """TCP sockets in TIME_WAIT (`tw` of /proc/net/sockstat), or None if unknown."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    fields = line.split()
                    return int(fields[fields.index("tw") + 1])
    except (OSError, ValueError):
        return None
    return None


def drain_time_wait(plan):
    """Waits until the TIME_WAIT sockets of earlier new-connection samples are gone.

    A sample of new connections leaves tens of thousands of sockets in TIME_WAIT, and the
    kernel work they cause until they expire (and while they stay in the lookup tables)
    lands partly on the server's core, charged to whichever server runs there then: with
    the contenders interleaved, the next one. Measured on one lazytls server: 183 µs of
    CPU per connection right after another server's sample, 155 µs after a quiet minute.
    """
    if not plan.drain:
        return
    start = time.time()
    count = time_wait_sockets()
    while count is not None and count >= TIME_WAIT_LIMIT:
        if time.time() - start > TIME_WAIT_WAIT:
            log(f"  {count} sockets still in TIME_WAIT after {TIME_WAIT_WAIT:.0f} s; going on")
            return
        time.sleep(1)
        count = time_wait_sockets()


def connection_rows(plan, servers, results):
    for resume, kind in ((False, "full"), (True, "resumed")):
        for _, name in rounds(plan, f"connections/{kind}"):
            drain_time_wait(plan)
            r = connect(plan, servers[name], resume)
            results.add(f"conn/{kind}/conn_per_s", name, r and r["rate"])
            results.add(f"conn/{kind}/cpu_us_per_conn", name, r and r["cpu_us"])
            if resume:
                results.add("conn/resumed/resumed_share", name, r and r["resumed"])


def latency_rows(plan, servers, results):
    """Fixed rate: half the slowest contender's keep-alive rate (HTTP/1.1, small body)."""
    rates = [results.median("h1/small/req_per_s", n) for n in plan.contenders]
    rates = [r for r in rates if r]
    if not rates:
        log("latency: no keep-alive rate to start from; skipped")
        return None
    per_conn = max(1, int(min(rates) / 2 / H1_CONNS))
    for rep, name in rounds(plan, f"latency at {per_conn * H1_CONNS} req/s"):
        log_file = plan.work / f"latency-{name}-{rep}.tsv"
        log_file.unlink(missing_ok=True)  # h2load appends
        r = h2load(plan, servers[name], "/", True, rps=per_conn, log_file=log_file)
        lat = report.read_latencies(log_file)
        results.latencies.setdefault(name, []).extend(lat)
        for q, label in report.PERCENTILES:
            ms = report.percentile(lat, q) / 1000 if lat else None
            results.add(f"latency/{label}_ms", name, ms)
        results.add("latency/req_per_s", name, r["rps"] if r["ok"] else None)
        results.add("latency/cpu_us_per_req", name, r.get("cpu_us"))
    return per_conn * H1_CONNS


def main():
    # A TERM (from the run script's clean-up) unwinds like Ctrl-C, through the `finally`
    # blocks that stop the servers and clients.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    for flag in ("--work", "--target", "--bins"):
        ap.add_argument(flag, required=True)
    plan = Plan(ap.parse_args())
    results, tls = report.Results(plan.contenders), {}
    started, load = time.monotonic(), report.loadavg()
    servers = {}
    try:
        for name in plan.contenders:
            servers[name] = Server(plan, name).start()
            # One untimed pass, so that no first sample pays for lazy set-up.
            for h1 in (True, False):
                subprocess.run(["taskset", "-c", CLIENT_CPU, "h2load", "-n", "2000", "-c", "8",
                                "-m", "1" if h1 else "4", *(["--h1"] if h1 else []),
                                f"https://{servers[name].addr}/"],
                               capture_output=True, timeout=60)
        keep_alive_rows(plan, servers, results, tls)
        connection_rows(plan, servers, results)
        drain_time_wait(plan)
        rate = latency_rows(plan, servers, results)
    finally:
        for server in servers.values():
            server.stop()
    for _, name in rounds(plan, f"idle memory, {plan.idle_conns} connections"):
        r = idle_memory(plan, name)
        results.add("idle/rss_kib_per_conn", name, r and r["kib_per_conn"])
        results.add("idle/rss_base_mib", name, r and r["base_mib"])
    meta = report.meta(plan, tls, rate, load, time.monotonic() - started)
    report.finish(plan, results, meta)


if __name__ == "__main__":
    main()
