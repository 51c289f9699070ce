"""Where the pool's thread spends its CPU in a map, from `perf` profiles of two or more builds
running the same benchmark (Benchmarks/engine-ab.md, "Session 13"):

    nice -n -10 perf record -F 20000 -g -o X.data -- X/swiftmp bench pool --processes 2 \\
        --repetitions 10 --only pool.map.200000.chunk_100
    perf script -i X.data --comm swiftmp-pool -F ip,sym > X.sym
    python3 Benchmarks/pool_thread_profile.py base.sym head.sym

A sample whose stack passes through the engine's wait (`waitForWork`, `waitForActivity`) is
waiting; the others are working. Prints, per build, the samples of each kind, then the working
samples by leaf function (the top ones of any build, side by side) and by group: the runtime's
exclusivity checks, generic metadata lookups, reference counting, hashing (dictionaries and
sets), clock reads. Samples are CPU time at a fixed rate, so they compare across builds on a
busy machine where wall-clock rates do not; the workload is the same, not its length in time.
"""
import collections
import sys

GROUPS = {
    "exclusivity checks": ("swift_beginAccess", "swift_endAccess", "AccessSet", "SwiftTLSContext"),
    "generic metadata lookups": ("_swift_getGenericMetadata", "getCache", "awaitSatisfyingState"),
    "reference counting": ("swift_retain", "swift_release", "doDecrementSlow", "incrementSlow"),
    "hashing": ("Hasher", "_rawHashValue", "_NativeDictionary", "_RawDictionaryStorage", "_NativeSet"),
    "clock reads": ("clock_gettime",),
}


def leaves(path):
    working, waiting = collections.Counter(), 0
    for block in open(path).read().split("\n\n"):
        lines = [line.strip() for line in block.strip().split("\n") if line.strip()]
        if not lines:
            continue
        if any("waitForWork" in line or "waitForActivity" in line for line in lines):
            waiting += 1
            continue
        parts = lines[0].split(None, 1)
        working[parts[1] if len(parts) > 1 else "?"] += 1
    return working, waiting


builds = [(path, *leaves(path)) for path in sys.argv[1:]]
for path, working, waiting in builds:
    print(f"{path}: working {sum(working.values())}, waiting {waiting}")
print()
print("group".ljust(28) + "".join(path[-24:].rjust(26) for path, _, _ in builds))
for group, needles in GROUPS.items():
    row = [sum(n for leaf, n in working.items() if any(needle in leaf for needle in needles)) for _, working, _ in builds]
    print(group.ljust(28) + "".join(str(n).rjust(26) for n in row))
print()
top = []
for _, working, _ in builds:
    for leaf, _ in working.most_common(15):
        if leaf not in top:
            top.append(leaf)
for leaf in top:
    print("".join(str(working[leaf]).rjust(8) for _, working, _ in builds) + "  " + leaf[:90])
