"""Per map of `swiftmp-user bench checkpoint` (plain and checkpointed), from a scheduler trace.
A map is the time from one `unlink` of the journal's path by the caller (the benchmark does it
before each map) to the next, so the trace needs that system call too:

    nice -n -10 perf record -a -R -c 1 -e sched:sched_switch -e sched:sched_wakeup \
        -e sched:sched_waking -e sched:sched_wakeup_new -e syscalls:sys_enter_unlink \
        -o sched.data swiftmp-user bench checkpoint --repetitions R
    perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    python3 checkpoint-sched-maps.py sched.txt R

the first 2R are the 2 M-task maps (plain and checkpointed alternate). Our workers are the
`swiftmp-worker` threads the program's process tree started. Checkpointed: a journal writer
(`swiftmp-journal`) started in it. Per map: its length; our workers' running and waiting
thread-ms, the wait split by what ran on the CPUs meanwhile (the writer, our pool thread, our
other threads, anything else, shared evenly between the CPUs); the writer's and our pool
thread's time on a CPU; CPU time left idle (both CPUs). Medians over the maps of each kind;
`-v` also lists each map.
"""
import collections, re, statistics, sys

path, reps = sys.argv[1], int(sys.argv[2])
header = re.compile(r"^\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):")
switch = re.compile(r"prev_comm=(.*?) prev_pid=(\d+) .*?prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)")
woken = re.compile(r"comm=(.*?) pid=(\d+) ")
events = []
for line in open(path):
    m = header.match(line)
    if m:
        events.append((m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4)), m.group(5).split(":")[-1], line))
ours, names, running, waiting = set(), {}, {}, set()
ncpu = 1 + max(e[2] for e in events)
# Replay: a list of intervals with the state.
intervals = []  # (start, end, running{cpu:tid}, waiting set snapshot of our workers)
last = None
for comm, tid, cpu, time, event, line in events:
    if last is not None and time > last:
        ww = frozenset(p for p in waiting if p in ours and names.get(p) == "swiftmp-worker")
        intervals.append((last, time, dict(running), ww))
    last = time
    names.setdefault(tid, comm)
    if event == "sched_switch":
        m = switch.search(line)
        if not m: continue
        prev, nxt = int(m.group(2)), int(m.group(5))
        names[prev], names[nxt] = m.group(1), m.group(4)
        if m.group(3).startswith("R"): waiting.add(prev)
        else: waiting.discard(prev)
        waiting.discard(nxt)
        running[cpu] = nxt
    elif event in ("sched_wakeup", "sched_waking", "sched_wakeup_new"):
        m = woken.search(line)
        if not m: continue
        pid = int(m.group(2)); names[pid] = m.group(1)
        if event == "sched_wakeup_new" and (comm.startswith("swiftmp-user") or tid in ours):
            ours.add(pid)
        if pid not in running.values(): waiting.add(pid)
def kind(pid):
    n = names.get(pid, "")
    if pid == 0: return "idle"
    if pid in ours or n.startswith("swiftmp-user"):
        if n == "swiftmp-worker": return "worker"
        if n == "swiftmp-journal": return "writer"
        if n == "swiftmp-pool": return "pool"
        return "ours-other"
    return "others"
# The maps: from one `unlink` of the journal's path by the caller (before every map, plain or
# checkpointed) to the next; the first 2R are the 2 M-task maps (each window also holds the
# check of the map's results, the same for both kinds).
marks = [time for comm, tid, cpu, time, event, line in events if event == "sys_enter_unlink" and comm.startswith("swiftmp-user")]
stretches = [[marks[i], marks[i + 1]] for i in range(min(2 * reps, len(marks) - 1))]
writers = collections.OrderedDict()
for comm, tid, cpu, time, event, line in events:
    if comm == "swiftmp-journal":
        w = writers.setdefault(tid, [time, time]); w[1] = time
per = {"plain": [], "checkpointed": []}
for a, b in stretches:
    # The writer outlives the call (its `fsync` and `close`): a map is checkpointed if a writer started in it.
    ck = any(a <= ws <= b for ws, we in writers.values())
    t = collections.Counter(); t["length ms"] = b - a
    for s, e, run, ww in intervals:
        if e <= a or s >= b: continue
        span = min(e, b) - max(s, a)
        kinds = [kind(p) for p in run.values()]
        kinds += ["idle"] * (ncpu - len(kinds))
        t["workers running"] += span * kinds.count("worker")
        t["workers waiting"] += span * len(ww)
        for k in kinds:
            t["  waiting while " + k + " ran"] += span * len(ww) / ncpu
            t["cpu: " + k] += span
    per["checkpointed" if ck else "plain"].append(t)
    if "-v" in sys.argv: print("%.4f %s %.2f ms" % (a, "checkpointed" if ck else "plain", 1000 * (b - a)))
keys = ["length ms", "workers running", "workers waiting"] + ["  waiting while %s ran" % k for k in ("writer", "pool", "ours-other", "others", "idle")] + ["cpu: %s" % k for k in ("worker", "pool", "writer", "ours-other", "others", "idle")]
print("%-34s %14s %14s   (ms per map, median [min-max]; n = %d / %d)" % ("", "plain", "checkpointed", len(per["plain"]), len(per["checkpointed"])))
for k in keys:
    cols = []
    for label in ("plain", "checkpointed"):
        v = [1000 * t[k] for t in per[label]] or [0]
        cols.append("%6.2f [%.1f-%.1f]" % (statistics.median(v), min(v), max(v)))
    print("%-34s %22s %22s" % (k, cols[0], cols[1]))
