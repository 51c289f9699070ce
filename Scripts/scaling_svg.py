#!/usr/bin/env python3
"""Draws the scaling chart (speedup vs workers, one series per kernel and backend, and the
ideal line) as plain SVG text from the `scaling.<backend>.<kernel>.workers_<w>` figures of a
Scripts/bench.sh log. No plotting library needed.

Usage: Scripts/scaling_svg.py Benchmarks/bench-log.jsonl Benchmarks/scaling.svg
"""
import sys
from xml.sax.saxutils import escape

from bench_log import Log

WIDTH, HEIGHT = 560, 400
LEFT, RIGHT, TOP, BOTTOM = 60, 170, 40, 50
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def series_of(log):
    """{(backend, kernel): [(workers, speedup), …]} sorted by workers."""
    series = {}
    for name in log.figures:
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "scaling" and parts[3].startswith("workers_") and parts[2] != "pool":
            workers = int(parts[3].removeprefix("workers_"))
            series.setdefault((parts[1], parts[2]), []).append((workers, log.median(name)))
    return {key: sorted(points) for key, points in sorted(series.items())}


def chart(series):
    max_workers = max(w for points in series.values() for w, _ in points)
    top = max(max_workers, max(s for points in series.values() for _, s in points))
    top = int(top) + 1 if top != int(top) else int(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(workers):
        return LEFT + (workers - 1) / max(1, max_workers - 1) * plot_w if max_workers > 1 else LEFT + plot_w / 2

    def y(speedup):
        return TOP + plot_h - speedup / top * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14">Speedup vs workers (median serial ÷ median parallel time)</text>']
    for tick in range(0, top + 1):
        out.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    for workers in range(1, max_workers + 1):
        out.append(f'<text x="{x(workers):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{workers}</text>')
    out.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="black"/>')
    out.append(f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="black"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 12}" text-anchor="middle">workers</text>')
    out.append(f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + plot_h / 2})">speedup</text>')
    ideal = " ".join(f"{x(w):.1f},{y(w):.1f}" for w in range(1, max_workers + 1))
    out.append(f'<polyline points="{ideal}" fill="none" stroke="#888" stroke-dasharray="5,4"/>')
    legend = [("ideal", "#888", True)]
    for index, ((backend, kernel), points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        line = " ".join(f"{x(w):.1f},{y(s):.1f}" for w, s in points)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for w, s in points:
            out.append(f'<circle cx="{x(w):.1f}" cy="{y(s):.1f}" r="4" fill="{colour}">'
                       f'<title>{escape(kernel)}, {escape(backend)}, {w} workers: {s:.2f}×</title></circle>')
        legend.append((f"{kernel} ({backend})", colour, False))
    for row, (label, colour, dashed) in enumerate(legend):
        ly = TOP + 10 + row * 20
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        out.append(f'<line x1="{WIDTH - RIGHT + 15}" y1="{ly}" x2="{WIDTH - RIGHT + 45}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{WIDTH - RIGHT + 52}" y="{ly + 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: scaling_svg.py LOG.jsonl OUTPUT.svg")
    series = series_of(Log(sys.argv[1]))
    if not series:
        raise SystemExit(f"scaling_svg.py: no scaling figures in {sys.argv[1]}")
    with open(sys.argv[2], "w") as svg:
        svg.write(chart(series))


if __name__ == "__main__":
    main()
