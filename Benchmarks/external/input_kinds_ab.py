#!/usr/bin/env python3
"""Input kinds, before and after, interleaved: each kind's time ÷ the same call's over a ready
Array, measured in the same repetition by the same program (`vs_array`), for two builds of
the external benchmark program run alternately, round after round, with the load average
before each run. Prints one Markdown table per chunk size: the median over the rounds, and
each round's value.

    python3 Benchmarks/external/input_kinds_ab.py BEFORE_BINARY AFTER_BINARY \
        [--rounds 5] [--repetitions 10] [--only pool.inputs] [--input-kinds KINDS] [--json LOG]

Each binary runs `bench pool --processes 2 --start-method fork --only <only>
--repetitions <r>`; `--only pool.inputs` (InputKindsBenchmark: map, mapAsync, starmap, imap)
or `--only pool.map` (PoolBenchmarks' map figures); `--input-kinds` (PoolBenchmarks only) is
passed on: only those kinds beside the ready array (e.g. `lazyMap,set,readSet`). The figures
of what a kind costs alone (`alone_makeArray`, `alone_readSet`) are shown as kinds too.
"""
import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict


def run(binary, only, repetitions, input_kinds):
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    command = [binary, "bench", "pool", "--processes", "2", "--start-method", "fork", "--only", only,
               "--repetitions", str(repetitions)]
    if input_kinds:
        command += ["--input-kinds", input_kinds]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return float(load), figures


def spread(values):
    """Median [min–max] of `values`."""
    if not values:
        return "nan"
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--only", default="pool.inputs")
    parser.add_argument("--input-kinds", help="only these kinds beside the array (bench pool --input-kinds)")
    parser.add_argument("--json", help="append every figure here, with its build, round and load")
    args = parser.parse_args()

    # ratios[(call, kind)][build] = [vs_array per round]
    ratios = defaultdict(lambda: defaultdict(list))
    loads = []
    # array_rates[call][build] = [the ready array's tasks/s per round]
    array_rates = defaultdict(lambda: defaultdict(list))
    log = open(args.json, "a") if args.json else None
    for round_ in range(args.rounds):
        order = [("before", args.before), ("after", args.after)]
        if round_ % 2:
            order.reverse()
        for build, binary in order:
            load, figures = run(binary, args.only, args.repetitions, args.input_kinds)
            loads.append(load)
            for figure in figures:
                if log:
                    log.write(json.dumps(dict(figure, build=build, round=round_, load=load)) + "\n")
                if "vs_array" not in figure:
                    if figure.get("unit") == "tasks/s" and figure["name"].startswith(args.only):
                        array_rates[figure["name"]][build].append(figure["value"])
                    continue
                if ".input_" in figure["name"]:
                    call, _, kind = figure["name"].rpartition(".input_")
                elif ".alone_" in figure["name"]:
                    call, _, kind = figure["name"].rpartition(".alone_")
                    kind = "alone_" + kind
                else:
                    continue
                ratios[(call, kind)][build].append(figure["vs_array"])
            print(f"round {round_ + 1} {build}: load {load}", file=sys.stderr)
    calls = sorted({call for call, _ in ratios}, key=lambda c: list(dict.fromkeys(c for c, _ in ratios)).index(c))
    kinds = list(dict.fromkeys(kind for _, kind in ratios))
    print(f"{args.rounds} rounds, load average {min(loads):.1f}–{max(loads):.1f}; "
          "each cell: median [min–max] of the rounds' vs_array (kind's time ÷ Array's), before → after\n")
    print("| call | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for call in calls:
        cells = []
        for kind in kinds:
            got = ratios.get((call, kind))
            if not got:
                cells.append("")
                continue
            cells.append(f"{spread(got['before'])} → **{spread(got['after'])}**")
        print(f"| `{call}` | " + " | ".join(cells) + " |")
    print("\nThe ready array's own rate, median of the rounds (M tasks/s), before → after:\n")
    for call, got in array_rates.items():
        before = statistics.median(got["before"]) / 1e6 if got["before"] else float("nan")
        after = statistics.median(got["after"]) / 1e6 if got["after"] else float("nan")
        print(f"- `{call}`: {before:.0f} → {after:.0f}")
    for build in ("before", "after"):
        print(f"\nEach round's {build} values:\n")
        for call in calls:
            print(f"- `{call}`: " + "; ".join(
                f"{kind} " + " ".join(f"{v:.2f}" for v in ratios[(call, kind)][build]) for kind in kinds
                if (call, kind) in ratios))


if __name__ == "__main__":
    main()
