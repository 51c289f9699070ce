"""Whether a checkpointed map's workers wait for a CPU while the journal's writer holds one,
from a scheduler trace of `swiftmp bench checkpoint` (Benchmarks/reports/checkpoint-overhead.md,
"Session 10"):

    nice -n -10 perf sched record -o sched.data swiftmp-user bench checkpoint --repetitions 4
    perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    python3 checkpoint-sched-waits.py sched.txt 4

The program's own workers are the `swiftmp-worker` threads its process tree started
(`sched_wakeup_new`); other programs' workers are left out. The windows are the first REPS
writer threads' lifetimes (the 2 M maps': from the journal's opening to its writer's exit,
after the `fsync`). Replaying `sched_switch` (who runs on each CPU; a thread switched out
runnable waits) and the wake-ups (a woken thread waits until it runs), it sums, per map: the
time our workers ran and waited to run (thread-ms), the wait split by what held the CPUs
meanwhile (the writer, a pool thread, anything else; shared evenly between the CPUs), and the
time the writer held a CPU.
"""
import collections
import re
import sys

path, maps = sys.argv[1], int(sys.argv[2])
header = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):")
switch = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .*?prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)")
woken = re.compile(r"comm=(.*?) pid=(\d+) ")
events = []
lifetimes = collections.OrderedDict()
for line in open(path):
    found = header.match(line)
    if not found:
        continue
    comm, tid, cpu, time, event = found.group(1), int(found.group(2)), int(found.group(3)), float(found.group(4)), found.group(5)
    events.append((comm, tid, cpu, time, event.split(":")[-1], line))
    if comm == "swiftmp-journal":
        span = lifetimes.setdefault(tid, [time, time])
        span[1] = time
windows = [tuple(span) for span in list(lifetimes.values())[:maps]]
ours, names, running, waiting = set(), {}, {}, set()
total = collections.Counter()
last = None
for comm, tid, cpu, time, event, line in events:
    if last is not None and time > last and any(a <= time <= b for a, b in windows):
        span = time - last
        holders = [names.get(pid, "") for pid in running.values()]
        waits = sum(1 for pid in waiting if pid in ours and names.get(pid) == "swiftmp-worker")
        runs = sum(1 for pid in running.values() if pid in ours and names.get(pid) == "swiftmp-worker")
        total["our workers running (thread-ms)"] += runs * span
        total["our workers waiting to run (thread-ms)"] += waits * span
        for holder in holders:
            kind = holder if holder in ("swiftmp-journal", "swiftmp-pool") else "anything else"
            total["  while a CPU ran " + kind] += waits * span / max(1, len(holders))
        if "swiftmp-journal" in holders:
            total["the writer on a CPU (ms)"] += span
    last = time
    names[tid] = comm
    if event == "sched_switch":
        found = switch.search(line)
        if not found:
            continue
        previous, following = int(found.group(2)), int(found.group(5))
        names[previous], names[following] = found.group(1), found.group(4)
        if found.group(3).startswith("R"):
            waiting.add(previous)
        waiting.discard(following)
        running[cpu] = following
    elif event in ("sched_wakeup", "sched_waking", "sched_wakeup_new"):
        found = woken.search(line)
        if not found:
            continue
        pid = int(found.group(2))
        names[pid] = found.group(1)
        if event == "sched_wakeup_new" and (comm.startswith("swiftmp-user") or tid in ours):
            ours.add(pid)
        if pid not in running.values():
            waiting.add(pid)
for key in ("our workers running (thread-ms)", "our workers waiting to run (thread-ms)",
            "  while a CPU ran swiftmp-journal", "  while a CPU ran swiftmp-pool", "  while a CPU ran anything else",
            "the writer on a CPU (ms)"):
    print("%-45s %8.2f per map" % (key, 1000 * total[key] / len(windows)))
