"""The serving benchmark's parsing, statistics and output: the table, the figures merged
into target/bench-summary.json, target/serving/report.json and the latency chart
(target/serving/latency.svg, written here by hand). Also the nginx config. See README.md.
"""

import json
import math
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path

import svg

BASELINE = "tokio-rustls"
# Column heads of the ratios against the baseline (tokio-rustls, "tr").
SHORT = {"lazytls": "lz", "nginx": "nginx", "go": "go"}
PERCENTILES = [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")]

# (key, label, unit, better): the table's rows in order; "  " marks a row that belongs to
# the one above it.
FIGURES = [
    ("h1/small/req_per_s", "HTTP/1.1 keep-alive, 64 conns, GET /", "req/s", "higher"),
    ("h1/small/cpu_us_per_req", "  server CPU per request", "us", "lower"),
    ("h1/64k/req_per_s", "HTTP/1.1 keep-alive, 64 conns, GET /64k", "req/s", "higher"),
    ("h1/64k/cpu_us_per_req", "  server CPU per request", "us", "lower"),
    ("h2/small/req_per_s", "HTTP/2, 16 conns x 32 streams, GET /", "req/s", "higher"),
    ("h2/small/cpu_us_per_req", "  server CPU per request", "us", "lower"),
    ("h2/64k/req_per_s", "HTTP/2, 16 conns x 32 streams, GET /64k", "req/s", "higher"),
    ("h2/64k/cpu_us_per_req", "  server CPU per request", "us", "lower"),
    ("conn/full/conn_per_s", "new connection per request, full handshake", "conn/s", "higher"),
    ("conn/full/cpu_us_per_conn", "  server CPU per connection", "us", "lower"),
    ("conn/resumed/conn_per_s", "new connection per request, resumed (ticket)", "conn/s", "higher"),
    ("conn/resumed/cpu_us_per_conn", "  server CPU per connection", "us", "lower"),
    ("conn/resumed/resumed_share", "  share of handshakes resumed", "", "higher"),
    ("latency/p50_ms", "fixed rate, HTTP/1.1, 64 conns, GET /: p50", "ms", "lower"),
    ("latency/p99_ms", "  p99", "ms", "lower"),
    ("latency/p99.9_ms", "  p99.9", "ms", "lower"),
    ("latency/req_per_s", "  rate achieved", "req/s", "higher"),
    ("latency/cpu_us_per_req", "  server CPU per request", "us", "lower"),
    ("idle/rss_kib_per_conn", "RSS per idle keep-alive connection", "KiB", "lower"),
    ("idle/rss_base_mib", "  RSS before opening them", "MiB", "lower"),
]

NOTES = [
    "Go 1.19 cannot restrict TLS 1.3 cipher suites (tls.Config.CipherSuites covers TLS 1.2 "
    "and below); every client here offers only TLS_AES_128_GCM_SHA256, so Go negotiates it "
    "too (see the TLS line of each contender).",
    "h2load cannot resume TLS sessions (it never sets a session on its connections): the two "
    "new-connection rows use serving_client (rustls) for both full and resumed handshakes.",
    "New-connection rates are bounded by the one-core client as much as by the server; "
    "server CPU per connection is the comparison.",
    "h2load's --rps queues a request behind a slow response on its connection and times it "
    "from when it is sent (coordinated omission): the tail percentiles are optimistic.",
]


class Results:
    """Samples per figure and contender, None where a sample failed."""

    def __init__(self, contenders):
        self.contenders = contenders
        self.samples = {}
        self.latencies = {}

    def add(self, key, name, value):
        self.samples.setdefault(key, {}).setdefault(name, []).append(value)

    def median(self, key, name):
        values = [v for v in self.samples.get(key, {}).get(name, []) if v is not None]
        return statistics.median(values) if values else None


def parse_h2load(text):
    """h2load's summary: req/s, 2xx responses, failures, and the TLS parameters."""
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    reqs = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                     r"(\d+) failed, \d+ errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    ok = int(codes.group(1)) if codes else 0
    failed = int(reqs.group(2)) + int(reqs.group(3)) if reqs else 0
    if codes:
        failed += sum(int(codes.group(i)) for i in (2, 3, 4))
    tls = {}
    for field, label in (("version", "TLS Protocol"), ("suite", "Cipher"),
                         ("kx", "Server Temp Key"), ("alpn", "Application protocol")):
        m = re.search(rf"^{label}: (.*)$", text, re.M)
        tls[field] = m.group(1).strip() if m else None
    return {"rps": float(rate.group(1)) if rate else None, "ok": ok, "failed": failed,
            "tls": tls}


def read_latencies(path):
    """Microseconds to the end of each successful response of an h2load --log-file, sorted."""
    if not path.exists():
        return []
    out = []
    with open(path) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1] == "200":
                out.append(int(cols[2]))
    return sorted(out)


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def nginx_version():
    out = subprocess.run(["nginx", "-V"], capture_output=True, text=True).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0), out


def nginx_conf(prefix, port, pki, www, fd_limit, slots):
    """One worker, no master, no access log, TLS 1.3 with AES-128-GCM only, tickets on,
    HTTP/2 on the listener, the bodies as static files with their descriptors cached."""
    version, _ = nginx_version()
    # `http2 on` exists from 1.25.1; older versions (Debian 12's 1.22) take a listen flag.
    listen = f"listen 127.0.0.1:{port} ssl"
    listen = f"{listen};\n    http2 on;" if version >= (1, 25, 1) else f"{listen} http2;"
    tmp = prefix / "tmp"
    return f"""daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {fd_limit};
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections {slots}; }}
http {{
  access_log off;
  types {{}}
  default_type text/plain;
  etag off;
  server_tokens off;
  open_file_cache max=16 inactive=1h;
  open_file_cache_valid 1h;
  keepalive_timeout 600s;
  keepalive_requests 1000000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    {listen}
    ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    ssl_session_tickets on;
    root {www};
    location = / {{ try_files /small.txt =404; }}
    location = /64k {{ try_files /64k.bin =404; }}
  }}
}}
"""


def loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def first_line(argv, stream="stdout"):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout if stream == "stdout" else out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def meta(plan, tls, rate, load, wall):
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    _, nginx_v = nginx_version()
    openssl = re.findall(r"(built with|running with) (OpenSSL [^ ]+)", nginx_v)
    return {
        "mode": "quick" if plan.quick else "full",
        "repetitions": plan.reps,
        "seconds_per_sample": plan.secs,
        "warm_up_seconds": plan.warm,
        "idle_connections": plan.idle_conns,
        "time_wait_drained": plan.drain,
        "fixed_rate_req_per_s": rate,
        "contenders": plan.contenders,
        "baseline": BASELINE,
        "small_body_bytes": (plan.www / "small.txt").stat().st_size,
        "large_body_bytes": (plan.www / "64k.bin").stat().st_size,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "load_at_start": load,
        "load_at_end": loadavg(),
        "wall_seconds": round(wall, 1),
        "versions": {
            "rustc": first_line(["rustc", "--version"]),
            "nginx": first_line(["nginx", "-v"], "stderr"),
            "nginx_openssl": ", ".join(" ".join(m) for m in openssl) or "unknown",
            "go": first_line(["go", "version"]),
            "h2load": first_line(["h2load", "--version"]),
        },
        "tls": tls,
        "notes": NOTES,
    }


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def rows(results):
    out = []
    names = results.contenders
    for key, label, unit, better in FIGURES:
        if key not in results.samples:
            continue
        med = {n: results.median(key, n) for n in names}
        base = med.get(BASELINE)
        ratios = {n: (med[n] / base if med[n] is not None and base else None)
                  for n in names if n != BASELINE}
        row = {"name": f"serving/{key}", "label": label.strip(), "unit": unit,
               "better": better}
        row.update({n.replace("-", "_"): med[n] for n in names})
        row["ratio"] = ratios.get("lazytls")
        row["ratios"] = ratios
        row["samples"] = {n: results.samples[key].get(n, []) for n in names}
        out.append(row)
    return out


def table(results, table_rows):
    names = results.contenders
    others = [n for n in names if n != BASELINE]
    by_name = {row["name"]: row for row in table_rows}
    head = f"{'figure':<46} {'unit':>6} " + " ".join(f"{n:>12}" for n in names)
    head += " " + " ".join(f"{SHORT.get(n, n) + '/tr':>9}" for n in others)
    lines = [head, "-" * len(head)]
    for key, label, unit, _ in FIGURES:
        row = by_name.get(f"serving/{key}")
        if row is None:
            continue
        values = " ".join(f"{fmt(row[n.replace('-', '_')]):>12}" for n in names)
        ratios = " ".join(f"{fmt(row['ratios'][n]):>9}" for n in others)
        lines.append(f"{label:<46} {unit:>6} {values} {ratios}")
    return "\n".join(lines)


def header(meta):
    v = meta["versions"]
    out = [
        f"mode: {meta['mode']}; {meta['repetitions']} repetitions, contenders interleaved, "
        f"order rotated; {meta['seconds_per_sample']} s per sample after "
        f"{meta['warm_up_seconds']} s of warm-up; medians; ratios against {BASELINE}",
        f"cpu: {meta['cpu']} ({meta['cores']} cores); server on CPU 0, client on CPU 1; "
        f"load {meta['load_at_start']} at start, {meta['load_at_end']} at end",
        f"rust servers: tokio current_thread; nginx: 1 worker, no master; go: GOMAXPROCS=1",
        f"{v['rustc']}; {v['nginx']} ({v['nginx_openssl']}); {v['go']}; {v['h2load']}",
        f"bodies: / = {meta['small_body_bytes']} B, /64k = {meta['large_body_bytes']} B; "
        f"fixed rate: {meta['fixed_rate_req_per_s']} req/s; idle connections: "
        f"{meta['idle_connections']}; TIME_WAIT drained before connection and latency "
        f"samples: {'yes' if meta.get('time_wait_drained') else 'no'}",
    ]
    for name, protos in meta["tls"].items():
        parts = [f"{p}: {t['version']} {t['suite']} {t['kx']} alpn={t['alpn']}"
                 for p, t in sorted(protos.items())]
        out.append(f"tls {name}: " + "; ".join(parts))
    return "\n".join(out)


def merge_summary(path, table_rows, meta):
    """`cargo bench --bench compare` writes an array of figures: the serving figures join
    it (replacing those of an earlier run), so that its readers see one more set of rows.
    A summary that is an object gets them under a "serving" key instead."""
    summary = []
    if path.exists():
        try:
            summary = json.loads(path.read_text())
        except ValueError:
            print(f"warning: {path} is not JSON; starting it anew")
    if isinstance(summary, dict):
        summary["serving"] = {"meta": meta, "figures": table_rows}
    else:
        summary = [f for f in summary if not str(f.get("name", "")).startswith("serving/")]
        summary.extend(table_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))


def finish(plan, results, meta):
    table_rows = rows(results)
    text = header(meta) + "\n\n" + table(results, table_rows)
    text += "\n\nnotes:\n" + "\n".join(f"- {n}" for n in NOTES)
    print(text)
    out = plan.target / "serving"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps({"meta": meta, "figures": table_rows},
                                                indent=2))
    summary = plan.target / "bench-summary.json"
    merge_summary(summary, table_rows, meta)
    chart = out / "latency.svg"
    chart.write_text(svg.latency_chart(results.latencies, results.contenders, meta))
    print(f"\nsummary: {summary} ({len(table_rows)} serving figures)")
    print(f"report: {out / 'report.txt'}, {out / 'report.json'}")
    print(f"chart: {chart}")
