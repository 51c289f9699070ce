#!/bin/sh
# Checks that the benchmark program still builds as a user builds it: Benchmarks/external, a
# separate package depending on this one (by path) that compiles the swiftmp command's sources
# (debug build, its own .build inside Benchmarks/external), then runs it once on a cheap figure.
# Not part of Scripts/test.sh or CI (a first build takes a few minutes); Scripts/bench.sh builds
# the same package in release.
#
#   Scripts/check-external-bench.sh
set -eu
cd "$(dirname "$0")/.."
external=Benchmarks/external
swift build --package-path "$external" >&2
program="$external/.build/debug/swiftmp-user"
output=$("$program" bench ipc --only process.startJoin.fork --repetitions 1)
case "$output" in
    *'"name":"process.startJoin.fork"'*'"rss_anon_kib":'*) ;;
    *) echo "check-external-bench.sh: unexpected output from $program: $output" >&2; exit 1 ;;
esac
# Built with the MPI trait, as the library (its `#if MPI` parts are there: the ping-pong suite).
case "$("$program" info)" in
    *'built without the MPI trait'*) echo "check-external-bench.sh: $program was built without the MPI trait" >&2; exit 1 ;;
esac
echo "check-external-bench.sh: $external builds and runs" >&2
