#!/usr/bin/env python3
"""Where a hot `apply` round trip under mpirun goes, hop by hop (Benchmarks/engine-ab.md, session 13).

A build with Benchmarks/hop-trace.patch applied writes, when SWIFTMP_HOPTRACE names a directory,
one file per process (trace.PID: pairs of little-endian UInt64, CLOCK_MONOTONIC ns and a mark) of
timestamps at these marks:

    rank 0:  1 apply called, 9 engine admits the call, 2 its MPI_Isend done,
             3 the reply relayed from the rank, 5 pump's receive loop done, 6 object service done,
             7 poll returned to the engine, 8 engine round done, 10 driving done, 4 apply returns
    rank:    11 a pool message received, 12 handled (forwarded, its worker woken),
             13 a local worker's reply seen, 14 relayed (MPI_Isend done)
    worker:  21 task in hand, 22 reply written, 24 doorbell rung, 23 going to wait for the next

    python3 Benchmarks/hop_trace.py DIR [FIRST LAST]

Prints the median of each step over the round trips whose marks came in this order (trips
FIRST..LAST only, if given), and rank 0's apply time (1 -> 4) in ten consecutive slices of the
run (a run may change mode: see the text).
"""
import glob
import statistics
import struct
import sys

events = []
for path in glob.glob(sys.argv[1] + "/trace.*"):
    data = open(path, "rb").read()
    events += [struct.unpack_from("<QQ", data, i) for i in range(0, len(data) - 15, 16)]
events.sort()
trips, current = [], None
for time, mark in events:
    if mark == 1:
        current = []
        trips.append(current)
    if current is not None:
        current.append((time, mark))

first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
last = int(sys.argv[3]) if len(sys.argv) > 3 else len(trips)
order = [1, 9, 2, 11, 21, 22, 24, 23, 12, 13, 14, 3, 5, 6, 7, 8, 10, 4]
rows = []
for trip in trips[first:last]:
    seen, replied = {}, False
    for time, mark in trip:
        replied = replied or mark == 3
        if mark in (5, 6, 7, 8) and not replied:
            continue  # rank 0's polls while it waits
        seen.setdefault(mark, time)
    if all(m in seen for m in order) and all(seen[a] <= seen[b] for a, b in zip(order, order[1:])):
        rows.append([seen[m] for m in order])
print(f"round trips with every mark in order: {len(rows)} of {len(trips[first:last])}")
if rows:
    print(f"1 -> 4 median {statistics.median(r[-1] - r[0] for r in rows) / 1e3:.2f} µs")
    for i in range(1, len(order)):
        steps = sorted(r[i] - r[i - 1] for r in rows)
        print(f"  {order[i - 1]:3d} -> {order[i]:3d}  median {steps[len(steps) // 2] / 1e3:6.2f} µs"
              f"  [p25 {steps[len(steps) // 4] / 1e3:.2f}, p75 {steps[3 * len(steps) // 4] / 1e3:.2f}]")
applies, start = [], None
for time, mark in events:
    if mark == 1:
        start = time
    elif mark == 4 and start is not None:
        applies.append((time - start) / 1e3)
        start = None
if applies:
    step = max(1, len(applies) // 10)
    slices = [statistics.median(applies[i:i + step]) for i in range(0, len(applies), step)]
    print("rank 0's apply (1 -> 4), median per tenth of the run:", " ".join(f"{s:.1f}" for s in slices))
