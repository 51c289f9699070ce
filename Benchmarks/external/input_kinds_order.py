#!/usr/bin/env python3
"""Does a kind's figure depend on the order the kinds run in? Runs each given benchmark
program (`swiftmp-user`, as built by `swift build -c release --package-path
Benchmarks/external`) in turn, round after round, once per order (`--input-order rotated`,
the old fixed cyclic order, and `shuffled`, a new order every repetition, seeded by the
round), with every timing (`--input-samples`), and prints:

- per program and order: each kind's `vs_array` (its time ÷ the ready Array's in the same
  repetition), median over the rounds [min–max];
- per program, over both orders: each kind's time ÷ the Array's median time in the same
  run, by the kind that ran just before it (median [count]) — what a kind pays after each
  neighbour.

    python3 Benchmarks/external/input_kinds_order.py BINARY [BINARY…] [--rounds 6]
        [--repetitions 10] [--only pool.map.200000.chunk_default] [--orders rotated,shuffled]
        [--kinds range,set] [--json LOG]

The load average is read before every run and printed with the tables.
"""
import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict


def run(binary, only, repetitions, order, seed, kinds):
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    command = [binary, "bench", "pool", "--processes", "2", "--start-method", "fork", "--only", only,
               "--repetitions", str(repetitions), "--input-order", order, "--input-seed", str(seed),
               "--input-samples"]
    if kinds:
        command += ["--input-kinds", kinds]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return load, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def spread(values):
    if not values:
        return ""
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--only", default="pool.map.200000.chunk_default")
    parser.add_argument("--orders", default="rotated,shuffled")
    parser.add_argument("--kinds", help="only these kinds beside the array (--input-kinds)")
    parser.add_argument("--json", help="append every figure here, with its program, order, round and load")
    args = parser.parse_args()
    orders = args.orders.split(",")

    # vs_array[(binary, order, figure prefix)][kind] = [per round]
    vs_array = defaultdict(lambda: defaultdict(list))
    # after[(binary, prefix)][(kind, previous)] = [sample ÷ the run's median array time]
    after = defaultdict(lambda: defaultdict(list))
    loads = []
    log = open(args.json, "a") if args.json else None
    for round_ in range(args.rounds):
        runs = [(b, o) for b in args.binaries for o in orders]
        if round_ % 2:
            runs.reverse()
        for binary, order in runs:
            load, figures = run(binary, args.only, args.repetitions, order, round_ + 1, args.kinds)
            loads.append(load)
            print(f"round {round_ + 1} {binary} {order}: load {load}", file=sys.stderr)
            samples = defaultdict(list)
            for figure in figures:
                if log:
                    log.write(json.dumps(dict(figure, program=binary, order=order, round=round_, load=load)) + "\n")
                name = figure["name"]
                if ".sample." in name:
                    prefix, _, rest = name.partition(".sample.")
                    kind, _, previous = rest.partition(".after_")
                    samples[prefix].append((kind, previous, figure["value"]))
                elif ".input_" in name and "vs_array" in figure:
                    prefix, _, kind = name.rpartition(".input_")
                    vs_array[(binary, order, prefix)][kind].append(figure["vs_array"])
            for prefix, got in samples.items():
                array = statistics.median(s for k, _, s in got if k == "array")
                for kind, previous, seconds in got:
                    after[(binary, prefix)][(kind, previous)].append(seconds / array)
    print(f"{args.rounds} rounds × {args.repetitions} repetitions, load average {min(loads):.1f}–{max(loads):.1f}\n")
    for (binary, order, prefix), kinds in vs_array.items():
        print(f"{binary}, {order}, `{prefix}`: vs_array, median of the rounds [min–max]\n")
        print("| " + " | ".join(kinds) + " |")
        print("|" + "---|" * len(kinds))
        print("| " + " | ".join(spread(v) for v in kinds.values()) + " |\n")
    for (binary, prefix), table in after.items():
        kinds = list(dict.fromkeys(k for k, _ in table))
        previous = list(dict.fromkeys(p for _, p in table if p != "none"))
        print(f"{binary}, `{prefix}`: each timing ÷ its run's median Array time, by the kind just before it "
              "(rows: kind; columns: the kind before; median [samples])\n")
        print("| kind | " + " | ".join(f"after {p}" for p in previous) + " |")
        print("|---|" + "---|" * len(previous))
        for kind in kinds:
            cells = []
            for p in previous:
                values = table.get((kind, p), [])
                cells.append(f"{statistics.median(values):.2f} [{len(values)}]" if values else "")
            print(f"| {kind} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
