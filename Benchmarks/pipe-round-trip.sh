#!/bin/sh
# The Pipe round trip against the C floor, interleaved (Benchmarks/reports/pipe-round-trip.md):
#
#   Benchmarks/pipe-round-trip.sh ROUNDS AFTER [BEFORE]
#
# (FIRST_ROUND=n numbers the rounds from n, for rounds run one at a time.)
# AFTER and BEFORE are swiftmp-user programs (`swift build -c release --package-path
# Benchmarks/external`, copied aside before and after a change). Each round runs
# `bench ipc --repetitions 5 --only pipe` of each program and `Benchmarks/c/bin/floor 5`
# (Benchmarks/c/build.sh), in turn — the order reversed every other round — and prints one
# line: the load average and the running/total threads of /proc/loadavg at the round's start,
# the medians (µs per 8-byte round trip: `send`/`recv` of an Int, `send_bytes`/`recv_bytes` of
# 8 bytes, the C socketpair ping-pong spinning as our readers do, and blocking), then each of
# ours ÷ the spinning C of the same round; last, the running/total threads at the round's end.
set -eu
cd "$(dirname "$0")/.."
rounds=$1
after=$2
before=${3:-}
floor=Benchmarks/c/bin/floor
[ -x "$floor" ] || { echo "pipe-round-trip.sh: build $floor first (Benchmarks/c/build.sh)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

figure() { # file name → the value of the JSON line named name
    python3 -c 'import json,sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        if d["name"] == sys.argv[2]: print(d["value"]); break' "$1" "$2"
}

run_ours() { "$1" bench ipc --repetitions 5 --only pipe >"$2"; }
run_c() { "$floor" 5 >"$out/c"; }

first=${FIRST_ROUND:-1}
[ "$first" != 1 ] || printf '%s\n' "round | load 1 min | running/threads | before int | before bytes8 | after int | after bytes8 | C spinning | C blocking | before int ÷ C | before bytes8 ÷ C | after int ÷ C | after bytes8 ÷ C | running/threads at the end"
for round in $(seq "$first" $((first + rounds - 1))); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    threads=$(cut -d' ' -f4 /proc/loadavg)
    if [ $((round % 2)) = 1 ]; then
        [ -z "$before" ] || run_ours "$before" "$out/before"
        run_ours "$after" "$out/after"
        run_c
    else
        run_c
        run_ours "$after" "$out/after"
        [ -z "$before" ] || run_ours "$before" "$out/before"
    fi
    spin=$(figure "$out/c" c.pipe.pingPong.socketpairSpinning)
    block=$(figure "$out/c" c.pipe.pingPong.socketpair)
    ai=$(figure "$out/after" pipe.pingPong.int)
    ab=$(figure "$out/after" pipe.pingPong.bytes8)
    bi=-; bb=-
    if [ -n "$before" ]; then
        bi=$(figure "$out/before" pipe.pingPong.int)
        bb=$(figure "$out/before" pipe.pingPong.bytes8)
    fi
    python3 -c 'import sys
r, load, threads, bi, bb, ai, ab, spin, block, end = sys.argv[1:]
def f(x): return "-" if x == "-" else "%.2f" % float(x)
def q(x): return "-" if x == "-" else "%.2f" % (float(x) / float(spin))
print(" | ".join([r, load, threads, f(bi), f(bb), f(ai), f(ab), f(spin), f(block), q(bi), q(bb), q(ai), q(ab), end]))' \
        "$round" "$load" "$threads" "$bi" "$bb" "$ai" "$ab" "$spin" "$block" "$(cut -d' ' -f4 /proc/loadavg)"
done
