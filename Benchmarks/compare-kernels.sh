#!/bin/sh
# Serial Swift kernels against the C references, interleaved: each round runs every kernel
# once in C and once in Swift, so both see the same machine load. Prints the JSON lines and a
# table of medians over the rounds.  Usage: Benchmarks/compare-kernels.sh [rounds]
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-7}
Benchmarks/c/build.sh
swift build --scratch-path .build-kernels -c release -Xswiftc -target-cpu -Xswiftc native \
    --product kernels-bench >/dev/null
log=$(mktemp)
for round in $(seq "$rounds"); do
    for kernel in pi mandelbrot matmul nbody; do
        "Benchmarks/c/bin/$kernel" 1 | tee -a "$log"
        ".build-kernels/release/kernels-bench" --runs 1 "$kernel" | tee -a "$log"
    done
done
python3 - "$log" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'kernel':<11} {'C median':>10} {'Swift median':>13} {'Swift/C':>8}")
for kernel in ["pi", "mandelbrot", "matmul", "nbody"]:
    t = {impl: [r["median"] for r in rows if r["kernel"] == kernel and r["impl"] == impl]
         for impl in ("c", "swift")}
    c, s = statistics.median(t["c"]), statistics.median(t["swift"])
    print(f"{kernel:<11} {c:>10.4f} {s:>13.4f} {s / c:>8.2f}  "
          f"[C {min(t['c']):.4f}-{max(t['c']):.4f}, Swift {min(t['swift']):.4f}-{max(t['swift']):.4f}]")
PY
rm -f "$log"
