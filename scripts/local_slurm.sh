#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (slurmctld + slurmd on 127.0.0.1, munge for
# authentication), for trying and testing `hydra/launcher=slurm` without a cluster. Needs root
# and Debian's slurmctld, slurmd, slurm-client and munge packages.
#
#   scripts/local_slurm.sh start DIR    # config, state, logs and the munge key in DIR
#   SLURM_CONF=DIR/slurm.conf sbatch ... / squeue / scancel / scontrol ...
#   scripts/local_slurm.sh stop DIR
#
# One partition `debug` with this machine's cores and memory; no accounting database, so
# `sacct` has nothing to say (submitit then follows jobs through squeue and its own files).
set -euo pipefail

die() { echo "local_slurm: $*" >&2; exit 1; }
command="${1:-}"
DIR="${2:-}"
[ -n "$DIR" ] || die "usage: $0 start|stop DIR"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
CONF="$DIR/slurm.conf"

start() {
    [ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as their users)"
    for bin in munged slurmctld slurmd sbatch; do
        command -v "$bin" >/dev/null || die "$bin not found (Debian: apt-get install slurmctld slurmd slurm-client munge)"
    done
    local host cpus mem_mb ports
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem_mb="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))"
    ports="${LOCAL_SLURM_PORTS:-16817}"  # slurmctld on this port, slurmd on the next
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/munge" "$DIR/munge-run"
    chown munge: "$DIR/munge" "$DIR/munge-run"
    chmod 700 "$DIR/munge"
    chmod 755 "$DIR/munge-run"
    if [ ! -f "$DIR/munge/munge.key" ]; then
        head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
        chown munge: "$DIR/munge/munge.key"
        chmod 400 "$DIR/munge/munge.key"
    fi
    runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge-run/munge.sock" \
        --pid-file="$DIR/munge-run/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/seed"
    cat > "$CONF" <<EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ports
SlurmdPort=$((ports + 1))
AuthType=auth/munge
AuthInfo=socket=$DIR/munge-run/munge.sock
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# no cgroups in a container: processes tracked by parentage, no task confinement, no accounting
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
KillWait=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -f "$CONF"
    slurmd -f "$CONF"
    for _ in $(seq 1 30); do
        if SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | grep -q idle; then
            echo "local_slurm: up (SLURM_CONF=$CONF)"; return
        fi
        sleep 1
    done
    tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
    die "the node did not become idle within 30 s"
}

stop() {
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" "$DIR/munge-run/munged.pid"; do
        if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    sleep 1
    echo "local_slurm: stopped"
}

case "$command" in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 start|stop DIR" ;;
esac
