#!/bin/sh
# Installs what building and testing need on Debian: Open MPI (headers, library, mpirun),
# pkg-config (without it the CMPI system-library target does not link), python3 (a PNG test
# decodes with it), iproute2 and util-linux (`ip netns`, unshare and nsenter: the three-host
# tests in network namespaces).
# Idempotent: does nothing when everything is there.
#   --bench  also what the benchmarks' best C references need: libopenblas-dev
#            (Benchmarks/c/matmul_openblas.c; the library and its tests never use it).
set -eu

need=""
if [ "${1:-}" = --bench ]; then
    [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ] \
        || [ -f /usr/include/openblas/cblas.h ] || need="$need libopenblas-dev"
fi
command -v mpirun >/dev/null 2>&1 || need="$need openmpi-bin"
[ -f /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] || [ -f /usr/include/x86_64-linux-gnu/mpi/mpi.h ] \
    || pkg-config --exists ompi-c 2>/dev/null || need="$need libopenmpi-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkgconf"
# The PNG test runs /usr/bin/python3 (not a pyenv or venv one).
[ -x /usr/bin/python3 ] || need="$need python3"
# `ip` is in /usr/sbin or /sbin, which a non-root PATH may lack.
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
has ip || need="$need iproute2"
{ has unshare && has nsenter; } || need="$need util-linux"

[ -z "$need" ] && exit 0

echo "Installing:$need" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: need root (or sudo) to install:$need" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq libopenmpi-dev openmpi-bin pkgconf $need >/dev/null
