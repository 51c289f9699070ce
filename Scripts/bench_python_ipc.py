#!/usr/bin/env python3
"""Python's multiprocessing measured exactly as `swiftmp bench ipc` measures ours.

Fork start method (except the `Process` start + join figure, measured per start method):
- `Queue` of 200 000 small ints, one producer process → this process (msgs/s);
- `Queue` of 400 × 1 MiB bytes (MB/s, 10^6 bytes);
- `Pipe` ping-pong round trip with `send/recv(int)` and with `send_bytes` of 8 B (µs, mean of
  10 000 round trips after 100 warm-up ones);
- `Process` start + join of an empty target (ms, median of 20 after one unmeasured);
- `Value('i')` incremented under its lock (`with v.get_lock(): v.value += 1`) by 2 processes
  × 100 000 times, first start to last join (incr/s);
- `Manager().dict()` set and get from this process (µs, mean of 2 000 operations on 100 keys).
Each figure is the median of --repetitions runs (the 1 MiB queue: max(3, repetitions / 2)).
Prints one JSON line per figure, names of `swiftmp bench ipc` prefixed `python.`:

    {"name":"python.queue.smallInts","value":261328,"unit":"msgs/s","max":...,"min":...}

Usage: Scripts/bench_python_ipc.py [--repetitions N] [--only PREFIX]
"""
import argparse
import multiprocessing
import statistics
import sys
import time

from bench_figure import figure

fork = multiprocessing.get_context("fork")


ONLY = None  # --only: measure only this figure, or the figures under this dotted prefix


def median(name, unit, runs, body):
    if ONLY is not None and name != ONLY and not name.startswith(ONLY + "."):
        return
    values = [body() for _ in range(runs)]
    figure("python." + name, statistics.median(values), unit, min=min(values), max=max(values))


def fail(message):
    sys.exit(f"bench_python_ipc: {message}")


def produce_ints(queue, count):
    for i in range(count):
        queue.put(i)


def produce_bytes(queue, count, size):
    payload = bytes([42]) * size
    for _ in range(count):
        queue.put(payload)


def queue_ints(count=200_000):
    queue = fork.Queue()
    child = fork.Process(target=produce_ints, args=(queue, count))
    start = time.perf_counter()
    child.start()
    total = 0
    for _ in range(count):
        total += queue.get(timeout=60)
    seconds = time.perf_counter() - start
    child.join(60)
    if total != count * (count - 1) // 2:
        fail("the queue lost messages")
    return count / seconds


def queue_bytes(count=400, size=1 << 20):
    queue = fork.Queue()
    child = fork.Process(target=produce_bytes, args=(queue, count, size))
    start = time.perf_counter()
    child.start()
    total = 0
    for _ in range(count):
        total += len(queue.get(timeout=60))
    seconds = time.perf_counter() - start
    child.join(60)
    if total != count * size:
        fail("the queue lost bytes")
    return total / seconds / 1e6


def echo(connection, other_end, raw):
    """Echoes ints until -1, then (raw: byte messages) until end-of-file."""
    other_end.close()  # the parent's end, inherited by fork: else its close is no end-of-file
    while True:
        value = connection.recv()
        if value == -1:
            break
        connection.send(value)
    try:
        while True:
            if raw:
                connection.send_bytes(connection.recv_bytes())
            else:
                connection.send(connection.recv())
    except EOFError:
        pass


def ping_pong(raw, rounds=10_000):
    mine, theirs = fork.Pipe()
    child = fork.Process(target=echo, args=(theirs, mine, raw))
    child.start()
    theirs.close()
    for i in range(100):  # warm up (the echo is in int mode first)
        mine.send(i)
        mine.recv()
    mine.send(-1)
    payload = bytes(range(1, 9))
    start = time.perf_counter()
    for i in range(rounds):
        if raw:
            mine.send_bytes(payload)
            mine.recv_bytes()
        else:
            mine.send(i)
            mine.recv()
    seconds = time.perf_counter() - start
    mine.close()
    child.join(30)
    if child.exitcode is None:
        fail("the pipe echo did not exit after the pipe closed")
    return seconds / rounds * 1e6


def nothing():
    pass


def start_join(method, times=20):
    context = multiprocessing.get_context(method)
    values = []
    for _ in range(times + 1):
        start = time.perf_counter()
        process = context.Process(target=nothing)
        process.start()
        process.join(30)
        values.append((time.perf_counter() - start) * 1e3)
    return statistics.median(values[1:])  # the first may start the fork server


def increment(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def locked_counter(processes=2, increments=100_000):
    counter = fork.Value("i", 0)
    children = [fork.Process(target=increment, args=(counter, increments)) for _ in range(processes)]
    start = time.perf_counter()
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    seconds = time.perf_counter() - start
    if counter.value != processes * increments:
        fail("the locked counter lost increments")
    return processes * increments / seconds


def dict_latency(shared, set_, operations=2000):
    keys = [f"key{i}" for i in range(100)]
    for i, key in enumerate(keys):
        shared[key] = i
    start = time.perf_counter()
    for i in range(operations):
        if set_:
            shared[keys[i % len(keys)]] = i
        elif shared.get(keys[i % len(keys)]) is None:
            fail("the manager dict lost a key")
    return (time.perf_counter() - start) / operations * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5, help="runs per figure, the median is reported")
    parser.add_argument("--only", help="measure only this figure, or the figures under this dotted prefix")
    args = parser.parse_args()
    global ONLY
    ONLY = args.only
    if args.repetitions < 1:
        parser.error(f"--repetitions must be at least 1 (got {args.repetitions})")
    reps = args.repetitions

    median("queue.smallInts", "msgs/s", reps, queue_ints)
    median("queue.1MiB", "MB/s", max(3, reps // 2), queue_bytes)
    median("pipe.pingPong.int", "µs", reps, lambda: ping_pong(raw=False))
    median("pipe.pingPong.bytes8", "µs", reps, lambda: ping_pong(raw=True))
    for method in ("fork", "forkserver", "spawn"):
        median(f"process.startJoin.{method}", "ms", 1, lambda: start_join(method))
    median("value.lockedIncrement", "incr/s", reps, locked_counter)
    if ONLY is not None and ONLY != "manager" and not ONLY.startswith("manager."):
        return
    with fork.Manager() as manager:
        shared = manager.dict()
        median("manager.dict.set", "µs", reps, lambda: dict_latency(shared, True))
        median("manager.dict.get", "µs", reps, lambda: dict_latency(shared, False))


if __name__ == "__main__":
    main()
