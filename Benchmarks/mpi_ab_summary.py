#!/usr/bin/env python3
"""Summaries of interleaved A/B logs of Benchmarks/reports/mpi-relay.md (session 10).

    python3 Benchmarks/mpi_ab_summary.py pool LOG SIDE_A SIDE_B…
        `swiftmp bench pool` runs (a {"side", "round", "loadavg"} line before each run's figures):
        per figure, each side's median [min-max] and each side's ratio to SIDE_A, the median of the
        per-round ratios [min-max].
    python3 Benchmarks/mpi_ab_summary.py dispatch LOG BASE_SIDE
        `swiftmp bench dispatch` runs under Benchmarks/mpi_cpu_by_role.py: per chunk size and side,
        tasks/s, rank 0's CPU µs per task (getrusage, the benchmark's own), and the CPU µs per
        task of rank 0, the worker ranks, the local workers and all three over the window
        (CPU in the window ÷ (median tasks/s × window)); then each side's per-round ratio to
        BASE_SIDE of tasks/s and of rank 0's CPU per task.
"""
import json
import statistics as st
import sys


def records(path):
    side = None
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            if "side" in record:
                side = record
            else:
                yield side, record


def span(values):
    return f"{st.median(values):.4g} [{min(values):.3g}–{max(values):.3g}]"


def pool(path, sides):
    data = {}
    for side, record in records(path):
        name, value = record.get("name"), record.get("value")
        if name and isinstance(value, (int, float)):
            data.setdefault(name, {}).setdefault(side["side"], {})[side["round"]] = (value, float(side["loadavg"].split()[0]))
    loads = []
    for name in sorted(data):
        if name.endswith((".workers", ".startup")) or ".input_" in name:
            continue
        line = f"{name:42}"
        for s in sides:
            values = [v for v, _ in data[name].get(s, {}).values()]
            loads += [l for _, l in data[name].get(s, {}).values()]
            if values:
                line += f" | {s} {span(values)}"
        for s in sides[1:]:
            base = data[name].get(sides[0], {})
            ratios = [v / base[r][0] for r, (v, _) in data[name].get(s, {}).items() if r in base]
            if ratios:
                line += f" | {s}÷{sides[0]} {span(ratios)}"
        print(line)
    print(f"load (1 min) {min(loads)}–{max(loads)}")


def dispatch(path, base):
    rows, pending = [], {}
    for side, record in records(path):
        if "name" in record:
            pending = {"rate": record["value"], "r0": record["rank0_cpu_us_per_task"]}
        elif "cpu_by_role" in record and pending and record.get("status") == 0:
            rows.append((side, pending, record))
            pending = {}
    table = {}
    for side, figures, window in rows:
        tasks = figures["rate"] * window["window_s"]
        cpu = window["cpu_by_role"]
        entry = table.setdefault((side["chunk"], side["side"]), {k: [] for k in ("rate", "r0", "rank0", "ranks", "workers", "total", "load")})
        entry["rate"].append(figures["rate"])
        entry["r0"].append(figures["r0"])
        entry["rank0"].append(cpu["rank0"] / tasks * 1e6)
        entry["ranks"].append(cpu["worker_ranks"] / tasks * 1e6)
        entry["workers"].append(cpu["local_workers"] / tasks * 1e6)
        entry["total"].append(sum(cpu.values()) / tasks * 1e6)
        entry["load"].append(float(side["loadavg"].split()[0]))
    for (chunk, side), e in sorted(table.items()):
        print(
            f"chunk {chunk} {side}: tasks/s {span(e['rate'])}; rank 0 µs/task (getrusage) {span(e['r0'])}; "
            f"window µs/task: rank 0 {span(e['rank0'])}, worker ranks {span(e['ranks'])}, "
            f"local workers {span(e['workers'])}, all {span(e['total'])}; load {span(e['load'])}")
    by_round = {}
    for side, figures, _ in rows:
        by_round[(side["chunk"], side["side"], side["round"])] = figures
    for (chunk, side) in sorted(table):
        rates, costs = [], []
        for (c, s, r), figures in by_round.items():
            other = by_round.get((c, base, r))
            if c == chunk and s == side and other:
                rates.append(figures["rate"] / other["rate"])
                costs.append(figures["r0"] / other["r0"])
        if rates and side != base:
            print(f"chunk {chunk} {side}÷{base}: tasks/s {span(rates)}; rank 0 CPU per task {span(costs)}")


if __name__ == "__main__":
    if sys.argv[1] == "pool":
        pool(sys.argv[2], sys.argv[3:])
    else:
        dispatch(sys.argv[2], sys.argv[3])
