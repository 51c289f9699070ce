#!/usr/bin/env python3
"""CPU time of each role of an mpirun job over a window of its run (Benchmarks/reports/mpi-relay.md).

    python3 Benchmarks/mpi_cpu_by_role.py --start 2 --length 3 -- \
        Scripts/mpirun.sh --timeout 300 -np 3 BIN bench dispatch --chunk-size 100 --tasks 4000000 --repetitions 12

Runs the command; `--start` seconds after it started, then again `--length` seconds later, reads
utime + stime (/proc/PID/stat, and each thread's /proc/PID/task/TID/stat for rank 0) of every
process started by the command (other jobs on the machine are not counted), and classifies them: rank 0 (OMPI_COMM_WORLD_RANK=0), worker
ranks (other ranks), local workers (processes whose parent is a worker rank). Prints one JSON
line with each role's CPU seconds in the window and its share of the window's wall time, rank
0's threads by name, and the machine's load average at both ends; the command's own output
(the benchmark's figures, whose rate gives the tasks done in the window) goes to stdout first.
"""
import argparse
import json
import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(path):
    with open(path) as handle:
        text = handle.read()
    # comm may hold spaces: the fields after it follow the last ')'.
    head, rest = text.rsplit(")", 1)
    comm = head.split("(", 1)[1]
    fields = rest.split()
    # fields[0] is state (field 3); ppid is field 4; utime 14, stime 15.
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            for item in handle.read().split(b"\0"):
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    return int(item.split(b"=", 1)[1])
    except OSError:
        pass
    return None


def descendants(root):
    """The processes below `root` (pid → (comm, ppid, cpu))."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                table[int(entry)] = stat_fields(f"/proc/{entry}/stat")
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = {}, {root}
    while frontier:
        frontier = {pid for pid, (_, ppid, _) in table.items() if ppid in frontier and pid not in found}
        for pid in frontier:
            found[pid] = table[pid]
    return found


def snapshot(root):
    processes = {}
    for pid, (comm, ppid, cpu) in descendants(root).items():
        threads = {}
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    tcomm, _, tcpu = stat_fields(f"/proc/{pid}/task/{tid}/stat")
                    threads[f"{tcomm}:{tid}"] = tcpu
                except (OSError, IndexError, ValueError):
                    pass
        except OSError:
            pass
        processes[pid] = {"ppid": ppid, "cpu": cpu, "rank": rank_of(pid), "threads": threads}
    return processes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", type=float, default=2.0)
    parser.add_argument("--length", type=float, default=3.0)
    parser.add_argument("--perf", help="also `perf record -e cpu-clock -g` the job's processes over the window into this file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    child = subprocess.Popen(command)
    time.sleep(options.start)
    load_start = open("/proc/loadavg").read().split()[0]
    before, t0 = snapshot(child.pid), time.monotonic()
    if options.perf:
        pids = ",".join(str(pid) for pid, p in before.items() if p["rank"] is not None)
        recorder = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "10000", "-g", "-o", options.perf, "-p", pids,
             "--", "sleep", str(options.length)])
        recorder.wait()
    else:
        time.sleep(options.length)
    after, t1 = snapshot(child.pid), time.monotonic()
    load_end = open("/proc/loadavg").read().split()[0]
    status = child.wait()
    wall = t1 - t0
    ranks = {pid for pid, p in after.items() if p["rank"] is not None and after.get(p["ppid"], {}).get("rank") is None}
    roles = {"rank0": 0.0, "worker_ranks": 0.0, "local_workers": 0.0}
    rank0_threads = {}
    for pid, p in after.items():
        if pid not in before:
            continue  # started inside the window: not comparable
        cpu = p["cpu"] - before[pid]["cpu"]
        if pid in ranks and p["rank"] == 0:
            roles["rank0"] += cpu
            for thread, value in p["threads"].items():
                rank0_threads[thread] = round(value - before[pid]["threads"].get(thread, 0.0), 3)
        elif pid in ranks:
            roles["worker_ranks"] += cpu
        elif p["ppid"] in ranks:
            roles["local_workers"] += cpu
    print(
        json.dumps(
            {
                "cpu_by_role": {k: round(v, 3) for k, v in roles.items()},
                "share_of_wall": {k: round(v / wall, 3) for k, v in roles.items()},
                "window_s": round(wall, 3),
                "rank0_threads": rank0_threads,
                "load": [load_start, load_end],
                "status": status,
            }
        )
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
