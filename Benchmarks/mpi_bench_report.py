#!/usr/bin/env python3
"""Markdown tables from the log of Scripts/bench-mpi.sh (.build-ab/mpi-log.jsonl).

Each run in the log starts with {"side", "np", "per_rank", "load"}; the figures after it are
`swiftmp bench pool` / `swiftmp bench dispatch` / Benchmarks/mpi4py_futures_bench.py lines.
Ratios are taken per round (both sides of a round ran back to back) and their median shown.

    python3 Benchmarks/mpi_bench_report.py .build-ab/mpi-log.jsonl
"""
import json
import re
import statistics
import sys

WORKERS = 4096  # 64 nodes × 64 cores


def load(path):
    runs, meta = [], {}
    current = None
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "meta" in record:
            meta[record["meta"]] = record
        elif "side" in record:
            current = dict(record, figures={})
            runs.append(current)
        elif current is not None and "name" in record:
            current["figures"][record["name"]] = record
    return runs, meta


def fmt(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}g}"


def summary(values):
    if not values:
        return "–"
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}–{fmt(max(values))}]"


def main():
    runs, meta = load(sys.argv[1])
    if "start" in meta:
        m = meta["start"]
        if any(r["side"] == "base" for r in runs):
            print(f"- date: {m['date']}; base {m['base']} (worker ranks run tasks), this {m['this']} "
                  f"(worker ranks host local workers); nproc {m['nproc']}")
        else:
            print(f"- date: {m['date']}; this {m['this']} alone (base not run); nproc {m['nproc']}")
        print(f"- {m['uptime']} at the start" + (f", {meta['end']['uptime']} at the end" if "end" in meta else ""))
    pool = [r for r in runs if any(n.startswith(("mpi.pool.", "mpi4py.pool.")) for n in r["figures"])]
    rows = [
        ("`map` chunk size 1 (tasks/s)", r"pool\.map\.\d+\.chunk_1$", "≥ base", "hi", False),
        ("`map` chunk size 100 (tasks/s)", r"pool\.map\.\d+\.chunk_100$", "≥ base", "hi", True),
        ("`map` default chunk size (tasks/s)", r"pool\.map\.\d+\.chunk_default$", "≥ base", "hi", True),
        ("round trip hot (µs)", r"pool\.(apply|submit)\.roundtrip\.hot$", "≤ 1.2× base", "lo", True),
        ("round trip cold, after 1 ms sleep (µs)", r"pool\.(apply|submit)\.roundtrip\.cold$", "≤ 1.2× base", "lo", True),
    ]
    for np in sorted({r["np"] for r in pool}, reverse=True):
        loads = [r["load"] for r in pool if r["np"] == np]
        print(f"\n`-np {np}` ({np - 1} worker rank{'s' if np > 2 else ''}, one local worker each on this; "
              f"load average 1 min during these runs: {min(loads):.1f}–{max(loads):.1f})\n")
        print("| figure | base (c192c9a) | this | this ÷ base | goal | met | mpi4py.futures | this ÷ mpi4py |")
        print("|---|---|---|---|---|---|---|---|")
        for label, pattern, goal, better, scored in rows:
            per_side = {}
            for r in pool:
                if r["np"] != np:
                    continue
                for name, fig in r["figures"].items():
                    if re.search(pattern, name) and ("input_" not in name) and fig.get("value") is not None:
                        per_side.setdefault(r["side"], []).append(fig["value"])
            b, t, p = per_side.get("base", []), per_side.get("this", []), per_side.get("mpi4py", [])
            ratios = [y / x for x, y in zip(b, t) if x]
            ratio = statistics.median(ratios) if ratios else None
            vs_py = [y / x for x, y in zip(p, t) if x]
            met = "–"
            if scored and ratio is not None:
                ok = ratio >= 1.0 if better == "hi" else ratio <= 1.2
                met = "**yes**" if ok else "**no**"
            elif ratio is not None:
                met = "reported"
            print(f"| {label} | {summary(b)} | {summary(t)} | "
                  f"{fmt(ratio) if ratio else '–'} [{fmt(min(ratios)) if ratios else '–'}–{fmt(max(ratios)) if ratios else '–'}] | "
                  f"{goal if scored else '–'} | {met} | {summary(p)} | {fmt(statistics.median(vs_py)) + '×' if vs_py else '–'} |")
    dispatch = {}
    for r in runs:
        for name, fig in r["figures"].items():
            match = re.match(r"mpi\.dispatch\.ranks_(\d+)\.processes_(\d+)\.chunk_(\d+)$", name)
            if match:
                ranks, processes = int(match.group(1)), int(match.group(2))
                # The layout: given by the run (SCHEDULING), else the default (node when a
                # rank hosts several workers); older logs had only relay.
                layout = r.get("scheduling") or ("node" if processes > ranks and "scheduling" in r else "relay")
                if r["side"] == "base":
                    layout = "ranks run tasks"
                key = (r["side"], ranks, processes, layout)
                d = dispatch.setdefault(key, {"rate": [], "cost": [], "share": [], "load": [], "engine": [], "node": []})
                d["rate"].append(fig["value"])
                d["cost"].append(fig["rank0_cpu_us_per_task"])
                d["share"].append(fig["rank0_cpu_share"])
                d["load"].append(r["load"])
                if "engine_cpu_us_per_task" in fig:
                    d["engine"].append(fig["engine_cpu_us_per_task"])
                if "engine_node_cpu_us_per_task" in fig:
                    d["node"].append(fig["engine_node_cpu_us_per_task"])
    if dispatch:
        print("\nRank 0's dispatch capacity: `map` of tasks that do nothing, chunk size 1; rank 0's CPU "
              "time (getrusage, all its threads) per task; ceiling = 1 ÷ that cost; bound below = the "
              f"task length under which {WORKERS} workers (64 nodes × 64 cores) are limited by rank 0 "
              f"({WORKERS} × cost); engine alone = the same map driven by the engine with workers "
              "answering inline, rank 0 scheduling every worker (`engine_cpu_us_per_task`) and each rank "
              "one slot answering bundles (`engine_node_cpu_us_per_task`, `EngineCostProbe`): the floor "
              "under rank 0's cost in each layout.\n")
        print("| side | layout | worker ranks × local workers | tasks/s at rank 0 | rank 0 CPU µs/task | rank 0 CPU ÷ wall | "
              f"ceiling 1/c (tasks/s) | tasks shorter than this are bound by rank 0 at {WORKERS} workers | "
              "engine alone µs/task (relay) | engine alone µs/task (node) | load (1 min) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        order = {"ranks run tasks": 0, "relay": 1, "node": 2}
        for key in sorted(dispatch, key=lambda k: (k[0] != "base", k[2] // max(k[1], 1), order.get(k[3], 3), k[1])):
            side, ranks, processes, layout = key
            d = dispatch[key]
            cost = statistics.median(d["cost"])
            label = "base (c192c9a)" if side == "base" else "this"
            bound = WORKERS * cost
            print(f"| {label} | {layout} | {ranks} × {processes // max(ranks, 1)} | {summary(d['rate'])} | {summary(d['cost'])} | "
                  f"{fmt(statistics.median(d['share']), 2)} | {fmt(1e6 / cost) if cost > 0 else '–'} | "
                  f"{fmt(bound / 1000) + ' ms' if bound >= 1000 else fmt(bound) + ' µs'} | "
                  f"{summary(d['engine']) if d['engine'] else '–'} | {summary(d['node']) if d['node'] else '–'} | "
                  f"{min(d['load']):.1f}–{max(d['load']):.1f} |")


if __name__ == "__main__":
    main()
