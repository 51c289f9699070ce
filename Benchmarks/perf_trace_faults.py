"""Page faults per forked child, and the parent's per cycle (from one child's first fault to
the next's), from a `perf trace -F all --no-syscalls` log of a program that forks children one
after another (Benchmarks/reports/process-start.md). Medians.

    perf trace -F all --no-syscalls -o LOG -- PROGRAM ...
    python3 Benchmarks/perf_trace_faults.py LOG COMM    # COMM: the program's name, as perf shows it
"""
import collections
import re
import statistics
import sys

comm = sys.argv[2]
pids = []
for line in open(sys.argv[1]):
    match = re.search(re.escape(comm) + r"/(\d+) ", line)
    if match:
        pids.append(int(match.group(1)))
counts = collections.Counter(pids)
parent = counts.most_common(1)[0][0]
first = {}
for index, pid in enumerate(pids):
    if pid != parent and pid not in first:
        first[pid] = index
starts = sorted(first.values())
per_cycle = [sum(1 for j in range(starts[k], starts[k + 1]) if pids[j] == parent) for k in range(len(starts) - 1)]
print(
    f"{comm}: {len(first)} children; faults per child {statistics.median(counts[pid] for pid in first)}, "
    f"parent's per cycle {statistics.median(per_cycle)}"
)
