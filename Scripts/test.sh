#!/bin/sh
# The whole test suite: unit tests of every module, pool tests for every start method, and
# the tests that launch real mpirun (1–4 ranks, several network-namespace "hosts").
# Installs what is missing first. Extra arguments go to `swift test` (e.g. --filter Pool).
set -eu
cd "$(dirname "$0")/.."
Scripts/install-deps.sh
swift build --build-tests
exec swift test --skip-build "$@"
