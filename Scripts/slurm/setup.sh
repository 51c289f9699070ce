#!/bin/bash
# A real one-node Slurm on this machine, for trying the sbatch templates and for the test
# suite: munged, slurmctld and slurmd (Debian's slurm-wlm), configured for this host on
# 127.0.0.1, everything (key, configuration, state, logs, pid files) in one private directory.
#
#   Scripts/slurm/setup.sh [start]   install slurm-wlm and munge if missing, configure, start the
#                                    daemons, wait until `sinfo` shows the node idle (idempotent:
#                                    daemons already running are reused)
#   Scripts/slurm/setup.sh stop      stop the daemons (by the pids in their pid files)
#   Scripts/slurm/setup.sh env       print `export SLURM_CONF=…` for sbatch/srun/sinfo
#
# Then: `export SLURM_CONF=$SWIFTMP_SLURM_DIR/slurm.conf` (the default directory is
# /run/swiftmp-slurm) and use sbatch, srun, sinfo as on a cluster. Needs root: slurmd runs
# jobs as their users and munged must own its key. Ports: SWIFTMP_SLURM_PORT (default 6917,
# slurmctld) and the next one (slurmd), so that a system Slurm on 6817/6818 is not disturbed.
set -eu

dir=${SWIFTMP_SLURM_DIR:-/run/swiftmp-slurm}
port=${SWIFTMP_SLURM_PORT:-6917}
conf=$dir/slurm.conf
sbin=/usr/sbin

die() { echo "slurm/setup.sh: $*" >&2; exit 1; }

# Runs a daemon with only descriptors 0-2 open: it must not keep the caller's pipes and
# sockets (a caller waiting for their end, e.g. `setup.sh | tee log`, would wait for ever).
detached() {
    (
        for fd in /proc/self/fd/*; do
            n=${fd##*/}
            if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
        done
        exec "$@" </dev/null
    )
}

# Whether the process in pid file $1 is alive and runs program $2.
running() {
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# Stops the daemon whose pid file is $1 (program $2): SIGTERM, then SIGKILL after 10 s.
stop_one() {
    running "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(cat "$1")
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while [ -d "/proc/$pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ -d "/proc/$pid" ]; then
        echo "slurm/setup.sh: $2 (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

stop() {
    stop_one "$dir/slurmd.pid" slurmd
    stop_one "$dir/slurmctld.pid" slurmctld
    stop_one "$dir/munge/munged.pid" munged
}

install() {
    need=""
    [ -x $sbin/slurmctld ] && [ -x $sbin/slurmd ] && command -v sbatch >/dev/null 2>&1 || need="$need slurm-wlm"
    [ -x $sbin/munged ] && command -v munge >/dev/null 2>&1 || need="$need munge"
    [ -z "$need" ] && return 0
    echo "slurm/setup.sh: installing:$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -qq $need >/dev/null || die "apt-get install$need failed"
}

start_munge() {
    mkdir -p "$dir/munge" "$dir/munge-key"
    chmod 0700 "$dir/munge-key"
    chmod 0755 "$dir/munge"   # the socket's directory must be searchable by every job's user
    key=$dir/munge-key/munge.key
    if [ ! -s "$key" ]; then
        umask 077
        head -c 1024 /dev/urandom > "$key.tmp" && mv "$key.tmp" "$key"
        umask 022
    fi
    chmod 0400 "$key"
    socket=$dir/munge/munge.socket
    if ! running "$dir/munge/munged.pid" munged; then
        detached $sbin/munged --force --key-file="$key" --socket="$socket" --pid-file="$dir/munge/munged.pid" \
            --log-file="$dir/munge/munged.log" --seed-file="$dir/munge-key/munged.seed" \
            || die "munged did not start; see $dir/munge/munged.log"
    fi
    munge -n -S "$socket" | unmunge -S "$socket" >/dev/null \
        || die "munge does not work (munge -n | unmunge failed); see $dir/munge/munged.log"
}

write_conf() {
    host=$(hostname -s)
    # The node as slurmd sees it, e.g. "NodeName=vm CPUs=2 Boards=1 … RealMemory=24105".
    node=$($sbin/slurmd -C | head -n 1) || die "slurmd -C failed"
    memory=$(echo "$node" | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [ -n "$memory" ] || die "cannot read RealMemory from: $node"
    node=$(echo "$node" | sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/")
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    cat > "$conf.tmp" <<EOF
# Written by Scripts/slurm/setup.sh: a one-node Slurm on $host (127.0.0.1).
ClusterName=swiftmp
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    if [ -f "$conf" ] && cmp -s "$conf" "$conf.tmp"; then
        rm -f "$conf.tmp"
    else
        mv "$conf.tmp" "$conf"
        # A running slurmctld/slurmd with another configuration: restart them.
        stop_one "$dir/slurmd.pid" slurmd
        stop_one "$dir/slurmctld.pid" slurmctld
    fi
}

start_slurm() {
    export SLURM_CONF="$conf"
    if ! running "$dir/slurmctld.pid" slurmctld; then
        detached $sbin/slurmctld -f "$conf" || die "slurmctld did not start; see $dir/log/slurmctld.log"
    fi
    if ! running "$dir/slurmd.pid" slurmd; then
        detached $sbin/slurmd -f "$conf" || die "slurmd did not start; see $dir/log/slurmd.log"
    fi
    # The node registers within a few seconds; a node left down by an earlier run comes back
    # by itself (ReturnToService=2) or by the update below.
    i=0
    while [ $i -lt 300 ]; do
        state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle|mix|alloc) return 0 ;;
            down*|drain*|fail*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.1
        i=$((i + 1))
    done
    die "the node is not idle after 30 s (sinfo says '${state:-nothing}'); see $dir/log/slurmctld.log and $dir/log/slurmd.log"
}

case "${1:-start}" in
    start)
        [ "$(id -u)" -eq 0 ] || die "needs root (slurmd runs jobs as their users; munged must own its key)"
        install
        mkdir -p "$dir"
        chmod 0755 "$dir"
        start_munge
        write_conf
        start_slurm
        echo "slurm/setup.sh: node $(hostname -s) idle; export SLURM_CONF=$conf" >&2
        ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$conf" ;;
    *) die "usage: $0 [start|stop|env]" ;;
esac
