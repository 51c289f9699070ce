#!/bin/sh
# mpirun with the settings this project needs (ARCHITECTURE.md §10): allowed as root, oversubscribed
# rather than refused on few cores, ob1 (no UCX probe), vader without CMA single-copy
# (~11 GB/s instead of ~4), ranks that yield when idle, no CPU binding, a private session
# directory (concurrent runs sharing one raced), and a timeout unless the caller gives one.
#
#   Scripts/mpirun.sh -np 3 .build/debug/mpi-selftest
#   Scripts/mpirun.sh --timeout 30 --hostfile hostfiles/localhost -np 4 prog args…
set -eu

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_mpi_yield_when_idle=1

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/swiftmp-mpirun.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export OMPI_MCA_orte_tmpdir_base="$tmpdir"

timeout_option="--timeout 120"
for argument in "$@"; do
    case "$argument" in
        --timeout|--timeout=*|-timeout) timeout_option="" ;;
    esac
done

# Not `exec`: the trap must remove the session directory after mpirun ends.
status=0
# shellcheck disable=SC2086  # $timeout_option is empty or two words on purpose
"${MPIRUN:-mpirun}" --bind-to none $timeout_option "$@" || status=$?
exit "$status"
