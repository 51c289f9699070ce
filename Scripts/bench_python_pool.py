#!/usr/bin/env python3
"""Python's multiprocessing measured exactly as `swiftmp bench pool` measures the Swift pool.

Pool(2) with the fork start method: Pool.map of 200 000 trivial `x*x` tasks at the default
chunksize, chunksize 100 and chunksize 1, and of 2 000 000 at the default chunksize
(tasks/s, median of the repetitions), and the
apply_async(...).get() round trip hot (back to back) and cold (after a 1 ms sleep), in µs.
Prints one JSON object per line with the names of `swiftmp bench pool` prefixed `python.`:

    {"name":"python.pool.map.200000.chunk_default","value":6.7e+06,"unit":"tasks/s",...}

Usage: Scripts/bench_python_pool.py [--repetitions N] [--processes N] [--tasks N]
"""
import argparse
import math
import multiprocessing
import statistics
import sys
import time

from bench_figure import figure


def square(x):
    """The trivial task (the Swift side's SquareTask)."""
    return x * x


def cpu_jiffies():
    """Cumulative (idle, total) jiffies of all CPUs, from the first line of /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [float(f) for f in stat.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    if len(fields) < 5:
        return 0.0, 0.0
    return fields[3] + fields[4], sum(fields)


class IdleShare:
    """Context manager: the fraction of the machine's CPU time left idle inside the block."""

    def __enter__(self):
        self.before = cpu_jiffies()
        return self

    def __exit__(self, *exc):
        after = cpu_jiffies()
        total = after[1] - self.before[1]
        self.value = (after[0] - self.before[0]) / total if total > 0 else math.nan
        return False


def bench_map(pool, tasks, repetitions):
    inputs = list(range(tasks))
    expected = [x * x for x in inputs]
    for label, chunk in (("default", None), ("100", 100), ("1", 1)):
        reps = max(3, repetitions // 3) if chunk == 1 else repetitions
        rates = []
        with IdleShare() as idle:
            for _ in range(reps):
                start = time.perf_counter()
                results = pool.map(square, inputs, chunksize=chunk)
                rates.append(tasks / (time.perf_counter() - start))
                if results != expected:
                    sys.exit(f"bench_python_pool: map chunk {label} returned a wrong result")
        figure(f"python.pool.map.{tasks}.chunk_{label}", statistics.median(rates), "tasks/s",
               min=min(rates), max=max(rates), idle_cpu_share=idle.value)
    # A large map at the default chunksize (10x the tasks), as the Swift side measures it.
    large = list(range(10 * tasks))
    large_expected = [x * x for x in large]
    rates = []
    with IdleShare() as idle:
        for _ in range(max(3, repetitions // 3)):
            start = time.perf_counter()
            results = pool.map(square, large)
            rates.append(len(large) / (time.perf_counter() - start))
            if results != large_expected:
                sys.exit("bench_python_pool: the large map returned a wrong result")
    figure(f"python.pool.map.{len(large)}.chunk_default", statistics.median(rates), "tasks/s",
           min=min(rates), max=max(rates), idle_cpu_share=idle.value)


def bench_apply(pool):
    for label, pause in (("hot", 0.0), ("cold", 0.001)):
        rounds = 2000 if pause == 0 else 300
        latencies = []
        with IdleShare() as idle:
            for i in range(rounds):
                if pause > 0:
                    time.sleep(pause)
                start = time.perf_counter()
                value = pool.apply_async(square, (i,)).get()
                latencies.append((time.perf_counter() - start) * 1e6)
                if value != i * i:
                    sys.exit("bench_python_pool: apply returned a wrong result")
        figure(f"python.pool.apply.roundtrip.{label}", statistics.median(latencies), "us",
               min=min(latencies), idle_cpu_share=idle.value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=10,
                        help="runs per throughput figure (the median is reported; chunk 1 runs a third)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--tasks", type=int, default=200_000, help="inputs per map")
    args = parser.parse_args()
    for option in ("repetitions", "processes", "tasks"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1 (got {getattr(args, option)})")

    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    with context.Pool(args.processes) as pool:
        pool.apply(square, (1,))  # every worker has started once a task has come back
        figure("python.pool.startup", time.perf_counter() - start, "s")
        figure("python.pool.workers", args.processes, "processes")
        bench_map(pool, args.tasks, args.repetitions)
        bench_apply(pool)


if __name__ == "__main__":
    main()
