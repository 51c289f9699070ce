#!/bin/sh
# Interleaved MPI hot apply round trips (Benchmarks/engine-ab.md, session 13): each round runs
# `swiftmp bench pool --repetitions 1` under `Scripts/mpirun.sh -np 3` with each binary in turn
# (a whole suite: ca490f7 cannot run one figure alone) and keeps mpi.pool.apply.roundtrip.hot.
#
#   Benchmarks/mpi-hot-ab.sh ROUNDS NAME=BINARY…
cd "$(dirname "$0")/.."
rounds=$1; shift
mkdir -p .build-ab
log=.build-ab/hot-ab-$(date +%H%M%S).log
for r in $(seq "$rounds"); do
  for pair in "$@"; do
    name=${pair%%=*}; bin=${pair#*=}
    v=$(nice -n -10 Scripts/mpirun.sh --timeout 120 -np 3 "$bin" bench pool --repetitions 1 2>/dev/null | grep '"mpi.pool.apply.roundtrip.hot"' | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
    echo "$r $name $v $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$log"
  done
done
python3 - "$log" <<'PY'
import sys, statistics
d = {}
for line in open(sys.argv[1]):
    r, n, v, l = line.split()
    d.setdefault(n, []).append(float(v))
names = list(d)
for n in names:
    print(n, "median", statistics.median(d[n]), "range", min(d[n]), max(d[n]), "n", len(d[n]))
b = names[0]
for n in names[1:]:
    print(n, "/", b, round(statistics.median(d[n]) / statistics.median(d[b]), 3))
PY
