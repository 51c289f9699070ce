#!/bin/sh
# Ping-pong between 2 ranks, Swift (`mpi-selftest --pingpong`, release) and the C reference
# (`Benchmarks/c/pingpong.c`, mpicc -O2), run alternately, printing JSON lines
# {"name":…, "value":…, "unit":…}.
#
#   Scripts/pingpong-compare.sh [rounds]        default 3 rounds
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
scratch=${SCRATCH_PATH:-$root/.build}
build=$root/Benchmarks/c/bin
mkdir -p "$build"

mpicc -O2 -o "$build/pingpong" "$root/Benchmarks/c/pingpong.c"
swift build -c release --package-path "$root" --scratch-path "$scratch" --product mpi-selftest >&2
swift_binary=$(swift build -c release --package-path "$root" --scratch-path "$scratch" --show-bin-path)/mpi-selftest

i=0
while [ "$i" -lt "$rounds" ]; do
    "$root/Scripts/mpirun.sh" --timeout 120 -np 2 "$swift_binary" --pingpong
    "$root/Scripts/mpirun.sh" --timeout 120 -np 2 "$build/pingpong"
    i=$((i + 1))
done
