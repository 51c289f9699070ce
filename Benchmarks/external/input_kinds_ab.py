#!/usr/bin/env python3
"""Input kinds, before and after, interleaved: each kind's time ÷ the same call's over a ready
Array, measured in the same repetition by the same program (`vs_array`), for two builds of
the external benchmark program run alternately, round after round, with the load average
before each run. Prints one Markdown table per chunk size: the median over the rounds, and
each round's value.

    python3 Benchmarks/external/input_kinds_ab.py BEFORE_BINARY AFTER_BINARY \
        [--rounds 5] [--repetitions 10] [--only pool.inputs] [--json LOG]

Each binary runs `bench pool --processes 2 --start-method fork --only <only>
--repetitions <r>`; `--only pool.inputs` (InputKindsBenchmark: map, mapAsync, starmap, imap)
or `--only pool.map` (PoolBenchmarks' map figures).
"""
import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict


def run(binary, only, repetitions):
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    out = subprocess.run(
        [binary, "bench", "pool", "--processes", "2", "--start-method", "fork", "--only", only,
         "--repetitions", str(repetitions)],
        check=True, capture_output=True, text=True).stdout
    figures = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return float(load), figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--only", default="pool.inputs")
    parser.add_argument("--json", help="append every figure here, with its build, round and load")
    args = parser.parse_args()

    # ratios[(call, kind)][build] = [vs_array per round]
    ratios = defaultdict(lambda: defaultdict(list))
    loads = []
    log = open(args.json, "a") if args.json else None
    for round_ in range(args.rounds):
        order = [("before", args.before), ("after", args.after)]
        if round_ % 2:
            order.reverse()
        for build, binary in order:
            load, figures = run(binary, args.only, args.repetitions)
            loads.append(load)
            for figure in figures:
                if log:
                    log.write(json.dumps(dict(figure, build=build, round=round_, load=load)) + "\n")
                if "vs_array" not in figure or ".input_" not in figure["name"]:
                    continue
                call, _, kind = figure["name"].rpartition(".input_")
                ratios[(call, kind)][build].append(figure["vs_array"])
            print(f"round {round_ + 1} {build}: load {load}", file=sys.stderr)
    calls = sorted({call for call, _ in ratios}, key=lambda c: list(dict.fromkeys(c for c, _ in ratios)).index(c))
    kinds = list(dict.fromkeys(kind for _, kind in ratios))
    print(f"{args.rounds} rounds, load average {min(loads):.1f}–{max(loads):.1f}; "
          "each cell: median of the rounds' vs_array (kind's time ÷ Array's), before → after\n")
    print("| call | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for call in calls:
        cells = []
        for kind in kinds:
            got = ratios.get((call, kind))
            if not got:
                cells.append("")
                continue
            before = statistics.median(got["before"]) if got["before"] else float("nan")
            after = statistics.median(got["after"]) if got["after"] else float("nan")
            cells.append(f"{before:.2f} → **{after:.2f}**")
        print(f"| `{call}` | " + " | ".join(cells) + " |")
    print("\nEach round's after values:\n")
    for call in calls:
        print(f"- `{call}`: " + "; ".join(
            f"{kind} " + " ".join(f"{v:.2f}" for v in ratios[(call, kind)]["after"]) for kind in kinds
            if (call, kind) in ratios))


if __name__ == "__main__":
    main()
