"""Per forked child, from a `perf sched record` of a program that forks children one after
another (Benchmarks/reports/process-start.md): how long each child waited from its wake-up to
its first run (scheduling delay), how long it ran, whether it first ran on the CPU its parent
last ran on, and how long the parent ran between two children's starts. Medians.

    perf sched record -o DATA -- PROGRAM ...
    python3 Benchmarks/perf_sched_children.py DATA COMM    # COMM: the program's name, as perf shows it
"""
import re
import statistics
import subprocess
import sys

data, comm = sys.argv[1], sys.argv[2]
lines = subprocess.run(["perf", "sched", "timehist", "-i", data], capture_output=True, text=True, check=True).stdout.splitlines()
rows = []  # (time, cpu, tid, wait, delay, run): one per switch-out
for line in lines:
    fields = line.split()
    if len(fields) < 6 or not fields[2].startswith(comm + "["):
        continue
    tid = int(re.match(r".*\[(\d+)", fields[2]).group(1))
    rows.append((float(fields[0]), fields[1], tid, float(fields[3]), float(fields[4]), float(fields[5])))
parent = max({row[2] for row in rows}, key=lambda tid: sum(1 for row in rows if row[2] == tid))
children = {}
for row in rows:
    if row[2] != parent:
        children.setdefault(row[2], []).append(row)
order = sorted(children, key=lambda tid: children[tid][0][0])
run = [sum(row[5] for row in children[tid]) for tid in order]
delay = [sum(row[4] for row in children[tid]) for tid in order]
starts = [children[tid][0][0] for tid in order]
parent_run = [
    sum(row[5] for row in rows if row[2] == parent and starts[i] < row[0] <= starts[i + 1]) for i in range(len(starts) - 1)
]


def parent_cpu_before(time):
    earlier = [row for row in rows if row[2] == parent and row[0] <= time]
    return earlier[-1][1] if earlier else None


same = sum(1 for tid in order if children[tid][0][1] == parent_cpu_before(children[tid][0][0]))
print(
    f"{comm}: {len(order)} children; child ran {statistics.median(run):.3f} ms, waited {statistics.median(delay):.3f} ms "
    f"(max {max(delay):.3f}) before its first run; parent ran {statistics.median(parent_run):.3f} ms per child; "
    f"first run on the parent's last CPU: {same}/{len(order)}"
)
