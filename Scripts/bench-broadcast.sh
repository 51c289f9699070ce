#!/bin/sh
# `pool.broadcast` of 1 GiB under mpirun -np 3 (two worker ranks, one local worker each) against
# a C MPI_Bcast of the same bytes to the same ranks (Benchmarks/c/bcast.c), interleaved: each
# round runs the C program, then `swiftmp bench broadcast`, one repetition each. Prints every
# figure as a JSON line, then the ratio of the medians with the load average.
#
#   Scripts/bench-broadcast.sh [rounds (3)] [swiftmp (.build/release/swiftmp)]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
swiftmp=${2:-$root/.build/release/swiftmp}
[ -x "$swiftmp" ] || { echo "build it first: swift build -c release --product swiftmp" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/swiftmp-bcast.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpicc -O2 -Wall -o "$work/bcast" "$root/Benchmarks/c/bcast.c"
bytes=$((1 << 30))
i=0
while [ "$i" -lt "$rounds" ]; do
    "$root/Scripts/mpirun.sh" --timeout 600 -np 3 "$work/bcast" "$bytes" 1 | tee -a "$work/c.json"
    SWIFTMP_PROCESSES_PER_RANK=1 "$root/Scripts/mpirun.sh" --timeout 600 -np 3 "$swiftmp" bench broadcast --repetitions 1 \
        | tee -a "$work/swift.json"
    i=$((i + 1))
done
python3 - "$work/c.json" "$work/swift.json" <<'PY'
import json, os, statistics, sys
c = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
s = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
if not all(x.get("correct") for x in c):
    sys.exit("the C broadcast delivered wrong bytes")
bcast = statistics.median(x["value"] for x in c)
ours = statistics.median(x["value"] for x in s if x["name"] == "mpi.broadcast.1GiB")
print(json.dumps({"name": "mpi.broadcast.1GiB.ratio_to_c_mpi_bcast", "value": round(ours / bcast, 3), "unit": "x",
                  "c_mpi_bcast_s": round(bcast, 3), "broadcast_s": round(ours, 3), "loadavg1": os.getloadavg()[0]}))
PY
