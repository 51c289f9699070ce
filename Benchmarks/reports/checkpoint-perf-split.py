"""Where a checkpointed map's CPU goes, from a profile of `swiftmp bench checkpoint`
(Benchmarks/reports/checkpoint-overhead.md, "Direct writes"):

    nice -n -10 perf record -g -e cpu-clock -F 20000 -o bench.data \\
        swiftmp-user bench checkpoint --repetitions 8
    perf script -i bench.data -F comm,tid,time,period,ip,sym > bench.script
    python3 checkpoint-perf-split.py bench.script 8

The bench runs its REPS maps of 2 M trivial tasks first, then its maps of 10 µs tasks. Each
checkpointed map has its own writer thread (`swiftmp-journal`): the first REPS of them are
the 2 M maps', and their CPU (sum of sample periods) is printed per map. The pool thread's
time in the journal's code (stacks through the checkpoint closures or the journal) is
summed until the first writer of a 10 µs map starts, per 2 M map.
"""
import collections
import statistics
import sys

path, reps = sys.argv[1], int(sys.argv[2])
writer = collections.defaultdict(float)
writer_start = collections.OrderedDict()
pool = []
for block in open(path).read().split("\n\n"):
    lines = [line.strip() for line in block.strip().split("\n") if line.strip()]
    if len(lines) < 2:
        continue
    head = lines[0].split()
    try:
        time, period = float(head[2].rstrip(":")), float(head[3]) / 1e6
    except (IndexError, ValueError):
        continue
    if head[0] == "swiftmp-journal":
        writer[head[1]] += period
        writer_start.setdefault(head[1], time)
    elif head[0] == "swiftmp-pool":
        pool.append((time, period, " ".join(lines[1:])))
writers = list(writer_start)
square = [writer[tid] for tid in writers[:reps]]
print("writer CPU per 2 M map: median %.2f ms [%.2f-%.2f] over %d maps"
      % (statistics.median(square), min(square), max(square), len(square)))
cut = writer_start[writers[reps]] if len(writers) > reps else float("inf")
spent = collections.Counter()
for time, period, stack in pool:
    if time >= cut or not any(key in stack for key in ("submitCheckpointed", "CheckpointJournal", "JournalWriter")):
        continue
    spent["closing the journal" if "CheckpointJournalC5close" in stack else "appending records"] += period
for key, value in sorted(spent.items()):
    print("pool thread, %s: %.2f ms per 2 M map" % (key, value / reps))
