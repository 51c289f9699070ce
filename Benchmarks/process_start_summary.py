"""Summary of Benchmarks/process-start-ab.sh's log: per build, the medians [min-max] over the
rounds of Process start + join (fork), the bare fork in the same process, forkserver and spawn;
ratios per round (to the C floor of that round, and to the build REFERENCE, by default the
first in the log), then their median.

    python3 Benchmarks/process_start_summary.py OUT.jsonl [REFERENCE]
"""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
builds = [name for name in dict.fromkeys(row["variant"] for row in rows) if name != "c"]
if len(sys.argv) > 2:
    builds.remove(sys.argv[2])
    builds.insert(0, sys.argv[2])


def figure(build, name):
    return {row["round"]: row["value"] for row in rows if row["variant"] == build and row["name"] == name}


def spread(values):
    values = list(values.values())
    return f"{statistics.median(values):.3f} [{min(values):.3f}–{max(values):.3f}]"


def ratio(over, under):
    values = [over[k] / under[k] for k in over if k in under]
    return f"{statistics.median(values):.2f}× [{min(values):.2f}–{max(values):.2f}]"


loads = [float(row["load"].split()[0]) for row in rows]
print(f"rounds: {max(row['round'] for row in rows)}; load average (1 min): {min(loads):.2f}–{max(loads):.2f}")
floor = figure("c", "c.process.forkExitWait.padded")
print(f"C floor of our shape (ms): {spread(floor)}")
first = figure(builds[0], "process.startJoin.fork")
for build in builds:
    join = figure(build, "process.startJoin.fork")
    print(
        f"{build}: start + join {spread(join)} ms, ÷ C {ratio(join, floor)}, ÷ {builds[0]} {ratio(join, first)}; "
        f"bare fork {spread(figure(build, 'process.rawForkExitWait'))}; "
        f"forkserver {spread(figure(build, 'process.startJoin.forkserver'))}; "
        f"spawn {spread(figure(build, 'process.startJoin.spawn'))}"
    )
