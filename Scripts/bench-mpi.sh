#!/bin/sh
# The MPI backend's figures, in one run (BENCHMARKS.md, "MPI backend: relay, dispatch capacity"):
#
#  1. A/B: `swiftmp bench pool` under mpirun -np 3 and -np 2, BASE (default c192c9a: worker
#     ranks ran tasks themselves) against THIS (default HEAD: ranks relay to local workers),
#     and mpi4py.futures (Benchmarks/mpi4py_futures_bench.py) in the same rounds, interleaved.
#  2. Rank 0's dispatch capacity: `swiftmp bench dispatch` (tasks that do nothing, chunk size
#     1, rank 0's CPU time per task) at 1, 2, 4, 8, 16 worker ranks × 1 local worker
#     (SWIFTMP_PROCESSES_PER_RANK=1; BASE too, whose ranks run tasks themselves) and, for
#     THIS, 1, 2, 4 worker ranks × 4 local workers in both layouts: each rank scheduling its
#     own workers (SWIFTMP_RANK_SCHEDULING=node, the default there) and rank 0 scheduling
#     every worker (relay).
#
# Both sides run the same benchmark code: THIS's Sources/swiftmp/Bench and the engine probe it
# calls (Sources/Multiprocessing/Engine/EngineCostProbe.swift) are copied over BASE's (the
# library is BASE's). Builds as Scripts/bench-ab.sh does, into .build-ab/{base,this}.
# Prints Markdown tables; the raw figures go to .build-ab/mpi-log.jsonl (one JSON line per
# figure, after a {"side","np","per_rank","load"} line naming the run).
#
#   Scripts/bench-mpi.sh [BASE] [ROUNDS]      # default: c192c9a, 3 rounds
#   DISPATCH_TASKS=50000 DISPATCH_ROUNDS=2 DISPATCH_RANKS="1 2 4 8 16" POOL_REPETITIONS=5 Scripts/bench-mpi.sh
#   PARTS=dispatch APPEND=1 Scripts/bench-mpi.sh c192c9a      # only part 2, added to the same log
#   PARTS=layouts Scripts/bench-mpi.sh                         # only THIS's two layouts (part 2's
#                                                              # hybrid runs; BASE is not built)
set -eu
cd "$(dirname "$0")/.."
base=${1:-c192c9a}
rounds=${2:-3}
this=${THIS:-HEAD}
pool_repetitions=${POOL_REPETITIONS:-5}
dispatch_tasks=${DISPATCH_TASKS:-50000}
dispatch_rounds=${DISPATCH_ROUNDS:-2}
dispatch_ranks=${DISPATCH_RANKS:-1 2 4 8 16}
hybrid_ranks=${HYBRID_RANKS:-1 2 4}
hybrid_workers=${HYBRID_WORKERS:-4}
parts=${PARTS:-ab dispatch}
command -v mpirun >/dev/null || { echo "bench-mpi: mpirun not found (Scripts/install-deps.sh installs Open MPI)" >&2; exit 1; }
python3 -c 'import mpi4py.futures' 2>/dev/null || {
    echo "bench-mpi: mpi4py not found: pip install mpi4py (or --break-system-packages outside a venv)" >&2; exit 1; }
mkdir -p .build-ab
this_commit=$(git rev-parse "$this")
base_bench=same
sides="base this"
case " $parts " in *" ab "*|*" dispatch "*) ;; *) sides=this ;; esac
for side in $sides; do
    if [ "$side" = base ]; then commit=$(git rev-parse "$base"); else commit=$this_commit; fi
    dir=.build-ab/$side
    if [ -e "$dir/.git" ]; then
        git -C "$dir" checkout -q -f --detach "$commit"
        git -C "$dir" clean -fdq -- Sources/swiftmp Sources/Multiprocessing
    else
        git worktree add -q --detach "$dir" "$commit"
    fi
    # The same benchmark code on both sides (with the engine probe it calls) where BASE can
    # build it; suites that need a newer API (pool.broadcast, …) do not build on an older BASE,
    # which then runs its own benchmark code (said in the log's start record).
    git archive "$this_commit" Sources/swiftmp/Bench Sources/Multiprocessing/Engine/EngineCostProbe.swift | tar -x -C "$dir"
    if ! (cd "$dir" && swift build -c release --static-swift-stdlib --scratch-path "$PWD/.build-release" --product swiftmp >&2); then
        [ "$side" = base ] || exit 1
        echo "bench-mpi: BASE cannot build THIS's benchmark code: BASE runs its own" >&2
        git -C "$dir" checkout -q -f --detach "$commit"
        git -C "$dir" clean -fdq -- Sources/swiftmp Sources/Multiprocessing
        (cd "$dir" && swift build -c release --static-swift-stdlib --scratch-path "$PWD/.build-release" --product swiftmp >&2)
        base_bench=own
    fi
done
log=.build-ab/mpi-log.jsonl
[ "${APPEND:-0}" = 1 ] || : > "$log"
run() {  # side np per_rank command… (SCHEDULING=node|relay in the environment: the layout)
    side=$1 np=$2 per_rank=$3; shift 3
    python3 -c 'import json, os, sys; print(json.dumps({"side": sys.argv[1], "np": int(sys.argv[2]), "per_rank": sys.argv[3], "scheduling": sys.argv[4], "load": os.getloadavg()[0]}))' \
        "$side" "$np" "$per_rank" "${SCHEDULING:-}" >> "$log"
    env SWIFTMP_PROCESSES_PER_RANK="$per_rank" SWIFTMP_RANK_SCHEDULING="${SCHEDULING:-}" "$@" >> "$log"
}
{
    echo "{\"meta\": \"start\", \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\", \"base\": \"$(git rev-parse --short "$base")\", \"this\": \"$(git rev-parse --short "$this_commit")\", \"uptime\": \"$(uptime | sed 's/.*load/load/')\", \"nproc\": $(nproc), \"base_bench\": \"$base_bench\"}"
} >> "$log"
case " $parts " in *" ab "*) ;; *) rounds=0 ;; esac
layout_rounds=0
case " $parts " in *" layouts "*) layout_rounds=$dispatch_rounds ;; esac
case " $parts " in *" dispatch "*) ;; *) dispatch_rounds=0 ;; esac
for round in $(seq "$rounds"); do
    for np in 3 2; do
        for side in base this mpi4py; do
            echo "bench-mpi: round $round, -np $np, $side" >&2
            if [ "$side" = mpi4py ]; then
                run mpi4py "$np" 1 Scripts/mpirun.sh --timeout 600 -np "$np" python3 -m mpi4py.futures \
                    Benchmarks/mpi4py_futures_bench.py --repetitions 3 --chunk1-tasks 1000
            else
                run "$side" "$np" 1 Scripts/mpirun.sh --timeout 600 -np "$np" \
                    ".build-ab/$side/.build-release/release/swiftmp" bench pool --repetitions "$pool_repetitions"
            fi
        done
    done
done
layouts() {  # label: THIS's dispatch at HYBRID_RANKS × HYBRID_WORKERS, each rank scheduling its own and relayed
    for ranks in $hybrid_ranks; do
        for scheduling in node relay; do
            echo "bench-mpi: $1, $ranks worker ranks × $hybrid_workers, this, $scheduling" >&2
            SCHEDULING=$scheduling run this $((ranks + 1)) "$hybrid_workers" Scripts/mpirun.sh --timeout 600 -np $((ranks + 1)) \
                .build-ab/this/.build-release/release/swiftmp bench dispatch --tasks "$dispatch_tasks"
        done
    done
}
for round in $(seq "$dispatch_rounds"); do
    for ranks in $dispatch_ranks; do
        for side in base this; do
            # An older BASE running its own benchmark code may have no dispatch suite.
            if [ "$side" = base ] && [ "$base_bench" = own ] \
                && ! ".build-ab/base/.build-release/release/swiftmp" bench --help 2>/dev/null | grep -q 'dispatch ('; then
                continue
            fi
            echo "bench-mpi: dispatch round $round, $ranks worker ranks × 1, $side" >&2
            run "$side" $((ranks + 1)) 1 Scripts/mpirun.sh --timeout 600 -np $((ranks + 1)) \
                ".build-ab/$side/.build-release/release/swiftmp" bench dispatch --tasks "$dispatch_tasks"
        done
    done
    layouts "dispatch round $round"
done
# THIS alone, both layouts (PARTS=layouts).
for round in $(seq "$layout_rounds"); do
    layouts "layouts round $round"
done
echo "{\"meta\": \"end\", \"uptime\": \"$(uptime | sed 's/.*load/load/')\"}" >> "$log"
python3 Benchmarks/mpi_bench_report.py "$log"
