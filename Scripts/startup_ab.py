#!/usr/bin/env python3
"""pool.startup of two swiftmp builds, interleaved: one cold process per sample.

    nice -n -10 Scripts/startup_ab.py BASE_SWIFTMP THIS_SWIFTMP [ROUNDS]   # default 40 rounds

Each round runs `swiftmp bench pool --processes 2 --start-method fork --repetitions 1 --only zzz`
once with each build, the order swapped every round, and keeps its `pool.startup` (one
`Pool(processes: 2)` created and its first `apply` answered). A build whose `--only` does not end
the suite after that figure (ca490f7's) is killed once it printed it (its standard output
line-buffered by stdbuf; the workers die with it). Prints each side's median, quartiles, min and
max in ms, the ratio of the medians (this ÷ base), and the load average before and after.
"""
import json
import statistics
import subprocess
import sys
import time


def sample(binary):
    command = ["stdbuf", "-oL", binary, "bench", "pool", "--processes", "2", "--start-method", "fork",
               "--repetitions", "1", "--only", "zzz"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    value = None
    for line in process.stdout:
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("name") == "pool.startup":
                value = record["value"] * 1e3
                break
    if process.poll() is None:
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            time.sleep(0.05)  # its workers end with it (PR_SET_PDEATHSIG)
    if value is None:
        sys.exit(f"startup_ab: {binary} printed no pool.startup")
    return value


def load():
    with open("/proc/loadavg") as file:
        return file.read().split()[0]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sides = {"base": sys.argv[1], "this": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) == 4 else 40
    values = {"base": [], "this": []}
    before = load()
    for round in range(rounds):
        order = ["base", "this"] if round % 2 == 0 else ["this", "base"]
        for side in order:
            values[side].append(sample(sides[side]))
    after = load()
    for side in ("base", "this"):
        v = sorted(values[side])
        q = statistics.quantiles(v, n=4)
        print(f"{side:5} {sides[side]}: n={len(v)} median {statistics.median(v):.3f} ms "
              f"[p25 {q[0]:.3f}, p75 {q[2]:.3f}, min {v[0]:.3f}, max {v[-1]:.3f}]")
    ratio = statistics.median(values["this"]) / statistics.median(values["base"])
    print(f"this/base (medians): {ratio:.3f}; load {before} before, {after} after")


if __name__ == "__main__":
    main()
