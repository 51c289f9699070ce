#!/bin/sh
# The whole comparison in one go, interleaved so that every figure and its peer see the same
# machine load: ROUNDS rounds of (swiftmp bench pool, Python's multiprocessing pool, swiftmp
# bench ipc, Python's multiprocessing IPC, swiftmp bench kernels, the C kernels, the NumPy
# kernels; when mpirun exists: swiftmp bench pool on the MPI backend, mpi4py.futures if
# installed, swiftmp bench pingpong and the C ping-pong, mpi-object-check --bench locally and
# under mpirun -np 2 and 3), then the scaling suite. Raw figures go to Benchmarks/bench-log.jsonl (each command line before its output);
# Scripts/bench_report.py turns them into BENCHMARKS.md and Benchmarks/scaling.svg.
#
# The Swift program is built as a user builds one: Benchmarks/external is a separate package
# that depends on this one and compiles the swiftmp command's sources, `swift build -c release`
# with no special flags. Two more builds of it, one with -target-cpu native and one with the
# Swift runtime linked statically, run a few suites each round under the name prefixes
# `native.` and `static.`, to show what each flag adds. Beside the IPC figures, the operating
# system's floor in C (Benchmarks/c/floor.c): fork + _exit + waitpid of a tiny program and of
# one given our process's shape (the same shared libraries, as much anonymous memory), an
# 8-byte ping-pong over a socketpair and over pipes, a Unix-socket request/reply.
#
#   Scripts/bench.sh [rounds]            # default 3 rounds
#   PROCESSES=2 Scripts/bench.sh         # workers of the pool suites and the scaling maximum
#   VARIANTS=no Scripts/bench.sh         # without the native and static builds
set -eu
cd "$(dirname "$0")/.."

rounds=${1:-3}
case "$rounds" in
    ''|*[!0-9]*|0) echo "bench.sh: rounds must be a positive integer (got '$rounds')" >&2; exit 2 ;;
esac
processes=${PROCESSES:-2}
log=Benchmarks/bench-log.jsonl

# Machine facts first: the load average must be the one before we add any.
python3 - "$rounds" > "$log" <<'PY'
import datetime, json, os, platform, subprocess, sys
def first(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
try:
    import numpy; numpy_version = numpy.__version__
except ImportError:
    numpy_version = "not installed"
print(json.dumps({"machine": {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu,
    "loadavg": open("/proc/loadavg").read().split()[:3], "kernel": platform.release(),
    "swift": first(["swift", "--version"]), "python": platform.python_version(), "numpy": numpy_version,
    "gcc": first(["gcc", "--version"]), "mpirun": first(["mpirun", "--version"]),
    "commit": first(["git", "rev-parse", "--short", "HEAD"]), "rounds": int(sys.argv[1])}}))
PY

variants=${VARIANTS:-yes}
external=Benchmarks/external
echo "bench.sh: building the benchmark program as a user builds it ($external, release, no flags) and the C programs" >&2
# SwiftPM keeps a dependency's list of source files in the dependent's build folders: after a
# file is added to or removed from this package, those builds fail to find it. So they are
# dropped whenever the list differs from the one they were built with.
sources=$(find Sources -name '*.swift' | LC_ALL=C sort | cksum)
if [ "$(cat "$external/.build/swiftmp-sources" 2>/dev/null)" != "$sources" ]; then
    rm -rf "$external/.build" "$external/.build-native" "$external/.build-static"
fi
swift build -c release --package-path "$external" >&2
echo "$sources" > "$external/.build/swiftmp-sources"
swiftmp="$external/.build/release/swiftmp-user"
if [ "$variants" = yes ]; then
    echo "bench.sh: building it again with -target-cpu native, and with --static-swift-stdlib" >&2
    swift build -c release --package-path "$external" --scratch-path "$external/.build-native" \
        -Xswiftc -target-cpu -Xswiftc native >&2
    swift build -c release --package-path "$external" --scratch-path "$external/.build-static" \
        --static-swift-stdlib >&2
fi
Benchmarks/c/build.sh
# The shared libraries our program loads, for the C floor of our size (floor --padded).
libraries=$(ldd "$swiftmp" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')

# OpenBLAS's best kernels for this CPU: Debian's OpenBLAS (0.3.21) does not know AMD's Zen 4
# and takes its AVX2 (Haswell) kernels there, 1.6x slower than its AVX-512 ones (SkylakeX),
# which it takes on Intel CPUs that have AVX-512; so where the CPU has AVX-512, those.
openblas_core=
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then openblas_core=OPENBLAS_CORETYPE=SkylakeX; fi

have_mpi=no have_mpi4py=no have_mpicc=no
if command -v mpirun >/dev/null; then
    have_mpi=yes
    # The served objects' round trips: a test program of this package, built here in release.
    echo "bench.sh: building mpi-object-check (release, .build-bench)" >&2
    swift build -c release --product mpi-object-check --scratch-path .build-bench >&2
    # Relative to the repository (the log and BENCHMARKS.md quote the command).
    objects="$(swift build -c release --scratch-path .build-bench --show-bin-path)/mpi-object-check"
    objects=".build-bench/${objects#"$PWD/.build-bench/"}"
    if python3 -c "import mpi4py.futures" 2>/dev/null; then have_mpi4py=yes; fi
    if command -v mpicc >/dev/null; then
        have_mpicc=yes
        mkdir -p Benchmarks/c/bin
        mpicc -O2 -o Benchmarks/c/bin/pingpong Benchmarks/c/pingpong.c
    else
        echo "bench.sh: mpicc not found: the C ping-pong is not measured" >&2
    fi
else
    echo "bench.sh: mpirun not found: the MPI backend, mpi4py.futures and the ping-pong are not measured" >&2
fi

# Notes a benchmark command's line (and the round) in the log, before its figures.
note_command() {
    echo "bench.sh: round $round: $*" >&2
    python3 -c 'import json, sys; print(json.dumps({"command": sys.argv[1], "round": int(sys.argv[2])}))' \
        "$*" "$round" >> "$log"
}

# Runs one benchmark command: its command line, then its JSON lines, into the log.
run() {
    note_command "$@"
    "$@" >> "$log"
}

# mpi-object-check --bench (a worker's round trips to shared objects, JSON lines
# {"bench", "us"}) as figures objects.<where>.<lock|queue|manager_set|manager_get> (µs).
run_objects() {
    where=$1
    shift
    note_command "$@"
    part=$(mktemp)
    "$@" > "$part"
    python3 -c '
import json, sys
names = {"worker lock acquire+release": "lock", "worker queue put+get": "queue",
         "worker manager dict set": "manager_set", "worker manager dict get": "manager_get"}
for line in open(sys.argv[2]):
    if line.startswith("{\"bench\""):
        record = json.loads(line)
        print(json.dumps({"name": "objects." + sys.argv[1] + "." + names[record["bench"]],
                          "value": record["us"], "unit": "us", "n": record["n"]}))' "$where" "$part" >> "$log"
    rm -f "$part"
}

# Like run, with every figure's name prefixed (the native and static builds' figures).
run_prefixed() {
    prefix=$1
    shift
    note_command "$@"
    part=$(mktemp)
    "$@" > "$part"
    python3 -c '
import json, sys
for line in open(sys.argv[2]):
    record = json.loads(line)
    record["name"] = sys.argv[1] + record["name"]
    print(json.dumps(record, ensure_ascii=False))' "$prefix" "$part" >> "$log"
    rm -f "$part"
}

# Our process's anonymous resident memory when it last measured process.startJoin.fork (this
# round's `swiftmp bench ipc`), for the C floor of our size.
our_anon_kib() {
    python3 - "$log" <<'PY'
import json, sys
value = None
for line in open(sys.argv[1]):
    record = json.loads(line)
    if record.get("name") == "process.startJoin.fork" and record.get("rss_anon_kib") is not None:
        value = int(record["rss_anon_kib"])
if value is None:
    raise SystemExit("bench.sh: no process.startJoin.fork figure with rss_anon_kib in the log")
print(value)
PY
}

for round in $(seq "$rounds"); do
    run "$swiftmp" bench pool --processes "$processes" --start-method fork --repetitions 10
    run python3 Scripts/bench_python_pool.py --processes "$processes" --repetitions 10
    run "$swiftmp" bench ipc --repetitions 5
    run python3 Scripts/bench_python_ipc.py --repetitions 5
    run Benchmarks/c/bin/floor 5
    anon_kib=$(our_anon_kib)
    # shellcheck disable=SC2086 # one argument per library
    run Benchmarks/c/bin/floor 5 --padded "$anon_kib" $libraries
    if [ "$variants" = yes ]; then
        run_prefixed native. "$external/.build-native/release/swiftmp-user" bench pool --processes "$processes" --start-method fork --repetitions 5
        run_prefixed native. "$external/.build-native/release/swiftmp-user" bench kernels --repetitions 3
        run_prefixed native. "$external/.build-native/release/swiftmp-user" bench random --repetitions 5
        run_prefixed static. "$external/.build-static/release/swiftmp-user" bench pool --processes "$processes" --start-method fork --repetitions 5
        run_prefixed static. "$external/.build-static/release/swiftmp-user" bench ipc --repetitions 5 --only process
    fi
    run "$swiftmp" bench kernels --repetitions 5
    for kernel in pi mandelbrot matmul nbody; do
        run "Benchmarks/c/bin/$kernel" 5
    done
    # The best C for this CPU, where built (Benchmarks/c/build.sh): AVX-512 intrinsics, OpenBLAS.
    for best in pi_avx512 mandelbrot_avx512 matmul_openblas nbody_avx512; do
        if [ -x "Benchmarks/c/bin/$best" ]; then run env $openblas_core "Benchmarks/c/bin/$best" 5; fi
    done
    run python3 Scripts/bench_python_kernels.py --repetitions 3
    run "$swiftmp" bench random --repetitions 5
    if [ "$have_mpi" = yes ]; then
        # Rank 0 runs the pool, the other ranks are its workers; the names start with `mpi.`.
        run Scripts/mpirun.sh -np $((processes + 1)) "$swiftmp" bench pool --repetitions 10
    fi
    if [ "$have_mpi4py" = yes ]; then
        run Scripts/mpirun.sh -np $((processes + 1)) python3 -m mpi4py.futures Benchmarks/mpi4py_futures_bench.py
    fi
    if [ "$have_mpi" = yes ]; then
        run env SWIFTMP_MPI_MODE=spmd Scripts/mpirun.sh -np 2 "$swiftmp" bench pingpong
    fi
    if [ "$have_mpicc" = yes ]; then
        run Scripts/mpirun.sh -np 2 Benchmarks/c/bin/pingpong
    fi
    if [ "$have_mpi" = yes ]; then
        run_objects local "$objects" --bench
        run_objects mpi2 Scripts/mpirun.sh -np 2 "$objects" --bench
        run_objects mpi3 Scripts/mpirun.sh -np 3 "$objects" --bench
    fi
done
round=0
run "$swiftmp" bench scaling --processes "$processes" --start-method fork --repetitions 5
if command -v mpirun >/dev/null; then
    # The same problems on the MPI backend: 1…processes worker ranks of one mpirun job.
    run Scripts/mpirun.sh --timeout 900 -np $((processes + 1)) "$swiftmp" bench scaling --processes "$processes" --repetitions 5
fi

python3 -c 'import json; print(json.dumps({"machine_end": {"loadavg": open("/proc/loadavg").read().split()[:3]}}))' >> "$log"
python3 Scripts/bench_report.py "$log" BENCHMARKS.md
python3 Scripts/scaling_svg.py "$log" Benchmarks/scaling.svg
python3 Scripts/readme_figures.py
echo "bench.sh: wrote BENCHMARKS.md, Benchmarks/scaling.svg, $log and README.md's figures" >&2
