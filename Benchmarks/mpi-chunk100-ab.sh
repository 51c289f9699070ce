#!/bin/sh
# Interleaved MPI map at chunk size 100 (5 repetitions) and hot apply round trip (unless NOHOT is
# set), `Scripts/mpirun.sh -np 3`, each binary in turn (Benchmarks/engine-ab.md, session 13).
#
#   [NOHOT=1] Benchmarks/mpi-chunk100-ab.sh ROUNDS NAME=BINARY…
cd "$(dirname "$0")/.."
rounds=$1; shift
mkdir -p .build-ab
log=.build-ab/focus-ab-$(date +%H%M%S).jsonl
for r in $(seq "$rounds"); do
  for pair in "$@"; do
    name=${pair%%=*}; bin=${pair#*=}
    echo "{\"side\": \"$name\", \"round\": $r, \"load\": \"$(cut -d' ' -f1 /proc/loadavg)\"}" >> "$log"
    nice -n -10 Scripts/mpirun.sh --timeout 120 -np 3 "$bin" bench pool --only pool.map.200000.chunk_100 --repetitions 5 2>/dev/null | grep '"mpi.pool.map.200000.chunk_100"' >> "$log"
    [ -n "$NOHOT" ] || nice -n -10 Scripts/mpirun.sh --timeout 120 -np 3 "$bin" bench pool --only pool.apply.roundtrip.hot 2>/dev/null | grep '"mpi.pool.apply.roundtrip.hot"' >> "$log"
  done
done
echo "$log"
