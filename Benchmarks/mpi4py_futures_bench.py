#!/usr/bin/env python3
"""mpi4py.futures measured as `swiftmp bench pool` and `swiftmp bench dispatch` measure the MPI pool.

Run under mpirun with the workers already started (Scripts/bench-mpi.sh runs it):

    Scripts/mpirun.sh -np 3 python3 -m mpi4py.futures Benchmarks/mpi4py_futures_bench.py

Rank 0 runs this script; the other ranks are the MPIPoolExecutor's workers. One JSON line per
figure (the format of `swiftmp bench`), names `mpi4py.pool.…` as ours are `mpi.pool.…`:
MPIPoolExecutor.map of a trivial function (x*x) at chunksize 1, 100 and "default" (the Swift
pool's default, ceil(n / (4 × workers)); mpi4py's own default is 1), tasks/s, with rank 0's
CPU time per task (getrusage of rank 0, all threads) as `rank0_cpu_us_per_task`; and the
submit(f, x).result() round trip, hot and after a 1 ms sleep (cold), µs, median.
"""
import argparse
import math
import os
import resource
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor

# run by `python3 -m mpi4py.futures`: find bench_figure in Scripts/
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Scripts"))
from bench_figure import figure  # noqa: E402


def square(x):
    """The trivial task (the Swift side's SquareTask)."""
    return x * x


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_map(executor, label, tasks, chunk, repetitions):
    inputs = list(range(tasks))
    expected = [x * x for x in inputs]
    rates, costs = [], []
    for _ in range(repetitions):
        cpu = cpu_seconds()
        start = time.perf_counter()
        results = list(executor.map(square, inputs, chunksize=chunk))
        rates.append(tasks / (time.perf_counter() - start))
        costs.append((cpu_seconds() - cpu) / tasks * 1e6)
        if results != expected:
            sys.exit(f"mpi4py_futures_bench: map chunk {label} returned a wrong result")
    figure(f"mpi4py.pool.map.{tasks}.chunk_{label}", statistics.median(rates), "tasks/s",
           min=min(rates), max=max(rates), chunksize=chunk,
           rank0_cpu_us_per_task=statistics.median(costs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5, help="runs per throughput figure")
    parser.add_argument("--tasks", type=int, default=200_000, help="inputs of the chunksize-100 and default maps")
    parser.add_argument("--chunk1-tasks", type=int, default=5_000, help="inputs of the chunksize-1 map")
    parser.add_argument("--roundtrips", type=int, default=2_000, help="hot submit().result() calls (cold: 300)")
    args = parser.parse_args()
    for option in ("repetitions", "tasks", "chunk1_tasks", "roundtrips"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1 (got {getattr(args, option)})")

    start = time.perf_counter()
    with MPIPoolExecutor() as executor:
        if executor.submit(square, 3).result() != 9:
            sys.exit("mpi4py_futures_bench: submit returned a wrong result")
        figure("mpi4py.pool.startup", time.perf_counter() - start, "s")
        workers = executor.num_workers
        figure("mpi4py.pool.workers", workers, "processes")
        bench_map(executor, "1", args.chunk1_tasks, 1, args.repetitions)
        bench_map(executor, "100", args.tasks, 100, args.repetitions)
        bench_map(executor, "default", args.tasks, math.ceil(args.tasks / (4 * workers)), args.repetitions)
        for label, pause, rounds in (("hot", 0.0, args.roundtrips), ("cold", 0.001, 300)):
            latencies = []
            for i in range(rounds):
                if pause > 0:
                    time.sleep(pause)
                begin = time.perf_counter()
                value = executor.submit(square, i).result()
                latencies.append((time.perf_counter() - begin) * 1e6)
                if value != i * i:
                    sys.exit("mpi4py_futures_bench: submit returned a wrong result")
            figure(f"mpi4py.pool.submit.roundtrip.{label}", statistics.median(latencies), "us",
                   min=min(latencies))


if __name__ == "__main__":
    main()
