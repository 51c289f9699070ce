#!/usr/bin/env python3
"""pool.startup of two swiftmp builds, interleaved: one cold process per sample.

    nice -n -10 Scripts/startup_ab.py [--quiet] [--mpi NP] BASE_SWIFTMP THIS_SWIFTMP [ROUNDS]   # default 40 rounds

--mpi NP: each sample runs under `Scripts/mpirun.sh --timeout 120 -np NP` and keeps
`mpi.pool.startup` (the pool of an mpirun-launched program, its first `apply` answered).

--quiet: each round starts only once the machine's CPUs have been at least 92 % idle over two
0.3 s windows in a row (/proc/stat; gives up waiting after 10 minutes and says so), so that
rounds run between another job's bursts (a build, a benchmark) rather than during them.

Each round runs `swiftmp bench pool --processes 2 --start-method fork --repetitions 1 --only zzz`
once with each build, the order swapped every round, and keeps its `pool.startup` (one
`Pool(processes: 2)` created and its first `apply` answered). A build whose `--only` does not end
the suite after that figure (ca490f7's) is killed once it printed it (its standard output
line-buffered by stdbuf; the workers die with it). Prints each side's median, quartiles, min and
max in ms, the ratio of the medians (this ÷ base), and the load average before and after.
"""
import json
import os
import statistics
import subprocess
import sys
import time

from bench_python_pool import IdleShare


def sample(binary, ranks=None):
    if ranks is None:
        command = ["stdbuf", "-oL", binary, "bench", "pool", "--processes", "2", "--start-method", "fork",
                   "--repetitions", "1", "--only", "zzz"]
        name = "pool.startup"
    else:
        mpirun = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpirun.sh")
        command = ["stdbuf", "-oL", mpirun, "--timeout", "120", "-np", str(ranks), binary, "bench", "pool",
                   "--repetitions", "1", "--only", "zzz"]
        name = "mpi.pool.startup"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    value = None
    for line in process.stdout:
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("name") == name:
                value = record["value"] * 1e3
                # Under mpirun the job is left to end by itself (killing the script would leave
                # mpirun and its ranks behind; mpirun.sh's --timeout bounds it).
                if ranks is None:
                    break
    if ranks is not None:
        process.wait()
    elif process.poll() is None:
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            time.sleep(0.05)  # its workers end with it (PR_SET_PDEATHSIG)
    if value is None:
        sys.exit(f"startup_ab: {binary} printed no {name}")
    return value


def busy(interval=0.3):
    """The share of the machine's CPU time that was not idle over `interval` seconds."""
    with IdleShare() as idle:
        time.sleep(interval)
    return 1 - idle.value  # NaN (no jiffies counted) compares as not quiet


def wait_until_quiet(limit=0.08, patience=600):
    """Waits until two windows in a row are under `limit` busy; False if `patience` s passed."""
    end = time.time() + patience
    while time.time() < end:
        if busy() < limit and busy() < limit:
            return True
    return False


def load():
    with open("/proc/loadavg") as file:
        return file.read().split()[0]


def main():
    arguments = sys.argv[1:]
    quiet = "--quiet" in arguments
    arguments = [a for a in arguments if a != "--quiet"]
    ranks = None
    if "--mpi" in arguments:
        at = arguments.index("--mpi")
        if at + 1 >= len(arguments) or not arguments[at + 1].isdigit() or int(arguments[at + 1]) < 1:
            sys.exit("startup_ab: --mpi needs a number of ranks (1 or more)")
        ranks = int(arguments[at + 1])
        del arguments[at:at + 2]
    if len(arguments) not in (2, 3):
        sys.exit(__doc__)
    sides = {"base": arguments[0], "this": arguments[1]}
    rounds = int(arguments[2]) if len(arguments) == 3 else 40
    noisy = 0
    values = {"base": [], "this": []}
    before = load()
    for round in range(rounds):
        if quiet and not wait_until_quiet():
            noisy += 1
        order = ["base", "this"] if round % 2 == 0 else ["this", "base"]
        for side in order:
            values[side].append(sample(sides[side], ranks))
    after = load()
    for side in ("base", "this"):
        v = sorted(values[side])
        q = statistics.quantiles(v, n=4)
        print(f"{side:5} {sides[side]}: n={len(v)} median {statistics.median(v):.3f} ms "
              f"[p25 {q[0]:.3f}, p75 {q[2]:.3f}, min {v[0]:.3f}, max {v[-1]:.3f}]")
    ratio = statistics.median(values["this"]) / statistics.median(values["base"])
    print(f"this/base (medians): {ratio:.3f}; load {before} before, {after} after")
    if quiet:
        print(f"--quiet: {noisy} of {rounds} rounds started without a quiet machine")


if __name__ == "__main__":
    main()
