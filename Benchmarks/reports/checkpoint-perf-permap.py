"""Per map, a checkpointed map's CPU on the pool's thread and the writer's, from a profile of
`swiftmp bench checkpoint` (Benchmarks/reports/checkpoint-overhead.md, "Session 10"):

    nice -n -10 perf record -g -e cpu-clock -F 20000 -o bench.data \\
        swiftmp-user bench checkpoint --repetitions 8
    perf script -i bench.data -F comm,tid,time,period,ip,sym > bench.script
    python3 checkpoint-perf-permap.py bench.script 8

Each checkpointed map has its own writer thread (`swiftmp-journal`); the first REPS are the
2 M maps'. A map's slot runs from its writer's first sample to the next writer's first
sample (the last one: to its writer's last sample + 50 ms): the pool thread's samples there
in the journal's code are split into closing the journal (`CheckpointJournal.close`, the
end of that map — the next map's writer starts after it) and appending records, with the
fresh pages zeroed while appending (`clear_page`/`folio_zero`) shown apart; the writer's is
its own thread's total. Figures in ms per map, in the order the maps ran; then the writer's
time per map (the mean over the REPS maps) by what it did: hashing the inputs
(`rawInputsHash`) or the frames (`seal`), `pwrite` (of which `iowrite16`, the disk's
notifications in this VM), `fsync`, `close`, the rest.
"""
import collections
import sys

path, reps = sys.argv[1], int(sys.argv[2])
life = collections.OrderedDict()
samples = []
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
        span = life.setdefault(head[1], [time, time])
        span[1] = time
    samples.append((head[0], head[1], time, period, " ".join(lines[1:])))
writers = list(life.items())[:reps]
starts = [span[0] for _, span in writers] + [writers[-1][1][1] + 0.05]
close, append, fresh, writer = ([0.0] * reps for _ in range(4))
tids = {tid: i for i, (tid, _) in enumerate(writers)}
parts = collections.Counter()
for comm, tid, time, period, stack in samples:
    if comm == "swiftmp-journal" and tid in tids:
        writer[tids[tid]] += period
        if "StripeHasher" in stack:
            parts["hash: inputs" if "rawInputsHash" in stack else "hash: frames" if "seal" in stack else "hash: other"] += period
        elif "__x64_sys_pwrite64" in stack:
            parts["pwrite"] += period
            if stack.split()[1] == "iowrite16":
                parts["  of which iowrite16"] += period
        elif "__x64_sys_fsync" in stack:
            parts["fsync"] += period
        elif "__x64_sys_close" in stack:
            parts["close"] += period
        else:
            parts["rest"] += period
        continue
    if comm != "swiftmp-pool":
        continue
    for i in range(reps):
        if starts[i] - (0.05 if i == 0 else 0) <= time < starts[i + 1]:
            if "CheckpointJournalC5close" in stack:
                close[i] += period
            elif any(key in stack for key in ("submitCheckpointed", "CheckpointJournal", "JournalWriter")):
                append[i] += period
                if "clear_page" in stack or "folio_zero" in stack:
                    fresh[i] += period
            break
for label, values in (("writer", writer), ("pool: closing", close), ("pool: appending", append),
                      ("  of which fresh pages", fresh)):
    print("%-22s %s" % (label, " ".join("%.2f" % v for v in values)))
order = ["hash: inputs", "hash: frames", "hash: other", "pwrite", "  of which iowrite16", "fsync", "close", "rest"]
print("writer, per map: " + ", ".join("%s %.2f" % (key.strip(), parts[key] / reps) for key in order if key in parts))
