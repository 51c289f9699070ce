#!/usr/bin/env python3
"""The table of Benchmarks/engine-ab.md from a log of Scripts/bench-ab.sh (.build-ab/log.jsonl):
per figure, each side's median over the rounds, their ratio (this ÷ base), and every round's value.

    python3 Benchmarks/engine_ab_table.py LOG [PREFIX]

PREFIX keeps only the figures whose names start with it (e.g. `mpi.`).
"""
import json
import statistics
import sys

path = sys.argv[1]
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
side, figures = None, {}
for line in open(path):
    line = line.strip()
    if not line.startswith("{"):
        continue
    record = json.loads(line)
    if "side" in record:
        side = record["side"]
        continue
    name, value = record.get("name"), record.get("value")
    if name is None or not isinstance(value, (int, float)) or not name.startswith(prefix):
        continue
    figures.setdefault(name, {}).setdefault(side, []).append(value)


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
