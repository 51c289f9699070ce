#!/bin/sh
# The pool figures of two commits side by side, interleaved so that both see the same load:
# builds swiftmp (release, as Scripts/bench.sh builds it) at BASE and at THIS (default HEAD),
# each in a worktree under .build-ab/, then runs ROUNDS rounds of `swiftmp bench pool` (local, fork) and, when
# mpirun exists, `swiftmp bench pool` under mpirun -np 3, each commit in turn. Prints one
# line per figure: the median of each side and their ratio (this ÷ base).
#
#   Scripts/bench-ab.sh [BASE] [ROUNDS]     # default: HEAD~1, 3 rounds
set -eu
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}
rounds=${2:-3}
this=${THIS:-HEAD}
mkdir -p .build-ab
# Each side is built from its commit in a worktree of its own (edits meanwhile cannot leak in).
for side in base this; do
    if [ "$side" = base ]; then commit=$(git rev-parse "$base"); else commit=$(git rev-parse "$this"); fi
    if [ -e ".build-ab/$side/.git" ]; then
        # -f and clean: Scripts/bench-mpi.sh copies benchmark sources (and the engine probe they
        # call) into these worktrees.
        git -C ".build-ab/$side" checkout -q -f --detach "$commit"
        git -C ".build-ab/$side" clean -fdq -- Sources/swiftmp Sources/Multiprocessing
    else
        git worktree add -q --detach ".build-ab/$side" "$commit"
    fi
    (cd ".build-ab/$side" && swift build -c release --static-swift-stdlib --scratch-path "$PWD/.build-release" --product swiftmp >&2)
done
log=.build-ab/log.jsonl
: > "$log"
run() {
    side=$1; shift
    python3 -c 'import json, sys; print(json.dumps({"side": sys.argv[1]}))' "$side" >> "$log"
    "$@" >> "$log"
}
for round in $(seq "$rounds"); do
    for side in base this; do
        bin=.build-ab/$side/.build-release/release/swiftmp
        echo "bench-ab: round $round, $side" >&2
        run "$side" "$bin" bench pool --processes 2 --start-method fork --repetitions 10
        if command -v mpirun >/dev/null; then
            run "$side" Scripts/mpirun.sh -np 3 "$bin" bench pool --repetitions 10
        fi
    done
done
python3 - "$log" <<'PY'
import statistics, sys
sys.path.insert(0, "Scripts")
from bench_log import ab_figures
figures = ab_figures(sys.argv[1])
print(f"{'figure':58} {'base':>12} {'this':>12} {'this/base':>9}")
for name in sorted(figures):
    sides = figures[name]
    if "base" in sides and "this" in sides:
        b, t = statistics.median(sides["base"]), statistics.median(sides["this"])
        unit = ""
        print(f"{name:58} {b:12.4g} {t:12.4g} {t / b if b else float('nan'):9.3f}")
PY
