#!/bin/sh
# The main job: install what is missing, build swiftmp in release for this CPU, and estimate
# π by Monte Carlo on local worker processes. Extra arguments go to `swiftmp pi`
# (e.g. --samples 1000000000 --processes 2 --start-method spawn).
set -eu
cd "$(dirname "$0")/.."
Scripts/install-deps.sh
# The Swift runtime linked statically: fewer shared libraries, cheaper forks (BENCHMARKS.md).
swift build -c release -Xswiftc -target-cpu -Xswiftc native --static-swift-stdlib --product swiftmp >&2
exec .build/release/swiftmp pi "$@"
