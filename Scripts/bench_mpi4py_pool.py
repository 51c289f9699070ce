#!/usr/bin/env python3
"""mpi4py.futures measured as `swiftmp bench pool` measures the Swift pool.

Run under mpirun with the workers already started, as mpi4py.futures' reference figures were:

    Scripts/mpirun.sh -np 3 python3 -m mpi4py.futures Scripts/bench_mpi4py_pool.py

Rank 0 runs this script; the other ranks are the MPIPoolExecutor's workers. Figures, one JSON
line each, names prefixed `mpi4py.`: executor start-up (construction to the first result),
map of 200 000 `x*x` at chunksize 100 and of --chunk1-tasks at chunksize 1 (tasks/s, median),
and the submit(f, x).result() round trip hot and cold (µs, median).
"""
import argparse
import os
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor

# run by `python3 -m mpi4py.futures`: find bench_figure beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_figure import figure  # noqa: E402


def square(x):
    """The trivial task (the Swift side's SquareTask)."""
    return x * x


def bench_map(executor, label, tasks, chunk, repetitions):
    inputs = list(range(tasks))
    expected = [x * x for x in inputs]
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        results = list(executor.map(square, inputs, chunksize=chunk))
        rates.append(tasks / (time.perf_counter() - start))
        if results != expected:
            sys.exit(f"bench_mpi4py_pool: map chunk {label} returned a wrong result")
    figure(f"mpi4py.pool.map.{tasks}.chunk_{label}", statistics.median(rates), "tasks/s",
           min=min(rates), max=max(rates))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5, help="runs per throughput figure")
    parser.add_argument("--tasks", type=int, default=200_000, help="inputs of the chunksize-100 map")
    parser.add_argument("--chunk1-tasks", type=int, default=5_000, help="inputs of the chunksize-1 map")
    args = parser.parse_args()
    for option in ("repetitions", "tasks", "chunk1_tasks"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1 (got {getattr(args, option)})")

    start = time.perf_counter()
    with MPIPoolExecutor() as executor:
        if executor.submit(square, 3).result() != 9:
            sys.exit("bench_mpi4py_pool: submit returned a wrong result")
        figure("mpi4py.pool.startup", time.perf_counter() - start, "s")
        figure("mpi4py.pool.workers", executor.num_workers, "processes")
        bench_map(executor, "100", args.tasks, 100, args.repetitions)
        bench_map(executor, "1", args.chunk1_tasks, 1, args.repetitions)
        for label, pause in (("hot", 0.0), ("cold", 0.001)):
            latencies = []
            for i in range(2000 if pause == 0 else 300):
                if pause > 0:
                    time.sleep(pause)
                begin = time.perf_counter()
                value = executor.submit(square, i).result()
                latencies.append((time.perf_counter() - begin) * 1e6)
                if value != i * i:
                    sys.exit("bench_mpi4py_pool: submit returned a wrong result")
            figure(f"mpi4py.pool.submit.roundtrip.{label}", statistics.median(latencies), "us",
                   min=min(latencies))


if __name__ == "__main__":
    main()
