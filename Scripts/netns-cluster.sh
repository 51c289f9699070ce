#!/bin/bash
# Several "hosts" on one machine (ARCHITECTURE.md §10): each a network namespace with its own address
# on a private /24 and its own UTS namespace and host name (node1…node3), joined by a bridge
# that lives in a namespace of its own. The root namespace is not touched: no interface,
# address or route is added there, and all traffic stays on 127.0.0.0/8 or inside these
# namespaces.
#
#   Scripts/netns-cluster.sh up                    create the namespaces
#   Scripts/netns-cluster.sh down                  remove them (and kill what runs in them)
#   Scripts/netns-cluster.sh run <np> <program…>   up, mpirun inside node1, down (also on failure)
#
# The three traps: mpirun runs *inside* node1's namespace (a remote daemon dials back to
# mpirun's address); every host has its own host name (equal names collide in
# /dev/shm/vader_segment.<host>…); the agent runs its words with `sh -c "$*"`.
# Needs root. Environment: SWIFTMP_NETNS_PREFIX (swiftmp), SWIFTMP_NETNS_STATE
# (/run/swiftmp-netns), NETNS_TIMEOUT (mpirun --timeout, 60).
set -euo pipefail
# ip lives in /usr/sbin or /sbin, which a caller's PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

root=$(cd "$(dirname "$0")/.." && pwd)
export SWIFTMP_NETNS_PREFIX=${SWIFTMP_NETNS_PREFIX:-swiftmp}
export SWIFTMP_NETNS_STATE=${SWIFTMP_NETNS_STATE:-/run/swiftmp-netns}
prefix=$SWIFTMP_NETNS_PREFIX
state=$SWIFTMP_NETNS_STATE
subnet=10.231.77
hosts=(node1 node2 node3)
bridge_ns=$prefix-bridge

usage() {
    echo "usage: $0 up | down | run <np> <program> [arguments…]" >&2
    exit 2
}

# Kills every process in namespace $1: TERM, then KILL for what is left after a second.
kill_in_namespace() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$1" 2>/dev/null || true)
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    kill -KILL $pids 2>/dev/null || true
}

down() {
    local host
    for host in "${hosts[@]}"; do
        if [ -e "/run/netns/$prefix-$host" ]; then
            kill_in_namespace "$prefix-$host"
            ip netns delete "$prefix-$host"
        fi
        if [ -e "$state/uts-$host" ]; then
            umount "$state/uts-$host" 2>/dev/null || true
            rm -f "$state/uts-$host"
        fi
    done
    if [ -e "/run/netns/$bridge_ns" ]; then
        kill_in_namespace "$bridge_ns"
        ip netns delete "$bridge_ns"
    fi
    rmdir "$state" 2>/dev/null || true
}

up() {
    if [ -e "/run/netns/$bridge_ns" ]; then
        echo "netns-cluster: already up ($bridge_ns exists); run '$0 down' first" >&2
        exit 1
    fi
    # A half-built cluster is removed again.
    trap 'status=$?; down; exit $status' ERR
    mkdir -p "$state"
    ip netns add "$bridge_ns"
    ip -n "$bridge_ns" link set lo up
    ip -n "$bridge_ns" link add br0 type bridge
    ip -n "$bridge_ns" link set br0 up
    local i=1 host ns
    for host in "${hosts[@]}"; do
        ns=$prefix-$host
        ip netns add "$ns"
        # Created inside the host's namespace, its peer moved straight into the bridge's.
        ip -n "$ns" link add eth0 type veth peer name "veth-$host" netns "$bridge_ns"
        ip -n "$bridge_ns" link set "veth-$host" master br0
        ip -n "$bridge_ns" link set "veth-$host" up
        ip -n "$ns" addr add "$subnet.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        touch "$state/uts-$host"
        unshare --uts="$state/uts-$host" hostname "$host"
        i=$((i + 1))
    done
    trap - ERR
}

run() {
    [ $# -ge 2 ] || usage
    local np=$1
    shift
    # One cluster at a time on this machine.
    exec 9>"/run/$prefix-netns.lock"
    flock -w 300 9
    down
    trap 'status=$?; down; exit $status' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    up
    nsenter --net="/run/netns/$prefix-${hosts[0]}" --uts="$state/uts-${hosts[0]}" -- \
        "$root/Scripts/mpirun.sh" --timeout "${NETNS_TIMEOUT:-60}" \
        --hostfile "$root/hostfiles/netns" --map-by node -np "$np" \
        --mca plm_rsh_agent "$root/Scripts/netns-agent.sh" \
        --mca btl self,tcp \
        --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24" \
        --mca mpi_yield_when_idle 1 \
        "$@"
}

[ "$(id -u)" -eq 0 ] || { echo "netns-cluster: needs root" >&2; exit 1; }
case "${1:-}" in
    up) up ;;
    down) down ;;
    run) shift; run "$@" ;;
    *) usage ;;
esac
