#!/bin/sh
# The serial Swift kernels against the best C for this CPU, interleaved: each round runs every
# kernel once in each implementation, so all see the same machine load.
#
#   Benchmarks/compare-kernels.sh [rounds]      (default 7)
#
# Implementations (Benchmarks/README.md, "Swift against the best C"):
#   c         Benchmarks/c/<kernel>.c, plain scalar C (-O3 -march=native -ffp-contract=off)
#   best      the best C for this CPU: <kernel>_avx512.c (AVX-512 intrinsics, no FMA) for pi,
#             mandelbrot and nbody; OpenBLAS dgemm on one thread for matmul (matmul_openblas.c,
#             built when libopenblas-dev is installed: Scripts/install-deps.sh --bench)
#   numpy     NumPy's matmul with OPENBLAS_NUM_THREADS=1 (when numpy imports)
#   plain     kernels-bench built as a user builds: swift build -c release, no flags
#   native    kernels-bench built with -Xswiftc -target-cpu -Xswiftc native
# Prints the JSON lines, the core's measured peak (Benchmarks/c/peak.c), and a table of the
# medians over the rounds with the ratios Swift ÷ best (best: the faster of the best C and
# NumPy in the same round; ≤ 1.00: Swift is at least as fast),
# and the load average before and after (the machine may be shared: only ratios of the same
# round mean anything).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-7}
Benchmarks/c/build.sh
# Build folders of their own (other flags than the usual build's); KERNELS_PLAIN_BUILD and
# KERNELS_NATIVE_BUILD name others.
plain_build=${KERNELS_PLAIN_BUILD:-.build-kernels-plain}
native_build=${KERNELS_NATIVE_BUILD:-.build-kernels-native}
swift build --scratch-path "$plain_build" -c release --product kernels-bench >/dev/null
swift build --scratch-path "$native_build" -c release -Xswiftc -target-cpu -Xswiftc native \
    --product kernels-bench >/dev/null
bin=Benchmarks/c/bin
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "{\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$log"
[ -x $bin/peak ] && $bin/peak 3 | tee -a "$log"
numpy=no
python3 -c "import numpy" 2>/dev/null && numpy=yes
# One run of implementation $2 of kernel $1, tagged with that implementation.
# The short kernels (pi, mandelbrot) run three times per call and report their median.
openblas_core=
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then openblas_core=OPENBLAS_CORETYPE=SkylakeX; fi

run() {
    kernel=$1 impl=$2
    n=1
    case $kernel in pi|mandelbrot) n=3 ;; esac
    case $impl in
        c) line=$("$bin/$kernel" $n) ;;
        best)
            if [ "$kernel" = matmul ]; then exe=$bin/matmul_openblas; else exe=$bin/${kernel}_avx512; fi
            [ -x "$exe" ] || return 0
            # OpenBLAS's AVX-512 kernels where the CPU has them (Scripts/bench.sh says why).
            line=$(OPENBLAS_NUM_THREADS=1 env $openblas_core "$exe" $n) ;;
        numpy)
            [ "$kernel" = matmul ] && [ $numpy = yes ] || return 0
            line=$(OPENBLAS_NUM_THREADS=1 python3 Scripts/bench_python_kernels.py --repetitions 1 matmul) ;;
        plain) line=$("$plain_build/release/kernels-bench" --runs $n "$kernel") ;;
        native) line=$("$native_build/release/kernels-bench" --runs $n "$kernel") ;;
    esac
    echo "{\"round_number\":$round,\"round_kernel\":\"$kernel\",\"round_impl\":\"$impl\",\"result\":$line}" | tee -a "$log"
}
for round in $(seq "$rounds"); do
    for kernel in pi mandelbrot matmul nbody; do
        for impl in c best numpy plain native; do run "$kernel" "$impl"; done
    done
done
echo "{\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$log"
python3 - "$log" "$rounds" <<'PY'
import json, statistics, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
load = {k: v for line in lines for k, v in line.items() if k.startswith("load_")}
peak = next((line for line in lines if line.get("kernel") == "peak"), None)
rows = [line for line in lines if "round_kernel" in line]
expected = {"pi": {"hits": 15710491}, "mandelbrot": {"sum": 113169525},
            "matmul": {"sum": 4294950921, "weighted": 6594902263792}}
for row in rows:
    result, kernel = row["result"], row["round_kernel"]
    for field, value in expected.get(kernel, {}).items():
        if result.get(field) != value:
            sys.exit(f"compare-kernels: {row['round_impl']} {kernel}: {field} = {result.get(field)}, expected {value}")
    if kernel == "nbody":
        for field, value in (("kinetic", 1.8135481578192069e-4), ("squares", 1023.5783750684968)):
            if abs(result[field] - value) > 1e-9 * abs(value):
                sys.exit(f"compare-kernels: {row['round_impl']} nbody: {field} = {result[field]}")
def seconds(result, clock):
    if clock == "cpu":
        return result.get("cpu")
    return result.get("median", result.get("value"))
print(f"\n{sys.argv[2]} rounds; load average before {load.get('load_before')}, after {load.get('load_after')}")
if peak:
    print(f"core: {peak['clock_ghz']:.2f} GHz, peak {peak['fma512_gflops']:.1f} GFLOP/s with AVX-512 FMA "
          f"({peak['fma512_flops_per_cycle']:.1f} flops/cycle), {peak['muladd512_gflops']:.1f} with separate "
          f"multiplies and adds, {peak['fma128_gflops']:.1f} with 128-bit FMA")
impls = ["c", "best", "numpy", "plain", "native"]
for clock, title in (("wall", "wall seconds (median over rounds)"),
                     ("cpu", "thread CPU seconds (the time the scheduler gave the run; median)")):
    print(f"\n{title}; ratios: median over rounds of the same round's ratio")
    print(f"{'kernel':<11}" + "".join(f"{i:>10}" for i in impls) + f"{'native/best':>13}{'plain/best':>12}")
    for kernel in ["pi", "mandelbrot", "matmul", "nbody"]:
        per_impl = {}
        for r in rows:
            if r["round_kernel"] == kernel and seconds(r["result"], clock) is not None:
                per_impl.setdefault(r["round_impl"], {})[r["round_number"]] = seconds(r["result"], clock)
        med = {i: statistics.median(t.values()) for i, t in per_impl.items()}
        # The reference of a round: the faster of the best C and NumPy (matmul has both).
        best = {}
        for ref in ("best", "numpy"):
            for n, t in per_impl.get(ref, {}).items():
                best[n] = min(t, best.get(n, t))
        def ratio(impl):
            if impl not in per_impl or not best:
                return float("nan")
            return statistics.median(t / best[n] for n, t in per_impl[impl].items() if n in best)
        print(f"{kernel:<11}" + "".join(f"{med[i]:>10.4f}" if i in med else f"{'-':>10}" for i in impls)
              + f"{ratio('native'):>13.2f}{ratio('plain'):>12.2f}")
        if kernel == "matmul" and peak:
            flops = 2 * 1024 ** 3
            print("  GFLOP/s:  " + "  ".join(
                f"{i} {flops / med[i] * 1e-9:.1f} ({flops / med[i] * 1e-9 / peak['fma512_gflops']:.0%})"
                for i in impls if i in med) + "  (% of the measured peak)")
PY
