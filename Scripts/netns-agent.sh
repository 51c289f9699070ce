#!/bin/sh
# Open MPI's launcher agent (plm_rsh_agent) for the netns cluster, in place of ssh.
# mpirun calls it as `netns-agent.sh <host> " orted" -mca ess "env" …`: shell words with a
# leading space and literal quotes, so they are run by `sh -c "$*"`; `exec "$@"` fails.
set -eu
host=$1
shift
prefix=${SWIFTMP_NETNS_PREFIX:-swiftmp}
state=${SWIFTMP_NETNS_STATE:-/run/swiftmp-netns}
case "$host" in
    node[0-9]*) ;;
    *) echo "netns-agent: unknown host '$host'" >&2; exit 1 ;;
esac
exec nsenter --net="/run/netns/$prefix-$host" --uts="$state/uts-$host" -- /bin/sh -c "$*"
