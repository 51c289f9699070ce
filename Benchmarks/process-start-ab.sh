#!/bin/bash
# Process start + join of two or more builds of `swiftmp` against the C floor of our shape, in
# the same rounds (Benchmarks/reports/process-start.md):
#
#   Benchmarks/process-start-ab.sh ROUNDS OUT.jsonl NAME=SWIFTMP [NAME=SWIFTMP...]
#
# Each round runs every build's `swiftmp bench ipc --only process --repetitions 1` and
# `Benchmarks/c/bin/floor 1 --padded ANON_KIB LIBRARY...` (ANON_KIB: the RssAnon of the last
# build's process.startJoin.fork figure; LIBRARY: what the first build loads) in an order that
# rotates by round, all under `nice -n -10`. Every JSON line gets the build's name, the round
# and /proc/loadavg when the round began. Summary: Benchmarks/process_start_summary.py OUT.jsonl.
# NAME=SWIFTMP may be a script that sets SWIFTMP_PROCESS_SAME_CPU=0 and execs a build.
set -euo pipefail
rounds=$1 out=$2
shift 2
variants=("$@" "c=Benchmarks/c/bin/floor")
count=${#variants[@]}
first=${1#*=}
libraries=$(ldd "$first" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
for round in $(seq 1 "$rounds"); do
    load=$(cut -d' ' -f1-4 /proc/loadavg)
    for i in $(seq 0 $((count - 1))); do
        variant=${variants[$(((i + round) % count))]}
        name=${variant%%=*} program=${variant#*=}
        tag="{\"variant\":\"$name\",\"round\":$round,\"load\":\"$load\","
        if [ "$name" = c ]; then
            anon=$({ grep -s '"process.startJoin.fork"' "$out" || true; } | tail -1 |
                python3 -c 'import json, sys; line = sys.stdin.read().strip(); print(json.loads(line)["rss_anon_kib"] if line else 1500)')
            # shellcheck disable=SC2086
            nice -n -10 "$program" 1 --padded "$anon" $libraries | sed "s|^{|$tag|" >>"$out"
        else
            nice -n -10 "$program" bench ipc --only process --repetitions 1 | sed "s|^{|$tag|" >>"$out"
        fi
    done
done
