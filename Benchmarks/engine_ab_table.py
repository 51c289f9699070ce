#!/usr/bin/env python3
"""The table of Benchmarks/engine-ab.md from a log of Scripts/bench-ab.sh (.build-ab/log.jsonl):
per figure, each side's median over the rounds, their ratio (this ÷ base), and every round's value.

    python3 Benchmarks/engine_ab_table.py LOG [PREFIX]

PREFIX keeps only the figures whose names start with it (e.g. `mpi.`).
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Scripts"))
from bench_log import ab_figures  # noqa: E402

figures = ab_figures(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")

def number(value):
    return f"{value:.3g}"


print("| figure | rounds | base | this | this/base (medians) | per round, base → this |")
print("|---|---|---|---|---|---|")
for name in sorted(figures):
    sides = figures[name]
    if "base" not in sides or "this" not in sides:
        continue
    base, this = statistics.median(sides["base"]), statistics.median(sides["this"])
    ratio = this / base if base else float("nan")
    rounds = " / ".join(map(number, sides["base"])) + " → " + " / ".join(map(number, sides["this"]))
    print(f"| {name} | {min(len(sides['base']), len(sides['this']))} | {number(base)} | {number(this)} | {ratio:.3f} | {rounds} |")
