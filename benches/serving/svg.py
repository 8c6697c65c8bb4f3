"""The serving benchmark's latency chart, written as SVG by hand (no plotting library):
the latency at each percentile, one curve per contender, with the percentile axis spread
as 1 / (1 - p) on a log scale so that the tail (p99, p99.9) gets as much room as the
median, and latency on a log scale too.
"""

import math
from xml.sax.saxutils import escape

COLORS = {"lazytls": "#1f77b4", "tokio-rustls": "#ff7f0e", "nginx": "#2ca02c", "go": "#9467bd"}
WIDTH, HEIGHT = 980, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 700, 70, 490
PERCENT_LABELS = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]


def nearest_rank(sorted_values, p):
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


def fmt_us(us):
    if us >= 1000:
        ms = us / 1000
        return f"{ms:.0f} ms" if ms >= 10 or ms == int(ms) else f"{ms:.1f} ms"
    return f"{us:.0f} \u00b5s"


def text(x, y, s, size=12, anchor="start", weight="normal", color="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{color}">{escape(s)}</text>')


def y_ticks(lo, hi):
    """1-2-5 steps between 10**lo and 10**hi microseconds."""
    ticks = []
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** decade
            if lo - 1e-9 <= math.log10(v) <= hi + 1e-9:
                ticks.append(v)
    return ticks


def axes(kmax, lo, hi, sx, sy):
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" '
           f'fill="none" stroke="#888"/>']
    for k in range(int(kmax) + 1):
        x = sx(k)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{BOTTOM}" stroke="#ddd"/>')
        out.append(text(x, BOTTOM + 18, PERCENT_LABELS[min(k, 5)], anchor="middle"))
    for v in y_ticks(lo, hi):
        y = sy(math.log10(v))
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(text(LEFT - 6, y + 4, fmt_us(v), anchor="end", size=11))
    out.append(text((LEFT + RIGHT) / 2, BOTTOM + 40, "percentile", anchor="middle"))
    out.append(f'<text transform="translate(20,{(TOP + BOTTOM) / 2}) rotate(-90)" '
               f'font-size="12" text-anchor="middle" fill="#222">latency (log scale)</text>')
    return out


def curve(values, kmax, sx, sy, color):
    steps = 300
    points = []
    for i in range(steps + 1):
        k = kmax * i / steps
        v = nearest_rank(values, 1 - 10 ** -k)
        points.append(f"{sx(k):.1f},{sy(math.log10(max(v, 1))):.1f}")
    return (f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
            f'stroke-width="2"/>')


def legend(data, names):
    out = []
    y = TOP + 10
    for name in names:
        values = data.get(name)
        if not values:
            continue
        color = COLORS.get(name, "#444")
        out.append(f'<line x1="{RIGHT + 20}" y1="{y}" x2="{RIGHT + 44}" y2="{y}" '
                   f'stroke="{color}" stroke-width="3"/>')
        out.append(text(RIGHT + 50, y + 4, name, size=13, weight="bold"))
        stats = ", ".join(f"{label} {fmt_us(nearest_rank(values, p))}"
                          for p, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")))
        out.append(text(RIGHT + 50, y + 20, stats, size=11))
        out.append(text(RIGHT + 50, y + 35, f"{len(values)} requests", size=11, color="#666"))
        y += 60
    return out


def latency_chart(latencies, names, meta):
    data = {n: sorted(v) for n, v in latencies.items() if v}
    title = (f"Latency at a fixed {meta['fixed_rate_req_per_s']} req/s: HTTP/1.1 keep-alive, "
             f"64 connections, GET / ({meta['small_body_bytes']} B)")
    sub = (f"{meta['mode']} run, {meta['repetitions']} repetitions pooled, "
           f"{meta['seconds_per_sample']} s each; server on CPU 0, h2load on CPU 1; "
           f"load {meta['load_at_start']} at start")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           text(LEFT, 28, title, size=15, weight="bold"), text(LEFT, 48, sub, size=12)]
    if not data:
        out.append(text((LEFT + RIGHT) / 2, (TOP + BOTTOM) / 2, "no latency samples",
                        anchor="middle", size=16))
        return "\n".join(out + ["</svg>"]) + "\n"
    # The tail as far as the smallest sample supports it, up to p99.999.
    kmax = min(5.0, max(1.0, math.log10(min(len(v) for v in data.values()))))
    lo = math.log10(max(1, min(v[0] for v in data.values())))
    hi = math.log10(max(v[-1] for v in data.values()))
    lo, hi = math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2 + 1e-9

    def sx(k):
        return LEFT + (RIGHT - LEFT) * k / kmax

    def sy(logv):
        return BOTTOM - (BOTTOM - TOP) * (logv - lo) / (hi - lo)

    out += axes(kmax, lo, hi, sx, sy)
    for name in names:
        if name in data:
            out.append(curve(data[name], kmax, sx, sy, COLORS.get(name, "#444")))
    out += legend(data, names)
    return "\n".join(out + ["</svg>"]) + "\n"
