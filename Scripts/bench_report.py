#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the log of one Scripts/bench.sh run: our figures beside the
peers' (Python's multiprocessing pool and IPC, mpi4py.futures against our MPI backend, the C
MPI ping-pong, the C and NumPy kernels), paired ratios with the targets,
the scaling table, the machine, and the command behind every figure. Every number comes from
the log; nothing is typed in.

Usage: Scripts/bench_report.py Benchmarks/bench-log.jsonl BENCHMARKS.md
"""
import statistics
import sys

from bench_log import Log

MICRO_COMMAND = "swift package --package-path Benchmarks benchmark"


def number(value, digits=3):
    """A figure for a table: thin spaces between thousands, `digits` significant digits."""
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.{digits}g}"


def spread(log, name):
    """`median [min–max]` over the rounds."""
    values = log.values(name)
    if not values:
        return "–"
    if len(values) == 1:
        return number(values[0])
    return f"{number(statistics.median(values))} [{number(min(values))}–{number(max(values))}]"


def ratio_cell(ratios):
    if not ratios:
        return "–", None
    middle = statistics.median(ratios)
    text = f"{middle:.2f}×" if len(ratios) == 1 else f"{middle:.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"
    return text, middle


def verdict(value, predicate):
    if value is None:
        return "not measured"
    return "**yes**" if predicate(value) else "**no**"


def pool_section(log, out):
    out.append("## Pool: swift-multiprocessing vs Python's multiprocessing\n")
    workers = log.median("pool.workers")
    out.append(f"Both with {number(workers)} workers, fork start method, on the same machine in the "
               "same rounds (median [min–max] over the rounds; each round's figure is itself the "
               "median of its repetitions). Ratio: ours ÷ Python's, per round, then the median.\n")
    out.append("| benchmark | swift-multiprocessing | Python `multiprocessing` | ratio | target | met |")
    out.append("|---|---|---|---|---|---|")
    names = sorted(n for n in log.figures if n.startswith("pool.map.") and ".input_" not in n
                   and "." not in n.split(".chunk_", 1)[-1])
    for name in names:
        peer = "python." + name
        text, middle = ratio_cell(log.paired_ratios(name, peer))
        tasks, chunk = name.removeprefix("pool.map.").split(".chunk_")
        label = f"{number(float(tasks))} tasks, chunksize {chunk}"
        out.append(f"| `map` {label} (tasks/s) | {spread(log, name)} | {spread(log, peer)} | {text} "
                   f"| ≥ 10× | {verdict(middle, lambda r: r >= 10)} |")
    for kind, target, predicate in (("hot", "≤ 0.2×", lambda r: r <= 0.2), ("cold", "reported", None)):
        name = f"pool.apply.roundtrip.{kind}"
        peer = f"python.pool.apply.roundtrip.{kind}"
        text, middle = ratio_cell(log.paired_ratios(name, peer))
        met = verdict(middle, predicate) if predicate else "–"
        pause = "back to back" if kind == "hot" else "after a 1 ms sleep"
        out.append(f"| `apply` round trip, {kind} ({pause}) (µs) | {spread(log, name)} | {spread(log, peer)} "
                   f"| {text} | {target} | {met} |")
    text, _ = ratio_cell(log.paired_ratios("pool.startup", "python.pool.startup"))
    out.append(f"| start-up to first result (s) | {spread(log, 'pool.startup')} | "
               f"{spread(log, 'python.pool.startup')} | {text} | reported | – |")
    out.append("")
    extras = sorted(n for n in log.figures if n.startswith("pool.map.") and ".input_" not in n
                    and ".alone_" not in n and "." in n.split(".chunk_", 1)[-1] and not n.endswith(".plain"))
    if extras:
        out.append("What asking for progress or a checkpoint costs: the same map with `progress:` or "
                   "`checkpoint:` beside the plain one, interleaved in each repetition (ratio: with ÷ plain, "
                   "per round, then the median; 1 = free):\n")
        out.append("| map | plain (tasks/s) | with it (tasks/s) | with ÷ plain |")
        out.append("|---|---|---|---|")
        for name in extras:
            plain = name.rsplit(".", 1)[0] + ".plain"
            text, _ = ratio_cell(log.paired_ratios(name, plain))
            tasks, rest = name.removeprefix("pool.map.").split(".chunk_")
            chunk, what = rest.split(".", 1)
            out.append(f"| {number(float(tasks))} tasks, chunksize {chunk}, {what} | {spread(log, plain)} | "
                       f"{spread(log, name)} | {text} |")
        out.append("")
    out.append("Idle CPU share of the whole machine while each figure was measured (median over the "
               "rounds; 0 means both CPUs were busy — ours, the peer's or another user's). Blocking wake-ups on "
               "these VMs are bimodal (ARCHITECTURE.md §9: faster with busy CPUs than with idle ones), so a round trip measured with busy CPUs "
               "and one measured with idle CPUs are different conditions; the best columns give the fastest "
               "repetition seen in any round (highest rate, lowest latency):\n")
    out.append("| benchmark | idle share, ours | idle share, Python | best, ours | best, Python |")
    out.append("|---|---|---|---|---|")
    for name in names + ["pool.apply.roundtrip.hot", "pool.apply.roundtrip.cold"]:
        ours, theirs = log.field(name, "idle_cpu_share"), log.field("python." + name, "idle_cpu_share")
        best, key = (max, "max") if name.startswith("pool.map.") else (min, "min")
        low = [best(v) if v else None for v in ([f[key] for f in log.figures.get(n, []) if f.get(key) is not None]
                                                for n in (name, "python." + name))]
        out.append(f"| `{name}` | {number(ours, 2)} | {number(theirs, 2)} | {number(low[0])} | {number(low[1])} |")
    out.append("")


def target_row(log, label, ours, theirs, target):
    """One table row: both spreads, the paired ratio ours ÷ theirs, the target and whether it is met.
    `target` is (text, predicate on the ratio) or None for a figure that is only reported."""
    text, middle = ratio_cell(log.paired_ratios(ours, theirs))
    goal, met = (target[0], verdict(middle, target[1])) if target else ("reported", "–")
    return f"| {label} | {spread(log, ours)} | {spread(log, theirs)} | {text} | {goal} | {met} |"


AT_LEAST_10 = ("≥ 10×", lambda r: r >= 10)
AT_MOST_FIFTH = ("≤ 0.2×", lambda r: r <= 0.2)
AT_MOST_TENTH = ("≤ 0.1×", lambda r: r <= 0.1)


def ipc_section(log, out):
    out.append("## IPC: swift-multiprocessing vs Python's multiprocessing\n")
    if not log.has("queue.smallInts") or not log.has("python.queue.smallInts"):
        out.append("Not measured in this run.\n")
        return
    out.append("`swiftmp bench ipc` and `Scripts/bench_python_ipc.py` measure the same things the same "
               "way, one after the other in each round: fork start method unless named, each round's "
               "figure the median of its repetitions; shown: median [min–max] over the rounds. Ratio: "
               "ours ÷ Python's, per round, then the median. Targets: throughputs ≥ 10×, latencies "
               "≤ 1/5. Blocking wake-ups on these VMs are bimodal (ARCHITECTURE.md §9: faster with busy CPUs than with idle ones): read "
               "the pipe round trips with the load average in *Machine and run*.\n")
    out.append("| benchmark | swift-multiprocessing | Python `multiprocessing` | ratio | target | met |")
    out.append("|---|---|---|---|---|---|")
    rows = [("`Queue`, 200 000 small ints, one producer process → parent (msgs/s)", "queue.smallInts", AT_LEAST_10),
            ("`Queue`, 400 × 1 MiB (MB/s)", "queue.1MiB", AT_LEAST_10),
            ("`Pipe` ping-pong, `send`/`recv` of an int, round trip (µs)", "pipe.pingPong.int", AT_MOST_FIFTH),
            ("`Pipe` ping-pong, `send_bytes` 8 B, round trip (µs)", "pipe.pingPong.bytes8", AT_MOST_FIFTH)]
    rows += [(f"`Process` start + join, {method} (ms)", f"process.startJoin.{method}", AT_MOST_FIFTH)
             for method in ("fork", "forkserver", "spawn")]
    rows += [("`Value('i')` + its lock, 2 processes × 100 000 increments (incr/s)", "value.lockedIncrement", AT_LEAST_10),
             ("`Manager().dict()` set (µs)", "manager.dict.set", AT_MOST_FIFTH),
             ("`Manager().dict()` get (µs)", "manager.dict.get", AT_MOST_FIFTH)]
    for label, name, target in rows:
        out.append(target_row(log, label, name, "python." + name, target))
    out.append("")


INPUT_KINDS = [("arrayOfRange", "`Array(0..<n)`"), ("range", "`0..<n`"), ("closedRange", "`0...n-1`"),
               ("stride", "`stride(from:to:by:)`"), ("lazyMap", "`(0..<n).lazy.map`"), ("set", "`Set`")]


def inputs_section(log, out):
    out.append("## Pool `map` over any sequence\n")
    if not log.has("pool.map.200000.chunk_default.input_range"):
        out.append("Not measured in this run.\n")
        return
    out.append("`pool.map(Square(), inputs, chunkSize: c)` with the inputs passed as the README passes them, "
               "measured in the same repetitions as the array (interleaved, the kinds in a new shuffled order "
               "in every repetition, so that none always runs after the same other one: a call pays for what "
               "the call before it freed). Each cell: tasks/s (median over the rounds) and, below, the "
               "array's rate ÷ this input's rate, paired within each repetition, median over repetitions and "
               "then rounds (1.00× = as fast as an array built beforehand). Target: every input within 1.1× of "
               "the array. `Array(0..<n)` is an array the caller makes in the call: it pays for making it "
               "(not counted in *met*); beside it, in the same repetitions, what making it alone costs "
               "(`Array(0..<n)` made and freed, no map), and what reading the `Set` alone costs (once, into "
               "memory kept between repetitions: the least its map must do), each ÷ the array's map.\n")
    out.append("| chunk size | array | " + " | ".join(label for _, label in INPUT_KINDS)
               + " | making `Array(0..<n)` alone | reading the `Set` alone | met |")
    out.append("|---|---|" + "---|" * len(INPUT_KINDS) + "---|---|---|")
    for chunk in ("default", "100", "1"):
        base = f"pool.map.200000.chunk_{chunk}"
        cells, worst = [], None
        for kind, _ in INPUT_KINDS:
            name = f"{base}.input_{kind}"
            ratio = log.field(name, "vs_array")
            if ratio is not None and kind != "arrayOfRange":
                worst = ratio if worst is None else max(worst, ratio)
            cells.append(f"{number(log.median(name))}<br>{ratio:.2f}×" if ratio is not None else "–")
        for what in ("makeArray", "readSet"):
            name = f"{base}.alone_{what}"
            ratio = log.field(name, "vs_array")
            cells.append(f"{number(log.median(name))} µs<br>{ratio:.2f}×" if ratio is not None else "–")
        out.append(f"| {chunk} | {number(log.median(base))} | " + " | ".join(cells)
                   + f" | {verdict(worst, lambda r: r <= 1.1)} |")
    out.append("")


def floor_section(log, out):
    out.append("## Against the floor: processes and IPC vs the same in C\n")
    if not log.has("c.process.forkExitWait.tiny"):
        out.append("Not measured in this run.\n")
        return
    ours_shape = (log.field("process.startJoin.fork", "mappings"), log.field("process.startJoin.fork", "rss_anon_kib"))
    padded = (log.field("c.process.forkExitWait.padded", "mappings"), log.field("c.process.forkExitWait.padded", "rss_anon_kib"))
    tiny = (log.field("c.process.forkExitWait.tiny", "mappings"), log.field("c.process.forkExitWait.tiny", "rss_anon_kib"))
    out.append("`Benchmarks/c/floor.c`, run in each round right after `swiftmp bench ipc`: fork + `_exit` + "
               "`waitpid` (median of 50) of a tiny C program and of the same program given our process's "
               "shape — every shared library our binary loads `dlopen`ed, anonymous memory written up to our "
               "process's RssAnon when it measured `Process` start + join — so that fork copies and exit tears "
               "down as much as for ours; an 8-byte ping-pong between two processes over a `socketpair` "
               "(what our `Pipe` is; once with blocking reads, once with readers that wait as ours do: spin "
               "50 µs, yield until 1 ms, then sleep in `poll`) and over two `pipe(2)`s (mean of 10 000 round "
               "trips); a 32-byte request / "
               "16-byte reply over a Unix socket bound to a path (what a `Manager` proxy uses; mean of 2 000). "
               "Shapes (mappings, RssAnon KiB): ours "
               f"{number(ours_shape[0])}, {number(ours_shape[1])}; C of our shape {number(padded[0])}, "
               f"{number(padded[1])}; tiny C {number(tiny[0])}, {number(tiny[1])}. Ratio: ours ÷ C, per round, "
               "then the median.\n")
    out.append("| figure | swift-multiprocessing | C floor | ratio | target | met |")
    out.append("|---|---|---|---|---|---|")
    rows = [("`Process` start + join, fork (ms) vs fork + `_exit` + `waitpid`, C of our shape",
             "process.startJoin.fork", "c.process.forkExitWait.padded", ("≤ 1.3×", lambda r: r <= 1.3)),
            ("`Process` start + join, fork (ms) vs the same, tiny C program",
             "process.startJoin.fork", "c.process.forkExitWait.tiny", None),
            ("bare fork + `_exit` + `waitpid` in our process (ms) vs C of our shape",
             "process.rawForkExitWait", "c.process.forkExitWait.padded", None),
            ("`Pipe` `send_bytes` 8 B round trip (µs) vs C `socketpair`",
             "pipe.pingPong.bytes8", "c.pipe.pingPong.socketpair", ("≤ 1.2×", lambda r: r <= 1.2)),
            ("`Pipe` `send`/`recv` of an int, round trip (µs) vs C `socketpair`",
             "pipe.pingPong.int", "c.pipe.pingPong.socketpair", None),
            ("`Pipe` `send_bytes` 8 B round trip (µs) vs C `socketpair`, both sides waiting as ours do",
             "pipe.pingPong.bytes8", "c.pipe.pingPong.socketpairSpinning", None),
            ("`Pipe` `send_bytes` 8 B round trip (µs) vs C `pipe(2)` pair",
             "pipe.pingPong.bytes8", "c.pipe.pingPong.pipe2", None),
            ("`Manager().dict()` set (µs) vs C Unix-socket round trip",
             "manager.dict.set", "c.unixSocket.roundTrip", ("≤ 1.5×", lambda r: r <= 1.5)),
            ("`Manager().dict()` get (µs) vs C Unix-socket round trip",
             "manager.dict.get", "c.unixSocket.roundTrip", ("≤ 1.5×", lambda r: r <= 1.5))]
    for label, ours, theirs, target in rows:
        out.append(target_row(log, label, ours, theirs, target))
    out.append("")


def variants_section(log, out):
    out.append("## What build flags add\n")
    if not log.has("native.pool.map.200000.chunk_default") and not log.has("static.pool.map.200000.chunk_default"):
        out.append("Not measured in this run (`VARIANTS=no`).\n")
        return
    out.append("Every other figure in this report comes from the benchmark program built as a user builds it "
               "(`swift build -c release` of `Benchmarks/external`, no flags). The same program built with "
               "`-Xswiftc -target-cpu -Xswiftc native` (`native.`) and with `--static-swift-stdlib` (`static.`) "
               "ran a few suites in the same rounds. Ratio: the variant's figure ÷ the plain build's, per "
               "round, then the median (for tasks/s above 1 is faster, for times below 1 is faster).\n")
    out.append("| figure | plain | native | native ÷ plain | static | static ÷ plain |")
    out.append("|---|---|---|---|---|---|")
    names = ["pool.map.200000.chunk_default", "pool.map.200000.chunk_default.input_range",
             "pool.map.200000.chunk_100", "pool.map.200000.chunk_1", "pool.apply.roundtrip.hot",
             "pool.startup", "process.rawForkExitWait", "process.startJoin.fork"]
    names += sorted(n for n in log.figures if n.startswith("kernels."))
    for name in names:
        if not any(log.has(p + name) for p in ("native.", "static.")):
            continue
        cells = []
        for prefix in ("native.", "static."):
            text, _ = ratio_cell(log.paired_ratios(prefix + name, name))
            cells += [spread(log, prefix + name), text]
        out.append(f"| `{name}` | {spread(log, name)} | " + " | ".join(cells) + " |")
    out.append("")


def mpi_pool_section(log, out):
    out.append("## Pool on the MPI backend vs mpi4py.futures\n")
    if not log.has("mpi.pool.map.200000.chunk_100"):
        out.append("Not measured in this run (no `mpirun`).\n")
        return
    if not log.has("mpi4py.pool.map.200000.chunk_100"):
        out.append("mpi4py is not installed: our MPI backend's figures alone.\n")
    theirs = log.median("mpi4py.pool.workers")
    out.append(f"Both under `Scripts/mpirun.sh` with {number(log.median('mpi.pool.workers'))} worker ranks "
               + (f"(ours) and {number(theirs)} (mpi4py.futures) " if theirs is not None else "")
               + "already started, "
               "rank 0 the caller; start-up is the pool's or executor's, not the ranks'. Ratio: ours ÷ "
               "mpi4py.futures, per round, then the median. Our chunksize-1 map runs 200 000 tasks, "
               "mpi4py's fewer (it is slow); both are tasks/s.\n")
    out.append("| benchmark | swift-multiprocessing, MPI backend | mpi4py.futures | ratio | target | met |")
    out.append("|---|---|---|---|---|---|")
    chunk1 = next((n for n in sorted(log.figures) if n.startswith("mpi4py.pool.map.") and n.endswith(".chunk_1")),
                  "mpi4py.pool.map.chunk_1")
    rows = [("`map` chunksize 1 (tasks/s)", "mpi.pool.map.200000.chunk_1", chunk1, AT_LEAST_10),
            ("`map` 200 000, chunksize 100 (tasks/s)", "mpi.pool.map.200000.chunk_100",
             "mpi4py.pool.map.200000.chunk_100", AT_LEAST_10),
            ("round trip hot (µs) — `apply` / `submit().result()`", "mpi.pool.apply.roundtrip.hot",
             "mpi4py.pool.submit.roundtrip.hot", AT_MOST_TENTH),
            ("round trip cold, after a 1 ms sleep (µs)", "mpi.pool.apply.roundtrip.cold",
             "mpi4py.pool.submit.roundtrip.cold", None),
            ("start-up (s)", "mpi.pool.startup", "mpi4py.pool.startup", None)]
    for label, ours, theirs, target in rows:
        out.append(target_row(log, label, ours, theirs, target))
    out.append(f"\nOur MPI backend's `map` at the default chunksize: {spread(log, 'mpi.pool.map.200000.chunk_default')} tasks/s.\n")


def pingpong_section(log, out):
    out.append("## MPI ping-pong: Swift vs C\n")
    if not log.has("mpi.pingpong.latency_8B"):
        out.append("Not measured in this run (no `mpirun`).\n")
        return
    level = log.field("mpi.pingpong.latency_8B", "thread_level")
    levels = {0: "SINGLE", 1: "FUNNELED", 2: "SERIALIZED", 3: "MULTIPLE"}
    out.append("Ranks 0 and 1 under `Scripts/mpirun.sh -np 2` (vader), the same measurement in both: 8 B "
               "one-way latency = median of 10 000 round trips ÷ 2, 4 MiB bandwidth = bytes ÷ (median of 50 "
               "round trips ÷ 2). Swift: `swiftmp bench pingpong` through the `MPI` module's `Communicator` "
               f"(thread level provided: {levels.get(level, 'unknown') if level is not None else 'unknown'}); "
               "C: `Benchmarks/c/pingpong.c` (`mpicc -O2`, `MPI_THREAD_FUNNELED`). Ratio: Swift ÷ C, per round, "
               "then the median; target: within 1.2× of C.\n")
    out.append("| benchmark | Swift | C | ratio | target | met |")
    out.append("|---|---|---|---|---|---|")
    out.append(target_row(log, "8 B one-way latency (µs)", "mpi.pingpong.latency_8B", "c.pingpong.latency_8B",
                          ("≤ 1.2×", lambda r: r <= 1.2)))
    out.append(target_row(log, "4 MiB bandwidth (MB/s)", "mpi.pingpong.bandwidth_4MiB", "c.pingpong.bandwidth_4MiB",
                          ("≥ 0.83× (1/1.2)", lambda r: r >= 1 / 1.2)))
    out.append("")


def objects_section(log, out):
    out.append("## Shared objects across MPI ranks\n")
    if not log.has("objects.mpi2.lock"):
        out.append("Not measured in this run (no `mpirun`).\n")
        return
    out.append("`mpi-object-check --bench` (release): from inside a pool task, 2 000 round trips after 200 of "
               "warm-up, mean µs each. Locally the worker is a process and the objects live in shared memory (the "
               "`Manager` in its server process); under `Scripts/mpirun.sh` the worker is rank 1 and every "
               "operation is a request to rank 0 and its answer (ARCHITECTURE.md §8); with `-np 3` the two worker "
               "ranks and rank 0 share 2 CPUs (oversubscribed). Shown: median [min–max] over the rounds.\n")
    out.append("| operation, from a worker (µs) | local | mpirun -np 2 | mpirun -np 3 |")
    out.append("|---|---|---|---|")
    for label, op in (("`Lock` acquire + release", "lock"), ("`Queue` put + get", "queue"),
                      ("`Manager().dict()` set", "manager_set"), ("`Manager().dict()` get", "manager_get")):
        cells = [spread(log, f"objects.{where}.{op}") for where in ("local", "mpi2", "mpi3")]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")


def mpi4py_section(log, out):
    if not log.has("mpi4py.pool.map.200000.chunk_100"):
        out.append("## mpi4py.futures\n\nNot measured in this run (mpi4py is not installed).\n")
        return
    out.append("## Pool, local backend, vs mpi4py.futures (reference only)\n")
    out.append(f"mpi4py.futures with {number(log.median('mpi4py.pool.workers'))} worker ranks already "
               "started by `mpirun` (its start-up figure is the executor's, not the ranks'). Our figures "
               "are the local backend's from the same rounds; our MPI backend against it is in the section above.\n")
    out.append("| benchmark | swift-multiprocessing (local) | mpi4py.futures | ratio |")
    out.append("|---|---|---|---|")
    rows = [("`map` 200 000, chunksize 100 (tasks/s)", "pool.map.200000.chunk_100", "mpi4py.pool.map.200000.chunk_100"),
            ("`map` chunksize 1 (tasks/s)", "pool.map.200000.chunk_1",
             next((n for n in log.figures if n.startswith("mpi4py.pool.map.") and n.endswith("chunk_1")), "")),
            ("round trip hot (µs) — `apply` / `submit().result()`", "pool.apply.roundtrip.hot", "mpi4py.pool.submit.roundtrip.hot"),
            ("round trip cold (µs)", "pool.apply.roundtrip.cold", "mpi4py.pool.submit.roundtrip.cold"),
            ("start-up (s)", "pool.startup", "mpi4py.pool.startup")]
    for label, ours, theirs in rows:
        text, _ = ratio_cell(log.paired_ratios(ours, theirs))
        out.append(f"| {label} | {spread(log, ours)} | {spread(log, theirs)} | {text} |")
    out.append("")


def kernels_section(log, out):
    out.append("## Kernels, serial: Swift vs C and NumPy\n")
    out.append("Wall seconds at the reference sizes of `Benchmarks/README.md`, checksums verified "
               "on every run (Swift and NumPy stop on a mismatch; the C checksums are checked here). "
               "Each round's figure is the median of its repetitions; shown: median [min–max] over the "
               "rounds. Ratios are per round, then the median.\n")
    out.append("Swift: the benchmark program built as a user builds it (no flags); Swift native: the same "
               "built with `-target-cpu native` (section *What build flags add*; the C kernels are built "
               "with `-march=native`).\n")
    out.append("| kernel | Swift (s) | C `-O3 -march=native` (s) | Swift ÷ C | target ≤ 1.1 | NumPy (s) | NumPy ÷ Swift "
               "| Swift native (s) | Swift native ÷ C |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    order = ["pi", "mandelbrot", "matmul", "nbody"]
    # `.into`: the same kernel into a buffer kept across the runs (rows of the best-C table).
    kernels = [n for n in log.figures if n.startswith("kernels.") and not n.endswith(".into")]
    for name in sorted(kernels, key=lambda n: order.index(n.split(".")[1]) if n.split(".")[1] in order else 9):
        c_name, numpy_name = "c." + name, "numpy." + name
        versus_c, middle = ratio_cell(log.paired_ratios(name, c_name))
        versus_numpy, _ = ratio_cell(log.paired_ratios(numpy_name, name))
        label = name.removeprefix("kernels.").replace(".", " ", 1)
        native_versus_c, _ = ratio_cell(log.paired_ratios("native." + name, c_name))
        out.append(f"| {label} | {spread(log, name)} | {spread(log, c_name)} | {versus_c} "
                   f"| {verdict(middle, lambda r: r <= 1.1)} | {spread(log, numpy_name)} | {versus_numpy} "
                   f"| {spread(log, 'native.' + name)} | {native_versus_c} |")
    if any(n.startswith("best.kernels.") for n in log.figures):
        out.append("\nAgainst the best C for this CPU (`Benchmarks/c/*_avx512.c`: AVX-512 intrinsics, no fused "
                   "multiply-add, the same checksums; `matmul_openblas.c`: OpenBLAS's `dgemm` on one thread, with its AVX-512 kernels where the CPU has AVX-512: `OPENBLAS_CORETYPE=SkylakeX`, as `Scripts/bench.sh` runs it), "
                   "each ratio per round, then the median (`Benchmarks/compare-kernels.sh` runs the same "
                   "comparison on its own, with thread CPU time):\n")
        out.append("| kernel | best C (s) | Swift ÷ best C | Swift native ÷ best C | target ≤ 1.0 (native) |")
        out.append("|---|---|---|---|---|")
        for name in sorted(kernels, key=lambda n: order.index(n.split(".")[1]) if n.split(".")[1] in order else 9):
            best = "best." + name
            if not log.has(best):
                continue
            plain_ratio, _ = ratio_cell(log.paired_ratios(name, best))
            native_ratio, native_middle = ratio_cell(log.paired_ratios("native." + name, best))
            label = name.removeprefix("kernels.").replace(".", " ", 1)
            out.append(f"| {label} | {spread(log, best)} | {plain_ratio} | {native_ratio} "
                       f"| {verdict(native_middle, lambda r: r <= 1.0)} |")
            if log.has(name + ".into"):
                # Like for like: the C writes one static image; `render(_:into:)` a kept buffer.
                plain_ratio, _ = ratio_cell(log.paired_ratios(name + ".into", best))
                native_ratio, native_middle = ratio_cell(log.paired_ratios("native." + name + ".into", best))
                out.append(f"| {label}, `render(_:into:)` a kept buffer (as the C writes its static image) "
                           f"| {spread(log, best)} | {plain_ratio} | {native_ratio} "
                           f"| {verdict(native_middle, lambda r: r <= 1.0)} |")
    matmul = log.field("kernels.matmul.1024", "gflops")
    if matmul:
        native = log.field("native.kernels.matmul.1024", "gflops")
        out.append(f"\nSwift matmul 1024: {number(matmul)} GFLOP/s"
                   + (f", native build {number(native)} GFLOP/s" if native else "") + " (median over the rounds).")
    out.append("")
    out.append(c_checksum_line(log))
    out.append("")


def random_section(log, out):
    out.append("## Random streams\n")
    if not log.has("random.next"):
        out.append("Not measured in this run.\n")
        return
    out.append("`RandomStream` (Philox4x32-10) on one core, `swiftmp bench random`: `UInt64` draws per second "
               "through `next()`, through `fill` into a 32 KiB buffer, and as `Double.random(in: 0..<1)`; the "
               "π kernel draws one `UInt64` per sample (its rate from the kernels table). Target: ≥ 10⁹ draws/s "
               "per core. Built as a user builds (no flags), and with `-target-cpu native` (AVX-512 here: "
               "Philox's products in vector registers), per second of wall clock and of the thread's CPU "
               "time (on a loaded machine the wall clock counts other processes' turns). Shown: median "
               "[min–max] over the rounds.\n")
    out.append("| path | draws/s | native, draws/s | native, draws per CPU second |")
    out.append("|---|---|---|---|")
    for label, name in (("`next()`", "random.next"), ("`fill`", "random.fill"), ("`Double.random(in:)`", "random.double")):
        cpu = [f["cpu_draws_per_s"] for f in log.figures.get("native." + name, []) if f.get("cpu_draws_per_s")]
        out.append(f"| {label} | {spread(log, name)} | {spread(log, 'native.' + name)} | "
                   f"{number(statistics.median(cpu)) if cpu else '–'} |")
    pi, native_pi = log.values("kernels.pi.20000000"), log.values("native.kernels.pi.20000000")
    if pi:
        rate = lambda values: number(20_000_000 / statistics.median(values)) if values else "–"
        out.append(f"| π kernel (vectorised, one draw per sample) | {rate(pi)} | {rate(native_pi)} | – |")
    out.append("")


def c_checksum_line(log):
    expected = {"c.kernels.pi.20000000": {"hits": 15710491},
                "c.kernels.mandelbrot.1600x1200x256": {"sum": 113169525},
                "c.kernels.matmul.1024": {"sum": 4294950921, "weighted": 6594902263792}}
    bad = [f"{name} {key}={record.get(key)}" for name, fields in expected.items()
           for record in log.figures.get(name, []) for key, value in fields.items() if record.get(key) != value]
    for record in log.figures.get("c.kernels.nbody.4096x10", []):
        for key, reference in (("kinetic", 1.8135481578192069e-4), ("squares", 1023.5783750684968)):
            if abs(record[key] - reference) > 1e-9 * abs(reference):
                bad.append(f"nbody {key}={record[key]}")
    return "C checksums: " + ("all equal to the reference." if not bad else "**mismatch**: " + ", ".join(bad))


def scaling_section(log, out):
    out.append("## Scaling: π and Mandelbrot on 1…N workers\n")
    serials = sorted(n for n in log.figures if n.startswith("scaling.") and n.endswith(".serial"))
    if not serials:
        out.append("Not measured in this run.\n")
        return
    out.append("Strong scaling of problems whose serial run takes about a second or more; every "
               "repetition runs the serial baseline and then each worker count, on a fresh pool whose "
               "start-up is timed separately (not included in the kernel's time). Speedup = median "
               "serial time ÷ median parallel time; efficiency = speedup ÷ workers. Chart: "
               "`Benchmarks/scaling.svg`.\n")
    out.append("![speedup vs workers](Benchmarks/scaling.svg)\n")
    out.append("The last two columns are the machine's idle CPU share during the serial and the parallel "
               f"runs: with {log.machine.get('nproc', 'N')} CPUs a serial run on a quiet machine leaves about "
               "(N − 1)/N idle; less means another user's work was competing for the workers' CPUs.\n")
    slow_enough = []
    out.append("| kernel | problem | serial (s) | backend | workers | parallel (s) | speedup | efficiency | target | met | idle, serial | idle, parallel |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for serial in serials:
        kernel = serial.split(".")[1]
        record = log.last(serial)
        if kernel == "pi":
            problem = f"{number(record['samples'])} samples"
        else:
            problem = f"{record['width']}×{record['height']}, {record['max_iterations']} iterations"
        if (log.median(serial) or 0) < 1.0:
            slow_enough.append(f"{kernel} ({number(log.median(serial))} s)")
        rows = sorted((n for n in log.figures if n.startswith("scaling.") and f".{kernel}.workers_" in n),
                      key=lambda n: (n.split(".")[1], int(n.rsplit("_", 1)[1])))
        for name in rows:
            backend, workers = name.split(".")[1], int(name.rsplit("_", 1)[1])
            efficiency = log.field(name, "efficiency")
            target, met = ("≥ 0.9", verdict(efficiency, lambda e: e >= 0.9)) if workers == 2 else ("–", "–")
            out.append(f"| {kernel} | {problem} | {spread(log, serial)} | {backend} | {workers} "
                       f"| {number(log.field(name, 'seconds'))} | {number(log.median(name))}× "
                       f"| {number(efficiency, 2)} | {target} | {met} "
                       f"| {number(log.field(serial, 'idle_cpu_share'), 2)} | {number(log.field(name, 'idle_cpu_share'), 2)} |")
    if slow_enough:
        out.append(f"\n**Note:** the serial run took under the intended 1 s for {', '.join(slow_enough)}; "
                   "raise the problem size (`swiftmp bench scaling --help`).")
    startups = sorted((n for n in log.figures if ".pool.startup.workers_" in n), key=lambda n: int(n.rsplit("_", 1)[1]))
    if startups:
        out.append("\nPool start-up (creation to first `apply` result), median over the repetitions: "
                   + ", ".join(f"{n.rsplit('_', 1)[1]} worker(s) {number(log.median(n) * 1e3)} ms" for n in startups) + ".")
    out.append("")


def machine_section(log, out):
    m = log.machine
    out.append("## Machine and run\n")
    out.append(f"- date: {m.get('date', '?')}; commit {m.get('commit', '?')}; rounds: {m.get('rounds', '?')}, interleaved")
    out.append(f"- CPU: {m.get('cpu', '?')}, nproc {m.get('nproc', '?')} (affinity {m.get('affinity', '?')}); "
               f"Linux {m.get('kernel', '?')}")
    end = log.machine_end.get("loadavg")
    out.append(f"- load average at start: {' '.join(m.get('loadavg', ['?']))}"
               + (f", at the end: {' '.join(end)}" if end else "") + " (shared machine: other users' "
               "builds run meanwhile; the idle CPU share above says how busy it was)")
    out.append(f"- {m.get('swift', '?')}; Python {m.get('python', '?')}, NumPy {m.get('numpy', '?')}; "
               f"{m.get('gcc', '?')}; {m.get('mpirun', '?')}")
    out.append("")


def commands_section(log, out):
    out.append("## Commands\n")
    out.append("Everything above came from one `Scripts/bench.sh` run (raw figures: "
               "`Benchmarks/bench-log.jsonl`). The command behind each figure:\n")
    out.append("| figures | command |")
    out.append("|---|---|")
    groups = {}
    for name in sorted(log.figures):
        for command in log.commands(name):
            groups.setdefault(command, []).append(name)
    for command, names in groups.items():
        shown = ", ".join(f"`{n}`" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.append(f"| {shown} | `{command}` |")
    out.append("")
    out.append("Micro-benchmarks of the wire codec and the pool's hot path (ordo-one/benchmark, a separate "
               f"package that the tests do not build; first build about 4 minutes): `{MICRO_COMMAND}`.")
    out.append("")


def reports_section(out):
    """The reports of the benchmark commands that Scripts/bench.sh does not run (each says its own
    command: Scripts/bench-mpi.sh, swiftmp bench ipc --only …), kept in Benchmarks/reports/*.md
    and appended as they are, so that regenerating this file never drops them."""
    import glob
    for path in sorted(glob.glob(f"{REPORTS}/*.md")):
        out.append(f"<!-- from Benchmarks/reports/{path.rsplit('/', 1)[1]} -->")
        out.append(open(path).read().rstrip() + "\n")


REPORTS = (__file__.rsplit("/Scripts/", 1)[0] if "/Scripts/" in __file__ else ".") + "/Benchmarks/reports"


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: bench_report.py LOG.jsonl BENCHMARKS.md")
    log = Log(sys.argv[1])
    out = ["# Benchmarks\n",
           "Generated by `Scripts/bench.sh` from one run on this machine; every figure below was measured "
           "in that run, ours beside the peer's, interleaved. On this shared, noisy machine absolute "
           "timings move by 20–100 %; the ratios are what to read.\n"]
    for section in (machine_section, pool_section, inputs_section, ipc_section, floor_section, mpi_pool_section,
                    mpi4py_section, pingpong_section, objects_section, kernels_section, random_section, variants_section, scaling_section,
                    commands_section):
        section(log, out)
    reports_section(out)
    with open(sys.argv[2], "w") as report:
        report.write("\n".join(out))


if __name__ == "__main__":
    main()
